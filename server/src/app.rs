//! The running server: one MQTT connection (publishing schedules, ingesting proof of play,
//! following presence), the ingest worker, the hourly schedule refresh and the HTTP server,
//! started from bound resources and stopped by a cancellation token.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use playlists::wire::pop::{PopAck, ACK_KIND};
use playlists::wire::{signed::public_key_from_hex, Keypair, Status, Topics, MAX_SCHEDULE_BYTES};

use crate::admin::AdminToken;
use crate::clock::ServerClock;
use crate::ledger::{Incoming, Ledger, Outcome};
use crate::store::Store;

/// How often published schedules are checked for nearing their expiry.
pub const REFRESH_EVERY: Duration = Duration::from_secs(3600);

/// State shared by the MQTT loop, the ingest worker and HTTP handlers.
#[derive(Debug)]
pub struct Shared {
    pub store: Store,
    pub ledger: Ledger,
    pub key: Keypair,
    pub topics: Topics,
    pub fleet: Mutex<BTreeMap<String, Status>>,
    /// The server's MQTT connection (publishing schedules and commands).
    pub client: AsyncClient,
    pub schedule_ttl: TimeDelta,
    /// What "now" is for flights set by staff (emergencies).
    pub clock: ServerClock,
    pub admin: AdminToken,
    /// Serialises emergency changes: check, store, publish.
    pub emergencies: tokio::sync::Mutex<()>,
}

/// How the server runs, beside its bound resources.
#[derive(Debug, Clone)]
pub struct Options {
    pub schedule_ttl: TimeDelta,
    pub clock: ServerClock,
}

impl Default for Options {
    /// A week's schedule TTL, the system clock.
    fn default() -> Options {
        Options {
            schedule_ttl: TimeDelta::hours(168),
            clock: ServerClock::System,
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
    /// Builds every screen's schedule and publishes it retained; returns how many changed.
    pub async fn publish_schedules(&self, all: bool) -> anyhow::Result<usize> {
        publish_schedules(&self.shared, &self.client, all).await
    }

    /// Waits for the server's tasks after the shutdown token was cancelled.
    pub async fn wait(self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}

pub async fn publish_schedules(
    shared: &Shared,
    client: &AsyncClient,
    all: bool,
) -> anyhow::Result<usize> {
    let catalogue = shared.store.catalogue()?;
    let docs = crate::publisher::build_all(
        &shared.store,
        &catalogue,
        &shared.key,
        Utc::now(),
        shared.schedule_ttl,
    )?;
    let mut changed = 0;
    for d in docs {
        if d.changed || all {
            changed += usize::from(d.changed);
            client
                .publish(
                    shared.topics.schedule(&d.screen_id),
                    QoS::AtLeastOnce,
                    true,
                    d.bytes,
                )
                .await?;
        }
    }
    Ok(changed)
}

pub fn mqtt_options(client_id: &str, target: &MqttTarget) -> MqttOptions {
    let mut options = MqttOptions::new(client_id, target.host.clone(), target.port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(MAX_SCHEDULE_BYTES + 8192, MAX_SCHEDULE_BYTES + 8192);
    options.set_clean_session(true);
    options
}

/// Starts the server's tasks with the default [`Options`]. `listener` is the bound HTTP
/// listener.
pub async fn start(
    store: Store,
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
    store: Store,
    target: MqttTarget,
    listener: tokio::net::TcpListener,
    topics: Topics,
    options: Options,
    shutdown: CancellationToken,
) -> anyhow::Result<Handle> {
    let key = crate::keys::server_key(store.dir())?;
    let admin = AdminToken::load_or_create(store.dir())?;
    tracing::info!(path = %admin.path().display(), "admin token for emergency takeovers");
    let ledger = Ledger::open(store.db())?;
    let client_id = format!("signage-server-{}", std::process::id());
    let (client, mut events) = AsyncClient::new(mqtt_options(&client_id, &target), 1024);
    let shared = Arc::new(Shared {
        store,
        ledger,
        key,
        topics,
        fleet: Mutex::new(BTreeMap::new()),
        client: client.clone(),
        schedule_ttl: options.schedule_ttl,
        clock: options.clock,
        admin,
        emergencies: tokio::sync::Mutex::new(()),
    });
    let tracker = TaskTracker::new();
    let (ingest_tx, ingest_rx) = mpsc::channel::<Incoming>(4096);

    // MQTT driver: subscribes on every connect, routes incoming messages.
    {
        let shared = shared.clone();
        let client = client.clone();
        let shutdown = shutdown.clone();
        let target = target.clone();
        tracker.spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                let event = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    e = events.poll() => e,
                };
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        backoff = Duration::from_millis(200);
                        let t = &shared.topics;
                        let _ = client
                            .subscribe(t.pop_all(target.shared_subscription), QoS::AtLeastOnce)
                            .await;
                        let _ = client.subscribe(t.status_all(), QoS::AtLeastOnce).await;
                        if let Err(e) = publish_schedules(&shared, &client, true).await {
                            tracing::error!(error = %e, "publishing schedules failed");
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        on_publish(&shared, &ingest_tx, &p.topic, p.payload.to_vec()).await
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "MQTT connection lost; reconnecting");
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
            }
        });
    }

