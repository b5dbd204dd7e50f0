//! One creative's download, resumable over a flaky link. The bytes go straight into the
//! cache through a resumable writer ([`Cache::resume`]) owned by a blocking task, a few
//! chunks deep, never the whole file in memory. After a cut the writer keeps its whole
//! chunks, and the next attempt asks for the rest with `Range: bytes=N-`: a 206 whose
//! `Content-Range` starts at N and names the creative's size continues the kept prefix; a
//! 200 starts again from zero; a 206 of anything else drops the prefix. The SHA-256 of the whole
//! (kept prefix plus the rest) is checked when it completes. Cuts are retried at once a
//! few times with backoff and jitter ([`Retry`]); what still fails goes back to the
//! fetcher, which records it (see `failures.rs`).

use std::time::Duration;

use playlists::wire::WireCreative;
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::StatusCode;
use tokio::sync::mpsc;

use super::{FetchError, Fetcher};
use crate::backoff::Backoff;

/// How downloads are retried.
#[derive(Debug, Clone)]
pub struct Retry {
    /// Attempts at one download before it counts as failed (cuts resume each time).
    pub attempts: u32,
    /// The wait between attempts: doubling from `attempt_base` up to `attempt_cap`.
    pub attempt_base: Duration,
    pub attempt_cap: Duration,
    /// The wait before a failed creative is tried again: doubling from `creative_base` up
    /// to `creative_cap`, per creative.
    pub creative_base: Duration,
    pub creative_cap: Duration,
}

impl Default for Retry {
    /// 4 attempts 1-8 s apart; a failed creative again after 1 minute, doubling up to 1 hour.
    fn default() -> Self {
        Retry {
            attempts: 4,
            attempt_base: Duration::from_secs(1),
            attempt_cap: Duration::from_secs(8),
            creative_base: Duration::from_secs(60),
            creative_cap: Duration::from_secs(3600),
        }
    }
}

/// What the async side tells the blocking writer.
enum Write {
    Chunk(bytes::Bytes),
    /// The bytes are wrong: drop the entry.
    Discard,
}

impl FetchError {
    /// Whether another attempt may succeed soon: a cut, a timeout, a server error, a bad
    /// range answer (the next attempt starts from zero).
    fn retryable(&self) -> bool {
        match self {
            FetchError::Http { source, .. } => source.status().is_none_or(|s| s.is_server_error()),
            FetchError::Size { expected, got, .. } => got < expected,
            FetchError::BadRange { .. } => true,
            _ => false,
        }
    }
}

