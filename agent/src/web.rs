//! The web player (`--player web`): a kiosk page served on loopback that a full-screen
//! browser shows, and the small JSON API behind it.
//!
//! - `GET /` the page (`web.html`): black, the current creative fitted to the viewport.
//! - `GET /now` the play on screen now ([`NowPlay`]) or `null` when dark; the header
//!   `x-signage-now-ms` carries the agent's clock so that the page reports in agent time.
//! - `GET /media/{sha256}` the bytes from the sled cache, verified.
//! - `POST /played` the page's [`Report`] of when it actually showed a play.
//!
//! The player owns the slots and the outbox; it tells the page what plays through a
//! [`Link`] and reads the page's reports back from it at the slot's end
//! ([`screen_times`] decides whether a report can be believed).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::cache::Cache;
use crate::clock::Clock;

const PAGE: &str = include_str!("web.html");
/// The agent's clock (Unix ms) when `/now` answered.
pub const NOW_HEADER: &str = "x-signage-now-ms";
/// Reports kept for the player to pick up; the page sends two per play.
const KEEP_REPORTS: usize = 16;
/// The file in the data dir that holds the bound address.
pub const ADDR_FILE: &str = "web.addr";

/// What plays now, as `GET /now` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NowPlay {
    pub slot_start: DateTime<Utc>,
    pub campaign_id: String,
    pub creative_id: String,
    pub sha256: String,
    /// `image` or `video`.
    pub kind: &'static str,
    pub url: String,
}

impl NowPlay {
    pub fn new(
        slot_start: DateTime<Utc>,
        campaign_id: String,
        creative_id: String,
        sha256: String,
        kind: &'static str,
    ) -> NowPlay {
        let url = format!("/media/{sha256}");
        NowPlay {
            slot_start,
            campaign_id,
            creative_id,
            sha256,
            kind,
            url,
        }
    }
}

/// The page's word on a play: when it appeared and (once replaced) when it went, in the
/// agent's clock.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Report {
    pub slot_start: DateTime<Utc>,
    pub creative_id: String,
    pub started_at_ms: Option<i64>,
    pub ended_at_ms: Option<i64>,
}

/// The player's side and the server's side of the web player, shared.
#[derive(Debug, Clone)]
pub struct Link {
    now: watch::Sender<Option<NowPlay>>,
    reports: Arc<Mutex<VecDeque<Report>>>,
}

impl Default for Link {
    fn default() -> Link {
        Link {
            now: watch::channel(None).0,
            reports: Arc::default(),
        }
    }
}

impl Link {
    /// Sets what `/now` answers.
    pub fn show(&self, play: Option<NowPlay>) {
        self.now.send_if_modified(|cur| {
            let changed = *cur != play;
            *cur = play;
            changed
        });
    }

    pub fn current(&self) -> Option<NowPlay> {
        self.now.borrow().clone()
    }

    fn report(&self, r: Report) {
        let mut reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        // The latest report of a play replaces the earlier one (an end after the start).
        reports.retain(|o| (o.slot_start, &o.creative_id) != (r.slot_start, &r.creative_id));
        reports.push_back(r);
        while reports.len() > KEEP_REPORTS {
            reports.pop_front();
        }
    }

    /// The page's latest report of the play of `slot_start`, if any.
    pub fn report_for(&self, slot_start: DateTime<Utc>, creative_id: &str) -> Option<Report> {
        let reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        reports
            .iter()
            .rev()
            .find(|r| r.slot_start == slot_start && r.creative_id == creative_id)
            .cloned()
    }
}

/// The start and end of a play as the screen showed it, from the page's report, when the
/// report is plausible: it started within the slot and ended after it started, not later
/// than `now`. A play still on screen (no end yet) ends `now`.
pub fn screen_times(
    report: &Report,
    slot_end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let started = DateTime::from_timestamp_millis(report.started_at_ms?)?;
    let ended = match report.ended_at_ms {
        Some(ms) => DateTime::from_timestamp_millis(ms)?.min(now),
        None => now,
    };
    // A page's clock estimate may be a little early: allow a second before the slot.
    let earliest = report.slot_start - chrono::Duration::seconds(1);
    (started >= earliest && started < slot_end && ended >= started).then_some((started, ended))
}

#[derive(Clone)]
struct AppState {
    link: Link,
    cache: Arc<Cache>,
    clock: Clock,
}

/// The web player's routes.
pub fn router(link: Link, cache: Arc<Cache>, clock: Clock) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/now", get(now))
        .route("/media/{sha256}", get(media))
        .route("/played", post(played))
        .with_state(AppState { link, cache, clock })
}

/// Serves the web player on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// Binds `addr` (loopback in practice), logs the address and writes it to
/// `DATA_DIR/web.addr` so that a browser launcher (or a test) can find it.
pub async fn bind(addr: SocketAddr, data_dir: &std::path::Path) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let file = data_dir.join(ADDR_FILE);
    let tmp = data_dir.join(format!("{ADDR_FILE}.tmp"));
    tokio::fs::write(&tmp, bound.to_string()).await?;
    tokio::fs::rename(&tmp, &file).await?;
    tracing::info!(addr = %bound, url = %format!("http://{bound}/"), "web player listening");
    Ok(listener)
}

