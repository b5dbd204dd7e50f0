//! Planned counts: computed when documents are issued ([`issue`]), kept by the store
//! ([`crate::store::PlannedStore`]), read by reports, the drill-down and the dashboard's
//! series ([`each_count`]). Exact at any window: hours wholly inside both the window and a
//! stored part come from the store; the rest (hours cut by the window's ends or a
//! decommissioning, spans no part covers: documents issued before counts were kept, a
//! document past its counted validity, screens never published) are planned from the
//! documents in force, as reports did before counts were kept, each distinct plan once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rayon::prelude::*;

use playlists::wire::ScheduleDoc;
use playlists::{ScreenSchedule, Tally};

use crate::store::{
    DocumentStore, IssuedDocument, PlanCounts, PlanSource, PlannedPart, Snapshot, Store,
};

pub mod issue;
#[cfg(test)]
mod tests;

/// Where a screen's planned plays are reported: the screen and the venue its document named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub screen_id: String,
    pub venue_id: String,
    pub venue_type: String,
    pub district: Option<String>,
}

/// Plays of one UTC hour (seconds since the epoch of its start), campaign and creative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    pub hour: i64,
    pub campaign: Arc<str>,
    pub creative: Arc<str>,
    pub plays: u64,
}

/// A screen's planned plays over part of a window: per hour, and in total per campaign
/// and creative.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub entries: Vec<Count>,
    pub totals: Vec<(Arc<str>, Arc<str>, u64)>,
}

impl Counts {
    fn of(entries: Vec<Count>) -> Counts {
        let mut totals: BTreeMap<(Arc<str>, Arc<str>), u64> = BTreeMap::new();
        for e in &entries {
            *totals
                .entry((e.campaign.clone(), e.creative.clone()))
                .or_default() += e.plays;
        }
        Counts {
            entries,
            totals: totals.into_iter().map(|((c, k), n)| (c, k, n)).collect(),
        }
    }

    fn of_plan(plan: &PlanCounts, from_hour: i64, to_hour: i64) -> Counts {
        let campaigns: Vec<Arc<str>> = plan
            .campaigns
            .iter()
            .map(|c| Arc::from(c.as_str()))
            .collect();
        let creatives: Vec<Arc<str>> = plan
            .creatives
            .iter()
            .map(|c| Arc::from(c.as_str()))
            .collect();
        Counts::of(
            plan.entries
                .iter()
                .filter(|e| (from_hour..to_hour).contains(&e.hour()))
                .map(|e| Count {
                    hour: e.hour(),
                    campaign: campaigns[e.campaign()].clone(),
                    creative: creatives[e.creative()].clone(),
                    plays: e.plays(),
                })
                .collect(),
        )
    }

    fn of_tally(schedule: &ScreenSchedule, tally: &Tally) -> Counts {
        Counts::of(
            tally
                .entries
                .iter()
                .map(|e| Count {
                    hour: e.hour,
                    campaign: Arc::from(schedule.campaigns[e.campaign as usize].id.as_str()),
                    creative: Arc::from(schedule.creatives[e.creative as usize].id.as_str()),
                    plays: u64::from(e.plays),
                })
                .collect(),
        )
    }
}

/// How a window was answered: pieces read from stored counts, pieces planned, and what
/// was read to plan them (a plan's source document, or a screen's documents in force).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Answered {
    pub stored: usize,
    pub planned: usize,
    pub documents: usize,
}

pub(crate) fn floor_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    let s = t.timestamp().div_euclid(3_600) * 3_600;
    DateTime::from_timestamp(s, 0).unwrap_or(t)
}

pub(crate) fn ceil_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    let f = floor_hour(t);
    if f == t {
        t
    } else {
        f + chrono::TimeDelta::hours(1)
    }
}

fn at(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(s, 0).unwrap_or_default()
}

pub(crate) fn place_of(s: &ScreenSchedule) -> Place {
    Place {
        screen_id: s.screen.id.to_string(),
        venue_id: s.venue.id.to_string(),
        venue_type: s.venue.venue_type.to_string(),
        district: s.venue.district.clone(),
    }
}

fn place_of_part(p: &PlannedPart) -> Place {
    Place {
        screen_id: p.screen_id.clone(),
        venue_id: p.venue_id.clone(),
        venue_type: p.venue_type.clone(),
        district: p.district.clone(),
    }
}

