//! The `signage` command line (design.md, "Command line": stable, scripted against).
//! Each subcommand parses its arguments here and calls into the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;

mod args;
mod broker;
mod client;
mod commands;
mod emergency;
mod ledger;
mod review;
mod state;
mod store;
mod upload;

use crate::report::Window;
pub use args::Cli;
use args::*;
pub(crate) use commands::write_private;
use commands::{bench_plan, demo, serve};

impl CreativesCommand {
    fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            CreativesCommand::Add {
                files,
                target,
                id,
                title,
                duration,
            } => {
                anyhow::ensure!(
                    id.is_none() || files.len() == 1,
                    "--id names one creative: give one file, or leave --id out"
                );
                let api = target.api_only("creatives add")?;
                let options = upload::AddOptions {
                    id,
                    title,
                    duration_seconds: duration,
                };
                runtime()?.block_on(upload::add(&api, &files, &options))
            }
            CreativesCommand::Review(command) => command.run(review::Reviewed::Creative),
        }
    }
}

impl ReviewCommand {
    fn run(self, what: review::Reviewed) -> anyhow::Result<ExitCode> {
        let (id, target, action, reason) = match self {
            ReviewCommand::Submit { id, target } => (id, target, "submit", None),
            ReviewCommand::Approve { id, target } => (id, target, "approve", None),
            ReviewCommand::Reject { id, target, reason } => (id, target, "reject", Some(reason)),
        };
        let api = target.api_only(&format!("{} {action}", what.plural()))?;
        runtime()?.block_on(review::review(&api, what, &id, action, reason))
    }
}

/// The Beijing scenario: installed beside the binary, or the copy built into it.
pub fn default_scenario() -> anyhow::Result<PathBuf> {
    crate::builtin::beijing()
}

pub fn main() -> ExitCode {
    quiet_on_closed_stdout();
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

/// `println!` to a reader that went away (`| head`) panics: end quietly with status 0
/// instead, as a failed write does (see [`is_broken_pipe`]).
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let text = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if text.starts_with("failed printing to stdout") && text.contains("os error 32") {
            std::process::exit(0);
        }
        default(info);
    }));
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

/// A closed standard output (`| head`), not a closed connection to a server (which can
/// refuse an upload before reading it: that stays an error).
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    if e.chain().any(|c| c.is::<reqwest::Error>()) {
        return false;
    }
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || matches!(c.downcast_ref::<crate::ledger::LedgerError>(), Some(crate::ledger::LedgerError::Io(m)) if m.contains("os error 32"))
    })
}

