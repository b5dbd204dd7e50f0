//! Both daemons speak systemd's notification protocol as their `Type=notify` units with
//! `WatchdogSec=` expect (packaging/): the real `signage serve` and `signage-agent`, each
//! given a Unix datagram socket as `NOTIFY_SOCKET` and a 2 s `WATCHDOG_USEC`, send
//! `READY=1` once serving, `WATCHDOG=1` while running, and `STOPPING=1` on SIGTERM, then
//! exit 0.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tests::{agent_bin, beijing, signage_bin, signage_ok, TestStore};

const SCREEN: &str = "bj-metro-tiananmen-east-s1";

fn s(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A notification socket standing in for systemd's, and what arrived on it.
struct Notified {
    socket: UnixDatagram,
    got: Vec<String>,
}

impl Notified {
    fn bind(path: &Path) -> Notified {
        let socket = UnixDatagram::bind(path).expect("bind the notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("read timeout");
        Notified {
            socket,
            got: Vec::new(),
        }
    }

    /// Waits up to 60 s for the line `what`, failing with the daemon's log if it exits.
    fn wait_for(&mut self, what: &str, child: &mut Child, log: &Path) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.got.iter().any(|l| l == what) {
            let mut buf = [0u8; 4096];
            if let Ok(n) = self.socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.got.extend(text.lines().map(str::to_owned));
                continue;
            }
            let exited = child.try_wait().expect("try_wait").is_some();
            if exited || Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "no {what} (got {:?}; exited: {exited}); log:\n{}",
                    self.got,
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
        }
    }
}

fn spawn(cmd: &mut Command, notify: &Path, log: &Path) -> Child {
    cmd.env("NOTIFY_SOCKET", notify)
        .env("WATCHDOG_USEC", "2000000")
        .env_remove("WATCHDOG_PID")
        .env_remove("SIGNAGE_HTTP")
        .env_remove("SIGNAGE_MQTT_URL")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log.with_extension("out")).expect("stdout file"))
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("start the daemon")
}

/// SIGTERM, as `systemctl stop` sends; the daemon must say STOPPING=1 and exit 0.
fn stop(child: &mut Child, notified: &mut Notified, log: &Path) {
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(term.success());
    notified.wait_for("STOPPING=1", child, log);
    let status = child.wait().expect("wait");
    assert!(
        status.success(),
        "exit {status}: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

#[test]
fn server_and_agent_notify_ready_watchdog_and_stopping() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let store = TestStore::new();
    signage_ok(&store.with(&["import", s(&beijing()), "--data-dir", s(&data)]));
    let (http, broker) = (free_port(), free_port());
    let config = tmp.path().join("server.toml");
    std::fs::write(
        &config,
        format!("http = \"127.0.0.1:{http}\"\nembedded_broker = \"127.0.0.1:{broker}\"\n"),
    )
    .expect("write config");

    let server_log = tmp.path().join("server.log");
    let mut server_notify = Notified::bind(&tmp.path().join("server.sock"));
    let mut server = spawn(
        Command::new(signage_bin())
            .args(["serve", "--data-dir", s(&data), "--config", s(&config)])
            .args(store.args()),
        &tmp.path().join("server.sock"),
        &server_log,
    );
    server_notify.wait_for("READY=1", &mut server, &server_log);
    // Ready means serving: the API answers at once.
    let url = format!("http://127.0.0.1:{http}");
    let agent_config = tmp.path().join("agent.toml");
    let token = data.join("admin.token");
    signage_ok(&[
        "screens",
        "provision",
        SCREEN,
        "--server",
        &url,
        "--token-file",
        s(&token),
        "--out",
        s(&agent_config),
    ]);
    server_notify.wait_for("WATCHDOG=1", &mut server, &server_log);

    let agent_log = tmp.path().join("agent.log");
    let mut agent_notify = Notified::bind(&tmp.path().join("agent.sock"));
    let mut agent = spawn(
        Command::new(agent_bin()).args([
            "--config",
            s(&agent_config),
            "--data-dir",
            s(&tmp.path().join("agent-data")),
        ]),
        &tmp.path().join("agent.sock"),
        &agent_log,
    );
    agent_notify.wait_for("READY=1", &mut agent, &agent_log);
    agent_notify.wait_for("WATCHDOG=1", &mut agent, &agent_log);
    assert_eq!(
        agent_notify.got.first().map(String::as_str),
        Some("READY=1")
    );

    stop(&mut agent, &mut agent_notify, &agent_log);
    stop(&mut server, &mut server_notify, &server_log);
    assert_eq!(
        server_notify.got.first().map(String::as_str),
        Some("READY=1")
    );
    assert_eq!(
        server_notify.got.last().map(String::as_str),
        Some("STOPPING=1")
    );
}
