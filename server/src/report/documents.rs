//! Planned plays from the schedule documents themselves: every screen's documents in
//! force over a window, opened (signatures checked, bodies parsed) and planned on each
//! request, as reports were made before planned counts were kept. What the stored counts
//! fall back on ([`crate::planned`]), and their independent check.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use playlists::{Planner, Play, ScreenSchedule};

use crate::store::{Dimension, Store};

/// [`planned`] the way it was before counts were kept: every screen's documents in force
/// planned on each request. The independent check of the stored counts.
pub fn planned_from_documents(
    store: &dyn Store,
    dim: Dimension,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    venue: Option<&str>,
) -> anyhow::Result<BTreeMap<String, (String, u64)>> {
    let snapshot = store.snapshot()?;
    let catalogue = crate::catalogue::build(&snapshot)?;
    let mut out: BTreeMap<String, (String, u64)> = BTreeMap::new();
    for v in &catalogue.venues {
        if dim == Dimension::Venue && venue.is_none_or(|x| x == v.id.as_str()) {
            out.insert(v.id.to_string(), (v.venue_type.to_string(), 0));
        }
    }
    let keep = |s: &ScreenSchedule| venue.is_none_or(|x| x == s.venue.id.as_str());
    let items = in_force_with(store, &snapshot, &catalogue, from, to, &keep)?;
    let (tallies, _) = crate::shared_plan::tallies(&items);
    for ((schedule, _, _), tally) in items.iter().zip(&tallies) {
        if dim == Dimension::Screen {
            out.entry(schedule.screen.id.to_string())
                .or_insert_with(|| (schedule.venue.id.to_string(), 0));
        }
        for ((campaign, creative), n) in tally.totals() {
            let key = match dim {
                Dimension::Venue => schedule.venue.id.to_string(),
                Dimension::Screen => schedule.screen.id.to_string(),
                Dimension::Campaign => schedule.campaigns[campaign as usize].id.to_string(),
                Dimension::Creative => schedule.creatives[creative as usize].id.to_string(),
            };
            out.entry(key).or_default().1 += n;
        }
    }
    Ok(out)
}

/// The schedules in force over parts of `[from, to)` on the screens whose schedules
/// `keep` accepts, each with its part: every issued document of a published screen (a
/// decommissioned screen's up to its decommissioning), and the current catalogue's
/// schedule of a screen never published. In screen order.
pub fn schedules_in_force(
    store: &dyn Store,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    keep: &dyn Fn(&ScreenSchedule) -> bool,
) -> anyhow::Result<Vec<InForce>> {
    let snapshot = store.snapshot()?;
    let catalogue = crate::catalogue::build(&snapshot)?;
    in_force_with(store, &snapshot, &catalogue, from, to, keep)
}

/// [`schedules_in_force`] with the snapshot and its catalogue already at hand (building the
/// catalogue of a city takes a good part of a second).
fn in_force_with(
    store: &dyn Store,
    snapshot: &crate::store::Snapshot,
    catalogue: &playlists::Catalogue,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    keep: &dyn Fn(&ScreenSchedule) -> bool,
) -> anyhow::Result<Vec<InForce>> {
    let server_key = crate::keys::server_key(store.dir())?.public();
    let mut out = Vec::new();
    let published = store.published()?;
    let mut screens: Vec<&String> = published.keys().collect();
    screens.sort();
    let mut read = Vec::with_capacity(screens.len());
    for screen in screens {
        // A decommissioned screen is planned nothing from then on.
        let to = snapshot
            .screens
            .get(screen.as_str())
            .and_then(|s| s.decommissioned_at)
            .map_or(to, |t| t.min(to));
        read.push((screen, to, store.issued(screen)?));
    }
    use rayon::prelude::*;
    let opened: Vec<anyhow::Result<Vec<InForce>>> = read
        .par_iter()
        .map(|(_, to, docs)| open_in_force(&server_key, docs, from, *to))
        .collect();
    for part in opened {
        out.extend(part?.into_iter().filter(|(s, a, b)| a < b && keep(s)));
    }
    let index = playlists::catalogue::CatalogueIndex::new(catalogue);
    for screen in &catalogue.screens {
        if !published.contains_key(screen.id.as_str()) {
            if let Some(schedule) = index.schedule_for(screen.id.as_str()) {
                if from < to && keep(&schedule) {
                    out.push((schedule, from, to));
                }
            }
        }
    }
    Ok(out)
}

/// Calls `f` with every schedule in force over part of `[from, to)` (as
/// [`schedules_in_force`] finds them) and the tally of its plays over that part, each
/// distinct plan made once.
pub fn each_tally(
    store: &dyn Store,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    keep: &dyn Fn(&ScreenSchedule) -> bool,
    f: &mut dyn FnMut(&ScreenSchedule, &playlists::Tally),
) -> anyhow::Result<()> {
    let items = schedules_in_force(store, from, to, keep)?;
    let (tallies, _) = crate::shared_plan::tallies(&items);
    for ((schedule, _, _), tally) in items.iter().zip(&tallies) {
        f(schedule, tally);
    }
    Ok(())
}

/// Calls `f` with every play planned over `[from, to)` on the screens whose schedules
/// `keep` accepts (as [`planned`] counts them), and once with `None` for each schedule
/// in force over part of the window (so a screen planned nothing still shows).
pub fn each_planned(
    store: &dyn Store,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    keep: &dyn Fn(&ScreenSchedule) -> bool,
    f: &mut dyn FnMut(&ScreenSchedule, Option<&Play>),
) -> anyhow::Result<()> {
    for (schedule, a, b) in schedules_in_force(store, from, to, keep)? {
        f(&schedule, None);
        Planner::new(&schedule).for_each_day(a, b, |day, first, end| {
            for p in day.plays().filter(|p| (first..end).contains(&p.slot)) {
                f(&schedule, Some(&p));
            }
        });
    }
    Ok(())
}

/// A schedule and the part of a window it was in force for, `[start, end)`.
pub type InForce = (ScreenSchedule, DateTime<Utc>, DateTime<Utc>);

/// The schedules of `screen`'s issued documents with the part of `[from, to)` each was in
/// force for. Each document's signature is checked with the server's key.
pub fn in_force(
    store: &dyn Store,
    server_key: &ed25519_dalek::VerifyingKey,
    screen: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> anyhow::Result<Vec<InForce>> {
    open_in_force(server_key, &store.issued(screen)?, from, to)
}

/// [`in_force`] of documents already read: pure, so a city's documents are opened (their
/// signatures checked, their bodies parsed) on all cores.
fn open_in_force(
    server_key: &ed25519_dalek::VerifyingKey,
    docs: &[crate::store::IssuedDocument],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> anyhow::Result<Vec<InForce>> {
    crate::planned::open_spans(server_key, docs, &[(from, to)])
}
