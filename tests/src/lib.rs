//! Shared helpers of the end-to-end tests: scenario copies to break, the built binaries,
//! a Mosquitto broker started on a free port.

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
        let bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("mosquitto is not installed (scripts/setup.sh installs it)");
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(&conf, format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_packet_size 4194304\n")).expect("conf");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Mosquitto {
                    child,
                    port,
                    _dir: dir,
                };
            }
            std::thread::sleep(Duration::from_millis(50));
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
