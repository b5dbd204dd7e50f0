//! The server's metrics in the Prometheus text format (`GET /metrics`). Each server owns
//! its recorder (no global one: tests run several servers in one process); the events
//! count as they happen (plays ingested, batches refused, schedules published, HTTP
//! requests, latencies) and the levels are read when scraped ([`Levels`]: screens online
//! per district, outbox backlog, ingest queue, store size). Names and labels follow
//! Prometheus conventions: `signage_` prefix, `_total` counters, base units in the name.

use std::collections::BTreeMap;
use std::path::Path;

use ::metrics::{Key, Label, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};

/// Proof-of-play records stored for the first time.
pub const PLAYS_INGESTED: &str = "signage_plays_ingested_total";
/// Proof-of-play batches refused (not stored, not acknowledged), by `reason`.
pub const BATCHES_REFUSED: &str = "signage_pop_batches_refused_total";
/// Proof-of-play batches stored or acknowledged again, by `outcome` (`stored`, `duplicate`).
pub const BATCHES_ACCEPTED: &str = "signage_pop_batches_accepted_total";
/// How long one ledger write of a group of batches takes.
pub const INGEST_SECONDS: &str = "signage_ingest_seconds";
/// Schedule documents sent to the broker.
pub const SCHEDULES_PUBLISHED: &str = "signage_schedules_published_total";
/// How long building, signing and queueing a round of schedule documents takes.
pub const PUBLISH_SECONDS: &str = "signage_publish_seconds";
/// HTTP requests by `method`, `route` (the template, `unmatched` for none) and `status`.
pub const HTTP_REQUESTS: &str = "signage_http_requests_total";
/// HTTP request durations by `method` and `route`.
pub const HTTP_SECONDS: &str = "signage_http_request_duration_seconds";
/// Screens whose latest status says online, by `district` (`none` when the venue has none).
pub const SCREENS_ONLINE: &str = "signage_screens_online";
/// Records in the agents' outboxes not yet acknowledged, summed over their latest statuses.
pub const OUTBOX_BACKLOG: &str = "signage_outbox_backlog_records";
/// Proof-of-play batches waiting for the ingest worker.
pub const INGEST_QUEUE: &str = "signage_ingest_queue_batches";
/// 1 when the server's MQTT connection is up.
pub const BROKER_CONNECTED: &str = "signage_broker_connected";
/// 1 when this replica holds the publisher lease (it publishes schedules and commands).
pub const PUBLISHER_LEASE_HELD: &str = "signage_publisher_lease_held";
/// Bytes of the data directory (database files and media).
pub const STORE_BYTES: &str = "signage_store_bytes";

/// Why a batch is refused, as a label: a few fixed values, never the free text.
pub const REFUSAL_REASONS: [&str; 6] = [
    "too_large",
    "unknown_screen",
    "bad_signature",
    "malformed",
    "conflict",
    "other",
];

/// Buckets (seconds) of every latency histogram.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

const META: Metadata<'static> = Metadata::new("signage", ::metrics::Level::INFO, None);

/// One server's metrics.
pub struct Metrics {
    recorder: PrometheusRecorder,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

/// What is read when scraped.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Levels {
    /// Every district of a screen in service, with how many of its screens are online.
    pub screens_online: BTreeMap<String, u64>,
    pub outbox_backlog: u64,
    pub ingest_queue: u64,
    pub broker_connected: bool,
    pub publisher_lease_held: bool,
    pub store_bytes: u64,
}

impl Metrics {
    pub fn new() -> Metrics {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
            .expect("buckets are not empty")
            .build_recorder();
        let m = Metrics { recorder };
        m.describe();
        // Counters that exist from the start, so a scrape shows zeros rather than nothing.
        m.counter(PLAYS_INGESTED, vec![]).absolute(0);
        m.counter(SCHEDULES_PUBLISHED, vec![]).absolute(0);
        for reason in REFUSAL_REASONS {
            m.counter(BATCHES_REFUSED, vec![Label::new("reason", reason)])
                .absolute(0);
        }
        for outcome in ["stored", "duplicate"] {
            m.counter(BATCHES_ACCEPTED, vec![Label::new("outcome", outcome)])
                .absolute(0);
        }
        m
    }

