//! Tests of the checker itself: a correct plan passes, and each kind of breakage (a missing
//! play, a play while closed, the wrong tier, a foreign creative, a cap exceeded, a skewed
//! share, a repeated creative) is reported under the invariant it breaks. The planner's
//! properties are `invariants.rs`'s and `corners.rs`'s business.

mod checker;

use playlists::{Planner, Play, Priority};

use checker::fixtures::{campaign, full_schedule, one_screen, t, year};
use checker::{report, Checker};

const ALWAYS: &str = "* * * * *";

#[test]
fn checker_flags_broken_plans() {
    let mut hi = campaign(
        "hi",
        Priority::High,
        1,
        year(),
        &["0-29 6-12 * * *"],
        &["k1", "k2"],
    );
    hi.max_plays_per_hour = Some(12);
    let n1 = campaign("n1", Priority::Normal, 1, year(), &[ALWAYS], &["k1", "k2"]);
    let n3 = campaign("n3", Priority::Normal, 3, year(), &[ALWAYS], &["k2", "k3"]);
    let cat = one_screen(chrono_tz::UTC, "* 6-22 * * *", 60, vec![hi, n1, n3]);
    let schedule = full_schedule(&cat, "s");
    let checker = Checker::new(&schedule);
    let (from, to) = (t("2024-05-06T00:00:00Z"), t("2024-05-07T00:00:00Z"));
    let good = Planner::new(&schedule).plan_range(from, to);
    assert!(
        checker.check_plan(from, to, &good).is_empty(),
        "{}",
        report(&checker.check_plan(from, to, &good))
    );

    let campaign_ix = |id: &str| {
        schedule
            .campaigns
            .iter()
            .position(|c| c.id.as_str() == id)
            .unwrap()
    };
    let creative_ix = |id: &str| {
        schedule
            .creatives
            .iter()
            .position(|c| c.id.as_str() == id)
            .unwrap()
    };
    let at = |s: &str| {
        good.iter()
            .position(|p| p.slot == checker.first_slot_at_or_after(t(s)))
            .expect("a play at that time")
    };
    type Break<'a> = Box<dyn Fn(&mut Vec<Play>) + 'a>;
    let cases: Vec<(&str, Break, u8)> = vec![
        (
            "drop a play",
            Box::new(|p| {
                p.remove(at("2024-05-06T10:40:00Z"));
            }),
            1,
        ),
        (
            "play while closed",
            Box::new(|p| {
                let slot = checker.first_slot_at_or_after(t("2024-05-06T05:00:00Z"));
                p.insert(
                    0,
                    Play {
                        slot,
                        campaign: campaign_ix("n1"),
                        creative: creative_ix("k1"),
                    },
                )
            }),
            1,
        ),
        (
            "lower tier over an eligible higher one",
            Box::new(|p| p[at("2024-05-06T10:00:00Z")].campaign = campaign_ix("n3")),
            2,
        ),
        (
            "a creative of another campaign",
            Box::new(|p| {
                let i = at("2024-05-06T15:00:00Z");
                p[i].creative = if p[i].campaign == campaign_ix("n1") {
                    creative_ix("k3")
                } else {
                    creative_ix("k1")
                };
            }),
            2,
        ),
        (
            "cap exceeded",
            Box::new(|p| {
                let i = at("2024-05-06T10:12:00Z");
                p[i].campaign = campaign_ix("hi");
                p[i].creative = creative_ix("k1");
            }),
            3,
        ),
        (
            "share skewed",
            Box::new(|p| {
                let n3 = campaign_ix("n3");
                let hour = checker.first_slot_at_or_after(t("2024-05-06T14:00:00Z"))
                    ..checker.first_slot_at_or_after(t("2024-05-06T15:00:00Z"));
                for play in p
                    .iter_mut()
                    .filter(|q| hour.contains(&q.slot) && q.campaign == n3)
                    .take(4)
                {
                    play.campaign = campaign_ix("n1");
                    play.creative = creative_ix("k1");
                }
            }),
            4,
        ),
        (
            "creative twice in a row",
            Box::new(|p| {
                let n1 = campaign_ix("n1");
                let plays: Vec<usize> = (0..p.len())
                    .filter(|&i| p[i].campaign == n1)
                    .take(2)
                    .collect();
                p[plays[1]].creative = p[plays[0]].creative;
            }),
            5,
        ),
    ];
    for (what, breaks, invariant) in cases {
        let mut plays = good.clone();
        breaks(&mut plays);
        let found = checker.check_plan(from, to, &plays);
        assert!(
            found.iter().any(|v| v.invariant == invariant),
            "{what}: expected invariant {invariant}, found:\n{}",
            report(&found)
        );
    }
}
