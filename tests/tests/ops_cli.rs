//! The `signage` binary as an operator runs it: `screens provision` and `broker
//! mosquitto-config` follow the server's configuration (file, then `SIGNAGE_*`); a closed
//! pipe ends a command quietly; logs carry no colour codes off a terminal and are JSON
//! lines with `--log-format json`; `bench plan` finds the Beijing scenario built into a
//! binary installed elsewhere.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tests::{signage_bin, signage_ok, TestStore};

const SCREEN: &str = "bj-metro-xidan-s1";

/// A store holding the Beijing scenario (its data directory in `dir`).
fn store(dir: &Path, store: &TestStore) -> String {
    let data = dir.join("data");
    let data = data.to_str().unwrap().to_owned();
    signage_ok(&store.with(&[
        "import",
        tests::beijing().to_str().unwrap(),
        "--data-dir",
        &data,
    ]));
    data
}

fn agent_config(path: &Path) -> toml::Table {
    toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn provision_uses_the_configured_prefix_and_addresses() {
    let tmp = tempfile::tempdir().unwrap();
    let test_store = TestStore::new();
    let data = store(tmp.path(), &test_store);
    let config = tmp.path().join("signage.toml");
    std::fs::write(
        &config,
        "topic_prefix = \"city/v2\"\nhttp = \"10.1.2.3:9080\"\nembedded_broker = \"10.1.2.3:2883\"\ntls = \"self-signed\"\n",
    )
    .unwrap();
    let out = tmp.path().join("agent.toml");
    let (config, out_s) = (config.to_str().unwrap(), out.to_str().unwrap());
    signage_ok(&test_store.with(&[
        "screens",
        "provision",
        SCREEN,
        "--data-dir",
        &data,
        "--config",
        config,
        "--out",
        out_s,
    ]));
    let agent = agent_config(&out);
    assert_eq!(agent["topic_prefix"].as_str(), Some("city/v2"));
    assert_eq!(agent["server_url"].as_str(), Some("https://10.1.2.3:9080"));
    assert_eq!(agent["mqtt_url"].as_str(), Some("mqtt://10.1.2.3:2883"));

    // The environment over the file, flags over both.
    let run = |envs: &[(&str, &str)], extra: &[&str]| {
        let mut cmd = Command::new(signage_bin());
        cmd.args([
            "screens",
            "provision",
            SCREEN,
            "--data-dir",
            &data,
            "--out",
            out_s,
        ])
        .args(extra)
        .args(test_store.args())
        .env_remove("SIGNAGE_SERVER");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        agent_config(&out)
    };
    let agent = run(
        &[
            ("SIGNAGE_TOPIC_PREFIX", "env/v3"),
            ("SIGNAGE_MQTT_URL", "mqtt://broker.example:1883"),
        ],
        &["--config", config],
    );
    assert_eq!(agent["topic_prefix"].as_str(), Some("env/v3"));
    assert_eq!(
        agent["mqtt_url"].as_str(),
        Some("mqtt://broker.example:1883")
    );
    assert_eq!(agent["server_url"].as_str(), Some("https://10.1.2.3:9080"));
    let agent = run(
        &[("SIGNAGE_TOPIC_PREFIX", "env/v3")],
        &["--server-url", "https://signage.example.org"],
    );
    assert_eq!(agent["topic_prefix"].as_str(), Some("env/v3"));
    assert_eq!(
        agent["server_url"].as_str(),
        Some("https://signage.example.org")
    );
    assert_eq!(agent["mqtt_url"].as_str(), Some("mqtt://127.0.0.1:1883"));
    // Without configuration: the defaults, as before.
    let agent = run(&[], &[]);
    assert_eq!(agent["topic_prefix"].as_str(), Some("signage/v1"));
    assert_eq!(agent["server_url"].as_str(), Some("http://127.0.0.1:8080"));

    // The broker's ACL grants the configured prefix.
    let broker = tmp.path().join("mosquitto");
    signage_ok(&test_store.with(&[
        "broker",
        "mosquitto-config",
        "--data-dir",
        &data,
        "--config",
        config,
        "--out",
        broker.to_str().unwrap(),
    ]));
    let acl = std::fs::read_to_string(broker.join("acl")).unwrap();
    assert!(acl.contains("topic readwrite city/v2/#"), "{acl}");
    assert!(
        acl.contains("pattern write city/v2/screens/%u/pop"),
        "{acl}"
    );
    assert!(!acl.contains("signage/v1/"), "{acl}");
}

/// `signage plan … | head -1` and `signage explain … | head -0`: the reader goes away,
/// the command ends at once with status 0 and says nothing.
#[test]
fn a_closed_pipe_ends_quietly() {
    let scenario = tests::beijing();
    let scenario = scenario.to_str().unwrap();
    for (args, lines) in [
        (
            &[
                "plan",
                "--scenario",
                scenario,
                "--from",
                "2023-12-17T00:00:00+08:00",
                "--to",
                "2023-12-24T00:00:00+08:00",
            ][..],
            1,
        ),
        (
            &[
                "explain",
                "--scenario",
                scenario,
                "--screen",
                SCREEN,
                "--at",
                "2023-12-20T10:00:00+08:00",
            ],
            0,
        ),
    ] {
        let mut child = Command::new(signage_bin())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut reader = BufReader::new(stdout);
        for _ in 0..lines {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert!(!line.is_empty());
        }
        drop(reader);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {stderr}", out.status);
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `signage [pre] serve` on a fresh store with standard error to a file until it says
/// it runs, then stops it with SIGTERM; its standard error.
fn serve_log(dir: &Path, pre: &[&str]) -> String {
    let store = TestStore::new();
    let config = dir.join("serve.toml");
    std::fs::write(
        &config,
        format!(
            "embedded_broker = \"127.0.0.1:{}\"\nhttp = \"127.0.0.1:0\"\n",
            free_port()
        ),
    )
    .unwrap();
    let log = dir.join("serve.log");
    let mut child = Command::new(signage_bin())
        .args(pre)
        .args(["serve", "--data-dir"])
        .arg(dir.join("data"))
        .arg("--config")
        .arg(&config)
        .args(store.args())
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("signage server running")
    {
        assert!(
            Instant::now() < deadline && child.try_wait().unwrap().is_none(),
            "serve did not start: {}",
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    child.wait().unwrap();
    std::fs::read_to_string(&log).unwrap()
}

#[test]
fn logs_off_a_terminal_have_no_colour_and_json_lines_parse() {
    let tmp = tempfile::tempdir().unwrap();
    let text = serve_log(tmp.path(), &[]);
    assert!(text.contains(" INFO "), "{text}");
    assert!(!text.contains('\x1b'), "colour codes in a file: {text:?}");

    let tmp = tempfile::tempdir().unwrap();
    let json = serve_log(tmp.path(), &["--log-format", "json"]);
    let mut running = false;
    for line in json.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string(),
            "{line}"
        );
        running |= v["message"] == "signage server running";
    }
    assert!(running, "{json}");
    assert!(!json.contains('\x1b'));
}

/// A binary copied away from the repository (nothing installed beside it) plans the
/// Beijing scenario from its built-in copy, written into its temporary directory.
#[test]
fn bench_plan_finds_the_built_in_scenario() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let copy = bin.join("signage");
    std::fs::copy(signage_bin(), &copy).unwrap();
    let scratch = tmp.path().join("tmp");
    std::fs::create_dir(&scratch).unwrap();
    let out = Command::new(&copy)
        .args([
            "bench",
            "plan",
            "--runs",
            "1",
            "--from",
            "2023-12-20T00:00:00+08:00",
            "--to",
            "2023-12-21T00:00:00+08:00",
        ])
        .env("TMPDIR", &scratch)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let scenario: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tests::beijing().join("scenario.json")).unwrap())
            .unwrap();
    let screens = scenario["screens"].as_array().unwrap().len();
    assert!(stdout.contains(&format!("{screens} screens")), "{stdout}");
    let extracted: Vec<_> = std::fs::read_dir(&scratch)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        extracted.len() == 1 && extracted[0].starts_with("signage-beijing-role-models-"),
        "{extracted:?}"
    );
}
