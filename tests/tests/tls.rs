//! Transport security end to end (design.md, "Trust on the wire"), through the real
//! `signage` and `signage-agent` binaries: `serve --tls self-signed` speaks HTTPS only,
//! clients that do not pin its CA are refused at the handshake, the CLI works over
//! `https://` with `--ca-file`, and a provisioned agent pins the CA and downloads its
//! media over HTTPS; on a real Mosquitto with a TLS listener the server and an agent
//! speak `mqtts://` and the agent applies its schedule.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tests::agent_proc::AgentProc;
use tests::{beijing, signage_bin, signage_ok as ok, signage_output as signage, TestStore};

const FROM: &str = "2023-12-20T06:00:00+08:00";
const TO: &str = "2023-12-20T07:00:00+08:00";
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

/// A client that trusts the PEM certificates in `ca` alone.
fn pinned_client(ca: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca).expect("read the CA");
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("a PEM CA"))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// `signage serve` over HTTPS on free ports; killed on drop.
struct Server {
    child: Child,
    url: String,
    logs: tempfile::TempDir,
}

impl Server {
    /// Starts `serve` on `store` with `config` (written to a file, `http` and
    /// `embedded_broker` put first) and `args`, and waits until it says it serves HTTPS and
    /// `/health` answers to a client pinning `ca` (which the server may generate as it
    /// starts).
    async fn start(
        data: &Path,
        store: &TestStore,
        config: &str,
        args: &[&str],
        ca: &Path,
    ) -> Server {
        let logs = tempfile::tempdir().expect("tempdir");
        for _ in 0..5 {
            let (http, broker) = (free_port(), free_port());
            let file = logs.path().join("config.toml");
            std::fs::write(
                &file,
                format!(
                    "http = \"127.0.0.1:{http}\"\nembedded_broker = \"127.0.0.1:{broker}\"\n{config}"
                ),
            )
            .expect("write config");
            let stdout = logs.path().join("stdout");
            let mut child = Command::new(signage_bin())
                .args(["serve", "--data-dir", s(data), "--config", s(&file)])
                .args(args)
                .args(store.args())
                .env_remove("SIGNAGE_HTTP")
                .env_remove("SIGNAGE_MQTT_URL")
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&stdout).expect("stdout file"))
                .stderr(std::fs::File::create(logs.path().join("stderr")).expect("stderr file"))
                .spawn()
                .expect("start signage serve");
            let url = format!("https://127.0.0.1:{http}");
            let running = format!("signage server: {url}");
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                let said = std::fs::read_to_string(&stdout).is_ok_and(|o| o.contains(&running));
                if said && ca.exists() {
                    let health = pinned_client(ca).get(format!("{url}/health")).send().await;
                    if health.is_ok_and(|r| r.status() == 200) {
                        return Server { child, url, logs };
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "signage serve did not start over HTTPS: {}",
            std::fs::read_to_string(logs.path().join("stderr")).unwrap_or_default()
        );
    }

    fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.logs.path().join("stderr")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the server's fleet shows `screen` online with its media, and returns its
/// row (status as the agent sent it, and the version the server published).
async fn wait_media_ready(
    client: &reqwest::Client,
    server: &Server,
    token: &str,
    agent: &AgentProc,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let resp = client
            .get(format!("{}/api/v1/fleet?limit=1000", server.url))
            .bearer_auth(token)
            .send()
            .await;
        if let Ok(resp) = resp {
            let page: serde_json::Value = resp.json().await.expect("fleet JSON");
            let row = page["items"]
                .as_array()
                .expect("items")
                .iter()
                .find(|r| r["screen_id"] == SCREEN)
                .cloned()
                .expect("the screen is in the fleet");
            let status = &row["status"];
            // The fleet view reads published versions at most every 5 s: wait for one too.
            if status["online"] == true
                && status["media_ready"] == true
                && row["published_version"].is_u64()
            {
                return row;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the agent never held its media: agent log:\n{}\nserver log:\n{}",
            agent.log_tail(),
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The agent config text as provisioned through the server's API over HTTPS.
fn provision(server: &Server, admin: &Path, ca: &Path, out: &Path) -> String {
    ok(&[
        "screens",
        "provision",
        SCREEN,
        "--server",
        &server.url,
        "--token-file",
        s(admin),
        "--ca-file",
        s(ca),
        "--out",
        s(out),
    ]);
    std::fs::read_to_string(out).expect("the provisioned config")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_a_generated_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = s(&data);
    let store = TestStore::new();
    ok(&store.with(&["import", s(&beijing()), "--data-dir", d]));
    let local_plan = ok(&store.with(&["plan", "--data-dir", d, "--from", FROM, "--to", TO]));
    assert!(local_plan.lines().count() > 10, "{local_plan}");
    let ca = data.join("tls").join("ca.pem");
    let server = Server::start(&data, &store, "", &["--tls", "self-signed"], &ca).await;
    let port = server.port();

    // The generated key is the owner's alone.
    {
        use std::os::unix::fs::PermissionsExt;
        let key = data.join("tls").join("key.pem");
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{} is mode {mode:o}", key.display());
    }

    // Plain HTTP on the HTTPS port gets no answer.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .await;
    assert!(
        plain.is_err(),
        "plain HTTP was answered: {:?}",
        plain.map(|r| r.status())
    );

    // A client trusting only the system's roots refuses the certificate.
    let unpinned = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap()
        .get(format!("{}/health", server.url))
        .send()
        .await
        .expect_err("an unpinned client accepted the self-signed certificate");
    let chain = format!("{unpinned:?}");
    assert!(
        chain.contains("UnknownIssuer") || chain.contains("certificate"),
        "not a certificate error: {chain}"
    );

    // With the CA pinned: health, and an API call that needs the token (refused without).
    let client = pinned_client(&ca);
    let admin = data.join("admin.token");
    let token = std::fs::read_to_string(&admin).unwrap().trim().to_owned();
    let health = client
        .get(format!("{}/health", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let anonymous = client
        .get(format!("{}/api/v1/whoami", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let me: serde_json::Value = client
        .get(format!("{}/api/v1/whoami", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["name"], "admin", "{me}");

    // The CLI over https:// with the CA pinned reads what the store held; without the CA
    // it fails naming the certificate.
    let over_https = ok(&[
        "plan",
        "--server",
        &server.url,
        "--token-file",
        s(&admin),
        "--ca-file",
        s(&ca),
        "--from",
        FROM,
        "--to",
        TO,
    ]);
    assert_eq!(over_https, local_plan);
    let refused = signage(&[
        "plan",
        "--server",
        &server.url,
        "--token-file",
        s(&admin),
        "--from",
        FROM,
        "--to",
        TO,
    ]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("certificate"), "{stderr}");
    let bad_ca = tmp.path().join("bad.pem");
    std::fs::write(&bad_ca, "not a certificate").unwrap();
    let refused = signage(&[
        "plan",
        "--server",
        &server.url,
        "--ca-file",
        s(&bad_ca),
        "--from",
        FROM,
        "--to",
        TO,
    ]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("bad.pem"),
        "{stderr}"
    );

    // A provisioned agent gets the https:// URL and the CA, and downloads its media.
    let config = provision(&server, &admin, &ca, &tmp.path().join("agent.toml"));
    assert!(
        config.contains(&format!("server_url = \"{}\"", server.url)),
        "{config}"
    );
    let pinned: String = toml_value(&config, "server_ca_pem");
    assert_eq!(pinned, std::fs::read_to_string(&ca).unwrap());
    let mut agent = AgentProc::new(&tmp.path().join("agent"), &config);
    agent.spawn(&["--clock".into(), "sim".into()]);
    let row = wait_media_ready(&client, &server, &token, &agent).await;
    assert!(row["status"]["cache_items"].as_u64().unwrap() > 0, "{row}");
    agent.terminate().await;
}

/// A top-level string of a TOML text.
fn toml_value(text: &str, key: &str) -> String {
    let v: toml::Value = toml::from_str(text).expect("TOML");
    v[key].as_str().expect("a string").to_owned()
}

/// A Mosquitto with one TLS listener (`cert`, `key` signed by `ca`) on a free port;
/// killed on drop.
struct TlsMosquitto {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl TlsMosquitto {
    fn start(ca: &Path, cert: &Path, key: &Path) -> TlsMosquitto {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("mosquitto is not installed");
        for _ in 0..10 {
            let port = free_port();
            let conf = dir.path().join("mosquitto.conf");
            let log = dir.path().join(format!("mosquitto-{port}.log"));
            std::fs::write(
                &conf,
                format!(
                    "listener {port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n\
                     allow_anonymous true\npersistence false\nmax_packet_size 4194304\n\
                     log_dest stderr\nlog_type all\n",
                    s(ca),
                    s(cert),
                    s(key)
                ),
            )
            .expect("conf");
            let mut child = Command::new(bin)
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("log"))
                .spawn()
                .expect("start mosquitto");
            for _ in 0..100 {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                let running = std::fs::read_to_string(&log).is_ok_and(|l| l.contains(" running"));
                if running && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return TlsMosquitto {
                        child,
                        port,
                        _dir: dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            eprintln!(
                "mosquitto on {port}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        panic!("mosquitto with TLS did not start");
    }
}

impl Drop for TlsMosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtts_on_mosquitto_with_a_configured_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    // One CA signs the certificate of both the broker and the server.
    let names = ["127.0.0.1".to_owned(), "localhost".to_owned()];
    let (ca_pem, cert_pem, key_pem) = server::tls::generate(&names).expect("generate");
    let pki = tmp.path().join("pki");
    std::fs::create_dir(&pki).unwrap();
    let [ca, cert, key]: [PathBuf; 3] = ["ca.pem", "cert.pem", "key.pem"].map(|f| pki.join(f));
    std::fs::write(&ca, &ca_pem).unwrap();
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, &key_pem).unwrap();
    let broker = TlsMosquitto::start(&ca, &cert, &key);

    // Plain MQTT on the TLS listener gets no CONNACK.
    {
        let mut options = rumqttc::MqttOptions::new("plain-probe", "127.0.0.1", broker.port);
        options.set_keep_alive(Duration::from_secs(5));
        let (_client, mut events) = rumqttc::AsyncClient::new(options, 4);
        let first = tokio::time::timeout(Duration::from_secs(10), events.poll()).await;
        assert!(
            !matches!(
                first,
                Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))))
            ),
            "plain MQTT was accepted on the TLS listener"
        );
    }

    let data = tmp.path().join("data");
    let store = TestStore::new();
    ok(&store.with(&["import", s(&beijing()), "--data-dir", s(&data)]));
    let config = format!(
        "mqtt_url = \"mqtts://127.0.0.1:{}\"\nmqtt_ca_file = \"{}\"\n\
         [tls]\ncert = \"{}\"\nkey = \"{}\"\nca = \"{}\"\n",
        broker.port,
        s(&ca),
        s(&cert),
        s(&key),
        s(&ca)
    );
    let server = Server::start(&data, &store, &config, &[], &ca).await;
    let admin = data.join("admin.token");
    let token = std::fs::read_to_string(&admin).unwrap().trim().to_owned();
    let agent_config = provision(&server, &admin, &ca, &tmp.path().join("agent.toml"));
    assert!(
        agent_config.contains(&format!("mqtt_url = \"mqtts://127.0.0.1:{}\"", broker.port)),
        "{agent_config}"
    );
    assert_eq!(toml_value(&agent_config, "server_ca_pem"), ca_pem);

    let mut agent = AgentProc::new(&tmp.path().join("agent"), &agent_config);
    agent.spawn(&["--clock".into(), "sim".into()]);
    let client = pinned_client(&ca);
    let row = wait_media_ready(&client, &server, &token, &agent).await;
    // The schedule came over mqtts:// from the server's own mqtts:// connection: the agent
    // applied the version the server published.
    let published = row["published_version"]
        .as_u64()
        .expect("a published version");
    assert_eq!(
        row["status"]["schedule_version"].as_u64(),
        Some(published),
        "{row}"
    );
    agent.terminate().await;
}
