//! The fleet's presence: the status worker takes the statuses the MQTT driver hands on and
//! keeps, per known screen, the latest one signed by that screen's current key. Unknown or
//! decommissioned screens, unsigned, badly signed, malformed and older statuses are dropped
//! with a logged reason ([`judge`], pure); a screen leaves the fleet when it leaves the
//! catalogue. The HTTP fleet view reads `Shared::fleet`.
//!
//! Order ([`Seen`]): a later session wins; within a session a status is new when its `seq`
//! is above every one seen, and the Last Will counts once. So a replayed status or will is
//! dropped, while a live agent whose will the broker sent early (rumqttd does so when a
//! connection with the same client id is cleaned up after the agent took over) shows
//! online again with its next status.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;
use tokio::sync::mpsc;

use playlists::wire::signed::public_key_from_hex;
use playlists::wire::{open_status, Status, WireError, LAST_WILL_SEQ};

use crate::app::Shared;

/// Keys are read again from the store at most this often on a miss or a bad signature
/// (a screen provisioned meanwhile), so a flood of forged statuses cannot hammer it.
const KEY_RELOAD_EVERY: Duration = Duration::from_secs(1);

/// Why a status was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Dropped {
    #[error("not a screen in service")]
    UnknownScreen,
    #[error("the screen has no registered key")]
    NoKey,
    #[error("{0}")]
    Invalid(WireError),
    #[error("not newer than what was seen (session {session}, seq {high})")]
    Stale { session: u64, high: u64 },
}

/// What was seen of a screen's latest session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub session: u64,
    /// The highest `seq` of a status (not the will) in the session.
    pub high: u64,
    /// Whether the session's Last Will was seen.
    pub will: bool,
}

impl Seen {
    /// Whether `status` is newer than everything seen.
    pub fn is_new(&self, status: &Status) -> bool {
        match status.session.cmp(&self.session) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal if status.seq == LAST_WILL_SEQ => !self.will,
            std::cmp::Ordering::Equal => status.seq > self.high,
        }
    }

    /// What is seen once `status` (new) is taken.
    pub fn after(seen: Option<Seen>, status: &Status) -> Seen {
        let base = match seen {
            Some(s) if s.session == status.session => s,
            _ => Seen {
                session: status.session,
                high: 0,
                will: false,
            },
        };
        if status.seq == LAST_WILL_SEQ {
            Seen { will: true, ..base }
        } else {
            Seen {
                high: status.seq,
                ..base
            }
        }
    }
}

/// Decides one status of `screen` (the topic's): the status to keep, or why not.
pub fn judge(
    screen: &str,
    raw: &[u8],
    in_service: bool,
    key: Option<&VerifyingKey>,
    seen: Option<&Seen>,
) -> Result<Status, Dropped> {
    if !in_service {
        return Err(Dropped::UnknownScreen);
    }
    let key = key.ok_or(Dropped::NoKey)?;
    let status = open_status(raw, screen, key).map_err(Dropped::Invalid)?;
    match seen {
        Some(s) if !s.is_new(&status) => Err(Dropped::Stale {
            session: s.session,
            high: s.high,
        }),
        _ => Ok(status),
    }
}

/// Screens' current public keys, read from the store on demand, and what was seen of
/// each screen's statuses.
#[derive(Debug, Default)]
struct Keys {
    keys: HashMap<String, VerifyingKey>,
    loaded: Option<Instant>,
    seen: HashMap<String, Seen>,
    /// The screens in service as of one catalogue: built again, and what is kept per
    /// screen pruned, only when the catalogue changes (not for every batch: at city size
    /// that was four passes over every screen for each handful of statuses).
    in_service: Option<(Arc<playlists::Catalogue>, Arc<HashSet<String>>)>,
}

impl Keys {
    /// The screens in service in `catalogue`, and whether that is another catalogue than
    /// the last one asked about (then what is kept per screen is pruned).
    fn in_service_of(
        &mut self,
        catalogue: &Arc<playlists::Catalogue>,
    ) -> (bool, Arc<HashSet<String>>) {
        if let Some((of, screens)) = &self.in_service {
            if Arc::ptr_eq(of, catalogue) {
                return (false, screens.clone());
            }
        }
        let screens: Arc<HashSet<String>> =
            Arc::new(catalogue.screens.iter().map(|s| s.id.to_string()).collect());
        self.in_service = Some((catalogue.clone(), screens.clone()));
        (true, screens)
    }

