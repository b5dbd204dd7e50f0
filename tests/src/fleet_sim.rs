//! The fleet simulator: a generated city of N screens on a real server (redb store, HTTP
//! API, embedded broker), and N real agents in this one process (`agent::fleet`: the
//! agent library's own code, each with its MQTT connection, key, broker password, redb
//! outbox and headless player; one shared media cache), all on one scaled timeline. In
//! the fd-light mode ([`SimOptions::fd_light`]) the broker is a Mosquitto process and the
//! outboxes live in memory, so the process holds one descriptor per agent.
//!
//! [`run`] measures, in this order (see `README.md`, "Fleet simulator"):
//! - **connect storm**: from starting every agent at once until every agent holds the
//!   version the server published for its screen (read from each agent's own schedule
//!   watch) and the server holds an online status from every screen;
//! - **campaign edit**: a campaign for the district with most screens, created through
//!   the HTTP API; for every screen whose published version rose, the time from sending
//!   the request until its agent held that version (p50, p99, max);
//! - **emergency**: an all-city emergency started through the API; the time until the
//!   server answered; for every screen it names, the time from sending the request until
//!   its agent took the command (signature checked), until it held the emergency (its
//!   schedule watch names the campaign), and until its player began a play of the
//!   emergency campaign (p50, p99, max);
//! - **proof of play**: the ledger's records per second over the run, against the
//!   agents' plays per second; and the lag: at one instant each agent's last finished seq
//!   is noted, and for each screen the time until the ledger held it (p50, p99, max).
//!
//! Then it stops the fleet and checks, per screen, that the ledger holds seqs 1..=k once
//! each and that k plus what the agent's outbox still holds is every seq it wrote
//! (`check.rs`).

mod check;
mod deliver;
mod figures;
mod ingest;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde_json::json;

use agent::fleet::{Fleet, FleetOptions, Member, Outboxes};
use server::app;
use server::catalogue::CatalogueService;
use server::clock::ServerClock;
use server::generate::GenerateOptions;
use server::import::ImportOptions;
use server::store::{OpenMode, SharedStore};

pub use check::{ledger_against_outboxes, LedgerCheck};
pub use deliver::{deliver, Delivery};
pub use figures::{Figures, Spread};

/// The campaign the edit creates, and the emergency.
pub const CAMPAIGN: &str = "fleet-sim-edit";
pub const EMERGENCY: &str = "fleet-sim-alert";
/// A creative of the Beijing scenario for the edit, and the emergency's (landscape and
/// portrait: each screen takes the one that fits it).
const CREATIVE: &str = "alert-epidemic-l";
const EMERGENCY_CREATIVES: [&str; 2] = ["alert-epidemic-l", "alert-epidemic-p"];

/// How big and how fast.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub screens: usize,
    pub venues: usize,
    pub seed: u64,
    /// Virtual time at the start (noon on a weekday: every venue is open).
    pub start: DateTime<Utc>,
    /// Virtual seconds per real second.
    pub speed: f64,
    /// How long agents play after the emergency before ingest is measured (real time).
    pub play_for: Duration,
    /// How long any one phase may take before the run fails.
    pub phase_limit: Duration,
    /// The fd-light mode: the broker is a Mosquitto process (with the server's broker
    /// logins and ACL, as `signage broker mosquitto-config` writes them) instead of the
    /// embedded one, and the agents' outboxes live in memory, so this process holds one
    /// socket per agent instead of three descriptors (its socket, the embedded broker's
    /// end of it, its outbox file): 11,000 agents fit the 20,000-descriptor limit.
    pub fd_light: bool,
}

/// Above this many screens, [`SimOptions::new`] picks the fd-light mode.
pub const FD_LIGHT_ABOVE: usize = 5_000;

impl SimOptions {
    pub fn new(screens: usize) -> SimOptions {
        SimOptions {
            screens,
            // The shape of the fleet page bench: 11,000 screens at 3,000 venues.
            venues: (screens * 3 / 11).max(30),
            seed: 1,
            start: DateTime::parse_from_rfc3339("2023-12-20T12:00:00+08:00")
                .expect("a valid time")
                .with_timezone(&Utc),
            speed: 2.0,
            play_for: Duration::from_secs(20),
            phase_limit: Duration::from_secs(
                std::env::var("FLEET_PHASE_LIMIT_S")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(300),
            ),
            fd_light: fd_light(screens, std::env::var("FLEET_FD_LIGHT").ok().as_deref()),
        }
    }
}

