//! Property tests of the slot planner against the independent checker (`checker/`):
//! random venues in six zones (half-hour offsets and DST included), screens, creatives and
//! campaigns with random tiers, weights, flights, dayparts, targeting and caps, planned over
//! windows of up to three days, some across DST changes, on every screen. Hand-made corner
//! cases are in `corners.rs`.

mod checker;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;
use proptest::test_runner::Config;

use checker::fixtures::{campaign, creative, screen, t, venue};
use checker::{check_document, check_screen, report, Checker};
use playlists::taxonomy::VenueType;
use playlists::{Catalogue, Priority};

const ZONES: [Tz; 6] = [
    chrono_tz::Asia::Shanghai,
    chrono_tz::America::New_York,
    chrono_tz::Europe::London,
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::Asia::Kolkata,
    chrono_tz::UTC,
];
/// Operating hours; all-day twice as likely. `1-2` and `0-1` hours meet DST changes.
const HOURS: [&str; 7] = [
    "* * * * *",
    "* * * * *",
    "* 6-22 * * *",
    "* 0-1,5-23 * * *",
    "0-44 1-3,7-23 * * *",
    "* * * * MON-FRI",
    "*/5 * * * *",
];
const DAYPARTS: [&str; 12] = [
    "* * * * *",
    "* * * * *",
    "*/20 * * * *",
    "0-29 7-9 * * MON-FRI",
    "* * 1 * MON",
    "30-59 17 * * 1-5",
    "0-29 * * * *",
    "* 1-3 * * *",
    "* 6-9,16-19 * * *",
    "15,45 * * * SUN",
    "* 0-11 * * 0,6,7",
    "10-50 * 5,6 * *",
];
const SCREENS: [(u32, u32); 6] = [
    (1920, 1080),
    (1920, 1080),
    (1080, 1920),
    (3840, 2160),
    (1280, 1024),
    (1024, 768),
];
/// Shapes well inside or well outside 2 % of every screen shape (1000x560 is 0.4 % off 16:9).
const SHAPES: [(u32, u32); 9] = [
    (1920, 1080),
    (1280, 720),
    (1000, 560),
    (3840, 2160),
    (1080, 1920),
    (720, 1280),
    (1600, 1200),
    (1280, 1024),
    (2000, 1000),
];
const DURATIONS: [u32; 7] = [5, 8, 10, 10, 10, 15, 30];
const SLOTS: [u32; 5] = [10, 15, 30, 60, 300];
const VENUE_TYPES: [&str; 4] = [
    "transit.subway.platform",
    "transit.subway.station",
    "outdoor.bus_shelter",
    "office_building.office_building.lobby",
];
const TARGET_TYPES: [&str; 5] = [
    "transit.subway",
    "transit",
    "outdoor",
    "office_building.office_building.lobby",
    "transit.subway.platform",
];
const DISTRICTS: [&str; 3] = ["dongcheng", "xicheng", "haidian"];
const TAGS: [&str; 3] = ["rush", "civility", "night"];
/// Window anchors: plain days, and the eves of DST changes (New York back and forward,
/// Lord Howe back by half an hour, London forward).
const ANCHORS: [&str; 6] = [
    "2024-01-15T00:00:00Z",
    "2023-11-04T12:00:00Z",
    "2024-03-09T12:00:00Z",
    "2024-04-06T00:00:00Z",
    "2024-03-30T12:00:00Z",
    "2024-06-01T00:00:00Z",
];

#[derive(Debug, Clone)]
struct VenueSpec {
    zone: usize,
    hours: usize,
    venue_type: usize,
    district: Option<usize>,
    tags: Vec<usize>,
    /// (shape, slot length) per screen.
    screens: Vec<(usize, usize)>,
}

#[derive(Debug, Clone)]
struct CreativeSpec {
    /// Shaped like screen `pick` (modulo the screens) when true, else like `SHAPES[pick]`.
    like_a_screen: bool,
    pick: usize,
    /// Like a screen: 0 the same size, 1 half the size, 2 half a percent wider.
    variant: usize,
    duration: usize,
}

#[derive(Debug, Clone, Default)]
struct TargetSpec {
    /// Indices taken modulo the number of screens, venues, ... when built.
    screens: Option<Vec<usize>>,
    venues: Option<Vec<usize>>,
    venue_types: Option<Vec<usize>>,
    districts: Option<Vec<usize>>,
    tags: Option<Vec<usize>>,
}

#[derive(Debug, Clone)]
struct CampaignSpec {
    priority: Priority,
    weight: u32,
    /// Flight start relative to the window start, and its length.
    start: Duration,
    length: Duration,
    dayparts: Vec<usize>,
    target: TargetSpec,
    creatives: Vec<usize>,
    cap: Option<u32>,
}

