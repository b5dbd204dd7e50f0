//! The store boundary of the command line, through the real `signage` binary
//! (design.md, "Command line"): a read never creates a store; a store held by a running
//! server is named as such and the same commands work through `--server`; a report and a
//! plan read the same bytes through the API and from the store; users can be added before
//! the first `serve`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tests::store::on_postgres;
use tests::{beijing, signage_bin, signage_ok as ok, signage_output as signage, TestStore};

const FROM: &str = "2023-12-20T06:00:00+08:00";
const TO: &str = "2023-12-20T07:00:00+08:00";
const SCREEN: &str = "bj-metro-tiananmen-east-s1";

fn s(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}

/// Runs a command that must fail saying each of `expect` on standard error.
fn fails(args: &[&str], expect: &[&str]) {
    let out = signage(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "signage {args:?} succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    for e in expect {
        assert!(
            stderr.contains(e),
            "signage {args:?}: {stderr:?} does not say {e:?}"
        );
    }
}

/// A free loopback port (another process may take it before we bind it: see
/// [`Server::start`]).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Whether `GET /health` on `port` answers 200.
fn healthy(port: u16) -> bool {
    let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    if conn
        .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut reply = String::new();
    let _ = conn.read_to_string(&mut reply);
    reply.lines().next().is_some_and(|l| l.contains(" 200 "))
}

/// `signage serve` on a data directory (and its test store), its HTTP and embedded broker
/// on free ports; killed on drop.
struct Server {
    child: Child,
    url: String,
    logs: tempfile::TempDir,
}

impl Server {
    /// Starts the server and waits until it says it runs and `/health` answers. A port
    /// taken between our probe and the server's bind makes it exit: then new ports.
    fn start(data: &Path, store: &TestStore) -> Server {
        let logs = tempfile::tempdir().expect("tempdir");
        for _ in 0..5 {
            let (http, broker) = (free_port(), free_port());
            let config = logs.path().join("config.toml");
            std::fs::write(
                &config,
                format!("http = \"127.0.0.1:{http}\"\nembedded_broker = \"127.0.0.1:{broker}\"\n"),
            )
            .expect("write config");
            let stdout = logs.path().join("stdout");
            let mut child = Command::new(signage_bin())
                .args(["serve", "--data-dir", s(data), "--config", s(&config)])
                .args(store.args())
                .env_remove("SIGNAGE_HTTP")
                .env_remove("SIGNAGE_MQTT_URL")
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&stdout).expect("stdout file"))
                .stderr(std::fs::File::create(logs.path().join("stderr")).expect("stderr file"))
                .spawn()
                .expect("start signage serve");
            let running = format!("signage server: http://127.0.0.1:{http}");
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                let said = std::fs::read_to_string(&stdout).is_ok_and(|o| o.contains(&running));
                if said && healthy(http) {
                    return Server {
                        child,
                        url: format!("http://127.0.0.1:{http}"),
                        logs,
                    };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "signage serve did not start on any of five port pairs: {}",
            std::fs::read_to_string(logs.path().join("stderr")).unwrap_or_default()
        );
    }

    /// What the server printed on standard output so far.
    fn said(&self) -> String {
        std::fs::read_to_string(self.logs.path().join("stdout")).unwrap_or_default()
    }

    /// Stops the server as an operator would (SIGTERM) and waits for it to exit.
    fn stop(&mut self) -> ExitStatus {
        let term = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(term.success(), "kill -TERM {} failed", self.child.id());
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait for the server") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "signage serve did not stop within a minute of SIGTERM: {}",
            std::fs::read_to_string(self.logs.path().join("stderr")).unwrap_or_default()
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The entries of `dir`, sorted (`None` when it does not exist).
fn listing(dir: &Path) -> Option<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut names: Vec<PathBuf> = entries.map(|e| e.expect("entry").path()).collect();
    names.sort();
    Some(names)
}