    fn describe(&self) {
        let r = &self.recorder;
        let counters = [
            (
                PLAYS_INGESTED,
                "Proof-of-play records stored for the first time.",
            ),
            (
                BATCHES_REFUSED,
                "Proof-of-play batches refused (not stored, not acknowledged), by reason.",
            ),
            (
                BATCHES_ACCEPTED,
                "Proof-of-play batches stored, or acknowledged again as duplicates.",
            ),
            (
                SCHEDULES_PUBLISHED,
                "Signed schedule documents sent to the broker.",
            ),
            (
                HTTP_REQUESTS,
                "HTTP requests by method, route template and status.",
            ),
        ];
        for (name, help) in counters {
            r.describe_counter(name.into(), Some(Unit::Count), help.into());
        }
        let histograms = [
            (
                INGEST_SECONDS,
                "Seconds one ledger write of a group of proof-of-play batches takes.",
            ),
            (
                PUBLISH_SECONDS,
                "Seconds a round of schedule building, signing and queueing takes.",
            ),
            (
                HTTP_SECONDS,
                "Seconds an HTTP request takes, by method and route template.",
            ),
        ];
        for (name, help) in histograms {
            r.describe_histogram(name.into(), Some(Unit::Seconds), help.into());
        }
        let gauges = [
            (
                SCREENS_ONLINE,
                "Screens in service whose latest status says online, by district.",
            ),
            (
                OUTBOX_BACKLOG,
                "Proof-of-play records the agents hold unacknowledged (their latest statuses).",
            ),
            (
                INGEST_QUEUE,
                "Proof-of-play batches waiting for the ingest worker.",
            ),
            (
                BROKER_CONNECTED,
                "1 when the server's MQTT connection is up.",
            ),
            (
                PUBLISHER_LEASE_HELD,
                "1 when this replica holds the publisher lease: it publishes schedules and commands.",
            ),
            (
                STORE_BYTES,
                "Bytes of the data directory: database files and media.",
            ),
        ];
        for (name, help) in gauges {
            r.describe_gauge(name.into(), None, help.into());
        }
    }

    fn counter(&self, name: &'static str, labels: Vec<Label>) -> ::metrics::Counter {
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &META)
    }

    fn histogram(&self, name: &'static str, labels: Vec<Label>) -> ::metrics::Histogram {
        self.recorder
            .register_histogram(&Key::from_parts(name, labels), &META)
    }

    fn gauge(&self, name: &'static str, labels: Vec<Label>) -> ::metrics::Gauge {
        self.recorder
            .register_gauge(&Key::from_parts(name, labels), &META)
    }

    /// One ledger write: its outcomes and how long it took.
    pub fn ingested(&self, outcomes: &[crate::ledger::Outcome], seconds: f64) {
        use crate::ledger::Outcome;
        self.histogram(INGEST_SECONDS, vec![]).record(seconds);
        for o in outcomes {
            match o {
                Outcome::Stored { records, .. } => {
                    self.counter(PLAYS_INGESTED, vec![])
                        .increment(*records as u64);
                    self.counter(BATCHES_ACCEPTED, vec![Label::new("outcome", "stored")])
                        .increment(1);
                }
                Outcome::Duplicate { .. } => {
                    self.counter(BATCHES_ACCEPTED, vec![Label::new("outcome", "duplicate")])
                        .increment(1);
                }
                Outcome::Rejected { reason, .. } => {
                    self.counter(
                        BATCHES_REFUSED,
                        vec![Label::new("reason", refusal_reason(reason))],
                    )
                    .increment(1);
                }
            }
        }
    }

    /// A round of publishing: `documents` sent, in `seconds`.
    pub fn published(&self, documents: usize, seconds: f64) {
        self.counter(SCHEDULES_PUBLISHED, vec![])
            .increment(documents as u64);
        self.histogram(PUBLISH_SECONDS, vec![]).record(seconds);
    }

    /// One HTTP request answered.
    pub fn http(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let (method, route) = (method.to_owned(), route.to_owned());
        self.counter(
            HTTP_REQUESTS,
            vec![
                Label::new("method", method.clone()),
                Label::new("route", route.clone()),
                Label::new("status", status.to_string()),
            ],
        )
        .increment(1);
        self.histogram(
            HTTP_SECONDS,
            vec![Label::new("method", method), Label::new("route", route)],
        )
        .record(seconds);
    }

    /// The text exposition, with `levels` as the gauges' values.
    pub fn render(&self, levels: &Levels) -> String {
        for (district, n) in &levels.screens_online {
            self.gauge(
                SCREENS_ONLINE,
                vec![Label::new("district", district.clone())],
            )
            .set(*n as f64);
        }
        self.gauge(OUTBOX_BACKLOG, vec![])
            .set(levels.outbox_backlog as f64);
        self.gauge(INGEST_QUEUE, vec![])
            .set(levels.ingest_queue as f64);
        self.gauge(BROKER_CONNECTED, vec![])
            .set(if levels.broker_connected { 1.0 } else { 0.0 });
        self.gauge(PUBLISHER_LEASE_HELD, vec![])
            .set(if levels.publisher_lease_held {
                1.0
            } else {
                0.0
            });
        self.gauge(STORE_BYTES, vec![])
            .set(levels.store_bytes as f64);
        self.recorder.handle().render()
    }
}