    // Ingest worker: drains pending batches, stores them durably, then acknowledges.
    {
        let shared = shared.clone();
        let client = client.clone();
        tracker.spawn(ingest_worker(shared, client, ingest_rx));
    }

    // Hourly: re-sign documents nearing expiry (the first tick is the connect's publish).
    {
        let shared = shared.clone();
        let client = client.clone();
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
                match publish_schedules(&shared, &client, false).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(count = n, "schedules re-signed or changed"),
                    Err(e) => tracing::error!(error = %e, "refreshing schedules failed"),
                }
            }
        });
    }

    let http_addr = listener.local_addr()?;
    {
        let app = crate::http::router(shared.clone());
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "HTTP server failed");
            }
        });
    }
    {
        let client = client.clone();
        tracker.spawn(async move {
            shutdown.cancelled().await;
            let _ = client.disconnect().await;
        });
    }
    Ok(Handle {
        shared,
        http_addr,
        client,
        tracker,
    })
}

async fn on_publish(
    shared: &Shared,
    ingest: &mpsc::Sender<Incoming>,
    topic: &str,
    payload: Vec<u8>,
) {
    let Some(screen) = shared.topics.screen_of(topic) else {
        return;
    };
    let screen = screen.to_owned();
    if topic.ends_with("/pop") {
        let _ = ingest
            .send(Incoming {
                topic_screen: screen,
                raw: payload,
            })
            .await;
    } else if topic.ends_with("/status") {
        if payload.len() > playlists::wire::MAX_SMALL_BYTES {
            tracing::warn!(screen, bytes = payload.len(), "oversized status ignored");
            return;
        }
        match serde_json::from_slice::<Status>(&payload) {
            Ok(status) if status.screen_id == screen => {
                shared
                    .fleet
                    .lock()
                    .expect("fleet lock")
                    .insert(screen, status);
            }
            Ok(_) => tracing::warn!(screen, "status names another screen; ignored"),
            Err(e) => tracing::warn!(screen, error = %e, "malformed status ignored"),
        }
    }
}

async fn ingest_worker(shared: Arc<Shared>, client: AsyncClient, mut rx: mpsc::Receiver<Incoming>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        let shared2 = shared.clone();
        let outcomes = tokio::task::spawn_blocking(move || {
            let keys = shared2.store.screen_keys().unwrap_or_default();
            let key_of = |screen: &str| keys.get(screen).and_then(|k| public_key_from_hex(k).ok());
            shared2.ledger.ingest(&batch, &key_of)
        })
        .await;
        let outcomes = match outcomes {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "ledger write failed; batches stay unacknowledged");
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
