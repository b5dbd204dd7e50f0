//! Shared helpers of the end-to-end tests: scenario copies to break, the built binaries,
//! a Mosquitto broker started on a free port (and restarted on it), an agent process on
//! the scaled clock, the ledger checks of the crash and offline tests, a NATS cluster with
//! MQTT listeners (`nats_cluster`), and headless Chromium over WebDriver for the
//! dashboard's tests.

pub mod agent_proc;
pub mod env;
pub mod fleet_sim;
pub mod inproc;
pub mod ledger_check;
pub mod nats_cluster;
pub mod store;
pub mod webdriver;

pub use env::TestEnv;
pub use store::TestStore;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The Beijing scenario shipped in the repository.
pub fn beijing() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/beijing-role-models")
}

/// A writable copy of the Beijing scenario in `dir`.
pub fn copy_beijing(dir: &Path) -> PathBuf {
    let to = dir.join("scenario");
    std::fs::create_dir_all(to.join("media")).expect("mkdir");
    let from = beijing();
    std::fs::copy(from.join("scenario.json"), to.join("scenario.json"))
        .expect("copy scenario.json");
    for e in std::fs::read_dir(from.join("media")).expect("media dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join("media").join(e.file_name())).expect("copy media");
    }
    to
}

/// Edits scenario.json in `dir` as JSON.
pub fn edit_scenario(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("scenario.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    f(&mut v);
    std::fs::write(&path, serde_json::to_string_pretty(&v).expect("ser")).expect("write");
}

/// target/<profile>/ of the test binary, where `signage` and `signage-agent` are built.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_owned()
}

pub fn signage_bin() -> PathBuf {
    let p = bin_dir().join("signage");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        p.display()
    );
    p
}

pub fn agent_bin() -> PathBuf {
    let p = bin_dir().join("signage-agent");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        p.display()
    );
    p
}

/// A Mosquitto broker on a free loopback port, killed on drop.
#[derive(Debug)]
pub struct Mosquitto {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    /// Starts a broker on a free port. Another process may take that port between our
    /// probe and Mosquitto's bind (another test's embedded broker, say), and a connect to
    /// the port would then reach the wrong broker: so success is Mosquitto's own log saying
    /// it runs, and a failed bind means a new port.
    pub fn start() -> Mosquitto {
        let dir = tempfile::tempdir().expect("tempdir");
        for _ in 0..10 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .expect("bind")
                .local_addr()
                .expect("addr")
                .port();
            if let Some(child) = Self::spawn(dir.path(), port) {
                return Mosquitto {
                    child,
                    port,
                    _dir: dir,
                };
            }
        }
        panic!("mosquitto did not start on any of ten free ports");
    }

    /// Starts Mosquitto on `port` with the configuration `conf_text` (as `signage broker
    /// mosquitto-config` writes it), logging to a file we read, and as root when we are
    /// root (the generated password file is readable by its owner only).
    pub fn start_config(conf_text: &str, port: u16) -> Mosquitto {
        Self::start_config_logging(conf_text, port, &["all"])
    }

    /// [`start_config`](Self::start_config) logging only `log_types` (Mosquitto's
    /// `log_type` values; `information` is needed to see it start): at fleet size, `all` logs
    /// every message.
    pub fn start_config_logging(conf_text: &str, port: u16, log_types: &[&str]) -> Mosquitto {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let types: String = log_types
            .iter()
            .map(|t| format!("log_type {t}\n"))
            .collect();
        let conf = format!(
            "{conf_text}log_dest stderr\n{types}{}",
            if root { "user root\n" } else { "" }
        );
        let child = Self::spawn_conf(dir.path(), &conf, port)
            .unwrap_or_else(|| panic!("mosquitto did not start with:\n{conf}"));
        Mosquitto {
            child,
            port,
            _dir: dir,
        }
    }

    /// Kills the broker (clients see the connection drop; retained messages and sessions
    /// are gone, as `persistence false` says) and waits until the port is closed.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port, after [`stop`](Self::stop). The port may linger
    /// for a moment after a stop: retry until Mosquitto holds it.
    pub fn restart(&mut self) {
        self.stop();
        for _ in 0..5 {
            if let Some(child) = Self::spawn(self._dir.path(), self.port) {
                self.child = child;
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("mosquitto did not restart on {}", self.port);
    }

    /// Starts Mosquitto on `port`; `None` when it exits (the port is taken) or does not
    /// say it runs within five seconds.
    fn spawn(dir: &Path, port: u16) -> Option<Child> {
        let conf = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
             max_packet_size 4194304\nlog_dest stderr\nlog_type all\n"
        );
        Self::spawn_conf(dir, &conf, port)
    }

    /// Starts Mosquitto with `conf_text` (which must listen on `port` and log to stderr).
    fn spawn_conf(dir: &Path, conf_text: &str, port: u16) -> Option<Child> {
        let bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("mosquitto is not installed (scripts/setup.sh installs it)");
        let conf = dir.join("mosquitto.conf");
        let log = dir.join(format!("mosquitto-{port}.log"));
        std::fs::write(&conf, conf_text).expect("conf");
        let mut child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            // Mosquitto drops root for its own user, who may not write here: it logs to
            // a file we opened for it.
            .stderr(std::fs::File::create(&log).expect("mosquitto log"))
            .spawn()
            .expect("start mosquitto");
        for _ in 0..100 {
            if let Ok(Some(_)) = child.try_wait() {
                return None;
            }
            // Logged once every listener is bound.
            let running = std::fs::read_to_string(&log).is_ok_and(|l| l.contains(" running"));
            if running && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(child);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// The broker's process id (for its memory in `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Status and JSON body of an HTTP request (panics on a body that is not JSON).
pub async fn send_json(req: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("status {status}: body is not JSON ({e}): {text:?}"));
    (status, body)
}

/// Runs the real `signage` binary: (success, stdout, stderr).
pub fn signage(args: &[&str]) -> (bool, String, String) {
    let out = signage_output(args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `signage args…` with no target, token or CA taken from the environment.
pub fn signage_output(args: &[&str]) -> std::process::Output {
    Command::new(signage_bin())
        .args(args)
        .env_remove("SIGNAGE_SERVER")
        .env_remove("SIGNAGE_TOKEN_FILE")
        .env_remove("SIGNAGE_CA_FILE")
        .output()
        .expect("run signage")
}

/// Runs a `signage` command that must succeed; its standard output.
pub fn signage_ok(args: &[&str]) -> String {
    let out = signage_output(args);
    assert!(
        out.status.success(),
        "signage {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The CRC-32 of PNG chunks, for tests that forge PNG headers.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Makes a user with `roles` and a dashboard password through the API (as the admin);
/// returns the user's API token.
pub async fn add_user(
    base: &str,
    admin: &str,
    name: &str,
    roles: &[&str],
    password: &str,
) -> String {
    let (status, body) = send_json(
        reqwest::Client::new()
            .post(format!("{base}/api/v1/users"))
            .bearer_auth(admin)
            .json(&serde_json::json!({"name": name, "roles": roles, "password": password})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().expect("a token").to_owned()
}

/// `GET {base}/api/v1{path}` with `token`: its JSON, which must come with a 200.
pub async fn get_ok(base: &str, token: &str, path: &str) -> serde_json::Value {
    let (status, body) = send_json(
        reqwest::Client::new()
            .get(format!("{base}/api/v1{path}"))
            .bearer_auth(token),
    )
    .await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}
