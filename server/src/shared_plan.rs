//! Planning once per distinct schedule ([`playlists::PlanKey`]): screens whose documents
//! plan identically share one plan, so the work follows the number of distinct documents
//! (a few hundred in a city of 11,000 screens), not the number of screens. Reports,
//! forecasts and `signage plan` call this; each distinct plan is made on all cores.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rayon::prelude::*;

use playlists::{PlanKey, Planner, Play, ScreenSchedule, Tally};

/// How much was shared: items asked for, plans made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sharing {
    pub items: usize,
    pub planned: usize,
}

/// Groups `items` by what their plan depends on: the key and the slot range the window
/// covers (two windows that cover the same slots plan the same plays). Returns the group
/// of each item and the first item of each group.
fn group<T: Sync>(
    items: &[T],
    part: impl Fn(&T) -> (&ScreenSchedule, DateTime<Utc>, DateTime<Utc>) + Sync,
) -> (Vec<usize>, Vec<usize>) {
    let keys: Vec<(PlanKey, i64, i64)> = items
        .par_iter()
        .map(|item| {
            let (schedule, from, to) = part(item);
            let planner = Planner::new(schedule);
            (
                PlanKey::of(&planner),
                planner.first_slot_from(from),
                planner.first_slot_from(to),
            )
        })
        .collect();
    let mut seen: HashMap<&(PlanKey, i64, i64), usize> = HashMap::with_capacity(keys.len());
    let mut firsts = Vec::new();
    let which = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let next = seen.len();
            *seen.entry(k).or_insert_with(|| {
                firsts.push(i);
                next
            })
        })
        .collect();
    (which, firsts)
}

/// The tally of each `(schedule, from, to)`: its plays in `[from, to)` counted per UTC hour,
/// campaign and creative (indices into its own schedule, which name the same ids as in
/// every schedule sharing the plan).
pub fn tallies(
    items: &[(ScreenSchedule, DateTime<Utc>, DateTime<Utc>)],
) -> (Vec<Arc<Tally>>, Sharing) {
    let (which, firsts) = group(items, |(s, a, b)| (s, *a, *b));
    let made: Vec<Arc<Tally>> = firsts
        .par_iter()
        .map(|&i| {
            let (s, a, b) = &items[i];
            Arc::new(Tally::of(&Planner::new(s), *a, *b))
        })
        .collect();
    let sharing = Sharing {
        items: items.len(),
        planned: made.len(),
    };
    (
        which.into_iter().map(|g| made[g].clone()).collect(),
        sharing,
    )
}

/// The plays of each schedule over `[from, to)`, computed once per distinct plan and
/// handed to `f` in the order of `schedules` (so output stays in screen order). A plan is
/// kept only until the last schedule that shares it has been handed it.
pub fn each_plan(
    schedules: &[ScreenSchedule],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    chunk: usize,
    mut f: impl FnMut(&[(&ScreenSchedule, Arc<Vec<Play>>)]) -> std::io::Result<()>,
) -> std::io::Result<Sharing> {
    let (which, firsts) = group(schedules, |s| (s, from, to));
    let mut uses = vec![0usize; firsts.len()];
    for &g in &which {
        uses[g] += 1;
    }
    let mut made: HashMap<usize, Arc<Vec<Play>>> = HashMap::new();
    let idx: Vec<usize> = (0..schedules.len()).collect();
    for part in idx.chunks(chunk.max(1)) {
        let mut missing: Vec<usize> = part
            .iter()
            .map(|&i| which[i])
            .filter(|g| !made.contains_key(g))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        let fresh: Vec<(usize, Arc<Vec<Play>>)> = missing
            .par_iter()
            .map(|&g| {
                let planner = Planner::new(&schedules[firsts[g]]);
                (g, Arc::new(planner.plan_range(from, to)))
            })
            .collect();
        made.extend(fresh);
        let batch: Vec<(&ScreenSchedule, Arc<Vec<Play>>)> = part
            .iter()
            .map(|&i| (&schedules[i], made[&which[i]].clone()))
            .collect();
        f(&batch)?;
        for &i in part {
            let g = which[i];
            uses[g] -= 1;
            if uses[g] == 0 {
                made.remove(&g);
            }
        }
    }
    Ok(Sharing {
        items: schedules.len(),
        planned: firsts.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A generated city of 300 screens: `signage plan`'s CSV and the tallies, made once per
    /// distinct schedule, equal those of every screen planned on its own; and screens do
    /// share.
    #[test]
    fn shared_plans_equal_each_screens_own_plan() {
        let tmp = tempfile::tempdir().unwrap();
        let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scenarios/beijing-role-models");
        let city = tmp.path().join("city");
        crate::generate::generate(
            &base,
            &city,
            &crate::generate::GenerateOptions {
                venues: 100,
                screens: 300,
                seed: 7,
            },
        )
        .unwrap();
        let loaded = crate::import::load(&city).unwrap();
        let schedules = crate::plan::schedules(&loaded.scenario.catalogue, &[]).unwrap();
        let from: DateTime<Utc> = "2023-12-20T05:00:00+08:00".parse().unwrap();
        let to: DateTime<Utc> = "2023-12-20T09:30:00+08:00".parse().unwrap();

        let mut shared = Vec::new();
        let rows =
            crate::plan::write_plan(&schedules, from, to, crate::plan::Format::Csv, &mut shared)
                .unwrap();
        let mut own = crate::plan::CSV_HEADER.as_bytes().to_vec();
        let mut own_rows = 0;
        for s in &schedules {
            let plays = Planner::new(s).plan_range(from, to);
            let (bytes, n) = crate::plan::screen_csv(s, &plays);
            own.extend_from_slice(&bytes);
            own_rows += n;
        }
        assert_eq!(rows, own_rows);
        assert!(rows > 0);
        assert!(shared == own, "the shared plan's CSV differs");

        let items: Vec<_> = schedules.iter().map(|s| (s.clone(), from, to)).collect();
        let (tallies, sharing) = tallies(&items);
        for ((s, a, b), t) in items.iter().zip(&tallies) {
            assert_eq!(**t, Tally::of(&Planner::new(s), *a, *b), "{}", s.screen.id);
        }
        assert_eq!(sharing.items, 300);
        assert!(
            sharing.planned < sharing.items / 2,
            "{} plans for {} screens",
            sharing.planned,
            sharing.items
        );
    }
}