/// The schedule a stored document signs, its signature checked with the server's key.
pub(crate) fn open_schedule(
    server_key: &ed25519_dalek::VerifyingKey,
    d: &IssuedDocument,
) -> anyhow::Result<ScreenSchedule> {
    let doc: ScheduleDoc = playlists::wire::signed::open(
        d.signed.as_bytes(),
        playlists::wire::schedule::KIND,
        server_key,
        playlists::wire::MAX_SCHEDULE_BYTES,
    )
    .map_err(|e| anyhow::anyhow!("document {} v{}: {e}", d.screen_id, d.version))?;
    doc.body
        .to_schedule()
        .map_err(|e| anyhow::anyhow!("document {} v{}: {e}", d.screen_id, d.version))
}

/// A span of time, `[start, end)`.
type Span = (DateTime<Utc>, DateTime<Utc>);

/// A screen's hours `[h1, h2)` answered by a stored plan.
struct StoredPiece {
    place: Place,
    plan: u64,
    h1: i64,
    h2: i64,
    /// The part's span of those hours (planned instead if the plan is missing).
    span: Span,
}

/// A span of a stored part that its plan's hourly counts cannot answer (an hour the
/// window or the part cuts): planned from the plan's source document.
struct EdgePiece {
    place: Place,
    plan: u64,
    span: Span,
}

/// A stored part's span inside a screen's window: the hours `[h1, h2)` the plan answers,
/// and the spans around them it cannot (an hour the window or the part cuts).
struct Split {
    stored: Option<(i64, i64)>,
    live: Vec<Span>,
}

fn split(part: &PlannedPart, from: DateTime<Utc>, to: DateTime<Utc>) -> Split {
    let (a, b) = (part.from.max(from), part.to.min(to));
    let (lo, hi) = issue::hours(a, b);
    // An hour's stored count is the part's plays of that hour: usable when the part's span
    // of the hour lies inside the window.
    let usable = |h: i64| part.from.max(at(h)) >= from && part.to.min(at(h + 3_600)) <= to;
    let s1 = if usable(lo) { lo } else { lo + 3_600 };
    let s2 = if usable(hi - 3_600) { hi } else { hi - 3_600 };
    if s1 >= s2 {
        return Split {
            stored: None,
            live: vec![(a, b)],
        };
    }
    let mut live = Vec::new();
    if a < at(s1) {
        live.push((a, at(s1)));
    }
    if at(s2) < b {
        live.push((at(s2), b));
    }
    Split {
        stored: Some((s1, s2)),
        live,
    }
}

/// `[from, to)` less the spans in `covered` (sorted by start, not overlapping).
fn uncovered(from: DateTime<Utc>, to: DateTime<Utc>, covered: &[Span]) -> Vec<Span> {
    let mut out = Vec::new();
    let mut a = from;
    for &(c, d) in covered {
        if c > a {
            out.push((a, c.min(to)));
        }
        a = a.max(d);
    }
    if a < to {
        out.push((a, to));
    }
    out.retain(|(a, b)| a < b);
    out
}

/// The schedules of `docs` (one screen's, oldest first) in force over each of `spans`, each
/// with its part of the span (a screen's first version from the beginning, each later one
/// from its `in_force_from` until the next's). Each document is opened once.
pub(crate) fn open_spans(
    server_key: &ed25519_dalek::VerifyingKey,
    docs: &[IssuedDocument],
    spans: &[Span],
) -> anyhow::Result<Vec<crate::report::InForce>> {
    let mut out = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        let mut schedule: Option<ScreenSchedule> = None;
        for &(from, to) in spans {
            let start = if i == 0 {
                from
            } else {
                d.in_force_from.max(from)
            };
            let end = docs
                .get(i + 1)
                .map_or(to, |next| next.in_force_from.min(to));
            if start >= end {
                continue;
            }
            if schedule.is_none() {
                schedule = Some(open_schedule(server_key, d)?);
            }
            if let Some(s) = &schedule {
                out.push((s.clone(), start, end));
            }
        }
    }
    Ok(out)
}

