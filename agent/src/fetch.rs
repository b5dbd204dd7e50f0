//! Media download ahead of need. For the schedule held, the pure planner says which
//! creatives the coming `horizon` (the prefetch window, a week by default) will show and
//! when each is first needed; the fetcher downloads the missing ones in that order from
//! `{server_url}{creative.url}` (the rendition the document names for this screen, else
//! the original: [`HeldSchedule::downloads`]) over plain HTTP, streaming each into the cache (size and
//! SHA-256 checked) and resuming cut downloads from the bytes held (`download.rs`). A
//! creative whose download still fails waits on its own backoff (`failures.rs`) and is
//! named in the status meanwhile, while the others go on. Then it fetches the schedule's other
//! creatives while they fit, evicts what the horizon does not need when over the limit, and
//! tells the main loop how far ahead every slot can be played from the cache (the runway).
//! It looks again whenever the schedule changes and every [`RECHECK`], as the horizon
//! moves. Storage and the eviction choice are `cache.rs`'s.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use playlists::wire::{DownloadFailure, WireCreative};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::backoff::{random_unit, Backoff};
use crate::cache::{Cache, CacheError};
use crate::clock::Clock;
use crate::schedule::{playable_until, FirstUse, HeldSchedule};

mod download;
mod failures;

pub use download::Retry;
use failures::Failures;

pub const RETRY_BASE: Duration = Duration::from_secs(1);
pub const RETRY_CAP: Duration = Duration::from_secs(60);
/// How often the fetcher looks again with an unchanged schedule (the horizon moves).
pub const RECHECK: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("GET {url}: {source}")]
    Http { url: String, source: reqwest::Error },
    #[error("GET {url}: expected {expected} bytes, got {got}")]
    Size {
        url: String,
        expected: u64,
        got: u64,
    },
    #[error("GET {url}: asked for the bytes from {held} on, got Content-Range {content_range:?}")]
    BadRange {
        url: String,
        held: u64,
        content_range: String,
    },
    #[error("creative {id}: url {url:?} is not a server path")]
    BadUrl { id: String, url: String },
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("cache task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// What the fetcher tells the main loop after each look at schedule `version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    pub version: u64,
    /// Every creative planned within the horizon is cached.
    pub ready: bool,
    /// Every slot before this instant can be played from the cache (the runway's end);
    /// `None` while the clock has no time yet.
    pub playable_until: Option<DateTime<Utc>>,
    /// Creatives whose download keeps failing, each waiting for its next try.
    pub failures: Vec<DownloadFailure>,
}

/// The media the horizon needs, in order of first use, and the window it covers.
struct Needs {
    uses: Vec<FirstUse>,
    window_end: Option<DateTime<Utc>>,
}

pub struct Fetcher {
    pub http: reqwest::Client,
    pub server_url: String,
    pub cache: Arc<Cache>,
    pub schedules: watch::Receiver<Option<Arc<HeldSchedule>>>,
    pub clock: Clock,
    pub horizon: chrono::Duration,
    pub retry: Retry,
}

/// The media client without a pinned CA (tests, plain HTTP); see [`crate::tls::http_client`].
pub fn http_client() -> reqwest::Client {
    crate::tls::http_client(None).expect("an HTTP client without a pinned CA builds")
}

