//! `agent`: the kiosk daemon (binary `signage-agent`). It verifies signed schedules pushed
//! over MQTT, caches their media in sled, plays every slot locally with the shared
//! `playlists` planner (offline for as long as it must), keeps proof of play in a redb
//! outbox until the server acknowledges it, and reports presence.
//!
//! [`run`] wires the parts and owns shutdown. Tasks: the MQTT driver loop (`mqtt`), the
//! main loop (`main_loop`), the player (`player`), the uploader (`uploader`) and the media
//! fetcher (`fetch`), and with `--player web` the kiosk page's server (`web`). Emergency
//! takeovers by command are merged into the held schedule (`emergency`). Pure cores: `accept` (what messages count), `outbox::book` and
//! `uploader::UploadState` (bookkeeping and batching), `cache::choose_evictions`,
//! `backoff`, `status`. Time comes from `clock` (system, the MQTT-driven sim clock, or
//! the scaled clock).

pub mod accept;
pub mod backoff;
pub mod cache;
pub mod clock;
pub mod config;
pub mod emergency;
pub mod fetch;
pub mod fleet;
pub mod logging;
pub mod main_loop;
pub use daemon::memory;
pub mod mqtt;
pub mod outbox;
pub mod player;
pub mod readiness;
pub mod schedule;
pub mod sim;
pub mod status;
pub mod telemetry;
pub mod tls;
pub mod uploader;
pub mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use playlists::wire::Topics;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use clock::ClockKind;
pub use config::AgentConfig;
pub use outbox::Durability;
pub use player::PlayerKind;

use cache::Cache;
use clock::Clock;
use main_loop::{Event, MainLoop};
use outbox::Outbox;
use schedule::HeldSchedule;

/// How long shutdown waits for the DISCONNECT to reach the broker.
const DISCONNECT_GRACE: Duration = Duration::from_secs(3);

/// How to run, beside the config file.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Holds `outbox.redb` and `cache.sled`.
    pub data_dir: PathBuf,
    pub player: PlayerKind,
    pub clock: ClockKind,
    /// The timeline of `--clock scaled` (required with it, ignored otherwise).
    pub scaled: Option<clock::Scaled>,
    pub durability: Durability,
    /// Where `--player web` serves its kiosk page (port 0: any; the bound address goes to
    /// `DATA_DIR/web.addr` and the log).
    pub web_addr: SocketAddr,
}

/// The web player's default address: loopback, any port.
pub const DEFAULT_WEB_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

impl RunOptions {
    /// Headless player, system clock, immediate durability.
    pub fn new(data_dir: impl Into<PathBuf>) -> RunOptions {
        RunOptions {
            data_dir: data_dir.into(),
            player: PlayerKind::default(),
            clock: ClockKind::default(),
            scaled: None,
            durability: Durability::default(),
            web_addr: DEFAULT_WEB_ADDR,
        }
    }
}

/// What a process hosting many agents (the fleet simulator, [`fleet`]) gives each of them
/// beside its own config and data dir. The default is a lone agent's: its own cache and
/// media client, nobody watching.
#[derive(Default)]
pub struct Host {
    /// A media cache shared with other agents (opened with [`Cache::open_shared`]) instead
    /// of `DATA_DIR/cache.sled`.
    pub cache: Option<Arc<Cache>>,
    /// A media client shared with other agents.
    pub http: Option<reqwest::Client>,
    /// Called once the agent is wired, with what the host may watch.
    pub watch: Option<Box<dyn FnOnce(Watches) + Send>>,
    /// Keep the proof-of-play outbox in memory ([`Outbox::in_memory`]) instead of
    /// `DATA_DIR/outbox.redb`: one file descriptor fewer per agent, for a host of
    /// thousands; records do not survive the process. Never a lone agent's choice.
    pub outbox_in_memory: bool,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("shared_cache", &self.cache.is_some())
            .field("watched", &self.watch.is_some())
            .field("outbox_in_memory", &self.outbox_in_memory)
            .finish_non_exhaustive()
    }
}

