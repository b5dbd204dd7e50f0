//! The running server: one MQTT connection driven by one loop that never waits on its own
//! client (it routes proof of play, presence and the schedules the broker retains, and
//! asks the publisher to resend on every connect), the publisher task (the only place
//! schedules and commands are sent), the ingest and status workers, the healer (resends a
//! screen's current schedule when the broker retains anything else), the hourly schedule
//! refresh and the HTTP server, started from bound resources and stopped by a
//! cancellation token. The connection logs in as the server (`broker_auth`). Proof of
//! play comes from that connection or, with a NATS cluster, from a NATS queue group read
//! by a task of its own (`pop_source`); acknowledgements go out over MQTT either way.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::TimeDelta;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use playlists::wire::pop::{PopAck, ACK_KIND};
use playlists::wire::{Keypair, Status, Topics};

mod driver;
mod publish;

use publish::{healer, publisher_task};
pub use publish::{Publisher, HEAL_DEBOUNCE};

use crate::broker_auth::{ServerLogin, SERVER_USER};
use crate::catalogue::CatalogueService;
use crate::clock::ServerClock;
use crate::store::{Incoming, LedgerStore, Outcome, SharedStore};

/// How often published schedules are checked for nearing their expiry.
pub const REFRESH_EVERY: Duration = Duration::from_secs(3600);
/// State shared by the MQTT loop, the publisher, the ingest worker and HTTP handlers.
#[derive(Debug)]
pub struct Shared {
    pub store: SharedStore,
    pub ledger: Arc<dyn LedgerStore>,
    pub catalogue: CatalogueService,
    pub key: Keypair,
    pub topics: Topics,
    pub fleet: Mutex<BTreeMap<String, Status>>,
    /// When statuses arrived, the fleet index per catalogue revision, the dark threshold.
    pub fleet_view: crate::fleet_view::FleetView,
    /// Who started and ended each emergency, folded from the change log.
    pub emergency_log: crate::emergency_history::Log,
    pub publisher: Publisher,
    pub schedule_ttl: TimeDelta,
    /// What "now" is for flights set by staff (emergencies, archives).
    pub clock: ServerClock,
    /// Serialises emergency changes: check, store, announce.
    pub emergencies: tokio::sync::Mutex<()>,
    /// What provisioned agents are told to connect to.
    pub agent_urls: AgentUrls,
    /// Whether the MQTT connection is up (for `/ready`).
    pub broker_connected: AtomicBool,
    /// Proof-of-play batches waiting for the ingest worker (for `/ready`).
    pub ingest_queue: std::sync::atomic::AtomicUsize,
    /// Whether HTTP is served over TLS: session cookies are then `Secure` and responses
    /// carry `Strict-Transport-Security`. True when `serve` terminates TLS.
    pub https: AtomicBool,
    /// Failed dashboard logins per name.
    pub logins: crate::session::Limiter,
    /// Whether staff's campaigns and creatives wait for a second person's approval.
    pub approval: crate::approval::ApprovalMode,
    /// How long a second operator has to confirm an emergency; `None`: none needed.
    pub emergency_confirm: Option<TimeDelta>,
    /// SHA-256 of the schedule bytes last published per screen: what the broker should
    /// retain on its schedule topic.
    pub schedule_hashes: Mutex<HashMap<String, [u8; 32]>>,
    /// What `GET /metrics` reports.
    pub metrics: crate::telemetry::Metrics,
    /// How uploaded video is judged and changed.
    pub media: crate::ingest::MediaPolicy,
    /// Where uploads with a progress token are.
    pub upload_progress: crate::ingest::ProgressBoard,
    /// Makes the renditions documents name; remembers those that cannot be made.
    pub renditions: Arc<crate::renditions::Renditions>,
}

/// The broker and HTTP addresses written into agent configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentUrls {
    pub mqtt_url: String,
    pub server_url: String,
    /// The CA (PEM) agents pin for `https://` and `mqtts://` (`server_ca_pem` in their
    /// config); `None` when they trust their system's roots.
    pub server_ca_pem: Option<String>,
}