/// The label of a refusal's reason (the ledger's words, see `store::redb::ledger::ingest`).
pub fn refusal_reason(reason: &str) -> &'static str {
    let has = |w: &str| reason.contains(w);
    if has("exceeds the") && has("-byte limit") {
        "too_large"
    } else if reason.starts_with("unknown screen") {
        "unknown_screen"
    } else if has("signature") || has("envelope") || has("key") {
        "bad_signature"
    } else if has("malformed")
        || has("unsupported")
        || has("empty batch")
        || has("arrived on the topic")
        || has("belongs to screen")
        || has("strictly increase")
        || has("record limit")
        || has("-record limit")
        || has(", not of the batch")
    {
        "malformed"
    } else if has("conflict") || has("was expected") || has("previous hash") {
        "conflict"
    } else {
        "other"
    }
}

/// Bytes of the files under `dir`, its subdirectories included (symbolic links not
/// followed; unreadable entries count nothing).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(reason: &str, want: &str) {
        assert_eq!(refusal_reason(reason), want, "{reason}");
    }

    #[test]
    fn refusal_reasons_are_few() {
        check(
            "batch of 900000 bytes exceeds the 262144-byte limit",
            "too_large",
        );
        check("unknown screen \"s9\"", "unknown_screen");
        check("malformed pop-batch payload: expected value", "malformed");
        check("unsupported pop-batch version 9", "malformed");
        check("empty batch", "malformed");
        check(
            "batch of screen \"s1\" arrived on the topic of screen \"s2\"",
            "malformed",
        );
        check(
            "record seq 3 belongs to screen \"s1\", not \"s2\"",
            "malformed",
        );
        check("seq 1 of legacy epoch is already held with other content, from batch 1: a batch that conflicts with stored records is not stored", "conflict");
        check("batch 3 arrived where batch 2 was expected", "conflict");
        check("the signature does not verify", "bad_signature");
        check("something new", "other");
        for r in REFUSAL_REASONS {
            assert!(!r.contains(' '));
        }
    }

    #[test]
    fn renders_counters_histograms_and_levels() {
        let m = Metrics::new();
        m.published(3, 0.02);
        m.http("GET", "/api/v1/venues/{id}", 200, 0.003);
        let mut levels = Levels {
            outbox_backlog: 7,
            store_bytes: 4096,
            broker_connected: true,
            publisher_lease_held: true,
            ..Levels::default()
        };
        levels.screens_online.insert("朝阳区".into(), 2);
        let text = m.render(&levels);
        for want in [
            "signage_schedules_published_total 3",
            "signage_plays_ingested_total 0",
            "signage_pop_batches_refused_total{reason=\"bad_signature\"} 0",
            "signage_http_requests_total{method=\"GET\",route=\"/api/v1/venues/{id}\",status=\"200\"} 1",
            "signage_publish_seconds_bucket{le=\"0.025\"} 1",
            "signage_publish_seconds_count 1",
            "signage_screens_online{district=\"朝阳区\"} 2",
            "signage_outbox_backlog_records 7",
            "signage_broker_connected 1",
            "signage_publisher_lease_held 1",
            "signage_store_bytes 4096",
            "# TYPE signage_publish_seconds histogram",
            "# HELP signage_plays_ingested_total",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
    }
}