/// The agent's own state, read-only, for a host to observe.
#[derive(Clone)]
pub struct Watches {
    /// The schedule held (emergency overlays merged), as the player sees it.
    pub schedules: watch::Receiver<Option<Arc<HeldSchedule>>>,
    /// `campaign/creative` of the play in progress, set by the player at each boundary.
    pub now_playing: watch::Receiver<Option<String>>,
    /// The proof-of-play outbox (its [`Outbox::book`] says what was written).
    pub outbox: Arc<Outbox>,
    /// How many genuine commands (signature and expiry checked) the agent has taken,
    /// counted before it acts on them.
    pub commands: watch::Receiver<u64>,
}

/// Runs the agent until `shutdown` is cancelled (or a task fails beyond repair). A schedule
/// persisted by an earlier run is applied before any network, so the agent plays offline.
pub async fn run(
    config: AgentConfig,
    opts: RunOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    run_hosted(config, opts, Host::default(), shutdown).await
}

/// [`run`] with what a host of many agents shares with this one.
pub async fn run_hosted(
    config: AgentConfig,
    opts: RunOptions,
    host: Host,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let screen = config.screen_id.to_string();
    let dir = opts.data_dir.clone();
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating data dir {}", dir.display()))?;

    let (outbox, recovery) = {
        let dir = dir.clone();
        let durability = opts.durability;
        let in_memory = host.outbox_in_memory;
        tokio::task::spawn_blocking(move || {
            if in_memory {
                Outbox::in_memory(durability)
            } else {
                Outbox::open(&dir, durability)
            }
        })
        .await??
    };
    if let Some((aside, why)) = &recovery.moved_aside {
        tracing::error!(
            moved_to = %aside.display(),
            why,
            epoch = outbox.epoch(),
            "the outbox was damaged and moved aside; playing on with a fresh outbox in a new epoch"
        );
    }
    if !recovery.partial.is_empty() {
        tracing::warn!(seqs = ?recovery.partial, "plays interrupted by a crash recorded as partial");
    }
    let outbox = Arc::new(outbox);
    let (cache, cache_note) = match host.cache {
        Some(shared) => (shared, None),
        None => {
            let dir = dir.clone();
            let max = config.cache_max_bytes;
            let (cache, note) =
                tokio::task::spawn_blocking(move || Cache::open(&dir, max, Utc::now().timestamp()))
                    .await??;
            (Arc::new(cache), note)
        }
    };
    let held = restore_schedule(&config, &outbox).await?;
    let web_listener = match opts.player {
        PlayerKind::Web => Some(
            web::bind(opts.web_addr, &dir)
                .await
                .with_context(|| format!("binding the web player on {}", opts.web_addr))?,
        ),
        PlayerKind::Headless => None,
    };

    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(
            telemetry::bind(addr, &dir)
                .await
                .with_context(|| format!("binding metrics_listen {addr}"))?,
        ),
        None => None,
    };

    let topics = Topics::new(&config.topic_prefix);
    let (sim_tx, sim_rx) = mpsc::unbounded_channel();
    let clock = match opts.clock {
        ClockKind::System => Clock::system(),
        ClockKind::Sim => Clock::sim(&screen, sim_tx),
        ClockKind::Scaled => Clock::scaled(
            opts.scaled
                .context("the scaled clock needs its start, anchor and speed")?,
        ),
    };
    let offline = status::build_status(status::Facts {
        screen_id: screen.clone(),
        player: opts.player.as_str().to_owned(),
        clock_synced: clock.synced(),
        ..status::Facts::default()
    });
    let statuses = status::StatusSigner::new(config.screen_key.expose().clone());
    let (client, eventloop) = mqtt::client(&config, &topics, statuses.will(offline.clone()));

    let (events_tx, events_rx) = mpsc::channel::<Event>(256);
    let held = match (held, clock.now()) {
        (Some(h), Some(now)) => {
            let o = outbox.clone();
            let restored =
                tokio::task::spawn_blocking(move || emergency::restore(&o, h, now)).await?;
            Some(Arc::new(restored))
        }
        // A sim clock not yet stepped: overlays are merged unpruned.
        (Some(h), None) => {
            let o = outbox.clone();
            let restored = tokio::task::spawn_blocking(move || {
                let overlays = emergency::Overlays::load(&o);
                emergency::merged(h, overlays)
            })
            .await?;
            Some(Arc::new(restored))
        }
        (None, _) => None,
    };
    let (schedules_tx, schedules_rx) = watch::channel(held);
    let (uploader_tx, uploader_rx) = mpsc::channel(256);
    let (playing_tx, playing_rx) = watch::channel(None);
    let (commands_tx, commands_rx) = watch::channel(0);
    let tasks_stop = shutdown.child_token();
    let net_stop = CancellationToken::new();
    let tracker = TaskTracker::new();

    // Each reconnect is a new status session with a freshly signed will.
    let renew_will = {
        let statuses = statuses.clone();
        let topic = topics.status(&screen);
        move |options: &mut rumqttc::MqttOptions| {
            statuses.new_session(Utc::now().timestamp_millis().max(0) as u64);
            let will = statuses.will(offline.clone());
            options.set_last_will(rumqttc::LastWill::new(
                topic.clone(),
                will,
                rumqttc::QoS::AtLeastOnce,
                true,
            ));
        }
    };
    let net = tokio::spawn(mqtt::drive(
        eventloop,
        events_tx.clone(),
        net_stop.clone(),
        renew_will,
    ));
    let web_link = web_listener.map(|listener| {
        let link = web::Link::default();
        let router = web::router(link.clone(), cache.clone(), clock.clone());
        spawn_fatal(
            &tracker,
            "web player",
            events_tx.clone(),
            web::serve(listener, router, tasks_stop.clone()),
        );
        link
    });
    let player = player::Player {
        clock: clock.clone(),
        schedules: schedules_rx.clone(),
        outbox: outbox.clone(),
        cache: cache.clone(),
        screen_id: screen.clone(),
        uploader: uploader_tx.clone(),
        now_playing: playing_tx,
        web: web_link,
    };
    spawn_fatal(
        &tracker,
        "player",
        events_tx.clone(),
        player.run(tasks_stop.clone()),
    );
    let uploader = uploader::Uploader {
        outbox: outbox.clone(),
        client: client.clone(),
        topic: topics.pop(&screen),
        screen_id: screen.clone(),
        key: config.screen_key.expose().clone(),
    };
    spawn_fatal(
        &tracker,
        "uploader",
        events_tx.clone(),
        uploader.run(uploader_rx, events_tx.clone(), tasks_stop.clone()),
    );
    let http = match host.http {
        Some(shared) => shared,
        None => tls::http_client(config.ca_pem.as_deref())
            .map_err(|e| anyhow::anyhow!("media client: {e}"))?,
    };
    if let Some(watch) = host.watch {
        watch(Watches {
            schedules: schedules_rx.clone(),
            now_playing: playing_rx.clone(),
            outbox: outbox.clone(),
            commands: commands_rx,
        });
    }
    let fetcher = fetch::Fetcher {
        http,
        server_url: config.server_url.clone(),
        cache: cache.clone(),
        schedules: schedules_rx,
        clock: clock.clone(),
        horizon: chrono::Duration::hours(i64::from(config.prefetch_hours)),
        retry: fetch::Retry::default(),
    };
    tracker.spawn(fetcher.run(events_tx.clone(), tasks_stop.clone()));
    let live = telemetry::Live::default();
    let store_probe = Arc::new(readiness::StoreProbe::new(&dir));
    if let Some(listener) = metrics_listener {
        let sources = telemetry::Sources {
            outbox: outbox.clone(),
            cache: cache.clone(),
            clock: clock.clone(),
            live: live.clone(),
            store_probe: store_probe.clone(),
        };
        spawn_fatal(
            &tracker,
            "metrics",
            events_tx.clone(),
            telemetry::serve(listener, sources, tasks_stop.clone()),
        );
    }
    tracker.close();
    drop(events_tx);

    let liveness = daemon::Liveness::default();
    let beat = liveness.register("main loop");
    // READY before the watchdog's first ping (as the server does): systemd, and the notify
    // test, take a WATCHDOG=1 before READY=1 as out of order.
    daemon::ready();
    let watchdog = daemon::spawn_watchdog(&liveness, &tasks_stop);
    tracing::info!(screen = %screen, broker = %format!("{}:{}", config.mqtt_host, config.mqtt_port), clock = ?opts.clock, "agent started");
    let main = MainLoop {
        config: config.clone(),
        topics,
        client,
        clock,
        outbox: outbox.clone(),
        cache: cache.clone(),
        schedules: schedules_tx,
        uploader: uploader_tx,
        now_playing: playing_rx,
        commands: commands_tx,
        player: opts.player.as_str().to_owned(),
        notes: cache_note.into_iter().collect(),
        connected: false,
        resubscribe: false,
        media_ready: false,
        playable_until: None,
        download_failures: Vec::new(),
        published: None,
        statuses,
        live,
        beat,
        store_probe,
    };
    let exit = main.run(events_rx, sim_rx, tasks_stop.clone()).await;
    daemon::stopping();
    if let Some(w) = watchdog {
        w.abort();
    }

    // Cancel downward, wait upward.
    tasks_stop.cancel();
    tracker.wait().await;
    if !exit.disconnecting {
        net_stop.cancel();
    }
    if tokio::time::timeout(DISCONNECT_GRACE, net).await.is_err() {
        tracing::debug!("broker did not take the disconnect in time");
    }
    net_stop.cancel();
    let flushed = tokio::task::spawn_blocking(move || {
        outbox.flush()?;
        cache.flush()?;
        anyhow::Ok(())
    })
    .await?;
    flushed.context("flushing on shutdown")?;
    tracing::info!("agent stopped");
    match exit.fatal {
        Some(e) => Err(anyhow::anyhow!(e)),
        None => Ok(()),
    }
}

