//! Schedule documents: built per screen from the catalogue, versioned, signed with the
//! server key, and kept (every document issued stays in the store, immutable: reports take
//! "planned" from them). A screen's version rises when its body changes, and when its
//! published document is less than half a TTL from its expiry (re-signed so agents keep
//! accepting it); otherwise the published version is signed again with its recorded issue
//! and expiry times, so every copy of one version says the same. Pure of transport: it
//! returns the signed bytes, the publisher task sends them. Each document's planned counts
//! are kept with it ([`crate::planned`]).

use std::collections::BTreeSet;

use chrono::{DateTime, TimeDelta, Utc};

use playlists::wire::schedule::{ScheduleBody, KIND};
use playlists::wire::{Keypair, ScheduleDoc};
use playlists::Catalogue;

use playlists::catalogue::CatalogueIndex;

use crate::renditions::RenditionMap;
use crate::store::{DocumentStore, IssuedDocument, Published, StoreError};

/// A signed schedule ready to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub screen_id: String,
    pub version: u64,
    pub changed: bool,
    pub bytes: Vec<u8>,
}

/// Whether a published document may be sent again as it is at `now`: it has recorded
/// times and is at least half a TTL from its expiry.
fn fresh(
    p: &Published,
    now: DateTime<Utc>,
    ttl: TimeDelta,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    match (p.issued_at, p.expires_at) {
        (Some(issued), Some(expires)) if expires - now >= ttl / 2 => Some((issued, expires)),
        _ => None,
    }
}

/// Builds the documents of `screens` (every screen when `None`); bumps, signs and keeps the
/// versions of the changed (or nearly expired) ones. `now` is wall-clock time (signed
/// issue and expiry); `in_force_from` is the scheduling clock's now, from which a new
/// version counts as planned (the same instant unless the server runs a scaled clock).
#[allow(
    clippy::too_many_arguments,
    reason = "the store, what to build from, the key, the three times and the renditions are independent inputs"
)]
pub fn build(
    store: &dyn DocumentStore,
    catalogue: &Catalogue,
    screens: Option<&BTreeSet<String>>,
    key: &Keypair,
    now: DateTime<Utc>,
    ttl: TimeDelta,
    in_force_from: DateTime<Utc>,
    renditions: &RenditionMap,
) -> Result<Vec<Outgoing>, StoreError> {
    let published = store.published()?;
    let index = CatalogueIndex::new(catalogue);
    let ids: Vec<&str> = match screens {
        Some(set) => set.iter().map(String::as_str).collect(),
        None => catalogue.screens.iter().map(|s| s.id.as_str()).collect(),
    };
    let mut out = Vec::new();
    let mut issued = Vec::new();
    let mut schedules = Vec::new();
    for id in ids {
        let Some(schedule) = index.schedule_for(id) else {
            continue;
        };
        let body =
            ScheduleBody::from_schedule_with(&schedule, |c| renditions.wire(c, &schedule.screen));
        let hash = body.content_hash().to_string();
        let kept = published
            .get(id)
            .filter(|p| p.content_hash == hash)
            .and_then(|p| Some((p.version, fresh(p, now, ttl)?)));
        let (version, changed, (issued_at, expires_at)) = match kept {
            Some((version, times)) => (version, false, times),
            None => {
                let version = published.get(id).map_or(1, |p| p.version + 1);
                (version, true, (now, now + ttl))
            }
        };
        let doc = ScheduleDoc::new(&schedule.screen.id, version, issued_at, expires_at, body);
        let bytes = key.seal(KIND, &doc);
        if changed {
            issued.push(IssuedDocument {
                screen_id: id.to_owned(),
                version,
                issued_at,
                expires_at,
                in_force_from,
                content_hash: hash,
                signed: String::from_utf8_lossy(&bytes).into_owned(),
            });
            schedules.push(schedule);
        }
        out.push(Outgoing {
            screen_id: id.to_owned(),
            version,
            changed,
            bytes,
        });
    }
    record(store, key, schedules, issued)?;
    Ok(out)
}

/// Keeps the documents issued, with their planned counts where the store keeps counts
/// ([`crate::planned::issue`]), in one transaction.
fn record(
    store: &dyn DocumentStore,
    key: &Keypair,
    schedules: Vec<playlists::ScreenSchedule>,
    issued: Vec<IssuedDocument>,
) -> Result<(), StoreError> {
    let Some(planned) = store.planned_store().filter(|_| !issued.is_empty()) else {
        return store.record_issued(&issued);
    };
    let pairs: Vec<_> = schedules.into_iter().zip(issued).collect();
    let change = crate::planned::issue::change_for(store, planned, &key.public(), &pairs)?;
    let docs: Vec<IssuedDocument> = pairs.into_iter().map(|(_, d)| d).collect();
    planned.record_issued_planned(&docs, &change)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DocumentStore;
    use playlists::wire::signed::open;
    use playlists::wire::MAX_SCHEDULE_BYTES;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// (version, changed, issued_at, expires_at) of the first screen's document at `now`.
    fn first(
        store: &dyn DocumentStore,
        catalogue: &Catalogue,
        key: &Keypair,
        now: &str,
    ) -> (u64, bool, DateTime<Utc>, DateTime<Utc>) {
        let out = build(
            store,
            catalogue,
            None,
            key,
            t(now),
            TimeDelta::hours(168),
            t(now),
            &RenditionMap::default(),
        )
        .unwrap();
        let o = &out[0];
        let doc: ScheduleDoc = open(&o.bytes, KIND, &key.public(), MAX_SCHEDULE_BYTES).unwrap();
        assert_eq!(doc.version, o.version);
        (o.version, o.changed, doc.issued_at, doc.expires_at)
    }

    #[test]
    fn documents_expire_a_ttl_after_issue_and_are_refreshed_at_half() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(dir.path(), crate::store::OpenMode::Create).unwrap();
        let service = crate::catalogue::CatalogueService::new(store.clone());
        crate::import::import(
            &service,
            &crate::cli::default_scenario().unwrap(),
            &crate::import::ImportOptions::admin(),
        )
        .unwrap();
        let catalogue = service.catalogue().unwrap();
        let store = &*store;
        let key = Keypair::from_secret([4; 32]);
        let day0 = "2023-12-17T00:00:00Z";
        assert_eq!(
            first(store, &catalogue, &key, day0),
            (1, true, t(day0), t("2023-12-24T00:00:00Z"))
        );
        // Unchanged and more than half a TTL from expiry: the same version and times.
        assert_eq!(
            first(store, &catalogue, &key, "2023-12-20T12:00:00Z"),
            (1, false, t(day0), t("2023-12-24T00:00:00Z"))
        );
        // Less than half a TTL (84 h) left: re-signed as version 2 with fresh times.
        let later = "2023-12-20T12:00:01Z";
        assert_eq!(
            first(store, &catalogue, &key, later),
            (2, true, t(later), t("2023-12-27T12:00:01Z"))
        );
        assert!(!first(store, &catalogue, &key, later).1);
    }
}
