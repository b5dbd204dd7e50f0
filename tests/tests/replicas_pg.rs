//! Two `signage serve` processes on one PostgreSQL database and one Mosquitto, as a city
//! runs them: proof of play split between them through `$share/signage-ingest/...`, one of
//! them publishing (the PostgreSQL advisory lock). Four real agents play on the scaled
//! clock (15 s slots in 300 ms) while:
//!
//! 1. the replica that does not publish is SIGKILLed during ingest, and started again;
//! 2. a campaign is archived through the publishing replica's API and that replica is
//!    SIGKILLed at once, mid-publish.
//!
//! Then: the survivor holds the lease within seconds and has published the archive (the
//! broker retains, for a touched screen, the version the store says is published, and its
//! document no longer names the campaign); every agent drains at night and the ledger
//! holds each record its outbox ever wrote, once, as the planner plans it
//! (`ledger_check::checked_plays`: seqs 1..=N, no slot twice, each play on the document
//! it names); and `signage audit verify` on the database finds nothing.
//!
//! The same runs over a three-node NATS cluster (`tests::nats_cluster`: nats-server with
//! JetStream and its MQTT listeners): each replica holds its MQTT connection on a node of
//! its own and splits ingest with the other through the NATS queue group (`nats_ingest`);
//! the agents are spread over the three nodes, and the third node is SIGKILLed with the
//! replica that does not publish, and started again before the publisher is killed.
//!
//! A video rendition reaches its screen wherever it was uploaded and finished: a clip
//! uploaded to the replica that does not publish, on a campaign for a small screen made
//! there too, is transcoded down in the background (from the bytes in the database) and
//! the screen's agent gets a schedule naming the rendition, with no other change; and a
//! rendition finished by another process on the database (as a replica that no longer
//! publishes records one) is named in the screen's schedule within a few beats.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use server::store::{OpenMode, SharedStore};
use tests::agent_proc::{scaled_args, AgentProc};
use tests::nats_cluster::NatsCluster;
use tests::store::TestStore;
use tests::{signage_bin, Mosquitto};

const SCREENS: [&str; 4] = [
    "bj-metro-xidan-s1",
    "bj-metro-guomao-s1",
    "bj-bus-wangjing-s1",
    "bj-community-shuanglu-s1",
];
const SPEED: f64 = 50.0;
/// The campaign archived mid-publish.
const ARCHIVED: &str = "rm2023-w51";

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The broker both replicas and the agents use.
enum Broker {
    Mosquitto(Mosquitto),
    /// Three nodes; the replicas connect to the first two, node 3 is killed on the way.
    Nats(NatsCluster),
}

impl Broker {
    /// The lines of replica `i`'s config that name its broker and ingest.
    fn replica_config(&self, i: usize) -> String {
        match self {
            Broker::Mosquitto(m) => {
                format!("mqtt_url = \"{}\"\nshared_subscription = true\n", m.url())
            }
            Broker::Nats(c) => format!(
                "mqtt_url = \"{}\"\nnats_ingest = \"{}\"\n",
                c.nodes[i].mqtt_url(),
                c.nats_urls()
            ),
        }
    }

    /// The MQTT URL of the broker agent `n` connects to.
    fn agent_url(&self, n: usize) -> String {
        match self {
            Broker::Mosquitto(m) => m.url(),
            Broker::Nats(c) => c.nodes[n % c.nodes.len()].mqtt_url(),
        }
    }

    /// An MQTT port that is never killed, to read retained schedules from.
    fn probe_port(&self) -> u16 {
        match self {
            Broker::Mosquitto(m) => m.port,
            Broker::Nats(c) => c.nodes[0].mqtt_port,
        }
    }

    /// Kills the NATS cluster's third node (its agents play on into their outboxes).
    fn kill_node(&mut self) {
        if let Broker::Nats(c) = self {
            c.kill(2);
            eprintln!("NATS node 3 killed");
        }
    }

    /// Starts the third node again and waits for the cluster to form.
    async fn restart_node(&mut self) {
        if let Broker::Nats(c) = self {
            c.restart(2).await;
            eprintln!("NATS node 3 restarted");
        }
    }
}

