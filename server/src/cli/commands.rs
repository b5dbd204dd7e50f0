//! The bodies of the long-running and composite commands: simulate, demo, serve, bench.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Utc};

use super::shutdown_token;
use crate::ledger::Dimension;
use crate::report::{ReportRow, Window};

/// Planned against delivered per venue over the simulated window.
fn venue_rows(outcome: &crate::sim::SimOutcome) -> anyhow::Result<Vec<ReportRow>> {
    let ledger = outcome.store.ledger();
    crate::report::rows(
        &*outcome.store,
        &*ledger,
        Dimension::Venue,
        &Window::default(),
        None,
    )
}

pub(super) async fn simulate(
    scenario: PathBuf,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    data_dir: PathBuf,
    speed: Option<f64>,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(from < to, "--from must be before --to");
    let mut opts =
        crate::sim::SimOptions::new(scenario, from, to, data_dir, crate::sim::agent_binary()?);
    opts.speed = speed;
    let outcome = crate::sim::simulate(opts, shutdown_token()).await?;
    let mut by_type: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for r in venue_rows(&outcome)? {
        let e = by_type.entry(r.detail).or_default();
        e.0 += r.planned;
        e.1 += r.delivered;
    }
    println!("{:<40} {:>9} {:>9}", "venue_type", "planned", "delivered");
    for (t, (p, d)) in &by_type {
        println!("{t:<40} {p:>9} {d:>9}");
    }
    Ok(sim_verdict(&outcome))
}

pub(super) fn sim_verdict(outcome: &crate::sim::SimOutcome) -> ExitCode {
    println!(
        "planned {} plays, ledger holds {}; {} in {:.1} s",
        outcome.planned,
        outcome.delivered,
        if outcome.ledger_equals_plan {
            "the ledger equals the plan, play by play".to_owned()
        } else {
            format!(
                "MISMATCH: {} planned plays missing, {} unexpected records",
                outcome.missing, outcome.unexpected
            )
        },
        outcome.elapsed.as_secs_f64()
    );
    if outcome.ledger_equals_plan {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Writes a private file (mode 0600) whole or not at all: a temporary file beside it,
/// fsynced, then renamed over it.
/// Fails, naming `path`, unless a file can be created beside it (where
/// [`write_private`] writes first); leaves nothing behind.
pub(super) fn check_writable(path: &Path) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    let _ = std::fs::remove_file(&tmp);
    Ok(())
}

pub(crate) fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let err = |e: std::io::Error| anyhow::anyhow!("cannot write {}: {e}", path.display());
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(&tmp).map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)?;
    Ok(())
}

pub(super) async fn demo(
    scenario: PathBuf,
    data_dir: Option<PathBuf>,
    keep_running: bool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    speed: Option<f64>,
) -> anyhow::Result<ExitCode> {
    let temp;
    let data_dir = match data_dir {
        Some(d) => d,
        None => {
            temp = tempfile_dir()?;
            temp.clone()
        }
    };
    println!(
        "signage demo: Beijing Role Models, {} to {}, data in {}",
        from.to_rfc3339(),
        to.to_rfc3339(),
        data_dir.display()
    );
    let mut opts = crate::sim::SimOptions::new(
        scenario,
        from,
        to,
        data_dir.clone(),
        crate::sim::agent_binary()?,
    );
    opts.speed = speed;
    opts.keep_running = keep_running;
    let outcome = crate::sim::simulate(opts, shutdown_token()).await?;
    let rows = venue_rows(&outcome)?;
    let mut out = std::io::stdout().lock();
    crate::report::write_rows(
        Dimension::Venue,
        &rows,
        crate::report::Format::Table,
        &mut out,
    )?;
    let code = sim_verdict(&outcome);
    println!(
        "reports: signage report venues --data-dir {}",
        data_dir.display()
    );
    Ok(code)
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let base = std::env::temp_dir().join(format!(
        "signage-demo-{}-{}",
        std::process::id(),
        Utc::now().timestamp()
    ));
    std::fs::create_dir_all(&base)?;
    Ok(base)
}

