//! `signage plan` over a New York scenario across the 2023-11-05 fall-back, with crontab
//! corners (steps, weekday ranges, the Vixie day rule, caps, a flight starting mid-slot):
//! the CSV the real binary prints is exactly the shared planner's plan, and that plan
//! satisfies every invariant as judged by the independent checker.

#[path = "../../playlists/tests/checker/mod.rs"]
mod checker;

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn scenario() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/dst-new-york")
}

#[test]
fn plan_command_over_the_fall_back_weekend() {
    let (from, to) = ("2023-11-04T00:00:00-04:00", "2023-11-06T00:00:00-05:00");
    let out = std::process::Command::new(tests::signage_bin())
        .args(["plan", "--scenario"])
        .arg(scenario())
        .args(["--from", from, "--to", to, "--format", "csv"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8(out.stdout).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("screen_id,venue_id,slot_start,campaign_id,creative_id")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();

    let loaded = server::import::load(&scenario()).unwrap();
    let catalogue = &loaded.scenario.catalogue;
    let mut expected = Vec::new();
    let mut problems = Vec::new();
    let mut screens: Vec<_> = catalogue.screens.iter().map(|s| s.id.clone()).collect();
    screens.sort();
    for id in &screens {
        let schedule = catalogue.schedule_for(id).unwrap();
        let planner = playlists::Planner::new(&schedule);
        for p in planner.plan_range(t(from), t(to)) {
            expected.push(vec![
                id.to_string(),
                schedule.venue.id.to_string(),
                planner
                    .slot_start(p.slot)
                    .format("%Y-%m-%dT%H:%M:%SZ")
                    .to_string(),
                schedule.campaigns[p.campaign].id.to_string(),
                schedule.creatives[p.creative].id.to_string(),
            ]);
        }
        let full = catalogue.full_schedule_for(id).unwrap();
        let splits = [
            t("2023-11-05T01:30:00-04:00"),
            t("2023-11-05T01:30:00-05:00"),
        ];
        let first = planner.first_slot_from(t(from));
        let samples: Vec<i64> = (0..40).map(|i| first + i * 97).collect();
        problems.extend(checker::check_screen(
            &full,
            t(from),
            t(to),
            &splits,
            &samples,
        ));
        problems.extend(checker::check_document(catalogue, id, t(from), t(to)));
    }
    assert!(problems.is_empty(), "{}", checker::report(&problems));
    assert_eq!(rows, expected, "the CSV is not the planner's plan");

    // The repeated 01:00 hour is two hours of slots, each with its own caps.
    let mut per_hour: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for r in rows.iter().filter(|r| {
        r[0] == "nyc-times-square-s1" && r[2] >= "2023-11-05T05" && r[2] < "2023-11-05T07"
    }) {
        *per_hour.entry((&r[2][..13], r[3])).or_default() += 1;
    }
    for hour in ["2023-11-05T05", "2023-11-05T06"] {
        assert_eq!(
            per_hour[&(hour, "night-owls")],
            100,
            "night-owls cap in {hour}"
        );
        assert_eq!(
            per_hour[&(hour, "every-20-min")],
            6,
            "every-20-min cap in {hour}"
        );
        let total: usize = per_hour
            .iter()
            .filter(|((h, _), _)| *h == hour)
            .map(|(_, n)| n)
            .sum();
        assert_eq!(total, 240, "slots in {hour}");
    }
}
