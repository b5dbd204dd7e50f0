//! The agent's own readiness, the same three verdicts as the server's `/ready`: the broker
//! connection, the store (the data directory that holds the redb outbox and the sled
//! cache takes a write) and ingest (the server keeps up with the plays: the outbox backlog
//! under [`BACKLOG_BEHIND`]). The status carries them to the fleet view; `/metrics` shows
//! them as gauges.

use std::io::Write;
use std::path::Path;

use playlists::wire::{Readiness, Verdict};

/// Unacknowledged plays from which the agent says ingest is not keeping up: an hour of
/// 15-second slots. Batches are sealed a second after each play and acknowledged within
/// seconds when the server is well, so a backlog this long means the server or the path to
/// it has been failing for about an hour.
pub const BACKLOG_BEHIND: u64 = 240;

/// The three verdicts from what the caller knows (the connection, the backlog) and a
/// probe of `data_dir`.
pub fn judge(connected: bool, data_dir: &Path, backlog: u64) -> Readiness {
    let broker = Verdict {
        ok: connected,
        detail: if connected {
            "connected"
        } else {
            "not connected"
        }
        .into(),
    };
    let store = match probe_writable(data_dir) {
        Ok(()) => Verdict {
            ok: true,
            detail: "data directory writable".into(),
        },
        Err(e) => Verdict {
            ok: false,
            detail: format!(
                "the data directory {} takes no write: {e}",
                data_dir.display()
            ),
        },
    };
    let ingest = Verdict {
        ok: backlog < BACKLOG_BEHIND,
        detail: format!("{backlog} plays not yet acknowledged (not ready from {BACKLOG_BEHIND})"),
    };
    Readiness::of(broker, store, ingest)
}

/// Writes and removes a small file in `dir`. Not synced: it asks whether the directory
/// takes writes (full disk, read-only remount, permissions), which the create and write
/// answer, without a disk flush on every status of a kiosk.
/// The name is the process's own, so two agents on one directory do not collide.
fn probe_writable(dir: &Path) -> std::io::Result<()> {
    let path = dir.join(format!(".ready-probe-{}", std::process::id()));
    let written = std::fs::File::create(&path).and_then(|mut f| f.write_all(b"ready"));
    let removed = std::fs::remove_file(&path);
    written.and(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_verdict_has_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let r = judge(true, dir.path(), 3);
        assert!(r.ready, "{r:?}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(r.ingest.detail.starts_with("3 plays"));

        let r = judge(false, &dir.path().join("gone"), BACKLOG_BEHIND);
        assert!(!r.ready);
        assert_eq!(r.broker.detail, "not connected");
        assert!(!r.store.ok && r.store.detail.contains("gone"), "{r:?}");
        assert!(!r.ingest.ok);
    }
}