impl Fetcher {
    /// Runs until `shutdown`; starts over whenever the schedule changes.
    pub async fn run<E: From<Coverage>>(
        self,
        events: mpsc::Sender<E>,
        shutdown: CancellationToken,
    ) {
        let mut schedules = self.schedules.clone();
        let mut failures = Failures::new(self.retry.creative_base, self.retry.creative_cap);
        loop {
            let held = schedules.borrow_and_update().clone();
            if let Some(held) = held {
                let referenced = held.referenced();
                failures.retain(|sha| referenced.contains(sha));
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    changed = schedules.changed() => {
                        if changed.is_err() { return; }
                        continue;
                    }
                    sent = self.look(&held, &events, &mut failures) => if !sent { return },
                }
            }
            // A simulated clock without a time yet will get one soon: look again then.
            let recheck = if self.clock.now().is_some() {
                RECHECK
            } else {
                Duration::from_secs(1)
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = schedules.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(recheck) => {}
            }
        }
    }

    /// Fetches until every creative the horizon needs is cached, telling the main loop the
    /// coverage after every round; then fills, evicts and tells it once more. False when
    /// the main loop is gone.
    async fn look<E: From<Coverage>>(
        &self,
        held: &Arc<HeldSchedule>,
        events: &mpsc::Sender<E>,
        failures: &mut Failures,
    ) -> bool {
        let mut backoff = Backoff::new(RETRY_BASE, RETRY_CAP);
        loop {
            let needs = match self.all_cached(held).await {
                Some(needs) => needs,
                None => self.needs(held).await,
            };
            let missing = match self.missing(held, &needs).await {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the media cache");
                    tokio::time::sleep(backoff.next_delay()).await;
                    continue;
                }
            };
            if missing.is_empty() {
                self.fill(held, &needs, failures).await;
                self.evict(held, &needs).await;
                self.relieve().await;
                let coverage = self.coverage(held, &needs, true, failures).await;
                return events.send(coverage.into()).await.is_ok();
            }
            let now = tokio::time::Instant::now();
            let due: Vec<&WireCreative> = missing
                .iter()
                .filter(|c| failures.due(&c.sha256, now))
                .collect();
            tracing::info!(
                version = held.version,
                missing = missing.len(),
                due = due.len(),
                "downloading media, soonest needed first"
            );
            let skipped = missing.len() - due.len();
            let mut failed = 0;
            for creative in due {
                if !self.fetch_recording(creative, failures).await {
                    failed += 1;
                }
            }
            if failed == 0 && skipped == 0 {
                continue; // all cached now: the next round sees it and fills
            }
            self.relieve().await;
            let coverage = self.coverage(held, &needs, false, failures).await;
            if events.send(coverage.into()).await.is_err() {
                return false;
            }
            // Each failed creative waits for its own next try; a cache that cannot be
            // read waits on the shared backoff.
            let wake = failures
                .next_due()
                .unwrap_or_else(|| tokio::time::Instant::now() + backoff.next_delay());
            tracing::info!(
                failing = failures.report().len(),
                retry_in_ms = wake
                    .saturating_duration_since(tokio::time::Instant::now())
                    .as_millis() as u64,
                "retrying media downloads"
            );
            tokio::time::sleep_until(wake).await;
        }
    }

    /// Downloads `c` and records the outcome in `failures`; true when it is cached.
    async fn fetch_recording(&self, c: &WireCreative, failures: &mut Failures) -> bool {
        match self.fetch_one(c).await {
            Ok(()) => {
                failures.succeeded(&c.sha256);
                true
            }
            Err((e, attempts)) => {
                let at = failures.failed(
                    &c.sha256,
                    &c.id,
                    attempts,
                    e.to_string(),
                    tokio::time::Instant::now(),
                    random_unit(),
                );
                tracing::warn!(creative = %c.id, attempts, error = %e, retry_in_s = at.saturating_duration_since(tokio::time::Instant::now()).as_secs(), "media download failed");
                false
            }
        }
    }

    /// What the horizon from now needs. Without a time yet (a simulated clock before its
    /// first step) every creative of the schedule counts as needed now.
    async fn needs(&self, held: &Arc<HeldSchedule>) -> Needs {
        let Some(now) = self.clock.now() else {
            return Needs {
                uses: held
                    .downloads
                    .iter()
                    .map(|c| FirstUse {
                        sha256: c.sha256.clone(),
                        at: DateTime::<Utc>::MIN_UTC,
                    })
                    .collect(),
                window_end: None,
            };
        };
        let end = now + self.horizon;
        let h = held.clone();
        let uses = tokio::task::spawn_blocking(move || h.first_uses(now, end))
            .await
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "planning the horizon failed");
                Vec::new()
            });
        Needs {
            uses,
            window_end: Some(end),
        }
    }

    /// With every creative of the schedule cached (and checked) and the cache within its
    /// limit, the horizon's order of first uses decides nothing: none is missing, none is
    /// evicted and every slot plays from the cache. Then each counts as needed now, and the
    /// horizon is not planned (a week of slots, at every change and every [`RECHECK`]).
    async fn all_cached(&self, held: &Arc<HeldSchedule>) -> Option<Needs> {
        let now = self.clock.now()?;
        if self.cache.stats().bytes > self.cache.max_bytes() {
            return None;
        }
        let shas: Vec<String> = held.referenced().into_iter().collect();
        if !self.absent(shas.clone(), true).await.ok()?.is_empty() {
            return None;
        }
        Some(Needs {
            uses: shas
                .into_iter()
                .map(|sha256| FirstUse { sha256, at: now })
                .collect(),
            window_end: Some(now + self.horizon),
        })
    }

    /// The creatives needed within the horizon and not cached, soonest needed first.
    async fn missing(
        &self,
        held: &Arc<HeldSchedule>,
        needs: &Needs,
    ) -> Result<Vec<WireCreative>, FetchError> {
        let wanted: Vec<String> = needs.uses.iter().map(|u| u.sha256.clone()).collect();
        let absent = self.absent(wanted, true).await?;
        Ok(absent
            .iter()
            .filter_map(|sha| held.downloads.iter().find(|c| &c.sha256 == sha))
            .cloned()
            .collect())
    }

    /// Those of `shas` the cache lacks, in the given order. With `verify`, each present one
    /// is checked against its hash once per run (see [`Cache::playable`]): a creative that
    /// rotted on disk is dropped and fetched again while the network is there, rather than
    /// found broken at its first play offline.
    async fn absent(&self, shas: Vec<String>, verify: bool) -> Result<Vec<String>, FetchError> {
        let cache = self.cache.clone();
        let absent = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for sha in shas {
                let present = if verify {
                    let present = cache.playable(&sha)?;
                    // A sweep reads every creative: keep sled's share of that small.
                    cache.relieve(crate::cache::RELIEVE_AFTER_BYTES)?;
                    present
                } else {
                    cache.contains(&sha)?
                };
                if !present {
                    out.push(sha);
                }
            }
            Ok::<_, CacheError>(out)
        })
        .await??;
        Ok(absent)
    }

    /// The schedule's creatives the horizon does not need yet: fetched while they fit under
    /// the cache limit, so a longer outage still finds them. Failures wait for the next look.
    async fn fill(&self, held: &Arc<HeldSchedule>, needs: &Needs, failures: &mut Failures) {
        let needed: HashSet<&str> = needs.uses.iter().map(|u| u.sha256.as_str()).collect();
        let mut later: Vec<&WireCreative> = Vec::new();
        for c in &held.downloads {
            if !needed.contains(c.sha256.as_str()) && !later.iter().any(|l| l.sha256 == c.sha256) {
                later.push(c);
            }
        }
        let shas = later.iter().map(|c| c.sha256.clone()).collect();
        let Ok(absent) = self.absent(shas, false).await else {
            return;
        };
        for sha in absent {
            let Some(c) = later.iter().find(|c| c.sha256 == sha) else {
                continue;
            };
            if self.cache.stats().bytes + c.bytes > self.cache.max_bytes() {
                tracing::debug!(creative = %c.id, "not prefetching beyond the horizon: cache full");
                continue;
            }
            if failures.due(&c.sha256, tokio::time::Instant::now()) {
                self.fetch_recording(c, failures).await;
            }
        }
    }

    async fn coverage(
        &self,
        held: &Arc<HeldSchedule>,
        needs: &Needs,
        ready: bool,
        failures: &Failures,
    ) -> Coverage {
        let playable_until = match needs.window_end {
            Some(end) => {
                let wanted = needs.uses.iter().map(|u| u.sha256.clone()).collect();
                match self.absent(wanted, false).await {
                    Ok(absent) => Some(playable_until(&needs.uses, end, |s| {
                        !absent.iter().any(|a| a == s)
                    })),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the media cache for the runway");
                        None
                    }
                }
            }
            None => None,
        };
        Coverage {
            version: held.version,
            ready,
            playable_until,
            failures: failures.report(),
        }
    }

    /// After a pass that read or wrote media, lets the cache give sled's memory back.
    async fn relieve(&self) {
        let cache = self.cache.clone();
        match tokio::task::spawn_blocking(move || cache.relieve(1)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "reopening the media cache failed"),
            Err(e) => tracing::warn!(error = %e, "media cache task failed"),
        }
    }

    /// Over the cache limit, drops media the horizon does not need: first those no longer
    /// in the schedule, then those needed only later, oldest first.
    async fn evict(&self, held: &Arc<HeldSchedule>, needs: &Needs) {
        let cache = self.cache.clone();
        let referenced = held.referenced();
        let needed: HashSet<String> = needs.uses.iter().map(|u| u.sha256.clone()).collect();
        match tokio::task::spawn_blocking(move || cache.evict_to_fit(&needed, &referenced)).await {
            Ok(Ok(evicted)) if !evicted.is_empty() => {
                tracing::info!(
                    count = evicted.len(),
                    "evicted media the horizon does not need"
                )
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "eviction failed"),
            Err(e) => tracing::warn!(error = %e, "eviction task failed"),
        }
    }
}

#[cfg(test)]
mod resume_tests;
#[cfg(test)]
mod tests;
