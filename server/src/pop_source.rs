//! Where proof-of-play batches come from on their way to the ingest worker's queue.
//!
//! Two sources, chosen by configuration ([`PopSource`]):
//! - **MQTT** (the default): the server's own MQTT connection subscribes to every screen's
//!   `…/pop` topic, through `$share/signage-ingest/…` where the broker has shared
//!   subscriptions so replicas split ingest; the MQTT driver routes what arrives here
//!   ([`offer`]).
//! - **NATS queue group**: a NATS cluster's MQTT listeners speak MQTT 3.1.1 without
//!   `$share`, and turn every MQTT publish into a NATS message on a subject derived from
//!   its topic ([`subject_filter`], [`topic_of_subject`]). The server then subscribes with
//!   a NATS client in the queue group [`QUEUE_GROUP`], so each batch reaches one replica
//!   ([`run_nats`]). The MQTT connection still carries everything else (schedules,
//!   commands, statuses, and the acknowledgements the ingest worker sends).
//!
//! This module owns the choice, the topic/subject mapping and the NATS connection's task.
//! Verifying and storing batches is the ledger's; acknowledging them is the ingest
//! worker's (`app`). Neither source ever waits on the ingest queue: a full queue drops
//! the batch with a log, and the agent resends it until it is acknowledged.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::store::Incoming;

/// The queue group (NATS) and the shared-subscription group (MQTT `$share/…`) that ingest
/// replicas join.
pub const QUEUE_GROUP: &str = "signage-ingest";

/// Where proof of play is read from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PopSource {
    /// The server's MQTT subscription (plain or `$share`, as the MQTT target says).
    #[default]
    Mqtt,
    /// A NATS queue group on the subjects the cluster's MQTT listeners publish to.
    Nats(NatsIngest),
}

/// The NATS servers to read proof of play from (any one will do: the client fails over
/// between them and learns the rest of the cluster from the one it reaches).
#[derive(Clone, PartialEq, Eq)]
pub struct NatsIngest {
    servers: Vec<async_nats::ServerAddr>,
}

/// What is wrong with a NATS ingest setting.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PopSourceError {
    #[error("no NATS server named (expected e.g. \"nats://h1:4222,nats://h2:4222\")")]
    NoServer,
    #[error("{url:?} is not a NATS server URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error(
        "topic {topic:?} has an empty level, which NATS's MQTT subject mapping cannot \
         round-trip: use a topic_prefix without leading, trailing or double '/'"
    )]
    EmptyLevel { topic: String },
}

impl NatsIngest {
    /// Parses a comma-separated list of `nats://[user:password@]host:port` (or `tls://…`)
    /// URLs.
    pub fn parse(list: &str) -> Result<NatsIngest, PopSourceError> {
        let mut servers = Vec::new();
        for url in list.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            let addr =
                url.parse::<async_nats::ServerAddr>()
                    .map_err(|e| PopSourceError::BadUrl {
                        url: redact(url),
                        reason: e.to_string(),
                    })?;
            servers.push(addr);
        }
        if servers.is_empty() {
            return Err(PopSourceError::NoServer);
        }
        Ok(NatsIngest { servers })
    }

    /// `host:port` of each server, for logs (never the credentials).
    pub fn hosts(&self) -> Vec<String> {
        self.servers
            .iter()
            .map(|s| format!("{}:{}", s.host(), s.port()))
            .collect()
    }
}

impl fmt::Debug for NatsIngest {
    /// Hosts only: a URL may carry a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsIngest")
            .field("servers", &self.hosts())
            .finish()
    }
}