/// Calls `f` with the planned plays of each of `edges` whose plan names a source document
/// that opens: planned from it once per plan and span, for every screen sharing the plan.
/// Returns the edges left to plan from their screens' own documents.
fn plan_edges<'a>(
    store: &dyn Store,
    server_key: &ed25519_dalek::VerifyingKey,
    plans: &HashMap<u64, Option<PlanCounts>>,
    edges: &'a [EdgePiece],
    answered: &mut Answered,
    f: &mut dyn FnMut(&Place, &Counts),
) -> Vec<&'a EdgePiece> {
    let source_of = |plan: u64| {
        plans
            .get(&plan)
            .and_then(Option::as_ref)
            .and_then(|p| p.source.as_ref())
    };
    let mut wanted: Vec<&PlanSource> = edges.iter().filter_map(|e| source_of(e.plan)).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let opened: HashMap<&PlanSource, ScreenSchedule> = wanted
        .par_iter()
        .filter_map(|&src| match open_version(store, server_key, src) {
            Ok(schedule) => Some((src, schedule)),
            Err(e) => {
                tracing::debug!(
                    screen = %src.screen_id, version = src.version, error = %e,
                    "a plan's source does not open: its screens' cut hours are planned from their documents"
                );
                None
            }
        })
        .collect();
    answered.documents += wanted.len();
    // Each distinct (plan, span) planned once.
    let mut index: HashMap<(u64, Span), usize> = HashMap::new();
    let mut items: Vec<(ScreenSchedule, DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    let mut pieces: Vec<(&Place, usize)> = Vec::new();
    let mut rest = Vec::new();
    for e in edges {
        let Some(schedule) = source_of(e.plan).and_then(|src| opened.get(src)) else {
            rest.push(e);
            continue;
        };
        let i = *index.entry((e.plan, e.span)).or_insert_with(|| {
            items.push((schedule.clone(), e.span.0, e.span.1));
            items.len() - 1
        });
        pieces.push((&e.place, i));
    }
    let (tallies, _) = crate::shared_plan::tallies(&items);
    let counts: Vec<Counts> = items
        .iter()
        .zip(&tallies)
        .map(|((schedule, _, _), tally)| Counts::of_tally(schedule, tally))
        .collect();
    for (place, i) in pieces {
        answered.planned += 1;
        f(place, &counts[i]);
    }
    rest
}

/// The schedule of `source`, read back from the store and its signature checked.
pub(crate) fn open_version(
    docs: &dyn DocumentStore,
    server_key: &ed25519_dalek::VerifyingKey,
    source: &PlanSource,
) -> anyhow::Result<ScreenSchedule> {
    let doc = docs
        .issued(&source.screen_id)?
        .into_iter()
        .find(|d| d.version == source.version)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "document {} v{} is not stored",
                source.screen_id,
                source.version
            )
        })?;
    open_schedule(server_key, &doc)
}

