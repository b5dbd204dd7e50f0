//! Schedule documents: built per screen from the catalogue, versioned (a screen's version
//! rises only when its body changes), signed with the server key.

use chrono::{DateTime, Utc};

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

/// Builds every screen's document; bumps and records versions of the changed ones.
pub fn build_all(
    store: &Store,
    catalogue: &Catalogue,
    key: &Keypair,
    now: DateTime<Utc>,
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
        let (version, changed) = match published.get(&id) {
            Some(p) if p.content_hash == hash => (p.version, false),
            Some(p) => (p.version + 1, true),
            None => (1, true),
        };
        if changed {
            updates.push((
                id.clone(),
                Published {
                    version,
                    content_hash: hash,
                },
            ));
        }
        let doc = ScheduleDoc::new(&screen.id, version, now, body);
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