/// On PostgreSQL the store is an empty database, and no read makes its schema.
#[test]
fn a_read_never_creates_a_store() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let absent = tmp.path().join("absent");
    for dir in [&empty, &absent] {
        let store = TestStore::new();
        let url = store.url();
        // Where the message says there is no store: the directory, or the database.
        let named = match &url {
            Some(url) => url.rsplit('/').next().expect("a database name"),
            None => s(dir),
        };
        let before = listing(dir);
        let d = s(dir);
        let reads: [&[&str]; 7] = [
            &["report", "venues", "--data-dir", d],
            &["audit", "verify", "--data-dir", d],
            &["plan", "--data-dir", d, "--from", FROM, "--to", TO],
            &["changes", "--data-dir", d],
            &["explain", "--data-dir", d, "--screen", SCREEN, "--at", FROM],
            &["emergency", "list", "--data-dir", d],
            &["report", "plays", "--data-dir", d, "--format", "csv"],
        ];
        for args in reads {
            fails(&store.with(args), &["no store in", named]);
            assert_eq!(listing(dir), before, "signage {args:?} left files behind");
            assert_ne!(
                store.has_tables(),
                Some(true),
                "signage {args:?} made tables"
            );
        }
    }
}

/// `args` followed by `target`.
fn at<'a>(args: &[&'a str], target: &[&'a str]) -> Vec<&'a str> {
    [args, target].concat()
}

/// Asserts that the last line of `added` (what `users add` printed) is a token, alone.
fn token_of(added: &str) -> String {
    let token = added.lines().last().expect("a last line");
    assert!(
        token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "the last line of {added:?} is not a token"
    );
    token.to_owned()
}

#[test]
fn a_running_server_holds_its_store_and_the_api_serves_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = s(&data);
    let scenario = beijing();
    let store = TestStore::new();
    let imported = ok(&store.with(&["import", s(&scenario), "--data-dir", d]));
    assert!(imported.starts_with("imported"), "{imported}");
    let mut server = Server::start(&data, &store);
    let admin = data.join("admin.token");
    let as_admin = ["--server", server.url.as_str(), "--token-file", s(&admin)];

    // The store is named as held, for reads and writes alike.
    // redb only: "held" is its file lock; a PostgreSQL database is shared, by design.
    if !on_postgres() {
        let held = "held by a running server; use --server";
        fails(&["report", "venues", "--data-dir", d], &[held]);
        fails(&["changes", "--data-dir", d], &[held]);
        fails(&["import", s(&scenario), "--data-dir", d], &[held]);
        fails(
            &["users", "add", "eve", "--role", "staff", "--data-dir", d],
            &[held],
        );
    }

    // The same commands through the API.
    ok(&at(&["report", "venues"], &as_admin));
    ok(&at(&["audit", "verify"], &as_admin));
    ok(&at(&["plan", "--from", FROM, "--to", TO], &as_admin));

    // A user added through the API: its token alone on the last line; an auditor reads
    // but does not import.
    let added = ok(&at(
        &["users", "add", "ann", "--role", "auditor"],
        &as_admin,
    ));
    let ann = tmp.path().join("ann.token");
    std::fs::write(&ann, format!("{}\n", token_of(&added))).unwrap();
    let as_ann = ["--server", server.url.as_str(), "--token-file", s(&ann)];
    ok(&at(&["report", "venues"], &as_ann));
    // The server refuses before it reads the upload: repeated, so a client that takes the
    // closed connection for success is caught.
    for _ in 0..5 {
        fails(
            &at(&["import", s(&scenario)], &as_ann),
            &["403", "needs the role admin", "ann has auditor"],
        );
    }
    let changes = ok(&at(&["changes"], &as_admin));
    assert!(
        changes.contains("by admin") && changes.contains("import of scenario"),
        "{changes}"
    );
    assert!(changes.contains("user ann added"), "{changes}");

    // The same report and plan, through the server and from the store once it stopped.
    let report = [
        "report", "venues", "--format", "csv", "--from", FROM, "--to", TO,
    ];
    let plan = [
        "plan", "--format", "csv", "--screen", SCREEN, "--from", FROM, "--to", TO,
    ];
    let report_api = ok(&at(&report, &as_ann));
    let plan_api = ok(&at(&plan, &as_admin));
    let status = server.stop();
    assert!(status.success(), "signage serve exited with {status}");
    let report_store = ok(&store.with(&at(&report, &["--data-dir", d])));
    let plan_store = ok(&store.with(&at(&plan, &["--data-dir", d])));
    assert_eq!(report_api.lines().count(), 1 + 42, "{report_api}");
    let planned = |l: &str| l.split(',').nth(2).map(str::to_owned);
    assert!(
        report_api
            .lines()
            .skip(1)
            .any(|l| planned(l).is_some_and(|p| p != "0")),
        "nothing planned: {report_api}"
    );
    assert_eq!(report_api, report_store);
    assert!(plan_api.lines().count() > 1, "{plan_api}");
    assert!(
        plan_api.lines().skip(1).all(|l| l.starts_with(SCREEN)),
        "{plan_api}"
    );
    assert_eq!(plan_api, plan_store);
}

