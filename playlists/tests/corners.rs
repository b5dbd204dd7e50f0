//! Corner cases of the slot planner, data-driven through one `check` helper that plans a
//! screen, runs the independent checker (invariants 1 to 6) and hands back the plan for
//! the expectations each test states: DST in both directions, half-hour zones, flights
//! that start or end inside a slot, caps that bind, tiers that empty mid-hour, creatives
//! that fit some screens only, emergencies, the Vixie day rule and `explain`.
//! Random scenarios are `invariants.rs`'s business.

mod checker;

use chrono::{DateTime, Duration, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use playlists::explain::explain;
use playlists::{Catalogue, Planner, Priority, ScreenSchedule};

use checker::fixtures::{campaign, creative, full_schedule, one_screen, screen, t, venue, year};
use checker::{check_document, check_screen, report, Checker};

/// A checked plan of one screen: (slot start, campaign id, creative id) per play.
struct Plan {
    schedule: ScreenSchedule,
    plays: Vec<(DateTime<Utc>, String, String)>,
}

impl Plan {
    /// Plays of `campaign` starting in `[from, to)`.
    fn count(&self, campaign: &str, from: &str, to: &str) -> usize {
        let (from, to) = (t(from), t(to));
        self.plays
            .iter()
            .filter(|(at, c, _)| c == campaign && from <= *at && *at < to)
            .count()
    }
    /// Every play starting in `[from, to)`.
    fn total(&self, from: &str, to: &str) -> usize {
        let (from, to) = (t(from), t(to));
        self.plays
            .iter()
            .filter(|(at, _, _)| from <= *at && *at < to)
            .count()
    }
    /// The campaign playing the slot that starts at `at`.
    fn at(&self, at: &str) -> Option<&str> {
        let at = t(at);
        self.plays
            .iter()
            .find(|(s, _, _)| *s == at)
            .map(|(_, c, _)| c.as_str())
    }
    /// Plays of `campaign` whose local start is on `date` (YYYY-MM-DD) in the venue's zone.
    fn on_local_date(&self, campaign: Option<&str>, date: &str) -> usize {
        let tz = self.schedule.venue.timezone;
        self.plays
            .iter()
            .filter(|(at, c, _)| {
                campaign.is_none_or(|w| w == c)
                    && tz
                        .from_utc_datetime(&at.naive_utc())
                        .date_naive()
                        .to_string()
                        == date
            })
            .count()
    }
}

/// Plans `screen` of `catalogue` over `[from, to)`, asserts that the checker finds nothing
/// (invariant 6 with splits at each quarter of the window and samples at its ends and
/// middle, and the schedule document planning the same), and returns the plan.
fn check(catalogue: &Catalogue, screen: &str, from: &str, to: &str) -> Plan {
    let schedule = full_schedule(catalogue, screen);
    let (from, to) = (t(from), t(to));
    let checker = Checker::new(&schedule);
    let slots = checker.slots(from, to);
    let quarter = (to - from) / 4;
    let splits = [
        from + quarter,
        from + quarter * 2,
        from + quarter * 3 + Duration::milliseconds(1_500),
    ];
    let samples = [slots.start, (slots.start + slots.end) / 2, slots.end - 1];
    let mut violations = check_screen(&schedule, from, to, &splits, &samples);
    violations.extend(check_document(catalogue, &schedule.screen.id, from, to));
    assert!(
        violations.is_empty(),
        "{screen} over [{from}, {to}):\n{}",
        report(&violations)
    );
    let plays = Planner::new(&schedule)
        .plan_range(from, to)
        .into_iter()
        .map(|p| {
            (
                checker.slot_start(p.slot),
                schedule.campaigns[p.campaign].id.to_string(),
                schedule.creatives[p.creative].id.to_string(),
            )
        })
        .collect();
    Plan { schedule, plays }
}

const ALWAYS: &str = "* * * * *";

/// A high campaign capped at 12 plays an hour over a normal one.
fn capped(tz: Tz) -> Catalogue {
    let mut hi = campaign("hi", Priority::High, 1, year(), &[ALWAYS], &["k1", "k2"]);
    hi.max_plays_per_hour = Some(12);
    let norm = campaign(
        "norm",
        Priority::Normal,
        1,
        year(),
        &[ALWAYS],
        &["k1", "k2", "k3"],
    );
    one_screen(tz, ALWAYS, 60, vec![hi, norm])
}

#[test]
fn dst_fall_back_repeated_hour_is_two_hours_with_their_own_caps() {
    let plan = check(
        &capped(chrono_tz::America::New_York),
        "s",
        "2023-11-05T04:00:00Z",
        "2023-11-05T10:00:00Z",
    );
    // 04:00Z = 00:00 EDT; 05:00Z = 01:00 EDT; 06:00Z = 01:00 EST again; 10:00Z = 05:00 EST.
    assert_eq!(
        plan.total("2023-11-05T04:00:00Z", "2023-11-05T10:00:00Z"),
        360
    );
    for hour in 4..10 {
        let (from, to) = (
            format!("2023-11-05T{hour:02}:00:00Z"),
            format!("2023-11-05T{:02}:00:00Z", hour + 1),
        );
        assert_eq!(
            plan.count("hi", &from, &to),
            12,
            "hi in the local hour starting {from}"
        );
        assert_eq!(
            plan.count("norm", &from, &to),
            48,
            "norm in the local hour starting {from}"
        );
    }
    // The cap starts again with the second 01:00.
    assert_eq!(plan.at("2023-11-05T06:00:00Z"), Some("hi"));
    assert_eq!(plan.at("2023-11-05T06:11:00Z"), Some("hi"));
    assert_eq!(plan.at("2023-11-05T06:12:00Z"), Some("norm"));
    assert_eq!(plan.on_local_date(None, "2023-11-05"), 360);
}

#[test]
fn dst_spring_forward_has_no_two_oclock() {
    let night = campaign(
        "night",
        Priority::Normal,
        1,
        year(),
        &["* 2 * * *"],
        &["k1", "k2"],
    );
    let base = campaign("base", Priority::Filler, 1, year(), &[ALWAYS], &["k3"]);
    let cat = one_screen(chrono_tz::America::New_York, ALWAYS, 60, vec![night, base]);
    // 2024-03-10T05:00Z = 00:00 EST; the local day has 23 hours; 07:00Z = 03:00 EDT.
    let plan = check(&cat, "s", "2024-03-10T05:00:00Z", "2024-03-12T04:00:00Z");
    assert_eq!(plan.on_local_date(None, "2024-03-10"), 23 * 60);
    assert_eq!(plan.on_local_date(Some("night"), "2024-03-10"), 0);
    assert_eq!(
        plan.total("2024-03-10T06:00:00Z", "2024-03-10T08:00:00Z"),
        120
    );
    let tz = chrono_tz::America::New_York;
    let local_hours: std::collections::BTreeSet<u32> = plan
        .plays
        .iter()
        .filter(|(at, _, _)| (t("2024-03-10T06:00:00Z")..t("2024-03-10T08:00:00Z")).contains(at))
        .map(|(at, _, _)| tz.from_utc_datetime(&at.naive_utc()).hour())
        .collect();
    assert_eq!(local_hours, [1, 3].into());
    // The next night has its 02:00 (EDT, 06:00Z).
    assert_eq!(plan.on_local_date(Some("night"), "2024-03-11"), 60);
    assert_eq!(
        plan.count("night", "2024-03-11T06:00:00Z", "2024-03-11T07:00:00Z"),
        60
    );
}

#[test]
fn half_hour_dst_fall_back_lord_howe() {
    // 2024-04-07 02:00 +11 becomes 01:30 +10:30 (15:00Z): 01:00 +11 is 14:00-15:00Z,
    // 01:30 +10:30 is 15:00-15:30Z (a half local hour with its own cap), 02:00 is 15:30Z.
    let plan = check(
        &capped(chrono_tz::Australia::Lord_Howe),
        "s",
        "2024-04-06T12:00:00Z",
        "2024-04-06T18:00:00Z",
    );
    assert_eq!(
        plan.count("hi", "2024-04-06T14:00:00Z", "2024-04-06T15:00:00Z"),
        12
    );
    assert_eq!(
        plan.count("hi", "2024-04-06T15:00:00Z", "2024-04-06T15:30:00Z"),
        12
    );
    assert_eq!(
        plan.count("norm", "2024-04-06T15:00:00Z", "2024-04-06T15:30:00Z"),
        18
    );
    assert_eq!(
        plan.count("hi", "2024-04-06T15:30:00Z", "2024-04-06T16:30:00Z"),
        12
    );
}

#[test]
fn cap_binds_then_the_normal_tier_fills_the_hour() {
    // Kolkata is +05:30: local hours start at half past UTC hours.
    let plan = check(
        &capped(chrono_tz::Asia::Kolkata),
        "s",
        "2024-05-01T00:00:00Z",
        "2024-05-02T00:00:00Z",
    );
    for h in 0..23 {
        let start = t("2024-05-01T00:30:00Z") + Duration::hours(h);
        let (from, to) = (
            start.to_rfc3339(),
            (start + Duration::hours(1)).to_rfc3339(),
        );
        assert_eq!(plan.count("hi", &from, &to), 12, "hour from {from}");
        assert_eq!(plan.count("norm", &from, &to), 48, "hour from {from}");
        // The high tier plays first, until its cap.
        assert_eq!(
            plan.count("hi", &from, &(start + Duration::minutes(12)).to_rfc3339()),
            12
        );
    }
}

#[test]
fn tier_that_empties_mid_hour_hands_over_to_the_next() {
    let hi = campaign("hi", Priority::High, 1, year(), &["0-29 * * * *"], &["k1"]);
    let n1 = campaign("n1", Priority::Normal, 1, year(), &[ALWAYS], &["k1", "k2"]);
    let n3 = campaign("n3", Priority::Normal, 3, year(), &[ALWAYS], &["k2", "k3"]);
    let cat = one_screen(chrono_tz::Europe::London, ALWAYS, 60, vec![hi, n1, n3]);
    let plan = check(&cat, "s", "2024-06-03T00:00:00Z", "2024-06-04T00:00:00Z");
    for h in 0..24 {
        let start = t("2024-06-03T00:00:00Z") + Duration::hours(h);
        let (from, half, to) = (
            start.to_rfc3339(),
            (start + Duration::minutes(30)).to_rfc3339(),
            (start + Duration::hours(1)).to_rfc3339(),
        );
        assert_eq!(plan.count("hi", &from, &half), 30, "hour from {from}");
        assert_eq!(plan.count("hi", &half, &to), 0, "hour from {from}");
        // 30 slots shared 1:3 is 7.5 and 22.5.
        assert!(
            (7..=8).contains(&plan.count("n1", &half, &to)),
            "hour from {from}"
        );
        assert!(
            (22..=23).contains(&plan.count("n3", &half, &to)),
            "hour from {from}"
        );
    }
}

#[test]
fn flight_bounds_inside_a_slot() {
    // (flight start, flight end, slot start, plays?) on 15 s slots: a slot plays when its
    // start lies in [start, end).
    let cases = [
        ("10:00:07", "11:00:00", "10:00:00", false),
        ("10:00:07", "11:00:00", "10:00:15", true),
        ("10:00:15", "11:00:00", "10:00:15", true),
        ("10:00:15", "11:00:00", "10:00:00", false),
        ("09:00:00", "10:00:37", "10:00:30", true),
        ("09:00:00", "10:00:37", "10:00:45", false),
        ("09:00:00", "10:00:30", "10:00:30", false),
        ("10:00:00.500", "11:00:00", "10:00:00", false),
        ("09:00:00", "10:00:30.500", "10:00:30", true),
        // Below a millisecond.
        ("10:00:00.000400", "11:00:00", "10:00:00", false),
        ("10:00:00.000400", "11:00:00", "10:00:15", true),
        ("09:00:00", "10:00:30.000400", "10:00:30", true),
        ("09:00:00", "10:00:30.000400", "10:00:45", false),
    ];
    for (start, end, slot, plays) in cases {
        let day = |s: &str| format!("2024-01-10T{s}Z");
        let late = campaign(
            "late",
            Priority::Normal,
            1,
            (t(&day(start)), t(&day(end))),
            &[ALWAYS],
            &["k1"],
        );
        let base = campaign("base", Priority::Filler, 1, year(), &[ALWAYS], &["k2"]);
        let cat = one_screen(chrono_tz::UTC, ALWAYS, 15, vec![late, base]);
        let plan = check(&cat, "s", &day("09:59:00"), &day("10:02:00"));
        let expect = if plays { "late" } else { "base" };
        assert_eq!(
            plan.at(&day(slot)),
            Some(expect),
            "flight [{start}, {end}), slot {slot}"
        );
    }
}

#[test]
fn window_bounds_below_a_millisecond() {
    let base = campaign(
        "base",
        Priority::Normal,
        1,
        year(),
        &[ALWAYS],
        &["k1", "k2"],
    );
    let cat = one_screen(chrono_tz::UTC, ALWAYS, 15, vec![base]);
    // The slot starting at 10:00:00 starts before the window: it is not in the plan.
    let plan = check(
        &cat,
        "s",
        "2024-01-10T10:00:00.000400Z",
        "2024-01-10T10:01:00.000001Z",
    );
    assert_eq!(plan.at("2024-01-10T10:00:00Z"), None);
    assert_eq!(
        plan.total("2024-01-10T10:00:00Z", "2024-01-10T10:02:00Z"),
        4
    );
    assert_eq!(plan.at("2024-01-10T10:01:00Z"), Some("base"));
}

#[test]
fn creative_fits_some_targeted_screens_only() {
    let mut wide = campaign("wide", Priority::Normal, 1, year(), &[ALWAYS], &["land"]);
    wide.target.venue_types = Some(vec![playlists::taxonomy::VenueType::parse(
        "transit.subway",
    )
    .unwrap()]);
    let long = campaign("long", Priority::High, 1, year(), &[ALWAYS], &["long"]);
    let any = campaign(
        "any",
        Priority::Filler,
        1,
        year(),
        &[ALWAYS],
        &["land", "port"],
    );
    let cat = Catalogue {
        venues: vec![venue("v", chrono_tz::Asia::Shanghai, ALWAYS)],
        screens: vec![
            screen("land", "v", 1920, 1080, 15),
            screen("port", "v", 1080, 1920, 30),
        ],
        creatives: vec![
            creative("land", 1920, 1080, 15),
            creative("port", 1080, 1920, 10),
            creative("long", 1920, 1080, 30),
        ],
        campaigns: vec![wide, long, any],
    };
    let (from, to) = ("2024-02-01T00:00:00Z", "2024-02-01T06:00:00Z");
    // `long` lasts 30 s: too long for the 15 s landscape screen, the wrong shape for the
    // portrait one. `wide` has no portrait creative.
    let land = check(&cat, "land", from, to);
    assert_eq!(land.count("wide", from, to), 6 * 240);
    let port = check(&cat, "port", from, to);
    assert_eq!(port.count("wide", from, to), 0);
    assert_eq!(port.count("long", from, to), 0);
    assert_eq!(port.count("any", from, to), 6 * 120);
    assert!(port.plays.iter().all(|(_, _, k)| k == "port"));
}

#[test]
fn emergency_overrides_everything_in_its_window_but_not_closing_time() {
    let mut hi = campaign("hi", Priority::High, 5, year(), &[ALWAYS], &["k1"]);
    hi.max_plays_per_hour = Some(30);
    let norm = campaign("norm", Priority::Normal, 1, year(), &[ALWAYS], &["k2"]);
    let sos = campaign(
        "sos",
        Priority::Emergency,
        1,
        (t("2024-03-01T12:00:00Z"), t("2024-03-01T12:30:00Z")),
        &[ALWAYS],
        &["k3"],
    );
    let late = campaign(
        "sos-late",
        Priority::Emergency,
        1,
        (t("2024-03-01T22:50:00Z"), t("2024-03-01T23:10:00Z")),
        &[ALWAYS],
        &["k3"],
    );
    let cat = one_screen(
        chrono_tz::UTC,
        "* 6-22 * * *",
        15,
        vec![hi, norm, sos, late],
    );
    let plan = check(&cat, "s", "2024-03-01T00:00:00Z", "2024-03-02T00:00:00Z");
    assert_eq!(
        plan.count("sos", "2024-03-01T12:00:00Z", "2024-03-01T12:30:00Z"),
        120
    );
    assert_eq!(
        plan.total("2024-03-01T12:00:00Z", "2024-03-01T12:30:00Z"),
        120
    );
    assert_eq!(
        plan.count("sos", "2024-03-01T00:00:00Z", "2024-03-02T00:00:00Z"),
        120
    );
    assert_eq!(
        plan.count("sos-late", "2024-03-01T22:50:00Z", "2024-03-01T23:00:00Z"),
        40
    );
    assert_eq!(
        plan.total("2024-03-01T23:00:00Z", "2024-03-02T00:00:00Z"),
        0
    );
    assert_eq!(plan.at("2024-03-01T12:30:00Z"), Some("hi"));
}

#[test]
fn vixie_day_rule_either_day_field_matches() {
    let vixie = campaign(
        "vixie",
        Priority::Normal,
        1,
        year(),
        &["* * 1 * MON"],
        &["k1"],
    );
    let base = campaign("base", Priority::Filler, 1, year(), &[ALWAYS], &["k2"]);
    let cat = one_screen(chrono_tz::UTC, ALWAYS, 300, vec![vixie, base]);
    let plan = check(&cat, "s", "2024-05-31T00:00:00Z", "2024-06-05T00:00:00Z");
    // 2024-06-01 is a Saturday (the 1st), 2024-06-03 a Monday.
    for (date, plays) in [
        ("2024-05-31", 0),
        ("2024-06-01", 288),
        ("2024-06-02", 0),
        ("2024-06-03", 288),
        ("2024-06-04", 0),
    ] {
        assert_eq!(plan.on_local_date(Some("vixie"), date), plays, "{date}");
    }
}

#[test]
fn explain_agrees_with_the_plan_and_names_targeting() {
    let hi = campaign(
        "hi",
        Priority::High,
        1,
        year(),
        &["0-29 * * * *"],
        &["k1", "k3"],
    );
    let n1 = campaign("n1", Priority::Normal, 2, year(), &[ALWAYS], &["k1", "k2"]);
    let mut elsewhere = campaign(
        "elsewhere",
        Priority::Emergency,
        1,
        year(),
        &[ALWAYS],
        &["k1"],
    );
    elsewhere.target.screens = Some(vec![playlists::ScreenId::parse("other").unwrap()]);
    let cat = one_screen(
        chrono_tz::America::New_York,
        "* 7-21 * * *",
        30,
        vec![hi, n1, elsewhere],
    );
    let plan = check(&cat, "s", "2024-03-10T00:00:00Z", "2024-03-11T00:00:00Z");
    let planner = Planner::new(&plan.schedule);
    for at in [
        "2024-03-10T12:00:00Z",
        "2024-03-10T12:29:30Z",
        "2024-03-10T12:45:00Z",
        "2024-03-10T23:59:30Z",
        "2024-03-10T03:00:00Z",
    ] {
        let slot = planner.slot_at(t(at));
        let e = explain(&plan.schedule, slot);
        let planned = plan.plays.iter().find(|(s, _, _)| *s == t(at));
        assert_eq!(
            e.campaign_id.as_deref(),
            planned.map(|p| p.1.as_str()),
            "{at}\n{e}"
        );
        assert_eq!(
            e.creative_id.as_deref(),
            planned.map(|p| p.2.as_str()),
            "{at}\n{e}"
        );
        let v = e
            .verdicts
            .iter()
            .find(|v| v.campaign_id == "elsewhere")
            .expect("every campaign has a verdict");
        assert!(
            !v.eligible && v.reason.contains("target"),
            "{at}: {}",
            v.reason
        );
    }
    assert_eq!(plan.at("2024-03-10T12:00:00Z"), Some("hi"));
    // 03:00Z is 22:00 EST on the 9th: closed.
    assert_eq!(plan.at("2024-03-10T03:00:00Z"), None);
}
