//! Shared helpers of the end-to-end tests: scenario copies to break, the built binaries,
//! a Mosquitto broker started on a free port (and restarted on it), an agent process on
//! the scaled clock, and the ledger checks of the crash and offline tests.

pub mod agent_proc;
pub mod env;
pub mod ledger_check;

pub use env::TestEnv;

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
    pub fn start() -> Mosquitto {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let child = Self::spawn(dir.path(), port);
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

    /// Starts it again on the same port, after [`stop`](Self::stop).
    pub fn restart(&mut self) {
        self.stop();
        self.child = Self::spawn(self._dir.path(), self.port);
    }

    fn spawn(dir: &Path, port: u16) -> Child {
        let bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("mosquitto is not installed (scripts/setup.sh installs it)");
        let conf = dir.join("mosquitto.conf");
        std::fs::write(&conf, format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_packet_size 4194304\n")).expect("conf");
        // The port may linger for a moment after a stop: retry until it listens.
        for _ in 0..5 {
            let mut child = Command::new(bin)
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start mosquitto");
            for _ in 0..100 {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return child;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("mosquitto did not listen on {port}");
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