/// `signage media transcode`: one transcode, timed.
fn transcode(input: &Path, output: &Path, no_loudness: bool) -> anyhow::Result<ExitCode> {
    let mut spec = media::TranscodeSpec::for_gate(media::VideoGate::default());
    if no_loudness {
        spec.loudness = None;
    }
    let started = std::time::Instant::now();
    let done = media::transcode(input, output, &spec, &mut |_| {})
        .map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
    let wall = started.elapsed().as_secs_f64();
    let seconds = done.duration_ms.unwrap_or(0) as f64 / 1000.0;
    println!(
        "transcoded {seconds:.1} s of video to {}x{} at {} fps in {wall:.2} s: {:.2} s of video per second ({})",
        done.width,
        done.height,
        done.fps,
        seconds / wall.max(1e-9),
        done.changes.join("; ")
    );
    Ok(ExitCode::SUCCESS)
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
            scenario,
        } => {
            let scenario = match scenario {
                Some(s) => s,
                None => default_scenario()?,
            };
            runtime()?.block_on(demo(scenario, data_dir, keep_running, from, to, speed))
        }
        Command::Serve {
            data_dir,
            store,
            config,
            mqtt_url,
            http,
            tls,
        } => {
            let flags = crate::config::Flags {
                store,
                mqtt_url,
                http,
                tls: tls.mode(),
                mqtt_ca_file: tls.mqtt_ca_file,
            };
            runtime()?.block_on(serve(&data_dir, config.as_deref(), flags))
        }
        Command::Import {
            dir,
            target,
            archive_missing,
        } => state::import(&target.resolve_creating()?, &dir, archive_missing),
        Command::Screens {
            command:
                ScreensCommand::Provision {
                    id,
                    target,
                    out,
                    mqtt_url,
                    server_url,
                    config,
                },
        } => {
            let config = crate::config::Config::load_with(config.as_deref(), Default::default())?;
            state::provision(&target.resolve()?, &id, &out, mqtt_url, server_url, &config)
        }
        Command::Plan {
            scenario,
            target,
            from,
            to,
            screens,
            format,
            out,
        } => {
            anyhow::ensure!(from < to, "--from must be before --to");
            let source = match scenario {
                Some(dir) => state::Source::Scenario(dir),
                None => state::Source::State(target.resolve()?),
            };
            state::plan(&source, from, to, &screens, format, out.as_deref())
        }
        Command::Explain {
            scenario,
            target,
            screen,
            at,
        } => {
            let source = match scenario {
                Some(dir) => state::Source::Scenario(dir),
                None => state::Source::State(target.resolve()?),
            };
            state::explain(&source, &screen, at)
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
            target,
            from,
            to,
            venue,
            format,
        } => state::report(&target.resolve()?, what, Window { from, to }, venue, format),
        Command::Audit {
            command: AuditCommand::Verify { target, archive },
        } => match archive {
            Some(dir) => ledger::audit_with_archive(&target.resolve()?, &dir),
            None => state::audit(&target.resolve()?),
        },
        Command::Ledger {
            command:
                LedgerCommand::Archive {
                    target,
                    before,
                    keep_days,
                    dir,
                },
        } => ledger::archive(&target.resolve()?, before, keep_days, dir),
        Command::Changes { target, entity, id } => {
            let entity = entity
                .map(|e| {
                    serde_json::from_value::<crate::store::EntityKind>(serde_json::json!(e))
                        .map_err(|_| {
                            anyhow::anyhow!(
                                "--entity {e:?} is not venue, screen, creative, campaign, emergency or user"
                            )
                        })
                })
                .transpose()?;
            state::changes(&target.resolve()?, entity, id)
        }
        Command::Broker {
            command:
                BrokerCommand::MosquittoConfig {
                    target,
                    out,
                    port,
                    config,
                },
        } => {
            let config = crate::config::Config::load_with(config.as_deref(), Default::default())?;
            broker::mosquitto_config(&target.resolve()?, &out, port, &config.topic_prefix)
        }
        Command::Users {
            command:
                UsersCommand::Add {
                    name,
                    roles,
                    password_file,
                    target,
                },
        } => {
            let password = password_file
                .as_deref()
                .map(state::read_password)
                .transpose()?;
            state::add_user(
                &target.resolve_creating()?,
                &name,
                &roles,
                password.as_deref(),
            )
        }
        Command::Users {
            command:
                UsersCommand::Passwd {
                    name,
                    password_file,
                    target,
                },
        } => {
            let password = state::read_password(&password_file)?;
            state::set_password(&target.resolve()?, &name, &password)
        }
        Command::Campaigns { command } => command.run(review::Reviewed::Campaign),
        Command::Creatives { command } => command.run(),
        Command::Media {
            command:
                MediaCommand::Transcode {
                    input,
                    output,
                    no_loudness,
                },
        } => transcode(&input, &output, no_loudness),
        Command::Emergency { command } => match command {
            EmergencyCommand::Start {
                target,
                id,
                name,
                creatives,
                venue_types,
                districts,
                screens,
                until,
            } => {
                let api = target.api_only("emergency start")?;
                let flags = emergency::TargetFlags {
                    venue_types,
                    districts,
                    screens,
                };
                runtime()?.block_on(emergency::start(&api, id, name, creatives, flags, until))
            }
            EmergencyCommand::End { target, id } => {
                let api = target.api_only("emergency end")?;
                runtime()?.block_on(emergency::end(&api, &id))
            }
            EmergencyCommand::List { target } => state::emergencies(&target.resolve()?),
        },
        Command::Store { command } => command.run(),
        Command::Config {
            command: ConfigCommand::Reference,
        } => {
            use std::io::Write;
            std::io::stdout().write_all(crate::config::reference().as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Scenario {
            command:
                ScenarioCommand::Generate {
                    venues,
                    screens,
                    seed,
                    out,
                    base,
                },
        } => {
            let base = match base {
                Some(b) => b,
                None => default_scenario()?,
            };
            let opts = crate::generate::GenerateOptions {
                venues,
                screens,
                seed,
            };
            let s = crate::generate::generate(&base, &out, &opts)?;
            println!(
                "wrote {}: {} venues, {} screens ({} in districts, {} on trains), {} creatives, {} campaigns",
                out.display(),
                s.venues,
                s.screens,
                s.screens - s.moving_screens,
                s.moving_screens,
                s.creatives,
                s.campaigns
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            command:
                BenchCommand::Plan {
                    scenario,
                    from,
                    to,
                    runs,
                },
        } => {
            let scenario = match scenario {
                Some(s) => s,
                None => default_scenario()?,
            };
            bench_plan(&scenario, from, to, runs)
        }
        Command::Media {
            command:
                MediaCommand::Rendition {
                    input,
                    output,
                    width,
                    height,
                    fill,
                    background,
                },
        } => {
            let fit = if fill {
                playlists::Fit::Cover
            } else {
                playlists::Fit::parse(None, Some(&background))
                    .map_err(|(field, problem)| anyhow::anyhow!("--{field}: {problem}"))?
            };
            let spec = media::RenditionSpec {
                width,
                height,
                fit: match fit {
                    playlists::Fit::Contain { background } => media::Fit::Contain { background },
                    playlists::Fit::Cover => media::Fit::Cover,
                },
            };
            let m = media::still_rendition(&input, &spec, &media::Limits::default(), &output)
                .map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
            println!(
                "{} {}x{} {} bytes sha256 {}",
                output.display(),
                m.width,
                m.height,
                m.bytes,
                m.sha256
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