impl Fetcher {
    /// Downloads `c` into the cache, resuming after cuts, up to `retry.attempts` attempts.
    /// On failure, returns the last error and the attempts made.
    pub(super) async fn fetch_one(&self, c: &WireCreative) -> Result<(), (FetchError, u32)> {
        if !c.url.starts_with('/') || c.url.starts_with("//") {
            let e = FetchError::BadUrl {
                id: c.id.clone(),
                url: c.url.clone(),
            };
            return Err((e, 1));
        }
        // On a cache shared by many agents, one downloads a creative at a time; one that
        // waited finds it stored by another.
        let turn = self.cache.download_turn(&c.sha256).await;
        if turn.is_some() {
            let cache = self.cache.clone();
            let sha = c.sha256.clone();
            let stored = tokio::task::spawn_blocking(move || cache.contains(&sha))
                .await
                .map_err(|e| (FetchError::from(e), 1))?
                .map_err(|e| (FetchError::from(e), 1))?;
            if stored {
                return Ok(());
            }
        }
        let url = format!("{}{}", self.server_url, c.url);
        let mut backoff = Backoff::new(self.retry.attempt_base, self.retry.attempt_cap);
        let mut attempt = 1;
        loop {
            match self.attempt(c, &url).await {
                Ok(()) => return Ok(()),
                Err(e) if e.retryable() && attempt < self.retry.attempts => {
                    let delay = backoff.next_delay();
                    tracing::info!(creative = %c.id, attempt, error = %e, retry_in_ms = delay.as_millis() as u64, "media download cut; resuming");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(e) => return Err((e, attempt)),
            }
        }
    }

    /// One request: from the bytes held, or from zero. The response head is checked before
    /// the cache is touched, so a wrong answer leaves a complete entry alone.
    async fn attempt(&self, c: &WireCreative, url: &str) -> Result<(), FetchError> {
        let http = |source| FetchError::Http {
            url: url.to_owned(),
            source,
        };
        let size = |got| FetchError::Size {
            url: url.to_owned(),
            expected: c.bytes,
            got,
        };
        let expected = c.bytes;
        let cache = self.cache.clone();
        let sha = c.sha256.clone();
        let held = tokio::task::spawn_blocking(move || cache.held(&sha)).await??;
        let mut request = self.http.get(url);
        if held > 0 && held < expected {
            request = request.header(RANGE, format!("bytes={held}-"));
        }
        let mut resp = request
            .send()
            .await
            .map_err(http)?
            .error_for_status()
            .map_err(http)?;
        let from = if resp.status() == StatusCode::PARTIAL_CONTENT {
            let range = resp
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if held == 0 || !range_continues(range, held, expected) {
                let bad = FetchError::BadRange {
                    url: url.to_owned(),
                    held,
                    content_range: range.to_owned(),
                };
                self.drop_partial(&c.sha256).await?;
                return Err(bad);
            }
            held
        } else {
            0
        };
        if let Some(len) = resp.content_length() {
            if from + len != expected {
                return Err(size(from + len));
            }
        }

        // The body goes straight into the cache, chunk by chunk, through a blocking task
        // that owns the writer; the channel is short, so memory stays a few chunks deep
        // whatever the creative's size.
        let (tx, mut rx) = mpsc::channel::<Write>(4);
        let cache = self.cache.clone();
        let sha = c.sha256.clone();
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        let store = tokio::task::spawn_blocking(move || {
            let mut writer = cache.resume(&sha, now)?;
            if writer.len() != from {
                // Changed since it was measured (or the server sent it all): from zero.
                writer.restart()?;
            }
            let from = writer.len();
            while let Some(write) = rx.blocking_recv() {
                match write {
                    Write::Chunk(chunk) => writer.write(&chunk)?,
                    Write::Discard => {
                        writer.discard();
                        return Ok((false, from));
                    }
                }
            }
            // Short: kept as a partial entry to resume from (see `Cache::resume`).
            if writer.len() != expected {
                return Ok((false, from));
            }
            writer.finish().map(|()| (true, from))
        });
        let mut received = from;
        let download = async {
            while let Some(chunk) = resp.chunk().await.map_err(http)? {
                received += chunk.len() as u64;
                if received > expected {
                    let _ = tx.send(Write::Discard).await;
                    return Err(size(received));
                }
                if tx.send(Write::Chunk(chunk)).await.is_err() {
                    break; // the writer failed; its error is reported below
                }
            }
            Ok(())
        }
        .await;
        drop(tx);
        let (stored, started) = store.await??;
        download?;
        if started != from {
            // The kept prefix vanished under us; the next attempt starts afresh.
            return Err(size(received));
        }
        if !stored {
            return Err(size(received));
        }
        tracing::debug!(creative = %c.id, bytes = c.bytes, resumed_from = from, "media cached");
        Ok(())
    }

    /// Drops the kept prefix of `sha256` (the server's answer does not continue it).
    async fn drop_partial(&self, sha256: &str) -> Result<(), FetchError> {
        let cache = self.cache.clone();
        let sha = sha256.to_owned();
        tokio::task::spawn_blocking(move || {
            if !cache.contains(&sha)? {
                cache.remove(&sha)?;
            }
            Ok::<_, crate::cache::CacheError>(())
        })
        .await??;
        Ok(())
    }
}

/// Whether `content_range` (`bytes a-b/len`) is the rest of a file of `expected` bytes
/// from byte `held` on.
fn range_continues(content_range: &str, held: u64, expected: u64) -> bool {
    let parsed = (|| {
        let (range, total) = content_range
            .trim()
            .strip_prefix("bytes ")?
            .split_once('/')?;
        let (start, end) = range.split_once('-')?;
        Some((
            start.parse::<u64>().ok()?,
            end.parse::<u64>().ok()?,
            total.parse::<u64>().ok()?,
        ))
    })();
    parsed == Some((held, expected.wrapping_sub(1), expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_that_continue() {
        for (range, held, expected, ok) in [
            ("bytes 4096-9999/10000", 4096, 10_000, true),
            ("bytes 4096-9999/10001", 4096, 10_000, false),
            ("bytes 0-9999/10000", 4096, 10_000, false),
            ("bytes 4096-9998/10000", 4096, 10_000, false),
            ("bytes */10000", 4096, 10_000, false),
            ("", 4096, 10_000, false),
            ("items 4096-9999/10000", 4096, 10_000, false),
        ] {
            assert_eq!(range_continues(range, held, expected), ok, "{range}");
        }
    }
}