/// Whether to run fd-light: `FLEET_FD_LIGHT` (`1` or `0`) when set, otherwise above
/// [`FD_LIGHT_ABOVE`] screens.
fn fd_light(screens: usize, env: Option<&str>) -> bool {
    match env.map(str::trim) {
        Some("1") | Some("true") | Some("yes") => true,
        Some("0") | Some("false") | Some("no") => false,
        _ => screens > FD_LIGHT_ABOVE,
    }
}

/// A server with a generated city and a key and broker password for every screen.
struct City {
    tmp: tempfile::TempDir,
    store: SharedStore,
    handle: app::Handle,
    shutdown: tokio_util::sync::CancellationToken,
    anchor_ms: i64,
    members: Vec<Member>,
    /// The broker process of the fd-light mode (`None`: the embedded broker).
    mosquitto: Option<crate::Mosquitto>,
}

/// Prints a line to stderr with the elapsed time (progress of a long run).
fn note(t0: Instant, what: impl std::fmt::Display) {
    eprintln!("[fleet-sim {:>7.1} s] {what}", t0.elapsed().as_secs_f64());
}

async fn city(opts: &SimOptions, t0: Instant, figures: &mut Figures) -> anyhow::Result<City> {
    let tmp = tempfile::tempdir()?;
    let scenario = tmp.path().join("scenario");
    server::generate::generate(
        &crate::beijing(),
        &scenario,
        &GenerateOptions {
            venues: opts.venues,
            screens: opts.screens,
            seed: opts.seed,
        },
    )?;
    let store = server::store::open(&tmp.path().join("server"), OpenMode::Create)?;
    server::import::import(
        &CatalogueService::new(store.clone()),
        &scenario,
        &ImportOptions::admin(),
    )?;
    note(
        t0,
        format!("generated and imported {} screens", opts.screens),
    );

    let anchor_ms = Utc::now().timestamp_millis();
    let clock = ServerClock::Scaled {
        start: opts.start,
        anchor: DateTime::from_timestamp_millis(anchor_ms).context("anchor")?,
        speed: opts.speed,
    };
    let options = app::Options {
        clock,
        // The edit measured is the live path (publish to agents), not a second person's
        // approval.
        approval: server::approval::ApprovalMode::Off,
        ..app::Options::default()
    };
    let crate::inproc::InProcess {
        handle,
        broker_port: port,
        shutdown,
    } = if opts.fd_light {
        // Mosquitto starts after provisioning (its password file lists every screen);
        // the server retries until it is up.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        crate::inproc::start_with_broker(store.clone(), options, port).await?
    } else {
        crate::inproc::start(store.clone(), options).await?
    };

    // Provisioning as `signage screens provision` does it (a key and a broker password
    // per screen, registered in one transaction each), without re-reading the catalogue
    // per screen.
    let t = Instant::now();
    let ids: Vec<String> = CatalogueService::new(store.clone())
        .catalogue()?
        .screens
        .iter()
        .map(|s| s.id.to_string())
        .collect();
    let server_key = server::keys::server_key(store.dir())?;
    let mqtt_url = format!("mqtt://127.0.0.1:{port}");
    let http_url = format!("http://{}", handle.http_addr);
    let mut members = Vec::with_capacity(ids.len());
    for id in &ids {
        let key = server::keys::generate()?;
        let password = server::broker_auth::new_password()?;
        let hash = server::broker_auth::PasswordHash::new(&password)?.to_string();
        store.add_screen_credentials(id, &key.public_hex(), &hash, Utc::now())?;
        let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
        // The shared cache holds everything: a horizon of an hour spares each agent the
        // planning of a week ahead at start (it still plans each day it plays).
        let text = format!(
            "screen_id = {}\nmqtt_url = {}\nserver_url = {}\nserver_public_key = {}\n\
             screen_secret_key = {}\nmqtt_password = {}\n[cache]\nprefetch_hours = 1\n",
            quote(id),
            quote(&mqtt_url),
            quote(&http_url),
            quote(&server_key.public_hex()),
            quote(&key.secret_hex()),
            quote(&password),
        );
        members.push(Member {
            config: agent::AgentConfig::from_toml_str(&text)?,
            data_dir: tmp.path().join("agents").join(id),
        });
    }
    figures.provision = t.elapsed();
    note(t0, format!("provisioned {} screens", members.len()));
    let mosquitto = if opts.fd_light {
        let m = mosquitto(&store, &tmp.path().join("mosquitto"), port)?;
        note(t0, format!("Mosquitto (pid {}) on port {port}", m.pid()));
        Some(m)
    } else {
        None
    };
    Ok(City {
        tmp,
        store,
        handle,
        shutdown,
        anchor_ms,
        members,
        mosquitto,
    })
}