async fn page() -> Response {
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Html(PAGE),
    )
        .into_response()
}

async fn now(State(s): State<AppState>) -> Response {
    let now_ms = s.clock.now().map(|t| t.timestamp_millis()).unwrap_or(0);
    let mut resp = Json(s.link.current()).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        HeaderName::from_static(NOW_HEADER),
        HeaderValue::from(now_ms),
    );
    resp
}

async fn media(State(s): State<AppState>, Path(sha256): Path<String>) -> Response {
    let valid = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
    if !valid {
        return StatusCode::NOT_FOUND.into_response();
    }
    // The cache streams the creative chunk by chunk (verified once since start-up) through
    // a short channel, so serving a video never holds it whole in memory.
    let cache = s.cache.clone();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(4);
    let reader = tokio::task::spawn_blocking(move || {
        let found = cache.read_verified(&sha256, |chunk| {
            tx.blocking_send(bytes::Bytes::copy_from_slice(chunk))
                .is_ok()
        });
        if let Err(e) = cache.relieve(1) {
            tracing::warn!(error = %e, "reopening the media cache failed");
        }
        found
    });
    let Some(first) = rx.recv().await else {
        return match reader.await {
            Ok(Ok(true)) => StatusCode::OK.into_response(),
            Ok(Ok(false)) => StatusCode::NOT_FOUND.into_response(),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "web player: reading the cache failed");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
            Err(e) => {
                tracing::warn!(error = %e, "web player: cache task failed");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        };
    };
    let kind = content_type(&first);
    let rest =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    let body = futures_util::stream::once(std::future::ready(first))
        .chain(rest)
        .map(Ok::<_, std::io::Error>);
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}

async fn played(State(s): State<AppState>, Json(report): Json<Report>) -> StatusCode {
    tracing::debug!(?report, "the screen reported a play");
    s.link.report(report);
    StatusCode::NO_CONTENT
}

/// The media type from the first bytes (the cache keeps bytes only).
fn content_type(bytes: &[u8]) -> &'static str {
    match bytes {
        [0x89, b'P', b'N', b'G', ..] => "image/png",
        [0xFF, 0xD8, 0xFF, ..] => "image/jpeg",
        [b'G', b'I', b'F', b'8', ..] => "image/gif",
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => "image/webp",
        [0x1A, 0x45, 0xDF, 0xA3, ..] => "video/webm",
        [_, _, _, _, b'f', b't', b'y', b'p', ..] => "video/mp4",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn check(started: Option<&str>, ended: Option<&str>, expect: Option<(&str, &str)>) {
        let report = Report {
            slot_start: t("2023-12-20T00:10:00Z"),
            creative_id: "c".into(),
            started_at_ms: started.map(|s| t(s).timestamp_millis()),
            ended_at_ms: ended.map(|s| t(s).timestamp_millis()),
        };
        let got = screen_times(
            &report,
            t("2023-12-20T00:10:15Z"),
            t("2023-12-20T00:10:15.050Z"),
        );
        assert_eq!(got, expect.map(|(s, e)| (t(s), t(e))));
    }

    #[test]
    fn screen_times_believes_plausible_reports_only() {
        // Still on screen at the slot's end: ends now.
        check(
            Some("2023-12-20T00:10:00.300Z"),
            None,
            Some(("2023-12-20T00:10:00.300Z", "2023-12-20T00:10:15.050Z")),
        );
        // Replaced early.
        check(
            Some("2023-12-20T00:10:00.300Z"),
            Some("2023-12-20T00:10:09Z"),
            Some(("2023-12-20T00:10:00.300Z", "2023-12-20T00:10:09Z")),
        );
        // Not shown yet, shown in another slot, or ending before it started.
        check(None, None, None);
        check(Some("2023-12-20T00:10:20Z"), None, None);
        check(Some("2023-12-20T00:09:50Z"), None, None);
        check(
            Some("2023-12-20T00:10:05Z"),
            Some("2023-12-20T00:10:04Z"),
            None,
        );
    }

    #[test]
    fn content_type_sniffs_the_usual_formats() {
        assert_eq!(content_type(b"\x89PNG\r\n\x1a\n"), "image/png");
        assert_eq!(content_type(b"\xff\xd8\xff\xe0"), "image/jpeg");
        assert_eq!(content_type(b"\0\0\0\x20ftypisom"), "video/mp4");
        assert_eq!(content_type(b"hello"), "application/octet-stream");
    }

    #[test]
    fn the_latest_report_of_a_play_wins() {
        let link = Link::default();
        let r = |started, ended| Report {
            slot_start: t("2023-12-20T00:10:00Z"),
            creative_id: "c".into(),
            started_at_ms: started,
            ended_at_ms: ended,
        };
        link.report(r(Some(1), None));
        link.report(r(Some(1), Some(2)));
        let got = link.report_for(t("2023-12-20T00:10:00Z"), "c");
        assert_eq!(got, Some(r(Some(1), Some(2))));
        assert_eq!(link.report_for(t("2023-12-20T00:10:00Z"), "d"), None);
    }
}