#[derive(Debug, Clone)]
struct Case {
    /// The window starts `offset` after the anchor and lasts `hours`, at most a day for
    /// 10 s slots and three days for a minute or more.
    anchor: usize,
    offset: Duration,
    hours: i64,
    venues: Vec<VenueSpec>,
    creatives: Vec<CreativeSpec>,
    campaigns: Vec<CampaignSpec>,
    /// Fractions of the window for split points and sample slots.
    splits: Vec<f64>,
    samples: Vec<f64>,
}

fn venue_spec(zones: std::ops::Range<usize>) -> impl Strategy<Value = VenueSpec> {
    (
        zones,
        0..HOURS.len(),
        0..VENUE_TYPES.len(),
        proptest::option::of(0..DISTRICTS.len()),
        proptest::collection::vec(0..TAGS.len(), 0..3),
        proptest::collection::vec((0..SCREENS.len(), 0..SLOTS.len()), 1..3),
    )
        .prop_map(
            |(zone, hours, venue_type, district, tags, screens)| VenueSpec {
                zone,
                hours,
                venue_type,
                district,
                tags,
                screens,
            },
        )
}

fn some_of(n: usize) -> impl Strategy<Value = Option<Vec<usize>>> {
    proptest::option::weighted(0.3, proptest::collection::vec(0..n, 1..3))
}

fn target_spec() -> impl Strategy<Value = TargetSpec> {
    prop_oneof![
        2 => Just(TargetSpec::default()),
        1 => (some_of(8), some_of(4), some_of(TARGET_TYPES.len()), some_of(DISTRICTS.len()), some_of(TAGS.len())).prop_map(
            |(screens, venues, venue_types, districts, tags)| TargetSpec { screens, venues, venue_types, districts, tags }
        ),
    ]
}

fn flight_start() -> impl Strategy<Value = Duration> {
    // Whole minutes, whole seconds, milliseconds, or whole minutes and a fraction of a
    // millisecond; from two days before to a day after the window start.
    prop_oneof![
        (-48 * 60..24 * 60i64).prop_map(Duration::minutes),
        (-172_800..86_400i64).prop_map(Duration::seconds),
        (-172_800_000..86_400_000i64).prop_map(Duration::milliseconds),
        (-48 * 60..24 * 60i64, 1..1_000_000i64)
            .prop_map(|(m, ns)| Duration::minutes(m) + Duration::nanoseconds(ns)),
    ]
}

fn campaign_spec(creatives: usize) -> impl Strategy<Value = CampaignSpec> {
    let priority = prop_oneof![
        1 => Just(Priority::Emergency),
        3 => Just(Priority::High),
        5 => Just(Priority::Normal),
        2 => Just(Priority::Filler),
    ];
    let length = prop_oneof![
        (1..120i64).prop_map(Duration::hours),
        Just(Duration::days(400))
    ];
    (
        priority,
        1..=5u32,
        flight_start(),
        length,
        proptest::collection::vec(0..DAYPARTS.len(), 1..3),
        target_spec(),
        proptest::collection::vec(0..creatives, 1..=5),
        proptest::option::weighted(0.35, 1..=30u32),
    )
        .prop_map(
            |(priority, weight, start, length, dayparts, target, creatives, cap)| CampaignSpec {
                priority,
                weight,
                start,
                length,
                dayparts,
                target,
                creatives,
                cap,
            },
        )
}

fn case(
    zones: std::ops::Range<usize>,
    anchors: std::ops::Range<usize>,
    slots: std::ops::Range<usize>,
) -> impl Strategy<Value = Case> {
    let venues = proptest::collection::vec(venue_spec(zones), 1..=4).prop_map(move |mut vs| {
        // Keep slot lengths to the allowed range.
        for v in &mut vs {
            for s in &mut v.screens {
                s.1 = slots.start + s.1 % slots.len();
            }
        }
        vs
    });
    let creative = (
        proptest::bool::weighted(0.75),
        0..16usize,
        0..3usize,
        0..DURATIONS.len(),
    )
        .prop_map(|(like_a_screen, pick, variant, duration)| CreativeSpec {
            like_a_screen,
            pick,
            variant,
            duration,
        });
    let creatives = proptest::collection::vec(creative, 2..=10);
    // Whole minutes after the anchor, sometimes plus a fraction of a second or of a
    // millisecond.
    let offset = prop_oneof![
        4 => (0..24 * 60i64).prop_map(Duration::minutes),
        1 => (0..86_400i64, 0..1_000_000_000i64).prop_map(|(s, ns)| Duration::seconds(s) + Duration::nanoseconds(ns)),
        1 => (0..24 * 60i64, 1..1_000_000i64).prop_map(|(m, ns)| Duration::minutes(m) + Duration::nanoseconds(ns)),
    ];
    (anchors, offset, 2..=72i64, venues, creatives).prop_flat_map(
        |(anchor, offset, hours, venues, creatives)| {
            let n = creatives.len();
            (
                Just(anchor),
                Just(offset),
                Just(hours),
                Just(venues),
                Just(creatives),
                proptest::collection::vec(campaign_spec(n), 1..=6),
                proptest::collection::vec(0.0..1.0f64, 2),
                proptest::collection::vec(0.0..1.0f64, 3),
            )
                .prop_map(
                    |(anchor, offset, hours, venues, creatives, campaigns, splits, samples)| Case {
                        anchor,
                        offset,
                        hours,
                        venues,
                        creatives,
                        campaigns,
                        splits,
                        samples,
                    },
                )
        },
    )
}

