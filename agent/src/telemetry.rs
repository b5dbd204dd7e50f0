//! The agent's own `/metrics` (Prometheus text), served on a local address when the config
//! has `metrics_listen` (e.g. `"127.0.0.1:9101"`): plays recorded, the outbox backlog,
//! cache bytes and items, the runway in seconds, creatives whose download keeps failing,
//! the broker connection. Levels are read when scraped: the outbox and cache directly, the
//! main loop's verdicts (runway end, failures, connection) from [`Live`], which it updates
//! whenever it works out its status. The readiness verdicts (the status's `readiness`) are
//! judged at each scrape: `signage_agent_ready`, `signage_agent_store_writable`,
//! `signage_agent_ingest_keeping_up`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use ::metrics::{Key, Metadata, Recorder, Unit};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cache::Cache;
use crate::clock::Clock;
use crate::outbox::Outbox;

/// `DATA_DIR/metrics.addr`: the bound address (useful with port 0).
pub const ADDR_FILE: &str = "metrics.addr";

/// What the main loop last worked out.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Verdicts {
    /// Every slot before this plays from the cache (`None`: no schedule or not known yet).
    pub playable_until: Option<DateTime<Utc>>,
    pub download_failures: usize,
    pub connected: bool,
    pub media_ready: bool,
}

/// The main loop's verdicts, shared with the metrics server.
#[derive(Debug, Clone, Default)]
pub struct Live(Arc<Mutex<Verdicts>>);

impl Live {
    pub fn set(&self, v: Verdicts) {
        if let Ok(mut g) = self.0.lock() {
            *g = v;
        }
    }

    pub fn get(&self) -> Verdicts {
        self.0.lock().map(|g| *g).unwrap_or_default()
    }
}

/// The levels of one scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Levels {
    pub plays: u64,
    pub backlog: u64,
    pub cache_bytes: u64,
    pub cache_items: u64,
    pub cache_max_bytes: u64,
    pub runway_seconds: f64,
    pub verdicts: Verdicts,
    /// The data directory takes writes.
    pub store_writable: bool,
    /// The outbox backlog is under [`crate::readiness::BACKLOG_BEHIND`].
    pub ingest_keeping_up: bool,
}

const META: Metadata<'static> = Metadata::new("signage-agent", ::metrics::Level::INFO, None);

/// The metric names, their kind and help.
const GAUGES: [(&str, &str); 12] = [
    (
        "signage_agent_plays_total",
        "Plays recorded in the outbox (its current epoch's last seq).",
    ),
    (
        "signage_agent_outbox_backlog_records",
        "Plays in the outbox the server has not acknowledged.",
    ),
    ("signage_agent_cache_bytes", "Bytes of media in the cache."),
    ("signage_agent_cache_items", "Creatives in the cache."),
    (
        "signage_agent_cache_max_bytes",
        "The cache's size limit in bytes.",
    ),
    (
        "signage_agent_runway_seconds",
        "Seconds the agent can play correctly offline from what it holds.",
    ),
    (
        "signage_agent_download_failures",
        "Creatives whose download keeps failing.",
    ),
    (
        "signage_agent_broker_connected",
        "1 when the MQTT connection is up.",
    ),
    (
        "signage_agent_media_ready",
        "1 when every creative of the prefetch horizon is cached.",
    ),
    (
        "signage_agent_store_writable",
        "1 when the data directory (outbox and cache) takes writes.",
    ),
    (
        "signage_agent_ingest_keeping_up",
        "1 when the outbox backlog is under the readiness threshold.",
    ),
    (
        "signage_agent_ready",
        "1 when broker, store and ingest are all ready (the status's readiness).",
    ),
];