#[test]
fn import_through_a_running_server() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let store = TestStore::new();
    let server = Server::start(&data, &store);
    let admin = data.join("admin.token");
    let as_admin = ["--server", server.url.as_str(), "--token-file", s(&admin)];
    let scenario = beijing();
    let first = ok(&at(&["import", s(&scenario)], &as_admin));
    assert!(
        first.starts_with("imported") && first.contains("(revision"),
        "{first}"
    );
    let again = ok(&at(&["import", s(&scenario)], &as_admin));
    assert!(
        again.starts_with("imported") && again.trim_end().ends_with("(unchanged)"),
        "{again}"
    );
    let changes = ok(&at(&["changes"], &as_admin));
    assert_eq!(
        changes.matches("import of scenario").count(),
        1,
        "{changes}"
    );
    let plan = ok(&at(
        &["plan", "--screen", SCREEN, "--from", FROM, "--to", TO],
        &as_admin,
    ));
    assert!(plan.lines().count() > 1, "{plan}");
}

#[test]
fn users_can_be_added_before_the_first_serve() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("new");
    let store = TestStore::new();
    let added = ok(&store.with(&[
        "users",
        "add",
        "bob",
        "--role",
        "staff",
        "--data-dir",
        s(&data),
    ]));
    let token = token_of(&added);
    let changes = ok(&store.with(&["changes", "--data-dir", s(&data)]));
    assert!(changes.contains("user bob added"), "{changes}");
    // The token works once a server runs there, for what staff may do.
    let bob = tmp.path().join("bob.token");
    std::fs::write(&bob, token).unwrap();
    let server = Server::start(&data, &store);
    let as_bob = ["--server", server.url.as_str(), "--token-file", s(&bob)];
    ok(&at(&["plan", "--from", FROM, "--to", TO], &as_bob));
    fails(
        &at(&["users", "add", "eve", "--role", "staff"], &as_bob),
        &["403", "needs the role admin", "bob has staff"],
    );
}

#[test]
fn a_server_started_after_users_add_names_a_real_admin_token() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("new");
    let store = TestStore::new();
    ok(&store.with(&[
        "users",
        "add",
        "bob",
        "--role",
        "staff",
        "--data-dir",
        s(&data),
    ]));
    let server = Server::start(&data, &store);
    let said = server.said();
    let line = said
        .lines()
        .find(|l| l.starts_with("API token of the first admin"))
        .unwrap_or_else(|| panic!("serve names no admin token: {said}"));
    let named = line.rsplit(": ").next().unwrap_or_default();
    assert!(
        Path::new(named).exists(),
        "serve said {line:?}, but there is no such file: the store has no admin"
    );
}