/// How the server runs, beside its bound resources.
#[derive(Debug, Clone)]
pub struct Options {
    pub schedule_ttl: TimeDelta,
    pub clock: ServerClock,
    /// For provisioning; the broker and HTTP addresses the server itself uses by default.
    pub agent_urls: Option<AgentUrls>,
    /// Four-eyes approval (the default) or none.
    pub approval: crate::approval::ApprovalMode,
    /// A second operator confirms an emergency within this; `None` (the default): no one.
    pub emergency_confirm: Option<TimeDelta>,
    /// HTTPS on the HTTP listener, or plain HTTP when `None`.
    pub tls: Option<crate::tls::ServerTls>,
    /// A screen offline or silent this long is raised as dark to operators.
    pub dark_after: TimeDelta,
    /// The MQTT driver and the ingest worker register here; `serve` feeds systemd's
    /// watchdog only while they beat.
    pub liveness: daemon::Liveness,
    /// How uploaded video is judged and changed (the `[media]` configuration).
    pub media: crate::ingest::MediaPolicy,
    /// Raw proof of play older than this many days is archived hourly, into this directory
    /// (`[ledger]`); `None` (the default): kept live.
    pub ledger_retention: Option<(u32, std::path::PathBuf)>,
    /// Where proof of play is read from: the MQTT subscription (the default) or a NATS
    /// queue group (`pop_source`).
    pub ingest: crate::pop_source::PopSource,
}

impl Default for Options {
    /// A week's schedule TTL, the system clock, plain HTTP.
    fn default() -> Options {
        Options {
            schedule_ttl: TimeDelta::hours(168),
            clock: ServerClock::System,
            agent_urls: None,
            approval: crate::approval::ApprovalMode::default(),
            emergency_confirm: None,
            tls: None,
            dark_after: TimeDelta::minutes(15),
            liveness: daemon::Liveness::default(),
            media: crate::ingest::MediaPolicy::default(),
            ledger_retention: None,
            ingest: crate::pop_source::PopSource::default(),
        }
    }
}

/// How to reach the broker.
#[derive(Debug, Clone)]
pub struct MqttTarget {
    pub host: String,
    pub port: u16,
    /// Subscribe to proof of play through `$share/…` so replicas split ingest.
    pub shared_subscription: bool,
    /// `mqtts://`: TLS with this client configuration.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// A started server.
#[derive(Debug)]
pub struct Handle {
    pub shared: Arc<Shared>,
    pub http_addr: std::net::SocketAddr,
    pub client: AsyncClient,
    tracker: TaskTracker,
}

impl Handle {
    /// Builds every screen's schedule and publishes it retained (all of them when `all`,
    /// else the changed ones); returns how many changed.
    pub async fn publish_schedules(&self, all: bool) -> anyhow::Result<usize> {
        Ok(self.shared.publisher.schedules(None, all).await)
    }

