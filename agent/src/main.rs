//! `signage-agent`: parses the command line, starts tracing, loads the config and runs the
//! agent until Ctrl-C or SIGTERM. Everything else is in the library.

use std::path::PathBuf;

use agent::clock::Scaled;
use agent::{AgentConfig, ClockKind, Durability, PlayerKind, RunOptions};
use chrono::{DateTime, FixedOffset, Utc};
use clap::Parser;
use tokio_util::sync::CancellationToken;

/// The signage kiosk agent.
#[derive(Debug, Parser)]
#[command(name = "signage-agent", version, about)]
struct Cli {
    /// Agent config (TOML), as written by `signage screens provision`.
    #[arg(long)]
    config: PathBuf,
    /// Directory for the outbox and the media cache.
    #[arg(long)]
    data_dir: PathBuf,
    #[arg(long, value_enum, default_value_t)]
    player: PlayerKind,
    /// `sim` follows the leader's clock on `{prefix}/sim/clock` (for `signage simulate`);
    /// `scaled` runs virtual time from `--clock-start` at `--clock-speed` times real time.
    #[arg(long, value_enum, default_value_t)]
    clock: ClockKind,
    /// Scaled clock: the virtual time (RFC 3339) at the anchor.
    #[arg(long, required_if_eq("clock", "scaled"))]
    clock_start: Option<DateTime<FixedOffset>>,
    /// Scaled clock: the real Unix time in milliseconds at which virtual time is
    /// `--clock-start`; default now. Restart with the same value to continue the timeline.
    #[arg(long, allow_negative_numbers = true)]
    clock_anchor_ms: Option<i64>,
    /// Scaled clock: virtual seconds per real second.
    #[arg(long, default_value_t = 1.0)]
    clock_speed: f64,
    /// `relaxed` skips flushing each outbox commit (for big simulations).
    #[arg(long, value_enum, default_value_t)]
    durability: Durability,
    /// `--player web`: where to serve the kiosk page (the bound address is logged and
    /// written to DATA_DIR/web.addr).
    #[arg(long, default_value_t = agent::DEFAULT_WEB_ADDR)]
    web_addr: std::net::SocketAddr,
    /// Log lines as text (coloured only on a terminal) or as JSON lines.
    #[arg(long, value_enum, default_value_t)]
    log_format: agent::logging::LogFormat,
}

fn main() -> std::process::ExitCode {
    agent::memory::tune_allocator();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(start(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", agent::error_chain(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn start(cli: Cli) -> anyhow::Result<()> {
    agent::logging::init(cli.log_format, "info");
    let config = AgentConfig::load(&cli.config)?;
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let scaled = match cli.clock_start {
        Some(start) if cli.clock == ClockKind::Scaled => {
            let anchor_ms = cli
                .clock_anchor_ms
                .unwrap_or_else(|| Utc::now().timestamp_millis());
            let scale = Scaled::new(start.with_timezone(&Utc), anchor_ms, cli.clock_speed)?;
            tracing::info!(start = %start, anchor_ms, speed = scale.speed(), "scaled clock");
            Some(scale)
        }
        _ => None,
    };
    let opts = RunOptions {
        data_dir: cli.data_dir,
        player: cli.player,
        clock: cli.clock,
        scaled,
        durability: cli.durability,
        web_addr: cli.web_addr,
    };
    agent::run(config, opts, shutdown).await
}

async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C: shutting down"),
        _ = term => tracing::info!("SIGTERM: shutting down"),
    }
    shutdown.cancel();
}