/// Replaces the `mqtt_url` line of an agent's config.
fn with_mqtt_url(config: &str, url: &str) -> String {
    config
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("mqtt_url") {
                format!("mqtt_url = \"{url}\"")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// One `signage serve` replica: its data directory (a copy of the first one's: the same
/// server key), config, log and process.
struct Replica {
    name: &'static str,
    data: PathBuf,
    config: PathBuf,
    log: PathBuf,
    url: String,
    store: String,
    child: Option<Child>,
}

impl Replica {
    fn new(root: &Path, name: &'static str, store: &str, broker: &str) -> Replica {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let config = dir.join("signage.toml");
        std::fs::write(
            &config,
            format!(
                "http = \"127.0.0.1:{port}\"\nembedded_broker = \"127.0.0.1:{}\"\n{broker}",
                free_port()
            ),
        )
        .unwrap();
        Replica {
            name,
            data: dir.join("data"),
            config,
            log: dir.join("serve.log"),
            url: format!("http://127.0.0.1:{port}"),
            store: store.to_owned(),
            child: None,
        }
    }

    fn start(&mut self) {
        assert!(self.child.is_none(), "{} is running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(signage_bin())
            .args(["serve", "--data-dir"])
            .arg(&self.data)
            .arg("--store")
            .arg(&self.store)
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .env_remove("NO_COLOR")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start signage serve");
        self.child = Some(child);
    }

    /// SIGKILL: no shutdown code runs, its PostgreSQL sessions die with it.
    fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn ready(&self) -> bool {
        reqwest::get(format!("{}/ready", self.url))
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    /// Whether it holds the publisher lease (its `/metrics`); `None` when it does not answer.
    async fn publishing(&self) -> Option<bool> {
        let text = reqwest::get(format!("{}/metrics", self.url))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let line = text
            .lines()
            .find(|l| l.starts_with("signage_publisher_lease_held "))?;
        Some(line.ends_with(" 1"))
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.ready().await {
            assert!(
                Instant::now() < deadline,
                "{} did not become ready:\n{}",
                self.name,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn signage_ok(args: &[&str]) -> String {
    let out = Command::new(signage_bin()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "signage {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Copies a directory tree (the first replica's data directory: server key, broker secret,
/// admin token), as an operator gives replicas the same files.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The version the broker retains on `topic`, read by a fresh subscriber.
async fn retained_version(mqtt_port: u16, topic: &str) -> Option<(u64, serde_json::Value)> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let mut opts = MqttOptions::new(format!("probe-{}", free_port()), "127.0.0.1", mqtt_port);
    opts.set_max_packet_size(4 << 20, 4 << 20);
    let (client, mut events) = AsyncClient::new(opts, 16);
    client.subscribe(topic, QoS::AtLeastOnce).await.ok()?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let event = tokio::time::timeout_at(deadline, events.poll())
            .await
            .ok()?;
        if let Ok(Event::Incoming(Packet::Publish(p))) = event {
            let doc: serde_json::Value = serde_json::from_slice(&p.payload).ok()?;
            let payload: serde_json::Value = serde_json::from_str(doc["payload"].as_str()?).ok()?;
            let _ = client.disconnect().await;
            return Some((payload["version"].as_u64()?, payload));
        }
    }
}

/// The status `screen` last sent, as the replica at `url` shows it in its fleet.
async fn fleet_status(url: &str, token: &str, screen: &str) -> Option<serde_json::Value> {
    let page: serde_json::Value = reqwest::Client::new()
        .get(format!("{url}/api/v1/fleet?limit=100"))
        .bearer_auth(token)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    page["items"]
        .as_array()?
        .iter()
        .find(|r| r["screen_id"] == screen)
        .map(|r| r["status"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_lose_nothing_when_either_is_killed() {
    two_replicas(Broker::Mosquitto(Mosquitto::start())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_over_a_nats_cluster_lose_nothing_when_a_node_and_either_replica_die() {
    two_replicas(Broker::Nats(NatsCluster::start(3).await)).await;
}

async fn two_replicas(mut broker: Broker) {
    let tmp = tempfile::tempdir().unwrap();
    // The synchronous PostgreSQL client blocks: off the runtime's own threads.
    let db = tokio::task::block_in_place(TestStore::postgres);
    let store_url = db.url().expect("a PostgreSQL database");
    let mut a = Replica::new(tmp.path(), "a", &store_url, &broker.replica_config(0));
    let mut b = Replica::new(tmp.path(), "b", &store_url, &broker.replica_config(1));

    // The scenario into the database through the first replica's directory, then the
    // first replica started: it makes the server key and admin token the other gets.
    let scenario = tests::copy_beijing(&tmp.path().join("scenario"));
    let data_a = a.data.to_str().unwrap().to_owned();
    signage_ok(&[
        "import",
        scenario.to_str().unwrap(),
        "--data-dir",
        &data_a,
        "--store",
        &store_url,
    ]);
    a.start();
    a.wait_ready().await;
    copy_dir(&a.data, &b.data);
    b.start();
    b.wait_ready().await;
    let token = a.data.join(server::admin::FILE);

    // Agents provisioned through the API, installed, then playing from 08:00.
    let mut agents = Vec::new();
    for (n, screen) in SCREENS.into_iter().enumerate() {
        let out = tmp.path().join(format!("{screen}.toml"));
        signage_ok(&[
            "screens",
            "provision",
            screen,
            "--server",
            &a.url,
            "--token-file",
            token.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        let config = with_mqtt_url(
            &std::fs::read_to_string(&out).unwrap(),
            &broker.agent_url(n),
        );
        agents.push(AgentProc::new(&tmp.path().join(screen), &config));
    }
    let anchor_ms = Utc::now().timestamp_millis();
    let mut args = scaled_args(t("2023-12-20T08:00:00+08:00"), anchor_ms, SPEED);
    args.extend(["--durability".into(), "immediate".into()]);
    for agent in &mut agents {
        agent.spawn(&args);
    }

    // Which replica publishes: exactly one.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (holder_is_a, _) = loop {
        match (a.publishing().await, b.publishing().await) {
            (Some(x), Some(y)) if x != y => break (x, y),
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "no single publisher:\nA:\n{}\nB:\n{}",
            a.log_text(),
            b.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (holder, other) = if holder_is_a {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };

    // Let the agents play and report, then kill the non-publisher during ingest (over NATS,
    // the third node with it: one agent, perhaps a replica's NATS connection, on it).
    tokio::time::sleep(Duration::from_secs(4)).await;
    other.kill();
    broker.kill_node();
    tokio::time::sleep(Duration::from_secs(2)).await;
    other.start();
    other.wait_ready().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    broker.restart_node().await;

    // An archive through the publisher, which dies at once.
    let (status, body) = tests::send_json(
        reqwest::Client::new()
            .post(format!(
                "{}/api/v1/campaigns/{ARCHIVED}/archive",
                holder.url
            ))
            .bearer_auth(std::fs::read_to_string(&token).unwrap().trim()),
    )
    .await;
    holder.kill();
    assert!(status < 300, "archive: {status} {body}");

    // The survivor takes over publishing within seconds.
    let taken = Instant::now();
    while other.publishing().await != Some(true) {
        assert!(
            taken.elapsed() < Duration::from_secs(30),
            "the survivor did not take the lease:\n{}",
            other.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "the survivor held the lease {:.1} s after the publisher was killed",
        taken.elapsed().as_secs_f64()
    );

    // Its catch-up published the archive: for each screen, the broker retains the version
    // the store says is published, and no screen's document names the campaign.
    // Opened on a copy of the replicas' directory: the audit checks documents against the
    // server key kept there.
    let check = tmp.path().join("check");
    copy_dir(&other.data, &check);
    let store: SharedStore = tokio::task::block_in_place(|| db.open(&check, OpenMode::Existing));
    let topics = playlists::wire::Topics::new("signage/v1");
    let deadline = Instant::now() + Duration::from_secs(30);
    for screen in SCREENS {
        loop {
            let published = {
                let store = store.clone();
                let s = screen.to_owned();
                tokio::task::spawn_blocking(move || store.published().map(|mut p| p.remove(&s)))
                    .await
                    .unwrap()
                    .unwrap()
            };
            let retained = retained_version(broker.probe_port(), &topics.schedule(screen)).await;
            let settled = match (&published, &retained) {
                (Some(p), Some((v, doc))) => {
                    p.version == *v && !doc.to_string().contains(&format!("\"{ARCHIVED}\""))
                }
                _ => false,
            };
            if settled {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{screen}: published {published:?}, retained {:?}\n{}",
                retained.map(|r| r.0),
                other.log_text()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    // The killed publisher is started again, as an operator would (agents fetch media
    // from the replica they were provisioned by): it serves, the survivor keeps the lease.
    holder.start();
    holder.wait_ready().await;
    assert_eq!(other.publishing().await, Some(true), "the lease moved back");

    // More play, then every agent drains at night.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for agent in &mut agents {
        agent.kill().await;
    }
    let night = t("2023-12-21T02:00:00+08:00");
    for agent in &mut agents {
        agent.spawn(&scaled_args(night, Utc::now().timestamp_millis(), 1.0));
    }
    let ledger = store.ledger();
    let admin = std::fs::read_to_string(&token).unwrap().trim().to_owned();
    let mut written = Vec::new();
    for (screen, agent) in SCREENS.iter().zip(&mut agents) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = fleet_status(&other.url, &admin, screen).await;
            let stored = {
                let ledger = ledger.clone();
                tokio::task::spawn_blocking(move || ledger.counts())
                    .await
                    .unwrap()
                    .unwrap()
                    .last_seq
                    .get(*screen)
                    .copied()
            };
            let drained = status.as_ref().and_then(|s| {
                let at = s["at"]
                    .as_str()
                    .and_then(|a| a.parse::<DateTime<Utc>>().ok())?;
                let last = s["last_seq"].as_u64()?;
                (s["online"] == true
                    && at >= night
                    && s["outbox_backlog"] == 0
                    && last > 0
                    && stored == Some(last))
                .then_some(last)
            });
            if let Some(last) = drained {
                written.push(last);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{screen}: status {status:?}, ledger last seq {stored:?}\n{}",
                agent.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        agent.terminate().await;
    }

    // Plays that found no media, in their agent's words.
    for (screen, agent) in SCREENS.iter().zip(&agents) {
        for line in agent.log().lines().filter(|l| l.contains("play failed")) {
            eprintln!("{screen}: {line}");
        }
    }
    // On the x50 clock a slot lasts 300 ms: on a loaded machine (or through NATS, which
    // takes half a second to deliver a retained schedule) the first plays may come before
    // the media, honestly recorded as failed.
    let start = tests::ledger_check::Start::Fetching;
    // The ledger: every record once, as planned, on the documents it names.
    for (screen, written) in SCREENS.iter().zip(written) {
        let store = store.clone();
        let ledger = ledger.clone();
        let s = screen.to_string();
        let records = tokio::task::spawn_blocking(move || {
            tests::ledger_check::checked_plays_on_documents_from(&*store, &*ledger, &s, start)
        })
        .await
        .unwrap();
        assert!(!records.is_empty(), "{screen} has no plays in the ledger");
        assert_eq!(
            records.len() as u64,
            written,
            "{screen}: the ledger holds {} records, the agent wrote {written}",
            records.len()
        );
    }
    let audit = signage_ok(&[
        "audit",
        "verify",
        "--data-dir",
        other.data.to_str().unwrap(),
        "--store",
        &store_url,
    ]);
    assert!(audit.contains("ledger verified"), "{audit}");
    let verdict = tokio::task::spawn_blocking(move || server::audit::verify(&*store))
        .await
        .unwrap()
        .expect("audit");
    assert!(verdict.problems.is_empty(), "{:?}", verdict.problems);
    tokio::task::block_in_place(|| drop(db));
}

const SMALL: &str = "bj-metro-xidan-s8";
const CLIP: &str = "clip-small";

/// A 4-second 1280x720 H.264 clip (inside the kiosk gate: stored as uploaded) made by the
/// `ffmpeg` command line.
fn h264_clip(dir: &Path) -> Vec<u8> {
    let out = dir.join("clip.mp4");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=s=1280x720:r=25:d=4")
        .args([
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ])
        .arg(&out)
        .status()
        .expect("the ffmpeg command line (scripts/setup.sh installs it)");
    assert!(status.success(), "ffmpeg made the clip");
    std::fs::read(out).unwrap()
}

/// Waits until the broker retains for `screen` a schedule containing `needle` that is the
/// version the store says is published; returns that version.
async fn retained_naming(
    mqtt_port: u16,
    store: &SharedStore,
    screen: &str,
    needle: &str,
    within: Duration,
    log: impl Fn() -> String,
) -> u64 {
    let topic = playlists::wire::Topics::new("signage/v1").schedule(screen);
    let deadline = Instant::now() + within;
    loop {
        let published = {
            let (store, s) = (store.clone(), screen.to_owned());
            tokio::task::spawn_blocking(move || store.published().map(|mut p| p.remove(&s)))
                .await
                .unwrap()
                .unwrap()
        };
        let retained = retained_version(mqtt_port, &topic).await;
        if let (Some(p), Some((v, doc))) = (&published, &retained) {
            if p.version == *v && doc.to_string().contains(needle) {
                return *v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{screen}: no schedule naming {needle} (published {published:?}, retained {:?})\n{}",
            retained.map(|r| r.0),
            log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_uploaded_to_the_replica_that_does_not_publish_reaches_its_screen_as_a_rendition() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let db = tokio::task::block_in_place(TestStore::postgres);
    let store_url = db.url().expect("a PostgreSQL database");
    let config = format!(
        "mqtt_url = \"{}\"\nshared_subscription = true\napproval = \"off\"\n",
        broker.url()
    );
    let mut a = Replica::new(tmp.path(), "a", &store_url, &config);
    let mut b = Replica::new(tmp.path(), "b", &store_url, &config);
    let scenario = tests::copy_beijing(&tmp.path().join("scenario"));
    signage_ok(&[
        "import",
        scenario.to_str().unwrap(),
        "--data-dir",
        a.data.to_str().unwrap(),
        "--store",
        &store_url,
    ]);
    a.start();
    a.wait_ready().await;
    copy_dir(&a.data, &b.data);
    b.start();
    b.wait_ready().await;
    let admin = std::fs::read_to_string(a.data.join(server::admin::FILE))
        .unwrap()
        .trim()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    let holder_is_a = loop {
        match (a.publishing().await, b.publishing().await) {
            (Some(x), Some(y)) if x != y => break x,
            _ => {}
        }
        assert!(Instant::now() < deadline, "no single publisher");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (holder, other) = if holder_is_a { (&a, &b) } else { (&b, &a) };

    // Everything through the replica that does not publish: a 640x360 screen, the clip
    // (its bytes reach the database; only that replica has a local copy), a campaign.
    let api = format!("{}/api/v1", other.url);
    let http = reqwest::Client::new();
    let (status, body) = tests::send_json(
        http.post(format!("{api}/screens"))
            .bearer_auth(&admin)
            .json(&serde_json::json!({
                "id": SMALL, "venue": "bj-metro-xidan", "resolution": {"width": 640, "height": 360}
            })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let form = reqwest::multipart::Form::new()
        .text(
            "meta",
            serde_json::json!({"id": CLIP, "title": CLIP}).to_string(),
        )
        .part(
            "file",
            reqwest::multipart::Part::bytes(h264_clip(tmp.path())).file_name("clip.mp4"),
        );
    let (status, body) = tests::send_json(
        http.post(format!("{api}/creatives"))
            .bearer_auth(&admin)
            .multipart(form),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let source = body["spec"]["sha256"].as_str().unwrap().to_owned();
    let (status, body) = tests::send_json(
        http.post(format!("{api}/campaigns")).bearer_auth(&admin).json(&serde_json::json!({
            "id": "small-video", "name": "Small video", "priority": "high", "weight": 1,
            "flight": {"start": "2023-12-20T00:00:00+08:00", "end": "2023-12-21T00:00:00+08:00"},
            "dayparts": ["* * * * *"], "target": {"screens": [SMALL]}, "creatives": [CLIP]
        })),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // The screen's agent, provisioned by the replica that does not publish: it downloads
    // from there, so the original never reaches the publisher's directory through `/media`
    // (the publisher transcodes from the database's bytes), and the rendition the publisher
    // makes is served by the other replica from the database.
    let out = tmp.path().join("small.toml");
    let token = a.data.join(server::admin::FILE);
    signage_ok(&[
        "screens",
        "provision",
        SMALL,
        "--server",
        &other.url,
        "--token-file",
        token.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let mut agent = AgentProc::new(
        &tmp.path().join("agent"),
        &std::fs::read_to_string(&out).unwrap(),
    );
    agent.spawn(&scaled_args(
        t("2023-12-20T10:00:00+08:00"),
        Utc::now().timestamp_millis(),
        5.0,
    ));

    // The rendition is made in the background, then named in the screen's schedule.
    let check = tmp.path().join("check");
    copy_dir(&other.data, &check);
    let store: SharedStore = tokio::task::block_in_place(|| db.open(&check, OpenMode::Existing));
    let deadline = Instant::now() + Duration::from_secs(120);
    let rendition = loop {
        let (s, src) = (store.clone(), source.clone());
        let made = tokio::task::spawn_blocking(move || s.renditions_of(&src))
            .await
            .unwrap()
            .unwrap();
        if let Some(r) = made.first() {
            break r.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no rendition made\nA:\n{}\nB:\n{}",
            a.log_text(),
            b.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let made_at = Instant::now();
    assert_eq!(
        (rendition.width, rendition.height),
        (640, 360),
        "{rendition:?}"
    );
    let logs = || format!("publisher:\n{}", holder.log_text());
    let version = retained_naming(
        broker.port,
        &store,
        SMALL,
        &rendition.sha256,
        Duration::from_secs(10),
        logs,
    )
    .await;
    eprintln!(
        "the schedule naming the rendition was retained {:.2} s after it was indexed",
        made_at.elapsed().as_secs_f64()
    );
    // The agent has that schedule and the rendition's file.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = fleet_status(&other.url, &admin, SMALL).await;
        let got = status.as_ref().is_some_and(|s| {
            s["schedule_version"].as_u64() >= Some(version) && s["media_ready"] == true
        });
        if got {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent: status {status:?}\n{}",
            agent.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    agent.terminate().await;

    // A rendition finished elsewhere (here this process, on the database, as a replica
    // that lost the lease mid-transcode records its own): the publisher names it.
    let remade = {
        let s = store.clone();
        let old = rendition.clone();
        tokio::task::spawn_blocking(move || {
            let bytes = b"another encoding of the same rendition".to_vec();
            let sha = playlists::Sha256::of(&bytes);
            s.put_media(&sha, &bytes).unwrap();
            let remade = server::store::StoredRendition {
                sha256: sha.to_string(),
                bytes: bytes.len() as u64,
                ..old
            };
            s.put_finished_rendition(&remade).unwrap();
            remade
        })
        .await
        .unwrap()
    };
    let recorded = Instant::now();
    let logs = || format!("publisher:\n{}", holder.log_text());
    let newer = retained_naming(
        broker.port,
        &store,
        SMALL,
        &remade.sha256,
        Duration::from_secs(10),
        logs,
    )
    .await;
    assert!(newer > version, "{newer} after {version}");
    eprintln!(
        "a rendition recorded from outside was retained {:.2} s later",
        recorded.elapsed().as_secs_f64()
    );
    drop(store);
    tokio::task::block_in_place(|| drop(db));
}