    /// Waits for the server's tasks after the shutdown token was cancelled.
    pub async fn wait(self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// The options of the server's own MQTT clients: they log in as [`SERVER_USER`], and
/// accept larger packets than any broker we configure passes on
/// ([`crate::broker::MAX_PACKET_BYTES`]), so an oversized message is the broker's refusal
/// and never breaks this connection.
pub fn mqtt_options(client_id: &str, target: &MqttTarget, login: &ServerLogin) -> MqttOptions {
    let mut options = MqttOptions::new(client_id, target.host.clone(), target.port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_credentials(SERVER_USER, login.secret.clone());
    let max = crate::broker::CLIENT_MAX_PACKET_BYTES;
    options.set_max_packet_size(max, max);
    options.set_clean_session(true);
    if let Some(tls) = &target.tls {
        options.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(tls.clone()),
        ));
    }
    options
}

/// Starts the server's tasks with the default [`Options`]. `listener` is the bound HTTP
/// listener.
pub async fn start(
    store: SharedStore,
    target: MqttTarget,
    listener: tokio::net::TcpListener,
    topics: Topics,
    shutdown: CancellationToken,
) -> anyhow::Result<Handle> {
    start_with(
        store,
        target,
        listener,
        topics,
        Options::default(),
        shutdown,
    )
    .await
}

/// Starts the server's tasks. `listener` is the bound HTTP listener.
pub async fn start_with(
    store: SharedStore,
    target: MqttTarget,
    listener: tokio::net::TcpListener,
    topics: Topics,
    options: Options,
    shutdown: CancellationToken,
) -> anyhow::Result<Handle> {
    let key = crate::keys::server_key(store.dir())?;
    // Off the runtime, as every store call (a PostgreSQL store blocks on its own).
    let admin = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || crate::auth::bootstrap(&*store)).await??
    };
    if let Some(path) = admin {
        tracing::info!(path = %path.display(), "admin token (all roles) for the API and CLI");
    }
    let http_addr = listener.local_addr()?;
    let https = options.tls.is_some();
    let agent_urls = options.agent_urls.clone().unwrap_or_else(|| AgentUrls {
        mqtt_url: format!(
            "{}://{}:{}",
            if target.tls.is_some() {
                "mqtts"
            } else {
                "mqtt"
            },
            target.host,
            target.port
        ),
        server_url: format!("{}://{http_addr}", if https { "https" } else { "http" }),
        server_ca_pem: options.tls.as_ref().and_then(|t| t.pin_pem.clone()),
    });
    let login = ServerLogin::load(store.dir())?;
    // Unique among replicas (and servers of one process): the broker keeps one session
    // per client id, so a shared one would have replicas take each other's connection.
    let mut nonce = [0u8; 4];
    getrandom::getrandom(&mut nonce)?;
    let client_id = format!(
        "{SERVER_USER}-{}-{}",
        std::process::id(),
        hex::encode(nonce)
    );
    let (client, events) = AsyncClient::new(mqtt_options(&client_id, &target, &login), 1024);
    let (publisher, jobs_rx) = Publisher::new();
    let lease: Arc<dyn crate::store::lease::PublisherLease> = Arc::from(store.publisher_lease());
    crate::replica::first_try(&publisher, &lease).await;
    let shared = Arc::new(Shared {
        ledger: store.ledger(),
        catalogue: CatalogueService::new(store.clone()),
        store,
        key,
        topics,
        fleet: Mutex::new(BTreeMap::new()),
        fleet_view: crate::fleet_view::FleetView::new(options.dark_after),
        emergency_log: crate::emergency_history::Log::default(),
        publisher: publisher.clone(),
        schedule_ttl: options.schedule_ttl,
        clock: options.clock,
        emergencies: tokio::sync::Mutex::new(()),
        agent_urls,
        broker_connected: AtomicBool::new(false),
        ingest_queue: std::sync::atomic::AtomicUsize::new(0),
        https: AtomicBool::new(https),
        logins: crate::session::Limiter::default(),
        approval: options.approval,
        emergency_confirm: options.emergency_confirm,
        schedule_hashes: Mutex::new(HashMap::new()),
        metrics: crate::telemetry::Metrics::new(),
        media: options.media,
        upload_progress: crate::ingest::ProgressBoard::default(),
        renditions: Arc::default(),
    });
    let tracker = TaskTracker::new();
    let (ingest_tx, ingest_rx) = mpsc::channel::<Incoming>(4096);
    let (status_tx, status_rx) = mpsc::channel::<(String, Vec<u8>)>(4096);
    let routes = driver::Routes {
        ingest: ingest_tx,
        statuses: status_tx,
    };
    tracker.spawn(crate::fleet::status_worker(shared.clone(), status_rx));
    let mqtt_ingest = match options.ingest.clone() {
        crate::pop_source::PopSource::Mqtt => true,
        crate::pop_source::PopSource::Nats(nats) => {
            let (queue, s) = (routes.ingest.clone(), shared.clone());
            tracker.spawn(crate::pop_source::run_nats(
                nats,
                shared.topics.clone(),
                move |screen, raw| crate::pop_source::offer(&queue, &s.ingest_queue, screen, raw),
                shutdown.clone(),
            ));
            false
        }
    };
    tracker.spawn(healer(publisher.clone(), shutdown.clone()));
    if let Some((days, dir)) = options.ledger_retention.clone() {
        let p = publisher.clone();
        tracker.spawn(crate::retention::worker(
            shared.ledger.clone(),
            shared.clock,
            days,
            dir,
            move || p.publishing(),
            shutdown.clone(),
        ));
    }
    tracker.spawn(crate::renditions::video_worker(
        shared.renditions.clone(),
        shared.store.clone(),
        shared.media.gate.clone(),
        shutdown.clone(),
    ));

    tracker.spawn(crate::replica::run(shared.clone(), lease, shutdown.clone()));
    tracker.spawn(publisher_task(
        shared.clone(),
        client.clone(),
        jobs_rx,
        publisher.clone(),
        shutdown.clone(),
    ));

    // MQTT driver: subscribes on every connect, routes incoming messages. It never awaits
    // the client it drives (the client's queue is drained only here).
    tracker.spawn(driver::run(
        driver::Driver {
            shared: shared.clone(),
            client: client.clone(),
            target: target.clone(),
            routes,
            mqtt_ingest,
            beat: options.liveness.register("mqtt driver"),
        },
        events,
        shutdown.clone(),
    ));

