//! The `signage` command line (design.md, "Command line": stable, scripted against).
//! Each subcommand parses its arguments here and calls into the library.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::ledger::Dimension;
use crate::report::Window;

#[derive(Debug, Parser)]
#[command(
    name = "signage",
    version,
    about = "Schedules public-service ads onto city screens"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the built-in Beijing scenario end to end and prints plays per venue.
    Demo {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        keep_running: bool,
        #[arg(long, default_value = "2023-12-20T06:00:00+08:00", value_parser = parse_time)]
        from: DateTime<Utc>,
        #[arg(long, default_value = "2023-12-20T12:00:00+08:00", value_parser = parse_time)]
        to: DateTime<Utc>,
        /// Virtual seconds per real second at most (default: as fast as the agents go).
        #[arg(long)]
        speed: Option<f64>,
    },
    /// Runs the server: embedded broker unless --mqtt-url, HTTP, store.
    Serve {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        mqtt_url: Option<String>,
        #[arg(long)]
        http: Option<SocketAddr>,
    },
    /// Loads a scenario directory, all or nothing.
    Import {
        dir: PathBuf,
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Screens: provisioning.
    Screens {
        #[command(subcommand)]
        command: ScreensCommand,
    },
    /// The planned plays over a window.
    Plan {
        #[arg(long)]
        scenario: PathBuf,
        #[arg(long, value_parser = parse_time)]
        from: DateTime<Utc>,
        #[arg(long, value_parser = parse_time)]
        to: DateTime<Utc>,
        #[arg(long = "screen")]
        screens: Vec<String>,
        #[arg(long, value_enum, default_value_t = PlanFormat::Csv)]
        format: PlanFormat,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Why a slot plays what it plays.
    Explain {
        #[arg(long)]
        scenario: PathBuf,
        #[arg(long)]
        screen: String,
        #[arg(long, value_parser = parse_time)]
        at: DateTime<Utc>,
    },
    /// The real server and one real agent per screen on a virtual clock.
    Simulate {
        #[arg(long)]
        scenario: PathBuf,
        #[arg(long, value_parser = parse_time)]
        from: DateTime<Utc>,
        #[arg(long, value_parser = parse_time)]
        to: DateTime<Utc>,
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        speed: Option<f64>,
    },
    /// Planned against delivered, and the plays export.
    Report {
        #[arg(value_enum)]
        what: ReportKind,
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, value_parser = parse_time)]
        from: Option<DateTime<Utc>>,
        #[arg(long, value_parser = parse_time)]
        to: Option<DateTime<Utc>>,
        #[arg(long)]
        venue: Option<String>,
        #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
        format: ReportFormat,
    },
    /// Ledger audit.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Benchmarks that print figures.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ScreensCommand {
    /// Writes the agent config (keys included) for a screen.
    Provision {
        id: String,
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
        mqtt_url: String,
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        server_url: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Re-checks every signature and chain in the ledger.
    Verify {
        #[arg(long)]
        data_dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Plans a scenario's window to /dev/null as CSV and prints slots per second.
    Plan {
        #[arg(long, default_value = default_scenario_str())]
        scenario: PathBuf,
        #[arg(long, default_value = "2023-12-17T00:00:00+08:00", value_parser = parse_time)]
        from: DateTime<Utc>,
        #[arg(long, default_value = "2023-12-24T00:00:00+08:00", value_parser = parse_time)]
        to: DateTime<Utc>,
        #[arg(long, default_value_t = 5)]
        runs: u32,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PlanFormat {
    Csv,
    Table,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ReportFormat {
    Csv,
    Json,
    Table,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ReportKind {
    Plays,
    Venues,
    Screens,
    Campaigns,
    Creatives,
}

const fn default_scenario_str() -> &'static str {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scenarios/beijing-role-models"
    )
}

/// The Beijing scenario shipped in this repository.
pub fn default_scenario() -> PathBuf {
    PathBuf::from(default_scenario_str())
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = if matches!(cli.command, Command::Serve { .. }) {
        "info"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        // rumqttd reports every client disconnect as an error; keep it quiet unless asked.
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(format!("{default_level},rumqttd=off"))
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(code) => code,
        // A reader that stopped early (`| head`) is not an error of ours.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || matches!(c.downcast_ref::<crate::ledger::LedgerError>(), Some(crate::ledger::LedgerError::Io(m)) if m.contains("os error 32"))
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// A token cancelled on Ctrl-C or SIGTERM.
fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        t.cancel();
    });
    token
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo {
            data_dir,
            keep_running,
            from,
            to,
            speed,
        } => runtime()?.block_on(demo(data_dir, keep_running, from, to, speed)),
        Command::Serve {
            data_dir,
            config,
            mqtt_url,
            http,
        } => runtime()?.block_on(serve(&data_dir, config.as_deref(), mqtt_url, http)),
        Command::Import { dir, data_dir } => {
            let store = crate::store::Store::open(&data_dir)?;
            let s = crate::import::import(&store, &dir)?;
            println!(
                "imported {:?}: {} venues, {} screens, {} creatives, {} campaigns{}",
                s.name,
                s.venues,
                s.screens,
                s.creatives,
                s.campaigns,
                if s.changed { "" } else { " (unchanged)" }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Screens {
            command:
                ScreensCommand::Provision {
                    id,
                    data_dir,
                    out,
                    mqtt_url,
                    server_url,
                },
        } => {
            let store = crate::store::Store::open(&data_dir)?;
            let text =
                crate::provision::provision(&store, &id, &mqtt_url, &server_url, "signage/v1")?;
            write_private(&out, &text)?;
            println!("wrote {} for screen {id}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan {
            scenario,
            from,
            to,
            screens,
            format,
            out,
        } => {
            anyhow::ensure!(from < to, "--from must be before --to");
            let loaded = crate::import::load(&scenario)?;
            let schedules = crate::plan::schedules(&loaded.scenario.catalogue, &screens)?;
            let format = match format {
                PlanFormat::Csv => crate::plan::Format::Csv,
                PlanFormat::Table => crate::plan::Format::Table,
            };
            let mut sink: Box<dyn Write> = match out {
                Some(p) => Box::new(std::io::BufWriter::with_capacity(
                    1 << 20,
                    std::fs::File::create(p)?,
                )),
                None => Box::new(std::io::BufWriter::with_capacity(
                    1 << 20,
                    std::io::stdout().lock(),
                )),
            };
            crate::plan::write_plan(&schedules, from, to, format, &mut sink)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain {
            scenario,
            screen,
            at,
        } => {
            let loaded = crate::import::load(&scenario)?;
            let id = playlists::ScreenId::parse(&screen)?;
            let schedule = loaded
                .scenario
                .catalogue
                .full_schedule_for(&id)
                .ok_or_else(|| {
                    anyhow::anyhow!("unknown screen {screen:?} in {}", scenario.display())
                })?;
            let slot = playlists::Planner::new(&schedule).slot_at(at);
            print!("{}", playlists::explain::explain(&schedule, slot));
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulate {
            scenario,
            from,
            to,
            data_dir,
            speed,
        } => runtime()?.block_on(async move {
            anyhow::ensure!(from < to, "--from must be before --to");
            let mut opts = crate::sim::SimOptions::new(
                scenario,
                from,
                to,
                data_dir,
                crate::sim::agent_binary()?,
            );
            opts.speed = speed;
            let outcome = crate::sim::simulate(opts, shutdown_token()).await?;
            let ledger = crate::ledger::Ledger::open(outcome.store.db())?;
            let rows = crate::report::rows(
                &outcome.store,
                &ledger,
                Dimension::Venue,
                &Window::default(),
                None,
            )?;
            let mut by_type: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
            for r in rows {
                let e = by_type.entry(r.detail).or_default();
                e.0 += r.planned;
                e.1 += r.delivered;
            }
            println!("{:<40} {:>9} {:>9}", "venue_type", "planned", "delivered");
            for (t, (p, d)) in &by_type {
                println!("{t:<40} {p:>9} {d:>9}");
            }
            Ok(sim_verdict(&outcome))
        }),
        Command::Report {
            what,
            data_dir,
            from,
            to,
            venue,
            format,
        } => {
            let store = crate::store::Store::open(&data_dir)?;
            let ledger = crate::ledger::Ledger::open(store.db())?;
            let window = Window { from, to };
            let format = match format {
                ReportFormat::Csv => crate::report::Format::Csv,
                ReportFormat::Json => crate::report::Format::Json,
                ReportFormat::Table => crate::report::Format::Table,
            };
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let dim = match what {
                ReportKind::Plays => {
                    crate::report::write_plays(
                        &store,
                        &ledger,
                        &window,
                        venue.as_deref(),
                        format,
                        &mut out,
                    )?;
                    out.flush()?;
                    return Ok(ExitCode::SUCCESS);
                }
                ReportKind::Venues => Dimension::Venue,
                ReportKind::Screens => Dimension::Screen,
                ReportKind::Campaigns => Dimension::Campaign,
                ReportKind::Creatives => Dimension::Creative,
            };
            let rows = crate::report::rows(&store, &ledger, dim, &window, venue.as_deref())?;
            crate::report::write_rows(dim, &rows, format, &mut out)?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit {
            command: AuditCommand::Verify { data_dir },
        } => {
            let store = crate::store::Store::open(&data_dir)?;
            let ledger = crate::ledger::Ledger::open(store.db())?;
            let keys = store.screen_keys()?;
            let key_of = |s: &str| {
                keys.get(s)
                    .and_then(|k| playlists::wire::signed::public_key_from_hex(k).ok())
            };
            let report = ledger.audit(&key_of)?;
            println!(
                "audited {} screens, {} batches, {} records",
                report.screens, report.batches, report.records
            );
            for p in &report.problems {
                println!("PROBLEM {p}");
            }
            if report.problems.is_empty() {
                println!("ledger verified: every signature and chain is intact");
                Ok(ExitCode::SUCCESS)
            } else {
                println!("{} problem(s) found", report.problems.len());
                Ok(ExitCode::FAILURE)
            }
        }
        Command::Bench {
            command:
                BenchCommand::Plan {
                    scenario,
                    from,
                    to,
                    runs,
                },
        } => bench_plan(&scenario, from, to, runs),
    }
}

fn sim_verdict(outcome: &crate::sim::SimOutcome) -> ExitCode {
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

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())?;
    Ok(())
}

async fn demo(
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
        default_scenario(),
        from,
        to,
        data_dir.clone(),
        crate::sim::agent_binary()?,
    );
    opts.speed = speed;
    opts.keep_running = keep_running;
    let outcome = crate::sim::simulate(opts, shutdown_token()).await?;
    let ledger = crate::ledger::Ledger::open(outcome.store.db())?;
    let rows = crate::report::rows(
        &outcome.store,
        &ledger,
        Dimension::Venue,
        &Window::default(),
        None,
    )?;
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

async fn serve(
    data_dir: &Path,
    config: Option<&Path>,
    mqtt_url: Option<String>,
    http: Option<SocketAddr>,
) -> anyhow::Result<ExitCode> {
    let config = crate::config::Config::load(config, mqtt_url, http)?;
    let store = crate::store::Store::open(data_dir)?;
    let shutdown = shutdown_token();
    let (host, port) = match &config.mqtt_url {
        Some(url) => crate::broker::parse_mqtt_url(url).map_err(|e| anyhow::anyhow!(e))?,
        None => {
            let broker = crate::broker::start(Some(config.embedded_broker)).await?;
            tracing::info!(addr = %broker.addr, "embedded MQTT broker running");
            (broker.addr.ip().to_string(), broker.addr.port())
        }
    };
    let listener = tokio::net::TcpListener::bind(config.http).await?;
    // rumqttd 0.20's shared subscriptions reorder and drop messages under load: the
    // embedded broker serves one server, so it subscribes plainly.
    let shared_subscription = config.shared_subscription && config.mqtt_url.is_some();
    let target = crate::app::MqttTarget {
        host,
        port,
        shared_subscription,
    };
    let handle = crate::app::start(
        store,
        target,
        listener,
        playlists::wire::Topics::new(&config.topic_prefix),
        shutdown.clone(),
    )
    .await?;
    tracing::info!(http = %handle.http_addr, "signage server running");
    println!(
        "signage server: http://{} (Ctrl-C to stop)",
        handle.http_addr
    );
    shutdown.cancelled().await;
    handle.wait().await;
    Ok(ExitCode::SUCCESS)
}

fn bench_plan(
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
