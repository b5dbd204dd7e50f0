//! The retained presence message: what goes into it, when it is worth publishing again,
//! and its seal (the screen's key, in session order). The main loop gathers the facts and
//! publishes; the MQTT driver re-signs the Last Will at every connect.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use playlists::wire::{
    DownloadFailure, Keypair, Readiness, Status, LAST_WILL_SEQ, STATUS_KIND, VERSION,
};

use crate::cache::CacheStats;

/// The facts a status reports.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub screen_id: String,
    pub online: bool,
    pub schedule_version: Option<u64>,
    pub player: String,
    pub cache: CacheStats,
    pub media_ready: bool,
    pub runway_hours: f64,
    pub outbox_backlog: u64,
    pub last_seq: u64,
    /// The outbox epoch `last_seq` counts in.
    pub epoch: String,
    pub clock_synced: bool,
    pub now_playing: Option<String>,
    pub notes: Vec<String>,
    pub at: Option<DateTime<Utc>>,
    pub download_failures: Vec<DownloadFailure>,
    pub readiness: Option<Readiness>,
}

pub fn build_status(f: Facts) -> Status {
    Status {
        v: VERSION,
        screen_id: f.screen_id,
        online: f.online,
        schedule_version: f.schedule_version,
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        player: f.player,
        cache_bytes: f.cache.bytes,
        cache_items: f.cache.items,
        media_ready: f.media_ready,
        runway_hours: f.runway_hours,
        outbox_backlog: f.outbox_backlog,
        last_seq: f.last_seq,
        epoch: f.epoch,
        clock_synced: f.clock_synced,
        now_playing: f.now_playing,
        notes: f.notes,
        at: f.at,
        download_failures: f.download_failures,
        readiness: f.readiness,
        session: 0,
        seq: 0,
    }
}

/// Seals statuses with the screen's key in order: each connection is a new session (its
/// connect time in milliseconds, always above the last), each status the next `seq`, and
/// the Last Will, signed when the connection is made, the session's last word
/// ([`LAST_WILL_SEQ`]). The server keeps the latest by that order, so a replayed will or
/// status never overwrites a newer one. Clones share the session.
#[derive(Debug, Clone)]
pub struct StatusSigner {
    key: Keypair,
    session: Arc<AtomicU64>,
    seq: Arc<AtomicU64>,
}

impl StatusSigner {
    /// A signer whose first session starts now.
    pub fn new(key: Keypair) -> StatusSigner {
        let signer = StatusSigner {
            key,
            session: Arc::new(AtomicU64::new(0)),
            seq: Arc::new(AtomicU64::new(0)),
        };
        signer.new_session(Utc::now().timestamp_millis().max(0) as u64);
        signer
    }

    /// Starts the session of a new connection at `now_ms` (or just after the last one, if
    /// the clock went back); returns it.
    pub fn new_session(&self, now_ms: u64) -> u64 {
        let prev = self.session.load(Ordering::SeqCst);
        let session = now_ms.max(prev + 1);
        self.session.store(session, Ordering::SeqCst);
        session
    }

    pub fn session(&self) -> u64 {
        self.session.load(Ordering::SeqCst)
    }

    /// The next status of the current session, sealed.
    pub fn seal(&self, mut status: Status) -> Vec<u8> {
        status.session = self.session();
        status.seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        self.key.seal(STATUS_KIND, &status)
    }

    /// The Last Will of the current session, sealed: `offline` as the session's end.
    pub fn will(&self, mut offline: Status) -> Vec<u8> {
        offline.online = false;
        offline.session = self.session();
        offline.seq = LAST_WILL_SEQ;
        self.key.seal(STATUS_KIND, &offline)
    }
}

/// The part of the status whose change is published at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Presence {
    pub schedule_version: Option<u64>,
    pub media_ready: bool,
    /// How many creatives fail to download.
    pub download_failures: usize,
}

/// Whether a change from the last published presence needs a new status now.
pub fn presence_changed(last: Option<&Presence>, now: &Presence) -> bool {
    last != Some(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields() {
        let s = build_status(Facts {
            screen_id: "scr-1".into(),
            online: true,
            schedule_version: Some(4),
            player: "headless".into(),
            cache: CacheStats {
                bytes: 10,
                items: 2,
            },
            media_ready: true,
            outbox_backlog: 3,
            last_seq: 9,
            clock_synced: true,
            ..Facts::default()
        });
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["v"], 1);
        assert_eq!(json["schedule_version"], 4);
        assert_eq!(json["agent_version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(
            (json["cache_bytes"].as_u64(), json["cache_items"].as_u64()),
            (Some(10), Some(2))
        );
        assert_eq!(
            (json["outbox_backlog"].as_u64(), json["last_seq"].as_u64()),
            (Some(3), Some(9))
        );
    }

    #[test]
    fn statuses_are_sealed_in_session_order() {
        let key = Keypair::from_secret([9; 32]);
        let signer = StatusSigner::new(key.clone());
        let open = |raw: &[u8]| playlists::wire::open_status(raw, "scr-1", &key.public()).unwrap();
        let status = || {
            build_status(Facts {
                screen_id: "scr-1".into(),
                online: true,
                ..Facts::default()
            })
        };
        let first = open(&signer.seal(status()));
        let second = open(&signer.seal(status()));
        let will = open(&signer.will(status()));
        assert!(first.order() < second.order() && second.order() < will.order());
        assert!(!will.online);
        // A new connection: everything after it outranks the old will, even when the
        // clock went back.
        signer.new_session(0);
        let third = open(&signer.seal(status()));
        assert!(
            third.order() > will.order(),
            "{:?} {:?}",
            third.order(),
            will.order()
        );
        assert_eq!(third.session, first.session + 1);
    }

    #[test]
    fn presence_changes() {
        let p = |v: Option<u64>, ready: bool| Presence {
            schedule_version: v,
            media_ready: ready,
            download_failures: 0,
        };
        assert!(presence_changed(None, &p(None, false)));
        assert!(!presence_changed(
            Some(&p(Some(1), true)),
            &p(Some(1), true)
        ));
        assert!(presence_changed(Some(&p(Some(1), true)), &p(Some(2), true)));
        assert!(presence_changed(
            Some(&p(Some(2), false)),
            &p(Some(2), true)
        ));
    }
}
