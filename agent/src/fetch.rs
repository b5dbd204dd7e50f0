//! Media download: for the schedule held, fetch every creative the cache lacks from
//! `{server_url}{creative.url}` over plain HTTP, check size and SHA-256, store it, and retry
//! failures with backoff. Tells the main loop when all of a version's media are cached, and
//! then evicts unreferenced media over the cache limit. Storage and eviction choice are
//! `cache.rs`'s.

use std::sync::Arc;
use std::time::Duration;

use playlists::wire::WireCreative;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::cache::{Cache, CacheError};
use crate::schedule::HeldSchedule;

pub const RETRY_BASE: Duration = Duration::from_secs(1);
pub const RETRY_CAP: Duration = Duration::from_secs(60);

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
    #[error("creative {id}: url {url:?} is not a server path")]
    BadUrl { id: String, url: String },
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("cache task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// What the fetcher tells the main loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// Every creative of schedule `version` is cached.
    Ready { version: u64 },
}

pub struct Fetcher {
    pub http: reqwest::Client,
    pub server_url: String,
    pub cache: Arc<Cache>,
    pub schedules: watch::Receiver<Option<Arc<HeldSchedule>>>,
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(300))
        .build()
        .expect("a plain HTTP client builds")
}

impl Fetcher {
    /// Runs until `shutdown`; starts over whenever the schedule changes.
    pub async fn run<E: From<MediaEvent>>(
        self,
        events: mpsc::Sender<E>,
        shutdown: CancellationToken,
    ) {
        let mut schedules = self.schedules.clone();
        loop {
            let held = schedules.borrow_and_update().clone();
            if let Some(held) = held {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    changed = schedules.changed() => {
                        if changed.is_err() { return; }
                        continue;
                    }
                    version = self.fetch_all(&held) => {
                        if events.send(MediaEvent::Ready { version }.into()).await.is_err() {
                            return;
                        }
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = schedules.changed() => if changed.is_err() { return },
            }
        }
    }

    /// Fetches until every creative of `held` is cached; returns its version.
    async fn fetch_all(&self, held: &Arc<HeldSchedule>) -> u64 {
        let mut backoff = Backoff::new(RETRY_BASE, RETRY_CAP);
        loop {
            let missing = match self.missing(held).await {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the media cache");
                    tokio::time::sleep(backoff.next_delay()).await;
                    continue;
                }
            };
            if missing.is_empty() {
                self.evict(held).await;
                return held.version;
            }
            tracing::info!(
                version = held.version,
                missing = missing.len(),
                "downloading media"
            );
            let mut failed = 0;
            for creative in &missing {
                if let Err(e) = self.fetch_one(creative).await {
                    tracing::warn!(creative = %creative.id, error = %e, "media download failed");
                    failed += 1;
                }
            }
            if failed > 0 {
                let delay = backoff.next_delay();
                tracing::info!(
                    failed,
                    retry_in_ms = delay.as_millis() as u64,
                    "retrying media downloads"
                );
                tokio::time::sleep(delay).await;
            }
        }
    }

    async fn missing(&self, held: &Arc<HeldSchedule>) -> Result<Vec<WireCreative>, FetchError> {
        let cache = self.cache.clone();
        let held = held.clone();
        let missing = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for c in &held.doc.body.creatives {
                if !out.iter().any(|o: &WireCreative| o.sha256 == c.sha256)
                    && !cache.contains(&c.sha256)?
                {
                    out.push(c.clone());
                }
            }
            Ok::<_, CacheError>(out)
        })
        .await??;
        Ok(missing)
    }

    async fn fetch_one(&self, c: &WireCreative) -> Result<(), FetchError> {
        if !c.url.starts_with('/') || c.url.starts_with("//") {
            return Err(FetchError::BadUrl {
                id: c.id.clone(),
                url: c.url.clone(),
            });
        }
        let url = format!("{}{}", self.server_url, c.url);
        let http = |source| FetchError::Http {
            url: url.clone(),
            source,
        };
        let mut resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(http)?
            .error_for_status()
            .map_err(http)?;
        let size = |got| FetchError::Size {
            url: url.clone(),
            expected: c.bytes,
            got,
        };
        if let Some(len) = resp.content_length().filter(|l| *l != c.bytes) {
            return Err(size(len));
        }
        let mut body = Vec::with_capacity(c.bytes.min(64 << 20) as usize);
        while let Some(chunk) = resp.chunk().await.map_err(http)? {
            body.extend_from_slice(&chunk);
            if body.len() as u64 > c.bytes {
                return Err(size(body.len() as u64));
            }
        }
        if body.len() as u64 != c.bytes {
            return Err(size(body.len() as u64));
        }
        let cache = self.cache.clone();
        let sha = c.sha256.clone();
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        tokio::task::spawn_blocking(move || cache.put(&sha, &body, now)).await??;
        tracing::debug!(creative = %c.id, bytes = c.bytes, "media cached");
        Ok(())
    }

    async fn evict(&self, held: &Arc<HeldSchedule>) {
        let cache = self.cache.clone();
        let referenced = held.referenced();
        match tokio::task::spawn_blocking(move || cache.evict(&referenced, false)).await {
            Ok(Ok(evicted)) if !evicted.is_empty() => {
                tracing::info!(count = evicted.len(), "evicted unreferenced media")
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "eviction failed"),
            Err(e) => tracing::warn!(error = %e, "eviction task failed"),
        }
    }
}