pub(super) async fn serve(
    data_dir: &Path,
    config: Option<&Path>,
    flags: crate::config::Flags,
) -> anyhow::Result<ExitCode> {
    let config = crate::config::Config::load_with(config, flags)?;
    // Opened off the runtime, as every store call (a PostgreSQL store blocks on its own).
    let store = {
        let (dir, url) = (data_dir.to_owned(), config.store.clone());
        tokio::task::spawn_blocking(move || {
            crate::store::open_in(
                &dir,
                url.as_ref().map(crate::config::StoreUrl::expose),
                crate::store::OpenMode::Create,
            )
        })
        .await??
    };
    if let Some(url) = &config.store {
        tracing::info!(store = ?url, data_dir = %data_dir.display(), "state in PostgreSQL");
    }
    let shutdown = shutdown_token();
    let (host, port, mqtt_tls) = match &config.mqtt_url {
        Some(url) => {
            let (host, port) =
                crate::broker::parse_mqtt_url(url).map_err(|e| anyhow::anyhow!(e))?;
            let tls = if crate::broker::is_tls_url(url) {
                let pem = match &config.mqtt_ca_file {
                    Some(f) => Some(
                        std::fs::read_to_string(f)
                            .map_err(|e| anyhow::anyhow!("mqtt_ca_file {}: {e}", f.display()))?,
                    ),
                    None => None,
                };
                Some(crate::tls::client_config(pem.as_deref()).map_err(|e| {
                    anyhow::anyhow!(
                        "mqtts:// trust ({}): {e}",
                        match &config.mqtt_ca_file {
                            Some(f) => f.display().to_string(),
                            None => "system roots".into(),
                        }
                    )
                })?)
            } else {
                None
            };
            (host, port, tls)
        }
        None => {
            let logins = crate::broker::Logins::of(&store)?;
            let broker = crate::broker::start(Some(config.embedded_broker), logins).await?;
            tracing::info!(addr = %broker.addr, "embedded MQTT broker running");
            (broker.addr.ip().to_string(), broker.addr.port(), None)
        }
    };
    let names = crate::tls::certificate_names(config.http, &config.tls_names);
    let tls = crate::tls::server_tls(&config.tls, store.dir(), &names)?;
    let listener = tokio::net::TcpListener::bind(config.http).await?;
    // rumqttd 0.20's shared subscriptions reorder and drop messages under load: the
    // embedded broker serves one server, so it subscribes plainly.
    let shared_subscription = config.shared_subscription && config.mqtt_url.is_some();
    let target = crate::app::MqttTarget {
        host,
        port,
        shared_subscription,
        tls: mqtt_tls,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let liveness = daemon::Liveness::default();
    let options = crate::app::Options {
        liveness: liveness.clone(),
        schedule_ttl: config.schedule_ttl(),
        approval: config.approval,
        emergency_confirm: config.emergency_confirm(),
        tls,
        dark_after: chrono::TimeDelta::minutes(i64::from(config.dark_alert_minutes)),
        media: config.media.policy()?,
        ledger_retention: (config.ledger.raw_retention_days > 0).then(|| {
            let dir = config.ledger.archive_dir.clone();
            let dir = dir.unwrap_or_else(|| store.dir().join("archive"));
            (config.ledger.raw_retention_days, dir)
        }),
        ingest: config.pop_source()?,
        ..crate::app::Options::default()
    };
    let handle = crate::app::start_with(
        store,
        target,
        listener,
        playlists::wire::Topics::new(&config.topic_prefix),
        options,
        shutdown.clone(),
    )
    .await?;
    tracing::info!(http = %handle.http_addr, scheme, "signage server running");
    // Listening and the store open: systemd may start what depends on us.
    daemon::ready();
    let watchdog = daemon::spawn_watchdog(&liveness, &shutdown);
    let token_file = handle.shared.store.dir().join(crate::admin::FILE);
    println!(
        "signage server: {scheme}://{} (Ctrl-C to stop)",
        handle.http_addr
    );
    if scheme == "https" && matches!(config.tls, crate::tls::TlsMode::SelfSigned) {
        println!(
            "CA to pin (--ca-file, agents' server_ca_pem): {}",
            handle
                .shared
                .store
                .dir()
                .join(crate::tls::DIR)
                .join(crate::tls::CA_FILE)
                .display()
        );
    }
    if token_file.exists() {
        println!(
            "API token of the first admin (every role): {}",
            token_file.display()
        );
    }
    shutdown.cancelled().await;
    daemon::stopping();
    if let Some(w) = watchdog {
        w.abort();
    }
    handle.wait().await;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn bench_plan(
    scenario: &Path,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    runs: u32,
) -> anyhow::Result<ExitCode> {
    let loaded = crate::import::load(scenario)?;
    let schedules = crate::plan::schedules(&loaded.scenario.catalogue, &[])?;
    let slots: i64 = schedules
        .iter()
        .map(|s| (to - from).num_seconds() / i64::from(s.screen.slot_seconds))
        .sum();
    let mut best = f64::MAX;
    let mut plays = 0;
    for _ in 0..runs.max(1) {
        let mut sink =
            std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create("/dev/null")?);
        let t = std::time::Instant::now();
        plays = crate::plan::write_plan(&schedules, from, to, crate::plan::Format::Csv, &mut sink)?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "plan bench: {} screens, {slots} slots, {plays} plays, CSV to /dev/null: best of {runs} {best:.3} s = {:.0} slots/s",
        schedules.len(),
        slots as f64 / best
    );
    Ok(ExitCode::SUCCESS)
}