impl Case {
    fn catalogue(&self) -> Catalogue {
        let from = self.from();
        let mut cat = Catalogue::default();
        for (i, v) in self.venues.iter().enumerate() {
            let id = format!("v{i}");
            let mut built = venue(&id, ZONES[v.zone], HOURS[v.hours]);
            built.venue_type = VenueType::parse(VENUE_TYPES[v.venue_type]).expect("venue type");
            built.district = v.district.map(|d| DISTRICTS[d].to_owned());
            built.tags = v.tags.iter().map(|&t| TAGS[t].to_owned()).collect();
            cat.venues.push(built);
            for (j, &(shape, slot)) in v.screens.iter().enumerate() {
                let (w, h) = SCREENS[shape];
                cat.screens
                    .push(screen(&format!("s{i}-{j}"), &id, w, h, SLOTS[slot]));
            }
        }
        for (i, k) in self.creatives.iter().enumerate() {
            let (w, h) = if k.like_a_screen {
                let s = &cat.screens[k.pick % cat.screens.len()];
                match k.variant {
                    0 => (s.width, s.height),
                    1 => (s.width / 2, s.height / 2),
                    _ => (s.width * 201 / 200, s.height),
                }
            } else {
                SHAPES[k.pick % SHAPES.len()]
            };
            cat.creatives
                .push(creative(&format!("k{i}"), w, h, DURATIONS[k.duration]));
        }
        for (i, c) in self.campaigns.iter().enumerate() {
            let mut names: Vec<String> = Vec::new();
            for &k in &c.creatives {
                let name = format!("k{k}");
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let dayparts: Vec<&str> = c.dayparts.iter().map(|&d| DAYPARTS[d]).collect();
            let start = from + c.start;
            let mut built = campaign(
                &format!("c{i}"),
                c.priority,
                c.weight,
                (start, start + c.length),
                &dayparts,
                &names,
            );
            built.max_plays_per_hour = c.cap;
            let pick = |ix: &Option<Vec<usize>>, n: usize| {
                ix.as_ref()
                    .map(|v| v.iter().map(|&i| i % n).collect::<Vec<_>>())
            };
            let tg = &c.target;
            built.target.screens = pick(&tg.screens, cat.screens.len())
                .map(|v| v.into_iter().map(|i| cat.screens[i].id.clone()).collect());
            built.target.venues = pick(&tg.venues, cat.venues.len())
                .map(|v| v.into_iter().map(|i| cat.venues[i].id.clone()).collect());
            built.target.venue_types = pick(&tg.venue_types, TARGET_TYPES.len()).map(|v| {
                v.into_iter()
                    .map(|i| VenueType::parse(TARGET_TYPES[i]).expect("type"))
                    .collect()
            });
            built.target.districts = pick(&tg.districts, DISTRICTS.len())
                .map(|v| v.into_iter().map(|i| DISTRICTS[i].to_owned()).collect());
            built.target.tags = pick(&tg.tags, TAGS.len())
                .map(|v| v.into_iter().map(|i| TAGS[i].to_owned()).collect());
            cat.campaigns.push(built);
        }
        cat
    }

    fn from(&self) -> DateTime<Utc> {
        t(ANCHORS[self.anchor]) + self.offset
    }

    /// The window end for a screen: short windows for short slots (debug builds are slow).
    fn to(&self, slot_seconds: u32) -> DateTime<Utc> {
        let max_hours = match slot_seconds {
            0..=10 => 24,
            11..=15 => 30,
            16..=30 => 48,
            _ => 72,
        };
        self.from() + Duration::hours(self.hours.min(max_hours))
    }
}

/// Plans every screen of the case and checks every invariant; the first screen with a
/// violation fails the case.
fn check_case(case: &Case) -> Result<(), TestCaseError> {
    let cat = case.catalogue();
    for s in &cat.screens {
        let schedule = cat.full_schedule_for(&s.id).expect("screen in catalogue");
        let (from, to) = (case.from(), case.to(s.slot_seconds));
        let span = to - from;
        let span_ns = span
            .num_nanoseconds()
            .expect("windows of days fit in i64 nanoseconds");
        let at = |f: f64| from + Duration::nanoseconds((span_ns as f64 * f) as i64);
        let splits: Vec<DateTime<Utc>> = case.splits.iter().map(|&f| at(f)).collect();
        let checker = Checker::new(&schedule);
        let samples: Vec<i64> = case
            .samples
            .iter()
            .map(|&f| checker.first_slot_at_or_after(at(f)))
            .collect();
        let mut violations = check_screen(&schedule, from, to, &splits, &samples);
        violations.extend(check_document(&cat, &s.id, from, to));
        prop_assert!(
            violations.is_empty(),
            "screen {} over [{from}, {to}):\n{}",
            s.id,
            report(&violations)
        );
    }
    Ok(())
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        max_shrink_iters: 300,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config(600))]

    /// Any zone, any anchor, any slot length.
    #[test]
    fn random_scenarios_keep_the_invariants(case in case(0..ZONES.len(), 0..ANCHORS.len(), 0..SLOTS.len())) {
        check_case(&case)?;
    }
}