/// Calls `f` with the planned plays over `[from, to)` (`snapshot` is the store's) of every screen whose place `keep`
/// accepts, as [`crate::report::planned`] has always counted them (the documents in force,
/// a decommissioned screen up to its decommissioning, a screen never published from the
/// current catalogue), one call per part of a screen's window, read from stored counts
/// wherever they answer exactly.
pub fn each_count(
    store: &dyn Store,
    snapshot: &Snapshot,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    keep: &dyn Fn(&Place) -> bool,
    f: &mut dyn FnMut(&Place, &Counts),
) -> anyhow::Result<Answered> {
    let published = store.published()?;
    let mut screens: Vec<&String> = published.keys().collect();
    screens.sort();
    let mut parts: HashMap<String, Vec<PlannedPart>> = HashMap::new();
    if let Some(ps) = store.planned_store() {
        for p in ps.planned_parts(None, from, to)? {
            parts.entry(p.screen_id.clone()).or_default().push(p);
        }
    }
    // (place, plan, first hour, end hour) answered by the store, spans planned per screen.
    let mut stored: Vec<StoredPiece> = Vec::new();
    let mut edges: Vec<EdgePiece> = Vec::new();
    let mut live: BTreeMap<&str, Vec<Span>> = BTreeMap::new();
    for screen in screens {
        let end = snapshot
            .screens
            .get(screen.as_str())
            .and_then(|s| s.decommissioned_at)
            .map_or(to, |t| t.min(to));
        if from >= end {
            continue;
        }
        let mut covered = Vec::new();
        for part in parts.get(screen.as_str()).into_iter().flatten() {
            let (a, b) = (part.from.max(from), part.to.min(end));
            if a >= b {
                continue;
            }
            covered.push((a, b));
            let place = place_of_part(part);
            if !keep(&place) {
                continue;
            }
            let s = split(part, from, end);
            edges.extend(s.live.into_iter().map(|span| EdgePiece {
                place: place.clone(),
                plan: part.plan,
                span,
            }));
            if let Some((h1, h2)) = s.stored {
                stored.push(StoredPiece {
                    place,
                    plan: part.plan,
                    h1,
                    h2,
                    span: (a.max(at(h1)), b.min(at(h2))),
                });
            }
        }
        covered.sort();
        let spans = uncovered(from, end, &covered);
        if !spans.is_empty() {
            live.insert(screen.as_str(), spans);
        }
    }

    // The plans the stored parts name, each read once (on all cores).
    let mut wanted: Vec<u64> = stored
        .iter()
        .map(|s| s.plan)
        .chain(edges.iter().map(|e| e.plan))
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    let (lo, hi) = issue::hours(from, to);
    let plans: HashMap<u64, Option<PlanCounts>> = match store.planned_store() {
        Some(ps) => wanted
            .par_iter()
            .map(|&id| Ok((id, ps.plan_counts(id, lo, hi)?)))
            .collect::<Result<_, crate::store::StoreError>>()?,
        None => HashMap::new(),
    };
    let mut made: HashMap<(u64, i64, i64), Arc<Counts>> = HashMap::new();
    let mut answered = Answered::default();
    for p in &stored {
        let Some(Some(counts)) = plans.get(&p.plan) else {
            // A part whose plan is missing: plan its span from the documents.
            live.entry(p.place.screen_id.as_str())
                .or_default()
                .push(p.span);
            continue;
        };
        let c = made
            .entry((p.plan, p.h1, p.h2))
            .or_insert_with(|| Arc::new(Counts::of_plan(counts, p.h1, p.h2)));
        answered.stored += 1;
        f(&p.place, c);
    }

    // The stored parts' cut hours from their plans' sources; those without one (plans
    // kept before sources were, a source that no longer opens) from their documents.
    let server_key = crate::keys::server_key(store.dir())?.public();
    for e in plan_edges(store, &server_key, &plans, &edges, &mut answered, f) {
        live.entry(e.place.screen_id.as_str())
            .or_default()
            .push(e.span);
    }

    // The rest from the documents in force (on all cores), and screens never published.
    answered.documents += live.len();
    let read: Vec<(&str, Vec<_>, Vec<IssuedDocument>)> = live
        .into_iter()
        .map(|(screen, mut spans)| {
            spans.sort();
            Ok((screen, spans, store.issued(screen)?))
        })
        .collect::<anyhow::Result<_>>()?;
    let opened: Vec<anyhow::Result<Vec<crate::report::InForce>>> = read
        .par_iter()
        .map(|(_, spans, docs)| open_spans(&server_key, docs, spans))
        .collect();
    let mut items = Vec::new();
    for part in opened {
        items.extend(
            part?
                .into_iter()
                .filter(|(s, a, b)| a < b && keep(&place_of(s))),
        );
    }
    if snapshot
        .screens
        .keys()
        .any(|s| !published.contains_key(s.as_str()))
    {
        let catalogue = crate::catalogue::build(snapshot)?;
        let index = playlists::catalogue::CatalogueIndex::new(&catalogue);
        for screen in &catalogue.screens {
            if !published.contains_key(screen.id.as_str()) {
                if let Some(schedule) = index.schedule_for(screen.id.as_str()) {
                    if keep(&place_of(&schedule)) {
                        items.push((schedule, from, to));
                    }
                }
            }
        }
    }
    let (tallies, _) = crate::shared_plan::tallies(&items);
    let mut counted: HashMap<*const Tally, Arc<Counts>> = HashMap::new();
    for ((schedule, _, _), tally) in items.iter().zip(&tallies) {
        let c = counted
            .entry(Arc::as_ptr(tally))
            .or_insert_with(|| Arc::new(Counts::of_tally(schedule, tally)));
        answered.planned += 1;
        f(&place_of(schedule), c);
    }
    Ok(answered)
}
