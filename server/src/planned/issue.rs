//! Counting what documents plan when they are issued: each new document from its
//! `in_force_from` for as long as it is valid (its expiry less its issue, from that
//! instant), and the screen's earlier parts cut where it takes over. A cut inside an hour
//! keeps the earlier document's plays of that hour up to the cut as a plan of their own (a
//! *tail*), planned from the earlier document; a tail that cannot be made (its document
//! unreadable) is left out, and reports plan that piece from the documents instead.
//! Screens that plan identically over the same slots share one plan
//! ([`crate::shared_plan::tallies`]).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use playlists::{ScreenSchedule, Tally};

use super::{ceil_hour, floor_hour, place_of};
use crate::store::{
    DocumentStore, IssuedDocument, PlanCounts, PlanEntry, PlanSource, PlannedChange, PlannedPart,
    PlannedStore, StoreError,
};

/// The plan counts of `tally` (indices into `schedule`, the schedule of document
/// `source`), with only the campaigns and creatives it names, and its id (a hash of the
/// counts and their source: equal counts from one document, one plan).
pub fn plan_counts(
    schedule: &ScreenSchedule,
    tally: &Tally,
    source: PlanSource,
) -> (u64, PlanCounts) {
    let mut campaigns: Vec<usize> = tally.entries.iter().map(|e| e.campaign as usize).collect();
    let mut creatives: Vec<usize> = tally.entries.iter().map(|e| e.creative as usize).collect();
    for v in [&mut campaigns, &mut creatives] {
        v.sort_unstable();
        v.dedup();
    }
    let at = |v: &[usize], i: u32| v.binary_search(&(i as usize)).unwrap_or(0) as u32;
    let counts = PlanCounts {
        campaigns: campaigns
            .iter()
            .map(|&i| schedule.campaigns[i].id.to_string())
            .collect(),
        creatives: creatives
            .iter()
            .map(|&i| schedule.creatives[i].id.to_string())
            .collect(),
        entries: tally
            .entries
            .iter()
            .map(|e| {
                PlanEntry(
                    e.hour,
                    at(&campaigns, e.campaign),
                    at(&creatives, e.creative),
                    e.plays,
                )
            })
            .collect(),
        source: Some(source),
    };
    let id = crate::store::plan_id(&serde_json::to_vec(&counts).unwrap_or_default());
    (id, counts)
}

/// The end of a document's counted part: as long after `in_force_from` as it is valid.
fn counted_until(doc: &IssuedDocument) -> DateTime<Utc> {
    doc.in_force_from + (doc.expires_at - doc.issued_at).max(chrono::TimeDelta::zero())
}

/// What recording `issued` (each with the schedule it was built from) changes in the
/// planned counts of `planned`.
pub fn change_for(
    docs: &dyn DocumentStore,
    planned: &dyn PlannedStore,
    server_key: &ed25519_dalek::VerifyingKey,
    issued: &[(ScreenSchedule, IssuedDocument)],
) -> Result<PlannedChange, StoreError> {
    let mut change = PlannedChange::default();
    // (schedule, from, to) to count, and the part each becomes.
    let mut items: Vec<(ScreenSchedule, DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    let mut parts: Vec<PlannedPart> = Vec::new();
    let mut tails = Tails {
        docs,
        planned,
        server_key,
        sources: HashMap::new(),
        opened: HashMap::new(),
    };
    for (schedule, doc) in issued {
        let at = doc.in_force_from;
        for old in planned.planned_parts(Some(&doc.screen_id), at, DateTime::<Utc>::MAX_UTC)? {
            change.remove.push((old.screen_id.clone(), old.from));
            if old.from >= at {
                continue;
            }
            let hour = floor_hour(at);
            if hour == at {
                change.parts.push(PlannedPart { to: at, ..old });
                continue;
            }
            if old.from < hour {
                change.parts.push(PlannedPart {
                    to: hour,
                    ..old.clone()
                });
            }
            let tail_from = old.from.max(hour);
            match tails.schedule(&old) {
                Ok(s) => {
                    items.push((s, tail_from, at));
                    parts.push(PlannedPart {
                        from: tail_from,
                        to: at,
                        ..old
                    });
                }
                Err(e) => tracing::warn!(
                    screen = %old.screen_id, version = old.version, error = %e,
                    "no planned counts for the end of a superseded document: reports plan it"
                ),
            }
        }
        let until = counted_until(doc);
        if at < until {
            let place = place_of(schedule);
            items.push((schedule.clone(), at, until));
            parts.push(PlannedPart {
                screen_id: doc.screen_id.clone(),
                version: doc.version,
                venue_id: place.venue_id,
                venue_type: place.venue_type,
                district: place.district,
                from: at,
                to: until,
                plan: 0,
            });
        }
    }
    let (tallies, _) = crate::shared_plan::tallies(&items);
    let mut ids: HashMap<*const Tally, u64> = HashMap::new();
    for (((schedule, _, _), tally), mut part) in items.iter().zip(&tallies).zip(parts) {
        // The first item of each shared tally is the one it was planned from.
        let id = *ids.entry(Arc::as_ptr(tally)).or_insert_with(|| {
            let source = PlanSource {
                screen_id: part.screen_id.clone(),
                version: part.version,
            };
            let (id, counts) = plan_counts(schedule, tally, source);
            change.plans.push((id, counts));
            id
        });
        part.plan = id;
        change.parts.push(part);
    }
    Ok(change)
}

/// The schedules the ends of superseded parts are planned from, each document opened
/// once: a part's plan's source (which plans exactly as the part's own document), so
/// screens sharing a plan share one document; the part's own document for a plan kept
/// before sources were, or whose source no longer opens.
struct Tails<'a> {
    docs: &'a dyn DocumentStore,
    planned: &'a dyn PlannedStore,
    server_key: &'a ed25519_dalek::VerifyingKey,
    /// Each plan's source, read once.
    sources: HashMap<u64, Option<PlanSource>>,
    /// Each document opened (or why it did not open), once.
    opened: HashMap<PlanSource, Result<ScreenSchedule, String>>,
}

impl Tails<'_> {
    fn schedule(&mut self, part: &PlannedPart) -> anyhow::Result<ScreenSchedule> {
        let planned = self.planned;
        let source = self.sources.entry(part.plan).or_insert_with(|| {
            // Only the source is wanted: no hour's entries.
            let plan = planned.plan_counts(part.plan, 0, 0).ok().flatten();
            plan.and_then(|p| p.source)
        });
        if let Some(source) = source.clone() {
            if let Ok(s) = self.open(source) {
                return Ok(s);
            }
        }
        self.open(PlanSource {
            screen_id: part.screen_id.clone(),
            version: part.version,
        })
    }

    fn open(&mut self, doc: PlanSource) -> anyhow::Result<ScreenSchedule> {
        let (docs, key) = (self.docs, self.server_key);
        self.opened
            .entry(doc)
            .or_insert_with_key(|d| super::open_version(docs, key, d).map_err(|e| e.to_string()))
            .clone()
            .map_err(anyhow::Error::msg)
    }
}

/// Hours `[floor(from), ceil(to))` as seconds since the epoch.
pub fn hours(from: DateTime<Utc>, to: DateTime<Utc>) -> (i64, i64) {
    (floor_hour(from).timestamp(), ceil_hour(to).timestamp())
}