proptest! {
    #![proptest_config(config(150))]

    /// New York across its DST changes, slots of a minute or more.
    #[test]
    fn new_york_dst_windows_keep_the_invariants(case in case(1..2, 1..3, 3..SLOTS.len())) {
        check_case(&case)?;
    }
}

/// Plans every screen of the case and a twin of each (another id at the same venue, and a
/// copy of each venue under another id, district and tags) one by one, groups them by
/// their [`PlanKey`], and checks that every screen of a group has the group's plan (the
/// same slots, campaign ids and creative ids) and that a [`Tally`] counts exactly the
/// plays of the plan.
fn check_sharing(case: &Case) -> Result<(), TestCaseError> {
    use std::collections::HashMap;

    use playlists::{PlanKey, Planner, Tally, VenueId};

    let mut cat = case.catalogue();
    let venues = cat.venues.clone();
    for v in &venues {
        let mut twin = v.clone();
        twin.id = VenueId::parse(&format!("{}-twin", v.id)).expect("id");
        twin.district = Some("elsewhere".into());
        twin.tags = vec!["other".into()];
        cat.venues.push(twin);
    }
    let screens = cat.screens.clone();
    for s in &screens {
        for (suffix, venue) in [
            ("twin", s.venue.to_string()),
            ("away", format!("{}-twin", s.venue)),
        ] {
            let mut twin = s.clone();
            twin.id = playlists::ScreenId::parse(&format!("{}-{suffix}", s.id)).expect("id");
            twin.venue = VenueId::parse(&venue).expect("id");
            cat.screens.push(twin);
        }
    }
    type Named = Vec<(i64, String, String)>;
    let mut groups: HashMap<PlanKey, (String, Named)> = HashMap::new();
    let from = case.from();
    for s in &cat.screens {
        // Both shapes of schedule: a document's (targeted campaigns only) and the full one.
        for schedule in [cat.schedule_for(&s.id), cat.full_schedule_for(&s.id)] {
            let schedule = schedule.expect("screen in catalogue");
            let to = case.to(s.slot_seconds);
            let planner = Planner::new(&schedule);
            let plays = planner.plan_range(from, to);
            let named: Named = plays
                .iter()
                .map(|p| {
                    (
                        p.slot,
                        schedule.campaigns[p.campaign].id.to_string(),
                        schedule.creatives[p.creative].id.to_string(),
                    )
                })
                .collect();
            let tally = Tally::of(&planner, from, to);
            prop_assert_eq!(tally.plays(), plays.len() as u64, "screen {}", s.id);
            for e in &tally.entries {
                let n = plays
                    .iter()
                    .filter(|p| {
                        (p.slot * i64::from(s.slot_seconds)).div_euclid(3_600) * 3_600 == e.hour
                            && p.campaign as u32 == e.campaign
                            && p.creative as u32 == e.creative
                    })
                    .count();
                prop_assert_eq!(n, e.plays as usize, "screen {} {:?}", s.id, e);
            }
            // Equal keys, equal windows (a key includes the slot length; the window here
            // depends only on it).
            let key = PlanKey::of(&planner);
            match groups.get(&key) {
                Some((first, theirs)) => prop_assert!(
                    *theirs == named,
                    "{} shares the key of {first} but plans differently",
                    s.id
                ),
                None => {
                    groups.insert(key, (s.id.to_string(), named));
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(200))]

    /// Screens whose schedules have one key plan identically, wherever they are.
    #[test]
    fn screens_sharing_a_plan_key_plan_identically(case in case(0..ZONES.len(), 0..ANCHORS.len(), 0..SLOTS.len())) {
        check_sharing(&case)?;
    }
}
