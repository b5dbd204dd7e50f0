//! `signage simulate` (and the demo built on it): the real server with its embedded broker
//! and redb store, one real `signage-agent` process per screen, all on a virtual clock.
//!
//! The clock is conservative lock-step, so no agent can fall behind it: the leader
//! publishes a horizon `{prefix}/sim/clock` = `{"v":1,"step":N,"now":T}` (retained); every
//! agent walks its own slot boundaries up to T (each play stamped with its exact slot
//! times), and once it waits for a time beyond T answers `{prefix}/sim/ready/{screen}` =
//! `{"v":1,"screen_id":…,"step":N,"next":T2,"last_seq":S}`. Only when every agent has
//! answered step N does the horizon move, by a chunk (or to the earliest T2 if later).
//! `--speed` caps how fast virtual time may run against real time; it never lets an agent
//! be overtaken.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use playlists::wire::Topics;

use crate::app::{self, MqttTarget};
use crate::catalogue::CatalogueService;
use crate::import::ImportOptions;
use crate::report::{Window, WINDOW_META};
use crate::store::{LedgerStore, OpenMode, SharedStore};

#[derive(Debug, Serialize, Deserialize)]
struct SimClock {
    v: u32,
    step: u64,
    now: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
struct SimReady {
    v: u32,
    screen_id: String,
    step: u64,
    next: DateTime<Utc>,
    #[serde(default)]
    last_seq: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct SimOptions {
    pub scenario: PathBuf,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub data_dir: PathBuf,
    /// Virtual seconds per real second at most; `None` runs as fast as the agents go.
    pub speed: Option<f64>,
    pub agent_bin: PathBuf,
    /// Leave the server running (until Ctrl-C) after the run.
    pub keep_running: bool,
    /// Only these screens get an agent (all when empty).
    pub screens: Vec<String>,
    /// An external broker (e.g. Mosquitto) instead of the embedded one.
    pub mqtt_url: Option<String>,
    /// Where the server and agents talk on the broker (default `signage/v1`); a run of its
    /// own on a shared broker keeps other runs' schedules and clock steps away.
    pub topics: Topics,
}

impl SimOptions {
    pub fn new(
        scenario: PathBuf,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        data_dir: PathBuf,
        agent_bin: PathBuf,
    ) -> SimOptions {
        SimOptions {
            scenario,
            from,
            to,
            data_dir,
            speed: None,
            agent_bin,
            keep_running: false,
            screens: Vec::new(),
            mqtt_url: None,
            topics: Topics::default(),
        }
    }
}

/// What a simulation produced, for the summary printers.
#[derive(Debug)]
pub struct SimOutcome {
    pub store: SharedStore,
    pub ledger_equals_plan: bool,
    pub missing: u64,
    pub unexpected: u64,
    pub planned: u64,
    pub delivered: u64,
    pub elapsed: Duration,
    pub http_addr: std::net::SocketAddr,
}

/// Finds `signage-agent` next to the running binary (or `$SIGNAGE_AGENT_BIN`).
pub fn agent_binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("SIGNAGE_AGENT_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let mut candidates = vec![exe.with_file_name("signage-agent")];
    if let Some(parent) = exe.parent().and_then(Path::parent) {
        candidates.push(parent.join("signage-agent"));
    }
    candidates
        .into_iter()
        .find(|p| p.exists())
        .ok_or_else(|| anyhow::anyhow!("signage-agent was not found next to {}; build it with `cargo build --workspace --bins`", exe.display()))
}

pub async fn simulate(opts: SimOptions, shutdown: CancellationToken) -> anyhow::Result<SimOutcome> {
    let started = Instant::now();
    let store = crate::store::open(&opts.data_dir, OpenMode::Create)?;
    let held = store.ledger().counts()?.records;
    anyhow::ensure!(
        held == 0,
        "{} already holds {held} proof-of-play records; simulate into a fresh --data-dir",
        opts.data_dir.display()
    );
    let summary = {
        let catalogue = CatalogueService::new(store.clone());
        let dir = opts.scenario.clone();
        tokio::task::spawn_blocking(move || {
            crate::import::import(&catalogue, &dir, &ImportOptions::admin())
        })
        .await??
    };
    tracing::info!(
        scenario = summary.name,
        screens = summary.screens,
        "scenario imported"
    );
    let window = Window {
        from: Some(opts.from),
        to: Some(opts.to),
    };
    store.set_meta(WINDOW_META, &serde_json::to_vec(&window)?)?;

    let broker_url = match &opts.mqtt_url {
        Some(url) => url.clone(),
        None => crate::broker::start(None, crate::broker::Logins::of(&store)?)
            .await?
            .url(),
    };
    let (host, port) =
        crate::broker::parse_mqtt_url(&broker_url).map_err(|e| anyhow::anyhow!(e))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let server_shutdown = CancellationToken::new();
    // rumqttd 0.20's shared subscriptions reorder and drop messages under load (see the
    // mqtt_ingest bench); one server needs none, so share only on an external broker.
    let target = MqttTarget {
        host,
        port,
        shared_subscription: opts.mqtt_url.is_some(),
        tls: None,
    };
    let topics = opts.topics.clone();
    let handle = app::start(
        store.clone(),
        target.clone(),
        listener,
        topics.clone(),
        server_shutdown.clone(),
    )
    .await?;
    let server_url = format!("http://{}", handle.http_addr);

    let catalogue = handle.shared.catalogue.catalogue()?;
    let mut screens: Vec<String> = catalogue.screens.iter().map(|s| s.id.to_string()).collect();
    if !opts.screens.is_empty() {
        for s in &opts.screens {
            anyhow::ensure!(screens.contains(s), "unknown screen {s:?} in the scenario");
        }
        screens.retain(|s| opts.screens.contains(s));
    }
    let agents_dir = opts.data_dir.join("agents");
    let mut children = Vec::new();
    for screen in &screens {
        let dir = agents_dir.join(screen);
        std::fs::create_dir_all(dir.join("data"))?;
        let prepared =
            crate::provision::prepare(&*store, screen, &broker_url, &server_url, topics.prefix())?;
        std::fs::write(dir.join("agent.toml"), &prepared.config)?;
        prepared.register(&*store, chrono::Utc::now())?;
        let log = std::fs::File::create(dir.join("agent.log"))?;
        let child = tokio::process::Command::new(&opts.agent_bin)
            .arg("--config")
            .arg(dir.join("agent.toml"))
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args([
                "--clock",
                "sim",
                "--durability",
                "relaxed",
                "--player",
                "headless",
            ])
            .env(
                "RUST_LOG",
                std::env::var("SIGNAGE_AGENT_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", opts.agent_bin.display()))?;
        children.push(child);
    }

    let result = drive(&opts, &handle, &target, &topics, &screens, &shutdown).await;
    for c in &mut children {
        let _ = c.start_kill();
    }
    for c in &mut children {
        let _ = c.wait().await;
    }
    let last_seqs = result?;

    // Compare the ledger with the plan, play by play.
    let (planned, delivered, missing, unexpected) = {
        let store = store.clone();
        let shared = handle.shared.clone();
        let (from, to) = (opts.from, opts.to);
        let only = screens.clone();
        tokio::task::spawn_blocking(move || compare(&store, &shared.ledger, from, to, &only))
            .await??
    };
    let total_seq: u64 = last_seqs.values().sum();
    tracing::info!(planned, delivered, total_seq, "simulation finished");
    let outcome = SimOutcome {
        store,
        ledger_equals_plan: missing == 0 && unexpected == 0,
        missing,
        unexpected,
        planned,
        delivered,
        elapsed: started.elapsed(),
        http_addr: handle.http_addr,
    };
    if opts.keep_running {
        println!(
            "server and dashboard at http://{} (Ctrl-C to stop)",
            handle.http_addr
        );
        demo_logins(&handle.shared.store, &opts.data_dir)?;
        shutdown.cancelled().await;
    }
    server_shutdown.cancel();
    handle.wait().await;
    Ok(outcome)
}

/// Warm-up, the lock-step clock, and the final drain. Returns each screen's last seq.
async fn drive(
    opts: &SimOptions,
    handle: &app::Handle,
    target: &MqttTarget,
    topics: &Topics,
    screens: &[String],
    shutdown: &CancellationToken,
) -> anyhow::Result<HashMap<String, u64>> {
    let (client, mut events) = AsyncClient::new(
        app::mqtt_options(
            &format!("signage-server-sim-{}", std::process::id()),
            target,
            &crate::broker_auth::ServerLogin::load(handle.shared.store.dir())?,
        ),
        4096,
    );
    let (tx, mut ready_rx) = mpsc::unbounded_channel::<SimReady>();
    let ready_topic = format!("{}/sim/ready/+", topics.prefix());
    let clock_topic = format!("{}/sim/clock", topics.prefix());
    let (sub_tx, mut sub_rx) = mpsc::channel::<()>(1);
    {
        let client = client.clone();
        tokio::spawn(async move {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = client
                            .subscribe(ready_topic.clone(), QoS::AtLeastOnce)
                            .await;
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = sub_tx.try_send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if let Ok(r) = serde_json::from_slice::<SimReady>(&p.payload) {
                            let _ = tx.send(r);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
    }
    sub_rx.recv().await;

    // Warm-up: every agent online with the published schedule and all its media.
    let deadline = Instant::now()
        + Duration::from_secs(
            std::env::var("SIGNAGE_WARMUP_SECS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(180),
        );
    let warmup_started = Instant::now();
    loop {
        // Re-read: the server publishes (and records versions) asynchronously on connect.
        let expected: HashMap<String, u64> = {
            let shared = handle.shared.clone();
            tokio::task::spawn_blocking(move || shared.store.published())
                .await??
                .into_iter()
                .map(|(k, p)| (k, p.version))
                .collect()
        };
        let waiting: Vec<String> = {
            let fleet = handle.shared.fleet.lock().expect("fleet lock");
            screens
                .iter()
                .filter(|s| {
                    !fleet.get(*s).is_some_and(|st| {
                        st.online
                            && st.media_ready
                            && st.schedule_version == expected.get(*s).copied()
                    })
                })
                .cloned()
                .collect()
        };
        if waiting.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            let fleet = handle.shared.fleet.lock().expect("fleet lock");
            let detail: Vec<String> = waiting
                .iter()
                .map(|s| match fleet.get(s) {
                    None => format!("{s} (no status received)"),
                    Some(st) => format!(
                        "{s} (online {}, schedule {:?} of {:?}, media ready {})",
                        st.online,
                        st.schedule_version,
                        expected.get(s),
                        st.media_ready
                    ),
                })
                .collect();
            anyhow::bail!(
                "agents not ready after {} s: {}",
                warmup_started.elapsed().as_secs(),
                detail.join(", ")
            );
        }
        tokio::select! {
            _ = shutdown.cancelled() => anyhow::bail!("interrupted"),
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    tracing::info!(
        agents = screens.len(),
        "agents warmed up; starting the clock"
    );

    let real_start = Instant::now();
    // How far one step may move the horizon: five minutes, or less when pacing to --speed.
    let chunk = match opts.speed {
        Some(speed) => {
            chrono::Duration::milliseconds((speed * 250.0).clamp(1_000.0, 300_000.0) as i64)
        }
        None => chrono::Duration::minutes(5),
    };
    let mut now = opts.from;
    let mut step = 0u64;
    let mut last_seq: HashMap<String, u64> = HashMap::new();
    loop {
        step += 1;
        let msg = serde_json::to_vec(&SimClock { v: 1, step, now })?;
        client
            .publish(clock_topic.clone(), QoS::AtLeastOnce, true, msg)
            .await?;
        let mut next: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
        let step_deadline = Instant::now() + Duration::from_secs(60);
        while next.len() < screens.len() {
            let r = tokio::select! {
                _ = shutdown.cancelled() => anyhow::bail!("interrupted"),
                r = tokio::time::timeout_at(step_deadline.into(), ready_rx.recv()) => r,
            };
            match r {
                Ok(Some(r)) if r.v == 1 && r.step == step => {
                    if let Some(s) = r.last_seq {
                        last_seq.insert(r.screen_id.clone(), s);
                    }
                    next.insert(r.screen_id, r.next);
                }
                Ok(Some(_)) => {}
                Ok(None) => anyhow::bail!("simulation clock channel closed"),
                Err(_) => {
                    let missing: Vec<&String> =
                        screens.iter().filter(|s| !next.contains_key(*s)).collect();
                    anyhow::bail!(
                        "agents did not finish step {step} ({now}) within 60 s: {missing:?}"
                    );
                }
            }
        }
        if now >= opts.to {
            break;
        }
        // Every agent is blocked beyond `now`: grant the next horizon. Agents walk their own
        // slot boundaries up to it, so a chunk of several slots costs one round trip.
        let earliest = next.values().min().copied().unwrap_or(opts.to);
        now = earliest.max(now + chunk).min(opts.to);
        if let Some(speed) = opts.speed {
            let virtual_elapsed = (now - opts.from).num_milliseconds().max(0) as f64 / 1000.0;
            let due = real_start + Duration::from_secs_f64(virtual_elapsed / speed.max(1e-9));
            tokio::time::sleep_until(due.into()).await;
        }
    }
    tracing::info!(
        steps = step,
        seconds = real_start.elapsed().as_secs_f64(),
        "clock reached the end of the window"
    );

    // Drain: wait until the ledger holds every record the agents wrote.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let counts = {
            let shared = handle.shared.clone();
            tokio::task::spawn_blocking(move || shared.ledger.counts()).await??
        };
        let behind: Vec<&String> = screens
            .iter()
            .filter(|s| {
                last_seq.get(*s).copied().unwrap_or(0)
                    > counts.last_seq.get(*s).copied().unwrap_or(0)
            })
            .collect();
        if behind.is_empty() {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "proof of play still unacknowledged after 300 s for {behind:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = client
        .publish(clock_topic, QoS::AtLeastOnce, true, Vec::new())
        .await;
    let _ = client.disconnect().await;
    Ok(last_seq)
}

/// (planned, delivered, missing, unexpected): the ledger against the plan, play by play.
pub fn compare(
    store: &SharedStore,
    ledger: &std::sync::Arc<dyn LedgerStore>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    screens: &[String],
) -> anyhow::Result<(u64, u64, u64, u64)> {
    use std::collections::HashSet;
    let catalogue = crate::catalogue::build(&*store.snapshot()?)?;
    let mut plan: HashSet<(String, i64, String, String)> = HashSet::new();
    for s in crate::plan::schedules(&catalogue, screens)? {
        let planner = playlists::Planner::new(&s);
        for p in planner.plan_range(from, to) {
            plan.insert((
                s.screen.id.to_string(),
                planner.slot_start(p.slot).timestamp(),
                s.campaigns[p.campaign].id.to_string(),
                s.creatives[p.creative].id.to_string(),
            ));
        }
    }
    let planned = plan.len() as u64;
    let mut delivered = 0u64;
    let mut unexpected = 0u64;
    let q = crate::ledger::Query {
        from: None,
        to: None,
        dimension: crate::ledger::Dimension::Screen,
        venue: None,
        screen: None,
    };
    ledger.plays(&q, &mut |r| {
        delivered += 1;
        let key = (
            r.screen_id.clone(),
            r.slot_start.timestamp(),
            r.campaign_id.clone(),
            r.creative_id.clone(),
        );
        if r.status != playlists::wire::PlayStatus::Complete || !plan.remove(&key) {
            unexpected += 1;
        }
        Ok(())
    })?;
    Ok((planned, delivered, plan.len() as u64, unexpected))
}

/// Gives the kept-running demo its people (one per role, and the admin a password), writes
/// their logins to `DATA_DIR/demo-logins.txt` (0600) and prints them.
fn demo_logins(store: &SharedStore, dir: &Path) -> anyhow::Result<()> {
    let file = dir.join("demo-logins.txt");
    crate::auth::demo_people(&**store, |made| {
        let mut text = String::from("# name role password (dashboard logins of the demo)\n");
        for (name, role, password) in made {
            text.push_str(&format!("{name} {role} {password}\n"));
        }
        crate::cli::write_private(&file, &text)
    })?;
    match std::fs::read_to_string(&file) {
        Ok(text) => print!("dashboard logins ({}):\n{text}", file.display()),
        Err(_) => println!("dashboard logins: the store's users were made earlier"),
    }
    Ok(())
}
