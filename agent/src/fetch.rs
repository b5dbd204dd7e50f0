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

    pub(crate) async fn fetch_one(&self, c: &WireCreative) -> Result<(), FetchError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::fixture;
    use playlists::Sha256;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-file-per-path HTTP/1.1 server on a port-0 listener: `routes` maps a path to the
    /// body served; other paths get 404.
    async fn serve(routes: Vec<(String, Vec<u8>)>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let routes = routes.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf);
                    let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                    let (status, body) = match routes.iter().find(|(p, _)| *p == path) {
                        Some((_, b)) => ("200 OK", b.clone()),
                        None => ("404 Not Found", b"no".to_vec()),
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = sock.write_all(head.as_bytes()).await;
                    let _ = sock.write_all(&body).await;
                });
            }
        });
        format!("http://{addr}")
    }

    fn fetcher(
        server_url: String,
        dir: &std::path::Path,
        held: Option<HeldSchedule>,
    ) -> (Fetcher, watch::Sender<Option<Arc<HeldSchedule>>>) {
        let (cache, _) = Cache::open(dir, 1 << 20, 0).unwrap();
        let (tx, rx) = watch::channel(held.map(Arc::new));
        (
            Fetcher {
                http: http_client(),
                server_url,
                cache: Arc::new(cache),
                schedules: rx,
            },
            tx,
        )
    }

    #[tokio::test]
    async fn downloads_checks_and_caches() {
        let (good, evil): (&[u8], &[u8]) = (b"good media", b"evil media");
        let held = HeldSchedule::new(fixture::doc(1, fixture::body(&[good, evil], 15))).unwrap();
        let creatives = held.doc.body.creatives.clone();
        // The second path serves other bytes of the same length.
        let url = serve(vec![
            (creatives[0].url.clone(), good.to_vec()),
            (creatives[1].url.clone(), b"EVIL MEDIA".to_vec()),
            ("/short".into(), b"abc".to_vec()),
        ])
        .await;
        let dir = tempfile::tempdir().unwrap();
        let (f, _tx) = fetcher(url, dir.path(), None);
        f.fetch_one(&creatives[0]).await.unwrap();
        assert!(f.cache.contains(&Sha256::of(good).to_string()).unwrap());
        let err = f.fetch_one(&creatives[1]).await.unwrap_err();
        assert!(
            matches!(err, FetchError::Cache(CacheError::Mismatch { .. })),
            "{err}"
        );
        let short = WireCreative {
            url: "/short".into(),
            ..creatives[0].clone()
        };
        assert!(matches!(
            f.fetch_one(&short).await.unwrap_err(),
            FetchError::Size { got: 3, .. }
        ));
        let missing = WireCreative {
            url: "/nope".into(),
            ..creatives[0].clone()
        };
        assert!(matches!(
            f.fetch_one(&missing).await.unwrap_err(),
            FetchError::Http { .. }
        ));
        let absolute = WireCreative {
            url: "http://elsewhere/x".into(),
            ..creatives[0].clone()
        };
        assert!(matches!(
            f.fetch_one(&absolute).await.unwrap_err(),
            FetchError::BadUrl { .. }
        ));
        let held = Arc::new(held);
        let missing: Vec<String> = f
            .missing(&held)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(missing, ["cr-1"]);
    }

    #[tokio::test]
    async fn reports_ready_when_every_creative_is_cached() {
        let (a, b): (&[u8], &[u8]) = (b"first", b"second");
        let held = HeldSchedule::new(fixture::doc(7, fixture::body(&[a, b], 15))).unwrap();
        let routes = held
            .doc
            .body
            .creatives
            .iter()
            .zip([a, b])
            .map(|(c, bytes)| (c.url.clone(), bytes.to_vec()))
            .collect();
        let url = serve(routes).await;
        let dir = tempfile::tempdir().unwrap();
        let (f, _tx) = fetcher(url, dir.path(), Some(held));
        let cache = f.cache.clone();
        let (events, mut rx) = mpsc::channel::<MediaEvent>(4);
        let stop = CancellationToken::new();
        let task = tokio::spawn(f.run(events, stop.clone()));
        let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap();
        assert_eq!(got, Some(MediaEvent::Ready { version: 7 }));
        assert_eq!(cache.stats().items, 2);
        stop.cancel();
        task.await.unwrap();
    }
}
