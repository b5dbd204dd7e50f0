//! One real `signage-agent` process in a fresh directory, started, SIGKILLed, stopped with
//! SIGTERM and restarted with whatever arguments a test gives; its log accumulates in one
//! file across restarts. Also a few small waits the agent tests share.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// A restartable agent process.
#[derive(Debug)]
pub struct AgentProc {
    config: PathBuf,
    data: PathBuf,
    log: PathBuf,
    child: Option<tokio::process::Child>,
}

impl AgentProc {
    /// Writes `config_toml` (as `signage screens provision` gives it) under `dir`.
    pub fn new(dir: &Path, config_toml: &str) -> AgentProc {
        std::fs::create_dir_all(dir.join("data")).expect("agent dir");
        let config = dir.join("agent.toml");
        std::fs::write(&config, config_toml).expect("agent config");
        AgentProc {
            config,
            data: dir.join("data"),
            log: dir.join("agent.log"),
            child: None,
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Starts the agent with `args` after `--config` and `--data-dir`.
    pub fn spawn(&mut self, args: &[String]) {
        assert!(self.child.is_none(), "the agent is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("agent log");
        let child = tokio::process::Command::new(crate::agent_bin())
            .arg("--config")
            .arg(&self.config)
            .arg("--data-dir")
            .arg(&self.data)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start signage-agent");
        self.child = Some(child);
    }

    /// SIGKILL, as a power cut: no shutdown code runs.
    pub async fn kill(&mut self) {
        let mut child = self.child.take().expect("the agent is not running");
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!(
                "the agent had already exited with {status}:\n{}",
                self.log_tail()
            );
        }
        child.start_kill().expect("SIGKILL");
        child.wait().await.expect("wait");
    }

    /// SIGTERM, and waits for a clean exit.
    pub async fn terminate(&mut self) {
        let mut child = self.child.take().expect("the agent is not running");
        let pid = child.id().expect("running agent has a pid");
        let sent = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .expect("kill -TERM");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("the agent did not stop within 30 s of SIGTERM")
            .expect("wait");
        assert!(
            status.success(),
            "the agent stopped with {status}:\n{}",
            self.log_tail()
        );
    }

    /// The last lines of the agent's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The agent's arguments for the scaled clock.
pub fn scaled_args(start: DateTime<Utc>, anchor_ms: i64, speed: f64) -> Vec<String> {
    vec![
        "--clock".into(),
        "scaled".into(),
        "--clock-start".into(),
        start.to_rfc3339(),
        "--clock-anchor-ms".into(),
        anchor_ms.to_string(),
        "--clock-speed".into(),
        speed.to_string(),
    ]
}

/// Polls `f` every 50 ms until it holds; panics with `what` (and `context()`) after `limit`.
pub async fn wait_for(
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> bool,
    context: impl Fn() -> String,
) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A small deterministic generator (xorshift64*) for random delays; the seed is printed by
/// the caller so a failing run can be repeated.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// A seed from `$TEST_SEED` or the clock.
    pub fn seed() -> u64 {
        std::env::var("TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| Utc::now().timestamp_micros() as u64)
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        lo + self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % (hi - lo).max(1)
    }
}
