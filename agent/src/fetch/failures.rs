//! Downloads that keep failing: per creative, how many in a row, the last error and when
//! to try again, each creative on its own exponential backoff with jitter, so a broken one
//! is neither retried in a tight loop nor holds back the others; and what the status says
//! about them. Pure: callers pass `now` and the jitter. Downloading is `download.rs`'s.

use std::collections::BTreeMap;
use std::time::Duration;

use playlists::wire::DownloadFailure;
use tokio::time::Instant;

use crate::backoff::Backoff;

#[derive(Debug)]
struct Failing {
    creative: String,
    attempts: u32,
    error: String,
    retry_at: Instant,
    backoff: Backoff,
}

/// The creatives whose last download failed, by hash.
#[derive(Debug)]
pub struct Failures {
    base: Duration,
    cap: Duration,
    by_sha: BTreeMap<String, Failing>,
}

impl Failures {
    /// Retries wait `base`, then twice as long each time, up to `cap` (each jittered).
    pub fn new(base: Duration, cap: Duration) -> Failures {
        Failures {
            base,
            cap,
            by_sha: BTreeMap::new(),
        }
    }

    /// Records a failed download of `creative` (`sha256`) at `now`; `unit` in `[0, 1)`
    /// picks the jitter. Returns when it is due again.
    pub fn failed(
        &mut self,
        sha256: &str,
        creative: &str,
        attempts: u32,
        error: String,
        now: Instant,
        unit: f64,
    ) -> Instant {
        let (base, cap) = (self.base, self.cap);
        let f = self
            .by_sha
            .entry(sha256.to_owned())
            .or_insert_with(|| Failing {
                creative: creative.to_owned(),
                attempts: 0,
                error: String::new(),
                retry_at: now,
                backoff: Backoff::new(base, cap),
            });
        f.attempts = f.attempts.saturating_add(attempts);
        f.error = error;
        f.retry_at = now + f.backoff.next_with(unit);
        f.retry_at
    }

    pub fn succeeded(&mut self, sha256: &str) {
        self.by_sha.remove(sha256);
    }

    /// Whether `sha256` may be downloaded at `now` (never failed, or its wait is over).
    pub fn due(&self, sha256: &str, now: Instant) -> bool {
        self.by_sha.get(sha256).is_none_or(|f| f.retry_at <= now)
    }

    /// The earliest instant a failed creative is due again.
    pub fn next_due(&self) -> Option<Instant> {
        self.by_sha.values().map(|f| f.retry_at).min()
    }

    /// Forgets the creatives `keep` says no (no longer in the schedule).
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.by_sha.retain(|sha, _| keep(sha));
    }

    /// What the status reports, by hash.
    pub fn report(&self) -> Vec<DownloadFailure> {
        self.by_sha
            .iter()
            .map(|(sha, f)| DownloadFailure {
                creative: f.creative.clone(),
                sha256: sha.clone(),
                attempts: f.attempts,
                error: f.error.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_per_creative_and_reports() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut f = Failures::new(s(60), s(600));
        assert!(f.due("a", t0) && f.next_due().is_none());
        // a fails three times (3 attempts each), b once; jitter 1.0 is the full delay.
        let due = f.failed("a", "cr-a", 3, "cut".into(), t0, 1.0);
        assert_eq!(due, t0 + s(60));
        assert!(!f.due("a", t0 + s(59)) && f.due("a", t0 + s(60)));
        assert!(f.due("b", t0));
        assert_eq!(
            f.failed("a", "cr-a", 3, "cut".into(), due, 1.0),
            due + s(120)
        );
        f.failed("b", "cr-b", 1, "404".into(), t0 + s(1), 0.0);
        assert_eq!(f.next_due(), Some(t0 + s(31)));
        let last = f.failed("a", "cr-a", 3, "reset".into(), due + s(120), 1.0);
        assert_eq!(last, due + s(360));
        let report = f.report();
        assert_eq!(report.len(), 2);
        assert_eq!(
            (
                report[0].creative.as_str(),
                report[0].attempts,
                report[0].error.as_str()
            ),
            ("cr-a", 9, "reset")
        );
        // Capped at 600 s, however often it fails.
        let mut at = last;
        for _ in 0..10 {
            at = f.failed("a", "cr-a", 1, "cut".into(), at, 1.0) - s(0);
        }
        assert_eq!(f.failed("a", "cr-a", 1, "x".into(), at, 1.0), at + s(600));
        f.succeeded("a");
        assert!(f.due("a", t0));
        f.retain(|sha| sha != "b");
        assert!(f.report().is_empty());
    }
}
