//! An authenticated fleet and self-healing retained state, on the embedded broker and on
//! a real Mosquitto running the configuration `signage broker mosquitto-config` wrote:
//! anonymous and wrong logins are refused; one screen's credentials cannot write another
//! screen's status or proof of play, nor read its schedule (Mosquitto's ACL), and what
//! they can write (the embedded broker has no ACL) never reaches the fleet; forged,
//! unsigned and unknown-screen statuses never reach `GET /api/v1/fleet`; garbage and an
//! older signed schedule published retained are replaced within 10 s and a fresh agent
//! applies the current version; a 10 MB message leaves the server connected and ingesting.

use std::time::{Duration, Instant};
use tests::store::off_runtime;

use agent::config::AgentConfig;
use playlists::wire::{Keypair, Status, Topics, STATUS_KIND};
use rumqttc::{AsyncClient, ConnectReturnCode, Event, EventLoop, MqttOptions, Packet, QoS};
use server::broker_auth::SERVER_USER;
use tests::agent_proc::{wait_for, AgentProc};
use tests::TestEnv;

const A: &str = "bj-metro-xidan-s1";
const B: &str = "bj-metro-wangfujing-s1";

/// One provisioned screen: its config, key and password.
struct Screen {
    id: &'static str,
    config_text: String,
    key: Keypair,
    password: String,
}

fn provision(env: &TestEnv, id: &'static str) -> Screen {
    let config_text = env.provision(id);
    let config = AgentConfig::from_toml_str(&config_text).expect("provisioned config");
    let password = config
        .mqtt_password
        .as_ref()
        .expect("a provisioned config has a broker password")
        .expose()
        .clone();
    assert_eq!(password.len(), 64, "256 bits as hex");
    Screen {
        id,
        config_text,
        key: config.screen_key.expose().clone(),
        password,
    }
}

fn options(port: u16, client_id: &str, login: Option<(&str, &str)>) -> MqttOptions {
    let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(16 << 20, 16 << 20);
    if let Some((user, password)) = login {
        o.set_credentials(user, password);
    }
    o
}

/// Connects; `Some` client and loop after a successful CONNACK, `None` when the broker
/// refuses (a CONNACK with an error code, or the connection closed).
async fn connect(
    port: u16,
    client_id: &str,
    login: Option<(&str, &str)>,
) -> Option<(AsyncClient, EventLoop)> {
    let (client, mut events) = AsyncClient::new(options(port, client_id, login), 64);
    let outcome = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(a))) => {
                    return a.code == ConnectReturnCode::Success
                }
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await
    .expect("the broker answered within 20 s");
    outcome.then_some((client, events))
}