    fn reload(&mut self, shared: &Shared) {
        if self.loaded.is_some_and(|t| t.elapsed() < KEY_RELOAD_EVERY) {
            return;
        }
        self.loaded = Some(Instant::now());
        match crate::store::current_keys(&*shared.store) {
            Ok(keys) => {
                self.keys = keys
                    .into_iter()
                    .filter_map(|(s, k)| Some((s, public_key_from_hex(&k).ok()?)))
                    .collect();
            }
            Err(e) => tracing::error!(error = %e, "cannot read screen keys"),
        }
    }

    /// Judges with the cached key, and once more with fresh keys when that fails for want
    /// of a key or a signature (a screen provisioned again since).
    fn judge(
        &mut self,
        shared: &Shared,
        screen: &str,
        raw: &[u8],
        in_service: bool,
    ) -> Result<Status, Dropped> {
        let seen = self.seen.get(screen).copied();
        let first = judge(
            screen,
            raw,
            in_service,
            self.keys.get(screen),
            seen.as_ref(),
        );
        let judged = match first {
            Err(Dropped::NoKey | Dropped::Invalid(WireError::BadSignature)) => {
                self.reload(shared);
                judge(
                    screen,
                    raw,
                    in_service,
                    self.keys.get(screen),
                    seen.as_ref(),
                )
            }
            other => other,
        };
        if let Ok(status) = &judged {
            self.seen
                .insert(screen.to_owned(), Seen::after(seen, status));
        }
        judged
    }
}

/// Takes statuses `(topic screen, raw payload)` until the driver is gone.
pub async fn status_worker(shared: Arc<Shared>, mut rx: mpsc::Receiver<(String, Vec<u8>)>) {
    let mut keys = Some(Keys::default());
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        let shared = shared.clone();
        let mut k = keys.take().unwrap_or_default();
        let done = tokio::task::spawn_blocking(move || {
            take_statuses(&shared, &mut k, batch);
            k
        })
        .await;
        match done {
            Ok(k) => keys = Some(k),
            Err(e) => tracing::error!(error = %e, "status task failed"),
        }
    }
}