/// Starts Mosquitto on `port` with the files `signage broker mosquitto-config` writes from
/// `store` (the server's login, each screen's stored hash, the ACL), in `dir`.
fn mosquitto(store: &SharedStore, dir: &Path, port: u16) -> anyhow::Result<crate::Mosquitto> {
    std::fs::create_dir_all(dir)?;
    let secret = server::broker_auth::server_secret(store.dir())?;
    // The prefix of `Topics::default()`, which the in-process server uses.
    let files = server::mosquitto::files(
        dir,
        port,
        "signage/v1",
        &server::broker_auth::PasswordHash::new(&secret)?,
        &store.broker_logins()?,
    );
    for (name, text) in [
        (server::mosquitto::PASSWD, &files.passwd),
        (server::mosquitto::ACL, &files.acl),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    }
    // Not `log_type all`: at fleet size that is a line per message.
    Ok(crate::Mosquitto::start_config_logging(
        &files.conf,
        port,
        &["error", "warning", "notice", "information"],
    ))
}

/// Polls `f` every 100 ms until it returns how many of how many are done with all done;
/// fails with `what` and that count after `limit`.
async fn until(
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> anyhow::Result<(usize, usize)>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let (done, of) = f()?;
        if done == of {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {done} of {of} after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts the all-city emergency [`EMERGENCY`] through the API as `admin`: the answer and
/// the screens it names.
async fn start_emergency(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
) -> anyhow::Result<(serde_json::Value, Vec<String>)> {
    let (status, body) = crate::send_json(
        http.post(format!("{base}/emergencies"))
            .bearer_auth(admin)
            .json(&json!({"id": EMERGENCY, "name": "Fleet simulator alert",
                          "creatives": EMERGENCY_CREATIVES, "target": {}})),
    )
    .await;
    anyhow::ensure!(status == 201, "starting the emergency: {status} {body}");
    let targeted =
        serde_json::from_value(body["screens"].clone()).context("the emergency's screens")?;
    Ok((body, targeted))
}

/// Published version per screen.
fn published(store: &SharedStore) -> anyhow::Result<BTreeMap<String, u64>> {
    Ok(store
        .published()?
        .into_iter()
        .map(|(k, v)| (k, v.version))
        .collect())
}

/// Runs the whole simulation and returns its figures and the ledger check.
pub async fn run(opts: &SimOptions) -> anyhow::Result<(Figures, LedgerCheck)> {
    let t0 = Instant::now();
    let mut figures = Figures {
        screens: opts.screens,
        speed: opts.speed,
        fd_light: opts.fd_light,
        ..Figures::default()
    };
    let City {
        tmp,
        store,
        handle,
        shutdown,
        anchor_ms,
        members,
        mosquitto,
    } = city(opts, t0, &mut figures).await?;
    let broker_pid = mosquitto.as_ref().map(crate::Mosquitto::pid);
    let shared = handle.shared.clone();
    let admin = std::fs::read_to_string(store.dir().join(server::admin::FILE))?
        .trim()
        .to_owned();
    let base = format!("http://{}/api/v1", handle.http_addr);
    let http = reqwest::Client::new();

    // The connect storm.
    let rss_before = figures::rss_bytes();
    let scaled = agent::clock::Scaled::new(opts.start, anchor_ms, opts.speed)?;
    let t_storm = Instant::now();
    let count = members.len();
    let fleet = Fleet::start_with(
        members,
        FleetOptions {
            cache_dir: tmp.path().join("fleet-cache"),
            cache_max_bytes: 8 << 30,
            scaled: Some(scaled),
            durability: agent::Durability::Relaxed,
        },
        if opts.fd_light {
            Outboxes::Memory
        } else {
            Outboxes::Files
        },
    )
    .await?;
    until("every agent to hold its schedule", opts.phase_limit, || {
        dead(&fleet)?;
        let want = published(&store)?;
        let held = fleet
            .screens
            .iter()
            .zip(&fleet.observed)
            .filter(|(s, o)| o.version().is_some() && o.version() == want.get(*s).copied())
            .count();
        let online = {
            let map = shared.fleet.lock().expect("fleet map");
            fleet
                .screens
                .iter()
                .filter(|s| map.get(*s).is_some_and(|st| st.online))
                .count()
        };
        Ok((held.min(online), count))
    })
    .await?;
    figures.connect_storm = t_storm.elapsed();
    figures.rss_per_agent =
        figures::rss_bytes().saturating_sub(rss_before) as f64 / count.max(1) as f64;
    figures.fds = figures::open_fds();
    figures.broker_rss = broker_pid.and_then(|p| figures::proc_status_bytes(p, "VmRSS"));
    note(
        t0,
        format!("{count} agents connected and holding their schedule"),
    );

    // A campaign edit for one district.
    let catalogue = shared.catalogue.catalogue()?;
    let mut by_district: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in &catalogue.screens {
        if let Some(d) = catalogue.venue(&s.venue).and_then(|v| v.district.clone()) {
            by_district.entry(d).or_default().insert(s.id.to_string());
        }
    }
    let (district, in_district) = by_district
        .into_iter()
        .max_by_key(|(_, s)| s.len())
        .context("no districts")?;
    let before = published(&store)?;
    let day = opts.start.format("%Y-%m-%d").to_string();
    let campaign = json!({
        "id": CAMPAIGN, "name": "Fleet simulator edit", "priority": "high", "weight": 1,
        "flight": {"start": format!("{day}T00:00:00+08:00"), "end": "2099-01-01T00:00:00+08:00"},
        "dayparts": ["* * * * *"], "target": {"districts": [district]},
        "creatives": [CREATIVE]
    });
    let t_edit = Instant::now();
    let (status, body) = crate::send_json(
        http.post(format!("{base}/campaigns"))
            .bearer_auth(&admin)
            .json(&campaign),
    )
    .await;
    anyhow::ensure!(status == 201, "creating the campaign: {status} {body}");
    note(
        t0,
        format!("campaign created in {district}: {}", body["state"]),
    );
    let index: BTreeMap<&str, usize> = fleet
        .screens
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    // The server publishes after answering: the targets are the screens whose published
    // version rose, read until every one of them is applied and none more rose (the
    // publisher sends a change's documents in one pass, before any agent holds them).
    let changed = |store: &SharedStore| -> anyhow::Result<BTreeMap<String, u64>> {
        Ok(published(store)?
            .into_iter()
            .filter(|(s, v)| before.get(s).is_none_or(|b| b < v))
            .collect())
    };
    let mut edited = BTreeMap::new();
    until(
        "every targeted agent to apply the edit",
        opts.phase_limit,
        || {
            dead(&fleet)?;
            edited = changed(&store)?;
            let applied = edited
                .iter()
                .filter(|(s, v)| {
                    index
                        .get(s.as_str())
                        .is_some_and(|&i| fleet.observed[i].first_holding(**v).is_some())
                })
                .count();
            // Nothing published yet counts as not done.
            Ok((applied, edited.len().max(1)))
        },
    )
    .await?;
    figures.edit_targets = edited.len();
    figures.edit_district = (district.clone(), in_district.len());
    figures.edit_outside = edited.keys().filter(|s| !in_district.contains(*s)).count();
    figures.edit = Spread::of(edited.iter().map(|(s, v)| {
        let at = fleet.observed[index[s.as_str()]]
            .first_holding(*v)
            .expect("checked above");
        at.saturating_duration_since(t_edit)
    }));
    note(
        t0,
        format!("the edit reached {} agents: {}", edited.len(), figures.edit),
    );
    // Beside the hook: each agent's own signed status, as the server holds it, names the
    // new version.
    until(
        "every edited screen's status to name its new version",
        opts.phase_limit,
        || {
            let map = shared.fleet.lock().expect("fleet map");
            let confirmed = edited
                .iter()
                .filter(|(s, v)| {
                    map.get(*s)
                        .is_some_and(|st| st.schedule_version.is_some_and(|h| h >= **v))
                })
                .count();
            figures.edit_status_confirmed = confirmed;
            Ok((confirmed, edited.len()))
        },
    )
    .await?;

    // An all-city emergency.
    let t_emergency = Instant::now();
    let (body, targeted) = start_emergency(&http, &base, &admin).await?;
    figures.emergency_answer = t_emergency.elapsed();
    figures.emergency_targets = targeted.len();
    note(
        t0,
        format!(
            "emergency started for {} screens ({}); {} plays so far",
            targeted.len(),
            body["emergency"]["state"],
            fleet.observed.iter().map(|o| o.plays()).sum::<usize>()
        ),
    );
    until(
        "every targeted screen to play the emergency",
        opts.phase_limit,
        || {
            dead(&fleet)?;
            let played = targeted
                .iter()
                .filter(|s| {
                    index.get(s.as_str()).is_some_and(|&i| {
                        fleet.observed[i]
                            .first_play_of(EMERGENCY, t_emergency)
                            .is_some()
                    })
                })
                .count();
            Ok((played, targeted.len()))
        },
    )
    .await?;
    figures.emergency_delivered = Spread::of(targeted.iter().map(|s| {
        let seen = &fleet.observed[index[s.as_str()]];
        // Every targeted agent played it, so it took its command or its document first.
        seen.first_command_since(t_emergency)
            .or_else(|| seen.first_holding_campaign(EMERGENCY))
            .or_else(|| seen.first_play_of(EMERGENCY, t_emergency))
            .expect("checked above")
            .saturating_duration_since(t_emergency)
    }));
    figures.emergency_held = Spread::of(targeted.iter().map(|s| {
        let seen = &fleet.observed[index[s.as_str()]];
        // A screen that played it held it; one seen only through its play counts then.
        seen.first_holding_campaign(EMERGENCY)
            .or_else(|| seen.first_play_of(EMERGENCY, t_emergency))
            .expect("checked above")
            .saturating_duration_since(t_emergency)
    }));
    figures.emergency = Spread::of(targeted.iter().map(|s| {
        fleet.observed[index[s.as_str()]]
            .first_play_of(EMERGENCY, t_emergency)
            .expect("checked above")
            .saturating_duration_since(t_emergency)
    }));
    note(
        t0,
        format!(
            "the emergency played on {} screens: {}",
            targeted.len(),
            figures.emergency
        ),
    );
    let (status, body) = crate::send_json(
        http.post(format!("{base}/emergencies/{EMERGENCY}/end"))
            .bearer_auth(&admin),
    )
    .await;
    anyhow::ensure!(status == 200, "ending the emergency: {status} {body}");

    // Proof of play: rate and lag over a window of playing.
    let ledger = shared.ledger.clone();
    let measured = ingest::measure(&fleet, &*ledger, opts.play_for).await?;
    dead(&fleet)?;
    figures.ingest_rate = measured.rate;
    figures.play_rate = measured.plays;
    figures.ingest_lag = measured.lag;
    figures.ingest_pending = measured.pending;
    figures.plays = fleet.observed.iter().map(|o| o.plays()).sum();
    figures.fds = figures.fds.max(figures::open_fds());
    figures.rss_end = figures::rss_bytes();
    figures.broker_peak = broker_pid.and_then(|p| figures::proc_status_bytes(p, "VmHWM"));
    note(t0, "ingest measured; stopping the fleet");

    let observed = fleet.observed.clone();
    let screens = fleet.screens.clone();
    let errors = fleet.stop().await;
    anyhow::ensure!(
        errors.is_empty(),
        "agents failed: {:?}",
        &errors[..errors.len().min(5)]
    );
    let check = check::ledger_against_outboxes(&*ledger, &screens, &observed)?;
    figures.ledger_records = check.records;
    shutdown.cancel();
    handle.wait().await;
    drop(mosquitto);
    note(t0, "done");
    drop(tmp);
    Ok((figures, check))
}

/// Fails if an agent stopped on its own.
fn dead(fleet: &Fleet) -> anyhow::Result<()> {
    let exited = fleet.exited();
    anyhow::ensure!(
        exited.is_empty(),
        "{} agents stopped: {:?}",
        exited.len(),
        &exited[..exited.len().min(5)]
    );
    Ok(())
}