/// `url` with any `user:password@` replaced, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// The NATS subject filter a NATS server's MQTT listener maps the MQTT topic filter
/// `filter` to: levels separated by `.` instead of `/`, `+` as `*`, `#` as `>`, and a `.`
/// inside a level as `//` (as nats-server does since it accepts `.` in MQTT topics; older
/// servers, Debian's 2.9.10 among them, refuse such topics and close the connection).
pub fn subject_filter(filter: &str) -> Result<String, PopSourceError> {
    if filter.split('/').any(str::is_empty) {
        return Err(PopSourceError::EmptyLevel {
            topic: filter.to_owned(),
        });
    }
    let mut out = String::with_capacity(filter.len() + 8);
    for c in filter.chars() {
        match c {
            '/' => out.push('.'),
            '.' => out.push_str("//"),
            '+' => out.push('*'),
            '#' => out.push('>'),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// The MQTT topic of a NATS message a NATS server's MQTT listener made from an MQTT
/// publish: the inverse of [`subject_filter`] for topics without empty levels (ours have
/// none: screen ids hold neither `/` nor spaces).
pub fn topic_of_subject(subject: &str) -> String {
    let mut out = String::with_capacity(subject.len());
    let mut chars = subject.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' => out.push('/'),
            '/' if chars.peek() == Some(&'/') => {
                chars.next();
                out.push('.');
            }
            c => out.push(c),
        }
    }
    out
}

/// Puts one batch of `screen` (from its topic) on the ingest queue, never waiting: a full
/// queue drops it with a log, and the agent resends it until it is acknowledged. `depth`
/// counts batches waiting (for `/ready`).
pub fn offer(queue: &mpsc::Sender<Incoming>, depth: &AtomicUsize, screen: String, raw: Vec<u8>) {
    match queue.try_send(Incoming {
        topic_screen: screen,
        raw,
    }) {
        Ok(()) => {
            depth.fetch_add(1, Ordering::SeqCst);
        }
        Err(e) => {
            let screen = match &e {
                mpsc::error::TrySendError::Full(i) | mpsc::error::TrySendError::Closed(i) => {
                    i.topic_screen.clone()
                }
            };
            tracing::warn!(screen, error = %e, "ingest queue full; batch left for resend");
        }
    }
}

/// How long a NATS connect attempt may take before the client tries the next server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads proof of play from the NATS queue group until `shutdown`: every message on the
/// subject of `topics`' pop filter is handed to `deliver` with its screen (the server
/// passes [`offer`] onto its ingest queue; `deliver` must not wait). The client connects in the
/// background and reconnects across the listed servers (and those the cluster announces)
/// by itself, resubscribing; state changes are logged. Runs as its own task: nothing
/// here waits on the MQTT driver or blocks it.
pub async fn run_nats(
    ingest: NatsIngest,
    topics: playlists::wire::Topics,
    mut deliver: impl FnMut(String, Vec<u8>) + Send + 'static,
    shutdown: CancellationToken,
) {
    let subject = match subject_filter(&topics.pop_all(false)) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "NATS ingest cannot start; no proof of play is read");
            return;
        }
    };
    let hosts = ingest.hosts();
    let options = async_nats::ConnectOptions::new()
        .name(format!("signage-ingest-{}", std::process::id()))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(CONNECT_TIMEOUT)
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => tracing::info!("NATS ingest connected"),
                async_nats::Event::Disconnected => {
                    tracing::warn!("NATS ingest disconnected; reconnecting")
                }
                async_nats::Event::SlowConsumer(_) => tracing::warn!(
                    "NATS ingest is a slow consumer: messages dropped, agents will resend"
                ),
                other => tracing::warn!(event = %other, "NATS ingest"),
            }
        });
    let connect = options.connect(ingest.servers.as_slice());
    let client = tokio::select! {
        _ = shutdown.cancelled() => return,
        c = connect => match c {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(servers = ?hosts, error = %e, "NATS ingest cannot connect");
                return;
            }
        },
    };
    let mut messages = match client
        .queue_subscribe(subject.clone(), QUEUE_GROUP.to_owned())
        .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(subject, error = %e, "NATS ingest cannot subscribe");
            return;
        }
    };
    tracing::info!(servers = ?hosts, subject, group = QUEUE_GROUP, "NATS ingest subscribed");
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => break,
            m = messages.next() => match m {
                Some(m) => m,
                None => {
                    tracing::error!("NATS ingest subscription ended");
                    break;
                }
            },
        };
        let topic = topic_of_subject(message.subject.as_str());
        let Some(screen) = topics.screen_of(&topic) else {
            continue;
        };
        deliver(screen.to_owned(), message.payload.to_vec());
    }
    let _ = messages.unsubscribe().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_mapping(topic: &str, subject: &str) {
        assert_eq!(subject_filter(topic).unwrap(), subject, "{topic}");
        assert_eq!(topic_of_subject(subject), topic, "{subject}");
    }

    #[test]
    fn topics_map_as_nats_maps_them() {
        check_mapping(
            "signage/v1/screens/plain/pop",
            "signage.v1.screens.plain.pop",
        );
        check_mapping(
            "signage/v1/screens/bj-metro.e1_x/pop",
            "signage.v1.screens.bj-metro//e1_x.pop",
        );
        check_mapping("a.b/c", "a//b.c");
        assert_eq!(
            subject_filter("signage/v1/screens/+/pop").unwrap(),
            "signage.v1.screens.*.pop"
        );
        assert_eq!(subject_filter("x/#").unwrap(), "x.>");
        for bad in ["/a/b", "a/b/", "a//b"] {
            assert!(
                matches!(subject_filter(bad), Err(PopSourceError::EmptyLevel { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_screen_with_dots_is_found_in_its_subject() {
        let topics = playlists::wire::Topics::default();
        let topic = topic_of_subject("signage.v1.screens.s//1.pop");
        assert_eq!(topics.screen_of(&topic), Some("s.1"));
    }

    #[test]
    fn server_lists() {
        let n = NatsIngest::parse("nats://h1:4222, nats://h2:4223,").unwrap();
        assert_eq!(n.hosts(), ["h1:4222", "h2:4223"]);
        assert_eq!(NatsIngest::parse(" , "), Err(PopSourceError::NoServer));
        let secret = NatsIngest::parse("nats://ingest:s3cret@h1:4222").unwrap();
        assert!(!format!("{secret:?}").contains("s3cret"));
        match NatsIngest::parse("nats://ingest:s3cret@h1:notaport") {
            Err(PopSourceError::BadUrl { url, .. }) => {
                assert!(!url.contains("s3cret"), "{url}");
            }
            other => panic!("{other:?}"),
        }
    }
}