/// The text exposition of `levels`.
pub fn render(levels: &Levels) -> String {
    let recorder: PrometheusRecorder = PrometheusBuilder::new().build_recorder();
    let v = &levels.verdicts;
    let values = [
        levels.plays as f64,
        levels.backlog as f64,
        levels.cache_bytes as f64,
        levels.cache_items as f64,
        levels.cache_max_bytes as f64,
        levels.runway_seconds,
        v.download_failures as f64,
        f64::from(u8::from(v.connected)),
        f64::from(u8::from(v.media_ready)),
        f64::from(u8::from(levels.store_writable)),
        f64::from(u8::from(levels.ingest_keeping_up)),
        f64::from(u8::from(
            v.connected && levels.store_writable && levels.ingest_keeping_up,
        )),
    ];
    for ((name, help), value) in GAUGES.iter().zip(values) {
        let unit = if name.ends_with("_bytes") {
            Some(Unit::Bytes)
        } else if name.ends_with("_seconds") {
            Some(Unit::Seconds)
        } else {
            None
        };
        if name.ends_with("_total") {
            recorder.describe_counter((*name).into(), unit, (*help).into());
            recorder
                .register_counter(&Key::from_static_name(name), &META)
                .absolute(value as u64);
        } else {
            recorder.describe_gauge((*name).into(), unit, (*help).into());
            recorder
                .register_gauge(&Key::from_static_name(name), &META)
                .set(value);
        }
    }
    recorder.handle().render()
}

/// What the metrics server reads.
#[derive(Clone)]
pub struct Sources {
    pub outbox: Arc<Outbox>,
    pub cache: Arc<Cache>,
    pub clock: Clock,
    pub live: Live,
    /// Probes the data directory for the store verdict.
    pub store_probe: std::sync::Arc<crate::readiness::StoreProbe>,
}

impl Sources {
    pub fn levels(&self) -> Levels {
        let book = self.outbox.book();
        let stats = self.cache.stats();
        let verdicts = self.live.get();
        let runway_seconds = match (verdicts.playable_until, self.clock.now()) {
            (Some(until), Some(now)) => (until - now).num_seconds().max(0) as f64,
            _ => 0.0,
        };
        let readiness =
            crate::readiness::judge(verdicts.connected, &self.store_probe, book.backlog());
        Levels {
            store_writable: readiness.store.ok,
            ingest_keeping_up: readiness.ingest.ok,
            plays: book.last_seq(),
            backlog: book.backlog(),
            cache_bytes: stats.bytes,
            cache_items: stats.items,
            cache_max_bytes: self.cache.max_bytes(),
            runway_seconds,
            verdicts,
        }
    }
}

/// Binds `addr`, writes the bound address to `DATA_DIR/metrics.addr` and logs it.
pub async fn bind(addr: SocketAddr, data_dir: &std::path::Path) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let tmp = data_dir.join(format!("{ADDR_FILE}.tmp"));
    tokio::fs::write(&tmp, bound.to_string()).await?;
    tokio::fs::rename(&tmp, data_dir.join(ADDR_FILE)).await?;
    tracing::info!(addr = %bound, "metrics listening on /metrics");
    Ok(listener)
}

/// Serves `GET /metrics` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    sources: Sources,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let router = Router::new()
        .route("/metrics", get(metrics))
        .with_state(Arc::new(sources));
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

async fn metrics(State(sources): State<Arc<Sources>>) -> impl IntoResponse {
    let s = sources.clone();
    let levels = tokio::task::spawn_blocking(move || s.levels())
        .await
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&levels),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_level() {
        let text = render(&Levels {
            plays: 12,
            backlog: 3,
            cache_bytes: 4096,
            cache_items: 2,
            cache_max_bytes: 1 << 30,
            runway_seconds: 7200.0,
            verdicts: Verdicts {
                playable_until: None,
                download_failures: 1,
                connected: true,
                media_ready: false,
            },
            store_writable: true,
            ingest_keeping_up: true,
        });
        for want in [
            "# TYPE signage_agent_plays_total counter",
            "signage_agent_plays_total 12",
            "signage_agent_outbox_backlog_records 3",
            "signage_agent_cache_bytes 4096",
            "signage_agent_cache_items 2",
            "signage_agent_runway_seconds 7200",
            "signage_agent_download_failures 1",
            "signage_agent_broker_connected 1",
            "signage_agent_media_ready 0",
            "signage_agent_store_writable 1",
            "signage_agent_ingest_keeping_up 1",
            "signage_agent_ready 1",
            "# TYPE signage_agent_cache_bytes gauge",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
    }
}
