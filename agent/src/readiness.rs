//! The agent's own readiness, the same three verdicts as the server's `/ready`: the broker
//! connection, the store (the data directory that holds the redb outbox and the sled
//! cache takes a write) and ingest (the server keeps up with the plays: the outbox backlog
//! under [`BACKLOG_BEHIND`]). The status carries them to the fleet view; `/metrics` shows
//! them as gauges.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use playlists::wire::{Readiness, Verdict};

/// Unacknowledged plays from which the agent says ingest is not keeping up: an hour of
/// 15-second slots. Batches are sealed a second after each play and acknowledged within
/// seconds when the server is well, so a backlog this long means the server or the path to
/// it has been failing for about an hour.
pub const BACKLOG_BEHIND: u64 = 240;

/// How long a data directory that took a write counts as writable without probing again.
pub const PROBE_FRESH: Duration = Duration::from_secs(5);

/// The store verdict's probe of one data directory. A write that went through is trusted
/// for [`PROBE_FRESH`], so a burst of statuses (a new schedule, its media, an emergency
/// command) writes one probe file, not one each; a failed one is probed again every time,
/// so a directory that recovers says so at once.
#[derive(Debug)]
pub struct StoreProbe {
    dir: PathBuf,
    took_write: Mutex<Option<Instant>>,
}

impl StoreProbe {
    pub fn new(dir: impl Into<PathBuf>) -> StoreProbe {
        StoreProbe {
            dir: dir.into(),
            took_write: Mutex::new(None),
        }
    }

    /// Whether the directory takes a write, probing it unless it did within the window.
    fn check(&self) -> std::io::Result<()> {
        let mut last = self.took_write.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < PROBE_FRESH) {
            return Ok(());
        }
        let probed = probe_writable(&self.dir);
        *last = probed.is_ok().then(Instant::now);
        probed
    }
}

/// The three verdicts from what the caller knows (the connection, the backlog) and a
/// probe of the data directory.
pub fn judge(connected: bool, probe: &StoreProbe, backlog: u64) -> Readiness {
    let data_dir = &probe.dir;
    let broker = Verdict {
        ok: connected,
        detail: if connected {
            "connected"
        } else {
            "not connected"
        }
        .into(),
    };
    let store = match probe.check() {
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
        let r = judge(true, &StoreProbe::new(dir.path()), 3);
        assert!(r.ready, "{r:?}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(r.ingest.detail.starts_with("3 plays"));

        let r = judge(
            false,
            &StoreProbe::new(dir.path().join("gone")),
            BACKLOG_BEHIND,
        );
        assert!(!r.ready);
        assert_eq!(r.broker.detail, "not connected");
        assert!(!r.store.ok && r.store.detail.contains("gone"), "{r:?}");
        assert!(!r.ingest.ok);
    }

    /// A write that went through is trusted for a while; a failure is probed again at
    /// once, so a directory that comes back is seen at the next status.
    #[test]
    fn a_probe_that_failed_is_repeated_one_that_held_is_trusted_a_while() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        let probe = StoreProbe::new(&dir);
        assert!(!judge(true, &probe, 0).store.ok, "no directory yet");
        std::fs::create_dir(&dir).unwrap();
        assert!(
            judge(true, &probe, 0).store.ok,
            "probed again after a failure"
        );
        std::fs::remove_dir(&dir).unwrap();
        assert!(
            judge(true, &probe, 0).store.ok,
            "a write that held counts for {PROBE_FRESH:?}"
        );
        assert!(!judge(true, &StoreProbe::new(&dir), 0).store.ok);
    }
}