/// Disconnects cleanly (DISCONNECT sent), so the broker never mistakes a dropped test
/// client for the agent that later takes its client id.
async fn bye(client: AsyncClient, mut events: EventLoop) {
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.poll().await {
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
}

/// Whether the broker lets this login in (leaving cleanly when it does).
async fn admitted(port: u16, client_id: &str, login: Option<(&str, &str)>) -> bool {
    match connect(port, client_id, login).await {
        Some((client, events)) => {
            bye(client, events).await;
            true
        }
        None => false,
    }
}

/// A status of `screen`, sealed by `key`, at `(session, seq)`, with a `note` to recognise.
fn sealed_status(key: &Keypair, screen: &str, session: u64, seq: u64, note: &str) -> Vec<u8> {
    key.seal(
        STATUS_KIND,
        &Status {
            v: 1,
            screen_id: screen.into(),
            online: true,
            session,
            seq,
            notes: vec![note.into()],
            ..Status::default()
        },
    )
}

/// Publishes at QoS 1 and drives the loop until the broker acknowledged it (or dropped
/// the connection, which is also an answer).
async fn publish(
    client: &AsyncClient,
    events: &mut EventLoop,
    topic: String,
    retain: bool,
    payload: Vec<u8>,
) {
    client
        .publish(topic, QoS::AtLeastOnce, retain, payload)
        .await
        .expect("queue");
    let _ = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
}

/// The notes of `screen`'s row in `GET /api/v1/fleet` (empty when it has no status).
async fn fleet_notes(env: &TestEnv, screen: &str) -> Vec<String> {
    let http = reqwest::Client::new();
    let (status, body) = tests::send_json(
        http.get(format!("{}/api/v1/fleet?limit=500", env.http_url()))
            .bearer_auth(env.admin_token()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let rows = body["items"].as_array().expect("fleet items").clone();
    let row = rows
        .iter()
        .find(|r| r["screen_id"] == screen)
        .unwrap_or_else(|| panic!("{screen} is not in the fleet: {body}"));
    row["status"]["notes"]
        .as_array()
        .map(|n| {
            n.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Forged, unsigned, mis-signed and unknown-screen statuses, each ranked above the genuine
/// one that follows: had any been taken, the genuine one would be stale and dropped. The
/// fleet must end with exactly the genuine status, for a known screen only.
async fn statuses_are_judged(env: &TestEnv, port: u16, a: &Screen, b: &Screen) {
    let (client, mut events) = connect(port, a.id, Some((a.id, &a.password)))
        .await
        .expect("A logs in");
    let topics = Topics::default();
    let forger = Keypair::from_secret([42; 32]);
    let big = u64::MAX / 2;
    let unsigned = serde_json::to_vec(&Status {
        v: 1,
        screen_id: a.id.into(),
        online: true,
        session: big,
        seq: 1,
        notes: vec!["unsigned".into()],
        ..Status::default()
    })
    .unwrap();
    let bad = [
        sealed_status(&forger, a.id, big, 1, "forged"),
        sealed_status(&b.key, a.id, big, 2, "signed by another screen"),
        unsigned,
        b"<img src=x onerror=alert(1)>".to_vec(),
    ];
    for payload in bad {
        publish(&client, &mut events, topics.status(a.id), true, payload).await;
    }
    // A status of a screen nobody knows, and one on an XSS-shaped topic.
    for ghost in ["ghost-screen-1", "<img src=x onerror=alert(1)>"] {
        publish(
            &client,
            &mut events,
            topics.status(ghost),
            true,
            sealed_status(&a.key, ghost, big, 1, "ghost"),
        )
        .await;
    }
    publish(
        &client,
        &mut events,
        topics.status(a.id),
        true,
        sealed_status(&a.key, a.id, 1, 1, "genuine"),
    )
    .await;
    wait_for(
        "the genuine status in the fleet",
        Duration::from_secs(30),
        || env.status(a.id).is_some_and(|s| s.notes == ["genuine"]),
        || format!("{:?}", env.status(a.id)),
    )
    .await;
    assert_eq!(fleet_notes(env, a.id).await, ["genuine"]);
    let held: Vec<String> = env
        .handle
        .shared
        .fleet
        .lock()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert!(
        held.iter().all(|s| s == A || s == B),
        "only provisioned, known screens are held: {held:?}"
    );
    bye(client, events).await;
}

/// The server is connected (`/ready`) and still takes statuses after a 10 MB message that
/// the broker refuses.
async fn oversized_message_leaves_the_server_ingesting(env: &TestEnv, port: u16, a: &Screen) {
    let (client, mut events) = connect(port, a.id, Some((a.id, &a.password)))
        .await
        .expect("A logs in");
    let topics = Topics::default();
    publish(
        &client,
        &mut events,
        topics.status(a.id),
        true,
        vec![b'x'; 10 << 20],
    )
    .await;
    // The broker cut the sender off; the server stays, and keeps ingesting.
    let (client, mut events) = connect(port, a.id, Some((a.id, &a.password)))
        .await
        .expect("A logs in again");
    publish(
        &client,
        &mut events,
        topics.status(a.id),
        true,
        sealed_status(&a.key, a.id, 2, 1, "after the flood"),
    )
    .await;
    wait_for(
        "a status after the 10 MB message",
        Duration::from_secs(30),
        || {
            env.status(a.id)
                .is_some_and(|s| s.notes == ["after the flood"])
        },
        || format!("{:?}", env.status(a.id)),
    )
    .await;
    let http = reqwest::Client::new();
    let (status, ready) = tests::send_json(http.get(format!("{}/ready", env.http_url()))).await;
    assert_eq!(
        (status, &ready["ready"]),
        (200, &serde_json::json!(true)),
        "{ready}"
    );
    bye(client, events).await;
}

/// A proof-of-play batch of one record, for `screen`, sealed by `key`.
fn pop_batch(key: &Keypair, screen: &str) -> Vec<u8> {
    use playlists::wire::pop::{genesis_hash, BATCH_KIND};
    use playlists::wire::{PlayRecord, PlayStatus, PopBatch};
    let slot = chrono::Utc::now() - chrono::Duration::minutes(5);
    let record = PlayRecord {
        play_id: format!("{screen}-1"),
        screen_id: screen.to_owned(),
        seq: 1,
        epoch: "f1ee7".into(),
        venue_id: "test-venue".into(),
        campaign_id: "test-campaign".into(),
        creative_id: "test-creative".into(),
        creative_sha256: "ab".repeat(32),
        schedule_version: 1,
        slot_start: slot,
        started_at: slot,
        ended_at: slot + chrono::Duration::seconds(15),
        duration_ms: 15_000,
        status: PlayStatus::Complete,
        clock_synced: true,
        media_sha256: None,
    };
    let batch = PopBatch {
        v: 1,
        screen_id: screen.to_owned(),
        epoch: "f1ee7".into(),
        batch_seq: 1,
        prev_hash: genesis_hash(),
        records: vec![record],
    };
    key.seal(BATCH_KIND, &batch)
}

/// After the flood: a batch signed by A on B's topic never reaches the ledger; A's own
/// batch, sent after it, is stored and acknowledged.
async fn pop_is_acknowledged_after_the_flood(env: &TestEnv, port: u16, a: &Screen, b: &Screen) {
    let topics = Topics::default();
    let (client, mut events) = connect(port, a.id, Some((a.id, &a.password)))
        .await
        .expect("A logs in");
    client
        .subscribe(topics.pop_ack(a.id), QoS::AtLeastOnce)
        .await
        .unwrap();
    loop {
        if let Ok(Event::Incoming(Packet::SubAck(_))) = events.poll().await {
            break;
        }
    }
    publish(
        &client,
        &mut events,
        topics.pop(b.id),
        false,
        pop_batch(&a.key, b.id),
    )
    .await;
    publish(
        &client,
        &mut events,
        topics.pop(a.id),
        false,
        pop_batch(&a.key, a.id),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < deadline,
            "A's batch was never acknowledged"
        );
        if let Ok(Ok(Event::Incoming(Packet::Publish(p)))) =
            tokio::time::timeout(Duration::from_secs(30), events.poll()).await
        {
            if p.topic == topics.pop_ack(a.id) {
                break;
            }
        }
    }
    let counts = off_runtime(|| env.handle.shared.ledger.counts()).expect("ledger counts");
    assert_eq!(
        counts.last_seq.get(a.id),
        Some(&1),
        "A's batch is in the ledger"
    );
    assert_eq!(
        counts.last_seq.get(b.id),
        None,
        "A's batch on B's topic reached the ledger"
    );
    bye(client, events).await;
}

/// The schedule bytes the server published last for `screen`.
fn current_schedule(env: &TestEnv, screen: &str) -> (u64, Vec<u8>) {
    let issued = off_runtime(|| env.store.issued(screen)).expect("issued documents");
    let last = issued.last().expect("a published schedule");
    (last.version, last.signed.clone().into_bytes())
}

/// Garbage, then an older signed version, published retained on `a`'s schedule topic by
/// `writer`: an observer sees each land and then the current document come back within
/// 10 s; a fresh real agent then applies the current version.
async fn retained_schedules_heal(env: &TestEnv, port: u16, writer: (&str, &str, &str), a: &Screen) {
    let topic = Topics::default().schedule(a.id);
    // A second version, so that there is an older signed one to replay.
    let changed = tests::copy_beijing(env.tmp.path());
    tests::edit_scenario(&changed, |v| {
        let c = v["campaigns"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|c| c["id"] == "house-filler")
            .unwrap();
        c["weight"] = 3.into();
    });
    server::import::import(
        &env.handle.shared.catalogue,
        &changed,
        &server::import::ImportOptions::admin(),
    )
    .expect("import the change");
    env.handle.publish_schedules(false).await.unwrap();
    let (version, current) = current_schedule(env, a.id);
    assert!(version >= 2, "a new version was published");
    let old = off_runtime(|| env.store.issued(a.id)).unwrap()[0]
        .signed
        .clone()
        .into_bytes();
    assert_ne!(old, current);

    let (watcher, mut watch_events) =
        connect(port, "signage-server-watch", Some(server_login(env)))
            .await
            .expect("the watcher logs in");
    watcher.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
    let (client, mut events) = connect(port, writer.0, Some((writer.1, writer.2)))
        .await
        .expect("the writer logs in");
    for attack in [b"garbage, not a schedule".to_vec(), old] {
        publish(&client, &mut events, topic.clone(), true, attack.clone()).await;
        // The watcher sees the attack land, then the current document again.
        let started = Instant::now();
        let mut seen_attack = false;
        loop {
            let left = Duration::from_secs(10).saturating_sub(started.elapsed());
            assert!(
                !left.is_zero(),
                "the retained schedule was not healed within 10 s (attack seen: {seen_attack})"
            );
            let Ok(Ok(event)) = tokio::time::timeout(left, watch_events.poll()).await else {
                continue;
            };
            if let Event::Incoming(Packet::Publish(p)) = event {
                if p.payload[..] == attack[..] {
                    seen_attack = true;
                } else if seen_attack && p.payload[..] == current[..] {
                    break;
                }
            }
        }
    }
    bye(client, events).await;
    bye(watcher, watch_events).await;

    // A kiosk installed now gets the current version, not the replayed one.
    let mut agent = AgentProc::new(&env.tmp.path().join("fresh-agent"), &a.config_text);
    agent.spawn(&["--clock".into(), "sim".into()]);
    wait_for(
        "the fresh agent to apply the current version",
        Duration::from_secs(60),
        || {
            env.status(a.id)
                .is_some_and(|s| s.online && s.schedule_version == Some(version))
        },
        || format!("status {:?}\n{}", env.status(a.id), agent.log_tail()),
    )
    .await;
    agent.terminate().await;
}

fn server_login(env: &TestEnv) -> (&'static str, &'static str) {
    let (user, secret) = env.server_login();
    // Leaked: a few bytes per test, for a login borrowed as `&str` everywhere.
    (
        Box::leak(user.into_boxed_str()),
        Box::leak(secret.into_boxed_str()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_broker_authenticates_every_connection() {
    let env = TestEnv::spawn(None).await;
    let port: u16 = env.mqtt_url.rsplit(':').next().unwrap().parse().unwrap();
    let a = provision(&env, A);
    let b = provision(&env, B);

    // Logins: anonymous, wrong password, client id not the user, unknown, the server's
    // user with a screen's password are refused; the screen itself is let in.
    assert!(!admitted(port, "anon", None).await, "anonymous");
    assert!(!admitted(port, A, Some((A, "wrong"))).await, "bad password");
    assert!(
        !admitted(port, A, Some((A, &b.password))).await,
        "B's password for A"
    );
    assert!(
        !admitted(port, B, Some((A, &a.password))).await,
        "client id B as A"
    );
    assert!(!admitted(port, "ghost-1", Some(("ghost-1", &a.password))).await);
    assert!(!admitted(port, "x", Some((SERVER_USER, &a.password))).await);
    assert!(
        admitted(port, A, Some((A, &a.password))).await,
        "A's own login"
    );

    // A re-provisioned screen's old password stops working.
    let b_again = provision(&env, B);
    assert!(
        !admitted(port, B, Some((B, &b.password))).await,
        "B's old password"
    );
    assert!(admitted(port, B, Some((B, &b_again.password))).await);

    // rumqttd has no ACL: A may write B's topics, but nothing signed by A reaches B's
    // status or B's ledger.
    let (client, mut events) = connect(port, A, Some((A, &a.password))).await.unwrap();
    let topics = Topics::default();
    publish(
        &client,
        &mut events,
        topics.status(B),
        true,
        sealed_status(&a.key, B, u64::MAX / 2, 1, "A posing as B"),
    )
    .await;
    bye(client, events).await;
    statuses_are_judged(&env, port, &a, &b_again).await;
    assert!(
        env.status(B).is_none(),
        "a status for B signed by A reached the fleet: {:?}",
        env.status(B)
    );

    oversized_message_leaves_the_server_ingesting(&env, port, &a).await;
    pop_is_acknowledged_after_the_flood(&env, port, &a, &b_again).await;
    retained_schedules_heal(&env, port, (A, A, &a.password.clone()), &a).await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_with_the_generated_config() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The server first (it retries until the broker is up), then the screens, then the
    // broker's files from the running server, then the broker.
    let env = TestEnv::spawn(Some(port)).await;
    let a = provision(&env, A);
    let b = provision(&env, B);
    let out = env.tmp.path().join("mosquitto");
    let token = env.tmp.path().join("admin.token");
    std::fs::write(&token, env.admin_token()).unwrap();
    let run = std::process::Command::new(tests::signage_bin())
        .args(["broker", "mosquitto-config", "--server", &env.http_url()])
        .arg("--token-file")
        .arg(&token)
        .arg("--out")
        .arg(&out)
        .args(["--port", &port.to_string()])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let conf = std::fs::read_to_string(out.join("mosquitto.conf")).unwrap();
    let passwd = std::fs::read_to_string(out.join("passwd")).unwrap();
    assert!(conf.contains("allow_anonymous false"), "{conf}");
    assert_eq!(
        passwd.lines().count(),
        3,
        "the server and two screens: {passwd}"
    );
    let _mosquitto = tests::Mosquitto::start_config(&conf, port);
    wait_for(
        "the server to log in to Mosquitto",
        Duration::from_secs(30),
        || {
            env.handle
                .shared
                .broker_connected
                .load(std::sync::atomic::Ordering::SeqCst)
        },
        String::new,
    )
    .await;

    // Mosquitto checks the passwords we hashed.
    assert!(!admitted(port, "anon", None).await, "anonymous");
    assert!(!admitted(port, A, Some((A, "wrong"))).await, "bad password");
    assert!(
        !admitted(port, A, Some((A, &b.password))).await,
        "B's password for A"
    );
    assert!(
        admitted(port, A, Some((A, &a.password))).await,
        "A's own login"
    );

    // The ACL: A may not read B's schedule but reads its own. Mosquitto 2.0.11 grants the
    // subscription and checks each delivery: B's retained schedule, asked for first, would
    // arrive before A's own.
    let topics = Topics::default();
    let (client, mut events) = connect(port, A, Some((A, &a.password))).await.unwrap();
    client
        .subscribe(topics.schedule(B), QoS::AtLeastOnce)
        .await
        .unwrap();
    client
        .subscribe(topics.schedule(A), QoS::AtLeastOnce)
        .await
        .unwrap();
    let mut acks = Vec::new();
    let mut own_schedule = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while acks.len() < 2 || !own_schedule {
        assert!(
            Instant::now() < deadline,
            "suback {acks:?}, own schedule {own_schedule}"
        );
        match tokio::time::timeout(Duration::from_secs(30), events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::SubAck(s)))) => acks.push(s.return_codes),
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                assert_eq!(
                    p.topic,
                    topics.schedule(A),
                    "A read another screen's schedule"
                );
                own_schedule = true;
            }
            _ => {}
        }
    }

    // A's writes to B's status and pop never get past the broker: a watcher subscribed to
    // every status and pop sees A's own marker (sent after them, in order) and nothing of B.
    let (watcher, mut watch_events) = connect(port, "signage-server-w", Some(server_login(&env)))
        .await
        .unwrap();
    watcher
        .subscribe(format!("{}/screens/+/#", topics.prefix()), QoS::AtLeastOnce)
        .await
        .unwrap();
    loop {
        if let Ok(Event::Incoming(Packet::SubAck(_))) = watch_events.poll().await {
            break;
        }
    }
    publish(
        &client,
        &mut events,
        topics.status(B),
        false,
        b"A as B".to_vec(),
    )
    .await;
    publish(
        &client,
        &mut events,
        topics.pop(B),
        false,
        b"A's pop as B".to_vec(),
    )
    .await;
    publish(
        &client,
        &mut events,
        topics.pop(A),
        false,
        b"marker".to_vec(),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "the marker never arrived");
        if let Ok(Ok(Event::Incoming(Packet::Publish(p)))) =
            tokio::time::timeout(Duration::from_secs(30), watch_events.poll()).await
        {
            assert_ne!(p.payload[..], b"A as B"[..], "A wrote B's status");
            assert_ne!(p.payload[..], b"A's pop as B"[..], "A wrote B's pop");
            if p.payload[..] == b"marker"[..] {
                break;
            }
        }
    }
    bye(client, events).await;
    bye(watcher, watch_events).await;

    statuses_are_judged(&env, port, &a, &b).await;
    oversized_message_leaves_the_server_ingesting(&env, port, &a).await;
    pop_is_acknowledged_after_the_flood(&env, port, &a, &b).await;
    // Only the server may write schedules under the ACL; the attacker here holds its login.
    let (user, secret) = server_login(&env);
    retained_schedules_heal(&env, port, ("signage-server-attacker", user, secret), &a).await;
    env.stop().await;
}

/// `--data-dir`: the files come from the store itself, and a directory without a store is
/// refused (nothing is created there).
#[test]
fn mosquitto_config_from_a_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let password = {
        let store = server::store::open(&data, server::store::OpenMode::Create).unwrap();
        server::import::import(
            &server::catalogue::CatalogueService::new(store.clone()),
            &tests::beijing(),
            &server::import::ImportOptions::admin(),
        )
        .unwrap();
        let p =
            server::provision::prepare(&*store, A, "mqtt://h:1883", "http://h:8080", "signage/v1")
                .unwrap();
        p.register(&*store, chrono::Utc::now()).unwrap();
        let config = AgentConfig::from_toml_str(&p.config).unwrap();
        config.mqtt_password.unwrap().expose().clone()
    };
    let out = tmp.path().join("broker");
    let run = |args: &[&str]| {
        std::process::Command::new(tests::signage_bin())
            .args(["broker", "mosquitto-config"])
            .args(args)
            .output()
            .unwrap()
    };
    let ok = run(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let passwd = std::fs::read_to_string(out.join("passwd")).unwrap();
    let line = passwd
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{A}:")))
        .unwrap_or_else(|| panic!("no line for {A}: {passwd}"));
    let hash = server::broker_auth::PasswordHash::parse(line).unwrap();
    assert!(hash.verify(&password));
    assert!(passwd.starts_with("signage-server:$7$"), "{passwd}");
    let conf = std::fs::read_to_string(out.join("mosquitto.conf")).unwrap();
    assert!(conf.contains("listener 1883\n"), "{conf}");

    let missing = tmp.path().join("typo");
    let refused = run(&[
        "--data-dir",
        missing.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("no store"), "{err}");
    assert!(!missing.join("signage.redb").exists());
}