/// The schedule an earlier run accepted, checked again against the pinned key.
async fn restore_schedule(
    config: &Arc<AgentConfig>,
    outbox: &Arc<Outbox>,
) -> anyhow::Result<Option<HeldSchedule>> {
    let o = outbox.clone();
    let Some(raw) = tokio::task::spawn_blocking(move || o.load_schedule()).await?? else {
        return Ok(None);
    };
    // Held before, so it keeps playing even past its expiry.
    let restored =
        accept::open_held_schedule(None, &config.screen_id, &config.server_public_key, &raw)
            .and_then(HeldSchedule::new);
    match restored {
        Ok(h) => {
            tracing::info!(version = h.version, "schedule restored from the outbox");
            Ok(Some(h))
        }
        Err(e) => {
            tracing::warn!(reason = %e, "stored schedule no longer valid; waiting for a new one");
            Ok(None)
        }
    }
}

/// Spawns a task whose error stops the agent.
fn spawn_fatal<E: std::fmt::Display + Send + 'static>(
    tracker: &TaskTracker,
    name: &'static str,
    events: mpsc::Sender<Event>,
    task: impl std::future::Future<Output = Result<(), E>> + Send + 'static,
) {
    tracker.spawn(async move {
        if let Err(e) = task.await {
            tracing::error!(task = name, error = %e, "task failed; stopping");
            let _ = events.send(Event::Fatal(format!("{name}: {e}"))).await;
        }
    });
}

/// An error and its causes on one line, each cause once (messages that already quote
/// their cause are not repeated).
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}
