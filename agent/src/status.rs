//! The retained presence message: what goes into it and when it is worth publishing again.
//! Pure: the main loop gathers the facts and publishes.

use chrono::{DateTime, Utc};
use playlists::wire::{DownloadFailure, Status, VERSION};

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
