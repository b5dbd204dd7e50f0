//! The Beijing week, measured by the real import path and planned by the shared planner,
//! satisfies every invariant of design.md as judged by the independent checker of the
//! `playlists` tests; the agent's view (its schedule document) plans the same plays.

#[path = "../../playlists/tests/checker/mod.rs"]
mod checker;

use chrono::{DateTime, Utc};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[test]
fn beijing_week_satisfies_all_invariants() {
    let loaded = server::import::load(&tests::beijing()).expect("the Beijing scenario loads");
    let catalogue = &loaded.scenario.catalogue;
    let (from, to) = (
        t("2023-12-17T00:00:00+08:00"),
        t("2023-12-24T00:00:00+08:00"),
    );
    let splits = [
        t("2023-12-20T09:00:00+08:00"),
        t("2023-12-20T11:00:07+08:00"),
        t("2023-12-21T00:00:00+08:00"),
    ];
    let mut plays = 0;
    let mut problems = Vec::new();
    for screen in &catalogue.screens {
        let schedule = catalogue.full_schedule_for(&screen.id).unwrap();
        let planner = playlists::Planner::new(&schedule);
        plays += planner.plan_range(from, to).len();
        let samples: Vec<i64> = (0..50)
            .map(|i| planner.first_slot_from(from) + i * 1_999)
            .collect();
        problems.extend(checker::check_screen(
            &schedule, from, to, &splits, &samples,
        ));
        problems.extend(checker::check_document(catalogue, &screen.id, from, to));
    }
    assert!(problems.is_empty(), "{}", checker::report(&problems));
    assert_eq!(plays, 1_893_360, "plays in the Beijing week");
}