    // Ingest worker: drains pending batches, stores them durably, then acknowledges.
    {
        let shared = shared.clone();
        let client = client.clone();
        let beat = options.liveness.register("ingest worker");
        tracker.spawn(ingest_worker(shared, client, ingest_rx, beat));
    }

    // Hourly: re-sign documents nearing expiry (the first tick is the connect's publish).
    {
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let mut tick = tokio::time::interval(REFRESH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => {}
                }
                match shared.publisher.schedules(None, false).await {
                    0 => {}
                    n => tracing::info!(count = n, "schedules re-signed or changed"),
                }
            }
        });
    }

    {
        let app = crate::http::router(shared.clone());
        let stop = shutdown.clone();
        match &options.tls {
            Some(tls) => {
                let listener =
                    crate::tls::TlsListener::new(listener, tls.config.clone(), shutdown.clone())?;
                tracker.spawn(async move {
                    let served = axum::serve(listener, app)
                        .with_graceful_shutdown(async move { stop.cancelled().await })
                        .await;
                    if let Err(e) = served {
                        tracing::error!(error = %e, "HTTPS server failed");
                    }
                });
            }
            None => {
                if !http_addr.ip().is_loopback() {
                    tracing::warn!(
                        addr = %http_addr,
                        "serving plain HTTP on a non-loopback address: tokens and passwords \
                         cross the network in clear (set tls = \"self-signed\" or a certificate)"
                    );
                }
                tracker.spawn(async move {
                    let served = axum::serve(listener, app)
                        .with_graceful_shutdown(async move { stop.cancelled().await })
                        .await;
                    if let Err(e) = served {
                        tracing::error!(error = %e, "HTTP server failed");
                    }
                });
            }
        }
    }
    {
        let client = client.clone();
        tracker.spawn(async move {
            shutdown.cancelled().await;
            let _ = client.try_disconnect();
        });
    }
    Ok(Handle {
        shared,
        http_addr,
        client,
        tracker,
    })
}

async fn ingest_worker(
    shared: Arc<Shared>,
    client: AsyncClient,
    mut rx: mpsc::Receiver<Incoming>,
    beat: daemon::Beat,
) {
    let mut alive = tokio::time::interval(daemon::BEAT_EVERY);
    alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        beat.beat();
        let first = tokio::select! {
            m = rx.recv() => match m {
                Some(m) => m,
                None => break,
            },
            _ = alive.tick() => continue,
        };
        let mut batch = vec![first];
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        shared.ingest_queue.fetch_sub(batch.len(), Ordering::SeqCst);
        let shared2 = shared.clone();
        let started = std::time::Instant::now();
        let outcomes = tokio::task::spawn_blocking(move || {
            let mut screens: Vec<&str> = batch.iter().map(|i| i.topic_screen.as_str()).collect();
            screens.sort_unstable();
            screens.dedup();
            let keys = crate::store::key_rings_of(&*shared2.store, &screens)
                .map_err(|e| format!("reading the screens' keys failed: {e}"))?;
            let key_of = |screen: &str| keys.get(screen).cloned().unwrap_or_default();
            shared2
                .ledger
                .ingest(&batch, &key_of)
                .map_err(|e| format!("ledger write failed: {e}"))
        })
        .await;
        let outcomes = match outcomes {
            Ok(Ok(o)) => {
                let seconds = started.elapsed().as_secs_f64();
                shared.metrics.ingested(&o, seconds);
                o
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "batches stay unacknowledged");
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "ingest task failed");
                continue;
            }
        };
        let mut acks: BTreeMap<String, Vec<playlists::wire::pop::AckedBatch>> = BTreeMap::new();
        for o in outcomes {
            match o {
                Outcome::Stored { screen_id, ack, .. } | Outcome::Duplicate { screen_id, ack } => {
                    acks.entry(screen_id).or_default().push(ack)
                }
                Outcome::Rejected { screen_id, reason } => {
                    tracing::warn!(screen = screen_id, reason, "proof-of-play batch rejected")
                }
            }
        }
        for (screen_id, batches) in acks {
            let ack = PopAck {
                v: playlists::wire::VERSION,
                screen_id: screen_id.clone(),
                batches,
            };
            let bytes = shared.key.seal(ACK_KIND, &ack);
            if let Err(e) = client
                .publish(
                    shared.topics.pop_ack(&screen_id),
                    QoS::AtLeastOnce,
                    false,
                    bytes,
                )
                .await
            {
                tracing::warn!(error = %e, "ack publish failed");
            }
        }
    }
}