fn take_statuses(shared: &Shared, keys: &mut Keys, batch: Vec<(String, Vec<u8>)>) {
    let catalogue = match shared.catalogue.catalogue() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the catalogue; statuses dropped");
            return;
        }
    };
    let (changed, in_service) = keys.in_service_of(&catalogue);
    if keys.loaded.is_none() {
        keys.reload(shared);
    }
    for (screen, raw) in batch {
        match keys.judge(shared, &screen, &raw, in_service.contains(screen.as_str())) {
            Ok(status) => {
                shared.fleet_view.received(&screen, chrono::Utc::now());
                // Still holding no schedule after its first status of a connection while
                // one is published: the broker lost or never delivered the retained copy
                // (seen on clustered NATS). Sending it again reaches the agent live.
                let published = shared
                    .schedule_hashes
                    .lock()
                    .is_ok_and(|h| h.contains_key(&screen));
                if status.online
                    && status.schedule_version.is_none()
                    && status.seq >= 2
                    && published
                {
                    tracing::info!(screen, "agent holds no schedule; sending it again");
                    shared.publisher.heal(&screen);
                }
                if let Ok(mut fleet) = shared.fleet.lock() {
                    fleet.insert(screen, status);
                }
            }
            // An agent's own echo or a retained copy seen again: not worth a warning.
            Err(reason @ Dropped::Stale { .. }) => {
                tracing::debug!(screen, %reason, "status dropped")
            }
            Err(reason) => tracing::warn!(screen, %reason, "status dropped"),
        }
    }
    // Only a status judged in service is kept, so only a new catalogue can leave one
    // behind.
    if !changed {
        return;
    }
    if let Ok(mut fleet) = shared.fleet.lock() {
        fleet.retain(|screen, _| in_service.contains(screen.as_str()));
    }
    if let Ok(mut received) = shared.fleet_view.received.lock() {
        received.retain(|screen, _| in_service.contains(screen.as_str()));
    }
    keys.seen
        .retain(|screen, _| in_service.contains(screen.as_str()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use playlists::wire::{Keypair, STATUS_KIND};

    fn status(session: u64, seq: u64, online: bool) -> Status {
        Status {
            v: 1,
            screen_id: "scr-1".into(),
            online,
            session,
            seq,
            ..Status::default()
        }
    }

    /// The set of screens in service is built once per catalogue, and a new catalogue is
    /// told as a change (what is kept of screens no longer in it is pruned then).
    #[test]
    fn screens_in_service_are_read_once_per_catalogue() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(dir.path(), crate::store::OpenMode::Create).unwrap();
        let service = crate::catalogue::CatalogueService::new(store);
        let scenario = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scenarios/beijing-role-models");
        crate::import::import(&service, &scenario, &crate::import::ImportOptions::admin()).unwrap();
        let first = service.catalogue().unwrap();
        let mut keys = Keys::default();
        let (changed, screens) = keys.in_service_of(&first);
        assert!(changed);
        assert_eq!(screens.len(), first.screens.len());
        assert!(screens.contains(first.screens[0].id.as_str()));
        let (changed, again) = keys.in_service_of(&first);
        assert!(!changed && Arc::ptr_eq(&screens, &again));

        let mut fewer = (*first).clone();
        let gone = fewer.screens.remove(0).id.to_string();
        let (changed, now) = keys.in_service_of(&Arc::new(fewer));
        assert!(changed);
        assert_eq!(now.len(), first.screens.len() - 1);
        assert!(!now.contains(gone.as_str()));
    }

    #[test]
    fn judgements() {
        let key = Keypair::from_secret([1; 32]);
        let other = Keypair::from_secret([2; 32]);
        let pk = key.public();
        let sealed = |s: &Status| key.seal(STATUS_KIND, s);
        let s = status(10, 3, true);
        let raw = sealed(&s);
        assert_eq!(judge("scr-1", &raw, true, Some(&pk), None), Ok(s.clone()));
        assert_eq!(
            judge("scr-1", &raw, false, Some(&pk), None),
            Err(Dropped::UnknownScreen)
        );
        assert_eq!(judge("scr-1", &raw, true, None, None), Err(Dropped::NoKey));
        assert_eq!(
            judge("scr-1", &other.seal(STATUS_KIND, &s), true, Some(&pk), None),
            Err(Dropped::Invalid(WireError::BadSignature))
        );
        let unsigned = serde_json::to_vec(&s).unwrap();
        assert!(matches!(
            judge("scr-1", &unsigned, true, Some(&pk), None),
            Err(Dropped::Invalid(WireError::Malformed(_)))
        ));
        assert!(matches!(
            judge("scr-2", &raw, true, Some(&pk), None),
            Err(Dropped::Invalid(WireError::Malformed(_)))
        ));
        assert!(matches!(
            judge("scr-1", b"\xff garbage", true, Some(&pk), None),
            Err(Dropped::Invalid(WireError::Malformed(_)))
        ));
        // Order: the same or an older status is stale; the session's will counts once;
        // a status after the will (the agent still alive) and a new session are new.
        let seen = Seen::after(None, &s);
        let judged =
            |st: &Status, seen: &Seen| judge("scr-1", &sealed(st), true, Some(&pk), Some(seen));
        assert!(judged(&s, &seen).is_err());
        assert!(judged(&status(10, 2, true), &seen).is_err());
        assert!(judged(&status(9, 50, true), &seen).is_err());
        let will = status(10, LAST_WILL_SEQ, false);
        assert_eq!(judged(&will, &seen), Ok(will.clone()));
        let after_will = Seen::after(Some(seen), &will);
        assert_eq!(
            judged(&will, &after_will),
            Err(Dropped::Stale {
                session: 10,
                high: 3
            })
        );
        assert!(judged(&s, &after_will).is_err(), "a replay after the will");
        let alive = status(10, 4, true);
        assert_eq!(judged(&alive, &after_will), Ok(alive.clone()));
        let next = status(11, 1, true);
        assert_eq!(judged(&next, &after_will), Ok(next.clone()));
        let in_next = Seen::after(Some(after_will), &next);
        assert_eq!(
            (in_next.session, in_next.high, in_next.will),
            (11, 1, false)
        );
        assert!(
            judged(&will, &in_next).is_err(),
            "an old will after a new session"
        );
    }
}
