//! Invariant 6 of the checker: range, slot and day planning agree, splitting a range
//! changes nothing, and the schedule document plans what the whole catalogue plans.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use playlists::{Catalogue, Planner, Play, ScreenId, ScreenSchedule};

use super::{Checker, Violation};

impl Checker<'_> {
    /// Invariant 6: range planning is split-invariant and agrees with per-slot and per-day
    /// planning. `splits` are instants inside `[from, to)`; `samples` are slots.
    pub fn check_consistency(
        &self,
        planner: &Planner<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        splits: &[DateTime<Utc>],
        samples: &[i64],
    ) -> Vec<Violation> {
        let mut out = Vec::new();
        let full = planner.plan_range(from, to);
        let slots = self.slots(from, to);
        let at = |slot: i64| self.time(slot);
        for p in &full {
            if !slots.contains(&p.slot) {
                out.push(self.violation(
                    6,
                    &at(p.slot),
                    self.ids([p.campaign]),
                    format!("plan_range({from}, {to}) returned a slot starting outside"),
                ));
            }
        }
        let by_slot: BTreeMap<i64, Play> = full.iter().map(|p| (p.slot, *p)).collect();
        for &b in splits {
            let mut joined = planner.plan_range(from, b);
            joined.extend(planner.plan_range(b, to));
            if joined != full {
                let first_diff = joined
                    .iter()
                    .zip(&full)
                    .position(|(a, b)| a != b)
                    .unwrap_or(joined.len().min(full.len()));
                let slot = full
                    .get(first_diff)
                    .or(joined.get(first_diff))
                    .map_or(slots.start, |p| p.slot);
                out.push(self.violation(
                    6,
                    &at(slot),
                    vec![],
                    format!("plan_range split at {b} differs ({} vs {} plays, first difference at index {first_diff})", joined.len(), full.len()),
                ));
            }
        }
        for &k in samples {
            if !slots.contains(&k) {
                continue;
            }
            let one = planner.plan_slot(k);
            if one.as_ref() != by_slot.get(&k) {
                out.push(self.violation(
                    6,
                    &at(k),
                    vec![],
                    format!(
                        "plan_slot gives {one:?}, plan_range gives {:?}",
                        by_slot.get(&k)
                    ),
                ));
            }
            let day = planner.plan_day(k);
            for p in day.plays().filter(|p| slots.contains(&p.slot)) {
                if by_slot.get(&p.slot) != Some(&p) {
                    out.push(self.violation(
                        6,
                        &at(p.slot),
                        vec![],
                        format!(
                            "plan_day gives {p:?}, plan_range gives {:?}",
                            by_slot.get(&p.slot)
                        ),
                    ));
                }
            }
        }
        out
    }
}

/// Plans `[from, to)` for one screen and checks every invariant: 1 to 5 on the plan from
/// the start of the local day of `from` (so caps and day counts are complete), 6 with the
/// given split instants and sample slots.
pub fn check_screen(
    schedule: &ScreenSchedule,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    splits: &[DateTime<Utc>],
    samples: &[i64],
) -> Vec<Violation> {
    let checker = Checker::new(schedule);
    let planner = Planner::new(schedule);
    let day_start = checker.local_day_start(from);
    let plays = planner.plan_range(day_start, to);
    let mut out = checker.check_plan(day_start, to, &plays);
    out.extend(checker.check_consistency(&planner, from, to, splits, samples));
    out
}

/// What the server plans from the whole catalogue and what an agent plans from its
/// schedule document (targeted campaigns, fitting creatives only) must be the same plays,
/// by id. Returns the differences as invariant 6 violations.
pub fn check_document(
    catalogue: &Catalogue,
    screen: &ScreenId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<Violation> {
    let full = catalogue
        .full_schedule_for(screen)
        .expect("screen in catalogue");
    let doc = catalogue.schedule_for(screen).expect("screen in catalogue");
    let ids = |s: &ScreenSchedule| -> Vec<(i64, String, String)> {
        Planner::new(s)
            .plan_range(from, to)
            .into_iter()
            .map(|p| {
                (
                    p.slot,
                    s.campaigns[p.campaign].id.to_string(),
                    s.creatives[p.creative].id.to_string(),
                )
            })
            .collect()
    };
    let (a, b) = (ids(&full), ids(&doc));
    if a == b {
        return vec![];
    }
    let checker = Checker::new(&full);
    let i = a
        .iter()
        .zip(&b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let slot = a.get(i).or(b.get(i)).map_or(0, |p| p.0);
    vec![checker.violation(
        6,
        &checker.time(slot),
        vec![],
        format!(
            "full schedule plays {:?}, schedule document plays {:?}",
            a.get(i),
            b.get(i)
        ),
    )]
}
