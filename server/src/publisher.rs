//! Schedule documents: built per screen from the catalogue, versioned, signed with the
//! server key. A screen's version rises when its body changes, and when its published
//! document is less than half a TTL from its expiry (re-signed so agents keep accepting
//! it); otherwise the published version is signed again with its recorded issue and expiry
//! times, so every copy of one version says the same.

use chrono::{DateTime, TimeDelta, Utc};

use playlists::wire::schedule::{ScheduleBody, KIND};
use playlists::wire::{Keypair, ScheduleDoc};
use playlists::Catalogue;

use crate::store::{Published, Store, StoreError};

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

/// Builds every screen's document; bumps and records versions of the changed (or nearly
/// expired) ones.
pub fn build_all(
    store: &Store,
    catalogue: &Catalogue,
    key: &Keypair,
    now: DateTime<Utc>,
    ttl: TimeDelta,
) -> Result<Vec<Outgoing>, StoreError> {
    let published = store.published()?;
    let mut out = Vec::new();
    let mut updates = Vec::new();
    for screen in &catalogue.screens {
        let Some(schedule) = catalogue.schedule_for(&screen.id) else {
            continue;
        };
        let body = ScheduleBody::from_schedule(&schedule);
        let hash = body.content_hash().to_string();
        let id = screen.id.to_string();
        let kept = published
            .get(&id)
            .filter(|p| p.content_hash == hash)
            .and_then(|p| Some((p.version, fresh(p, now, ttl)?)));
        let (version, changed, (issued_at, expires_at)) = match kept {
            Some((version, times)) => (version, false, times),
            None => {
                let version = published.get(&id).map_or(1, |p| p.version + 1);
                (version, true, (now, now + ttl))
            }
        };
        if changed {
            updates.push((
                id.clone(),
                Published {
                    version,
                    content_hash: hash,
                    issued_at: Some(issued_at),
                    expires_at: Some(expires_at),
                },
            ));
        }
        let doc = ScheduleDoc::new(&screen.id, version, issued_at, expires_at, body);
        out.push(Outgoing {
            screen_id: id,
            version,
            changed,
            bytes: key.seal(KIND, &doc),
        });
    }
    store.set_published(&updates)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use playlists::wire::signed::open;
    use playlists::wire::MAX_SCHEDULE_BYTES;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// (version, changed, issued_at, expires_at) of the first screen's document at `now`.
    fn first(
        store: &Store,
        catalogue: &Catalogue,
        key: &Keypair,
        now: &str,
    ) -> (u64, bool, DateTime<Utc>, DateTime<Utc>) {
        let out = build_all(store, catalogue, key, t(now), TimeDelta::hours(168)).unwrap();
        let o = &out[0];
        let doc: ScheduleDoc = open(&o.bytes, KIND, &key.public(), MAX_SCHEDULE_BYTES).unwrap();
        assert_eq!(doc.version, o.version);
        (o.version, o.changed, doc.issued_at, doc.expires_at)
    }

    #[test]
    fn documents_expire_a_ttl_after_issue_and_are_refreshed_at_half() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let scenario = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scenarios/beijing-role-models");
        crate::import::import(&store, &scenario).unwrap();
        let catalogue = store.catalogue().unwrap();
        let key = Keypair::from_secret([4; 32]);
        let day0 = "2023-12-17T00:00:00Z";
        assert_eq!(
            first(&store, &catalogue, &key, day0),
            (1, true, t(day0), t("2023-12-24T00:00:00Z"))
        );
        // Unchanged and more than half a TTL from expiry: the same version and times.
        assert_eq!(
            first(&store, &catalogue, &key, "2023-12-20T12:00:00Z"),
            (1, false, t(day0), t("2023-12-24T00:00:00Z"))
        );
        // Less than half a TTL (84 h) left: re-signed as version 2 with fresh times.
        let later = "2023-12-20T12:00:01Z";
        assert_eq!(
            first(&store, &catalogue, &key, later),
            (2, true, t(later), t("2023-12-27T12:00:01Z"))
        );
        assert!(!first(&store, &catalogue, &key, later).1);
    }
}
