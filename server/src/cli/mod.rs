//! The `signage` command line (design.md, "Command line": stable, scripted against).
//! Each subcommand parses its arguments here and calls into the library.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::ledger::Dimension;

mod commands;
mod emergency;

use crate::report::Window;
use commands::{bench_plan, demo, serve, write_private};

#[derive(Debug, Parser)]
#[command(
    name = "signage",
    version,
    about = "Schedules public-service ads onto city screens"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as text (coloured only on a terminal) or as JSON lines.
    #[arg(long, global = true, value_enum, default_value_t)]
    log_format: crate::logging::LogFormat,
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
    /// The planned plays over a window: of a scenario directory, or of a server's store
    /// (its catalogue, with the emergencies staff started).
    Plan {
        #[arg(
            long,
            required_unless_present = "data_dir",
            conflicts_with = "data_dir"
        )]
        scenario: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
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
    /// Emergency takeovers on a running server (its HTTP API).
    Emergency {
        #[command(subcommand)]
        command: EmergencyCommand,
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
enum EmergencyCommand {
    /// Starts a takeover now: its creatives play from each targeted screen's next slot.
    Start {
        /// The server's HTTP address, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        server: String,
        /// The server's admin token file (DATA_DIR/admin.token).
        #[arg(long)]
        token_file: PathBuf,
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// A creative already in the catalogue (repeat for more).
        #[arg(long = "creative", required = true)]
        creatives: Vec<String>,
        #[arg(long = "venue-type")]
        venue_types: Vec<String>,
        #[arg(long = "district")]
        districts: Vec<String>,
        #[arg(long = "screen")]
        screens: Vec<String>,
        /// When it ends by itself (default: when ended).
        #[arg(long, value_parser = parse_time)]
        until: Option<DateTime<Utc>>,
    },
    /// Ends a takeover now: the next slot plays the normal rotation.
    End {
        #[arg(long)]
        server: String,
        #[arg(long)]
        token_file: PathBuf,
        id: String,
    },
    /// Every takeover, active or ended.
    List {
        #[arg(long)]
        server: String,
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
    // rumqttd reports every client disconnect as an error; keep it quiet unless asked.
    crate::logging::init(cli.log_format, &format!("{default_level},rumqttd=off"));
    match run(cli) {
        Ok(code) => code,
        // A reader that stopped early (`| head`) is not an error of ours.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, each cause once (messages that already quote
/// their cause are not repeated).
fn error_chain(e: &anyhow::Error) -> String {
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
            data_dir,
            from,
            to,
            screens,
            format,
            out,
        } => {
            anyhow::ensure!(from < to, "--from must be before --to");
            let catalogue = match (scenario, data_dir) {
                (Some(dir), _) => crate::import::load(&dir)?.scenario.catalogue,
                (None, Some(dir)) => crate::store::Store::open(&dir)?.catalogue()?,
                (None, None) => anyhow::bail!("give --scenario DIR or --data-dir DIR"),
            };
            let schedules = crate::plan::schedules(&catalogue, &screens)?;
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
        } => runtime()?.block_on(commands::simulate(scenario, from, to, data_dir, speed)),
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
        Command::Emergency { command } => runtime()?.block_on(async move {
            match command {
                EmergencyCommand::Start {
                    server,
                    token_file,
                    id,
                    name,
                    creatives,
                    venue_types,
                    districts,
                    screens,
                    until,
                } => {
                    let target = emergency::TargetFlags {
                        venue_types,
                        districts,
                        screens,
                    };
                    emergency::start(&server, &token_file, id, name, creatives, target, until).await
                }
                EmergencyCommand::End {
                    server,
                    token_file,
                    id,
                } => emergency::end(&server, &token_file, &id).await,
                EmergencyCommand::List { server } => emergency::list(&server).await,
            }
        }),
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
