//! Proof-of-play ingest end to end: signed, hash-chained batches published over MQTT to the
//! embedded broker, verified and written durably by the running server, acknowledged back.
//! Prints records per second from the first publish to the last signed ack.
//! Run: `cargo bench -p server --bench mqtt_ingest`.
//!
//! The shape comes from the environment: `MQTT_INGEST_SCREENS` (20), `MQTT_INGEST_BATCHES`
//! per screen (10), `MQTT_INGEST_RECORDS` per batch (1,000) and `MQTT_INGEST_IN_FLIGHT`,
//! how many batches a screen sends before its first ack (all of them). A screen sends its
//! next batch as one is acknowledged. The realistic city shape is one record a batch
//! (agents seal a batch about a second after each play) and one batch in flight (an agent
//! waits for its ack): `MQTT_INGEST_SCREENS=2000 MQTT_INGEST_BATCHES=10
//! MQTT_INGEST_RECORDS=1 MQTT_INGEST_IN_FLIGHT=1`.
//! `MQTT_INGEST_PG=postgres://user@host:port` runs the server on a PostgreSQL store in a
//! database made for the run (and dropped after it) instead of redb.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use playlists::wire::pop::{batch_hash, genesis_hash, PopAck, ACK_KIND, BATCH_KIND};
use playlists::wire::{signed, Keypair, PlayRecord, PlayStatus, PopBatch, Topics};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use server::app::{self, MqttTarget};
use server::store::OpenMode;
use tokio_util::sync::CancellationToken;

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        Err(_) => default,
    }
}

/// A database made for the run on the PostgreSQL server at `server`, dropped with it.
struct BenchDb {
    admin: postgres::Client,
    name: String,
    url: String,
}

impl BenchDb {
    fn create(server: &str) -> anyhow::Result<BenchDb> {
        let server = server.trim_end_matches('/');
        let name = format!("signage_bench_mqtt_ingest_{}", std::process::id());
        let mut admin = postgres::Client::connect(&format!("{server}/postgres"), postgres::NoTls)?;
        admin.batch_execute(&format!("CREATE DATABASE {name}"))?;
        let url = format!("{server}/{name}");
        Ok(BenchDb { admin, name, url })
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        let drop = format!("DROP DATABASE {} WITH (FORCE)", self.name);
        if let Err(e) = self.admin.batch_execute(&drop) {
            eprintln!("could not drop {}: {e}", self.name);
        }
    }
}

fn record(screen: &str, seq: u64) -> PlayRecord {
    let slot = Utc
        .timestamp_opt(1_703_030_400 + seq as i64 * 15, 0)
        .unwrap();
    PlayRecord {
        play_id: format!("{screen}-{seq}"),
        screen_id: screen.to_owned(),
        epoch: String::new(),
        seq,
        venue_id: "bench-venue".into(),
        campaign_id: "bench-campaign".into(),
        creative_id: format!("bench-creative-{}", seq % 7),
        creative_sha256: "ab".repeat(32),
        schedule_version: 1,
        slot_start: slot,
        started_at: slot,
        ended_at: slot + chrono::Duration::seconds(15),
        duration_ms: 15_000,
        status: PlayStatus::Complete,
        clock_synced: true,
        media_sha256: None,
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn,rumqttd=warn"))
        .init();
    let screens = env_u64("MQTT_INGEST_SCREENS", 20);
    let batches = env_u64("MQTT_INGEST_BATCHES", 10);
    let per_batch = env_u64("MQTT_INGEST_RECORDS", 1_000);
    let in_flight = env_u64("MQTT_INGEST_IN_FLIGHT", batches).max(1) as usize;
    let dir = tempfile::tempdir()?;
    // Set up before the runtime starts (the PostgreSQL client blocks), dropped after it.
    let db = match std::env::var("MQTT_INGEST_PG")
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(server) => Some(BenchDb::create(&server)?),
        None => None,
    };
    let store = match &db {
        Some(db) => server::store::open_url(&db.url, dir.path(), OpenMode::Create)?,
        None => server::store::open(dir.path(), OpenMode::Create)?,
    };
    // A generated city of that many screens (batches are taken only from screens in
    // service), the keys registered as provisioning does.
    let base =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/beijing-role-models");
    let city = dir.path().join("city");
    let made = screens.max(100) as usize;
    server::generate::generate(
        &base,
        &city,
        &server::generate::GenerateOptions {
            venues: (made * 3 / 11).max(50),
            screens: made,
            seed: 1,
        },
    )?;
    let service = server::catalogue::CatalogueService::new(store.clone());
    server::import::import_loaded(
        &service,
        &server::import::load(&city)?,
        &server::import::ImportOptions::admin(),
    )?;
    let ids: Vec<String> = service
        .catalogue()?
        .screens
        .iter()
        .take(screens as usize)
        .map(|s| s.id.to_string())
        .collect();
    let topics = Topics::default();
    // Each screen's topic and batches, in order.
    let mut fleet: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
    for (s, screen) in ids.iter().enumerate() {
        let screen = screen.clone();
        let mut secret = [1u8; 32];
        secret[..8].copy_from_slice(&(s as u64 + 1).to_le_bytes());
        let key = Keypair::from_secret(secret);
        store.add_screen_key(&screen, &key.public_hex(), chrono::Utc::now())?;
        let mut prev = genesis_hash();
        let mut signed_batches = Vec::new();
        for b in 0..batches {
            let records = (1..=per_batch)
                .map(|i| record(&screen, b * per_batch + i))
                .collect();
            let batch = PopBatch {
                v: 1,
                screen_id: screen.clone(),
                epoch: String::new(),
                batch_seq: b + 1,
                prev_hash: prev.clone(),
                records,
            };
            let env = key.sign(BATCH_KIND, serde_json::to_string(&batch)?);
            prev = batch_hash(&env.payload).to_string();
            signed_batches.push(serde_json::to_vec(&env)?);
        }
        fleet.push((topics.pop(&screen), signed_batches));
    }
    let total = (screens * batches) as usize;
    let server_key = server::keys::server_key(dir.path())?.public();

    let logins = server::broker::Logins::of(&store)?;
    let login = logins.server.clone();
    let on = if db.is_some() { "PostgreSQL" } else { "redb" };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
    let broker = server::broker::start(None, logins).await?;
    let target = MqttTarget {
        host: broker.addr.ip().to_string(),
        port: broker.addr.port(),
        shared_subscription: false,
        tls: None,
    };
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let handle = app::start(
        store,
        target.clone(),
        listener,
        topics.clone(),
        shutdown.clone(),
    )
    .await?;

    // One client plays every agent, so it logs in as the server (the only user the broker
    // lets publish for any screen).
    let mut options = MqttOptions::new("bench-agents", target.host.clone(), target.port);
    options.set_credentials(server::broker_auth::SERVER_USER, login.secret.clone());
    options.set_max_packet_size(4 << 20, 4 << 20);
    options.set_inflight(200);
    let (client, mut events) = AsyncClient::new(options, 1_000);
    client
        .subscribe(
            format!("{}/screens/+/pop/ack", topics.prefix()),
            QoS::AtLeastOnce,
        )
        .await?;
    client
        .subscribe(topics.schedule_all(), QoS::AtMostOnce)
        .await?;
    // Before the clock starts: both subscriptions, and the schedule the server publishes
    // to every screen as it starts (so ingest has the server to itself).
    let (mut subscribed, mut schedules) = (0, HashSet::new());
    while subscribed < 2 || schedules.len() < ids.len() {
        match events.poll().await? {
            Event::Incoming(Packet::SubAck(_)) => subscribed += 1,
            Event::Incoming(Packet::Publish(p)) if p.topic.ends_with("/schedule") => {
                schedules.insert(p.topic.clone());
            }
            _ => {}
        }
    }
    client.unsubscribe(topics.schedule_all()).await?;
    // Sends what it is given, in order, while the loop below reads acks.
    let (send, mut to_send) = tokio::sync::mpsc::unbounded_channel::<(String, Vec<u8>)>();
    let publisher = client.clone();
    tokio::spawn(async move {
        while let Some((topic, payload)) = to_send.recv().await {
            publisher
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .expect("publish");
        }
    });
    let index: std::collections::HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(s, id)| (id.as_str(), s))
        .collect();
    let mut next = vec![0usize; fleet.len()];
    let started = Instant::now();
    for round in 0..in_flight.min(batches as usize) {
        for (s, (topic, signed_batches)) in fleet.iter().enumerate() {
            send.send((topic.clone(), signed_batches[round].clone()))?;
            next[s] = round + 1;
        }
    }
    let mut acked = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    while acked.len() < total && Instant::now() < deadline {
        if let Event::Incoming(Packet::Publish(p)) = events.poll().await? {
            if !p.topic.ends_with("/pop/ack") {
                continue;
            }
            let ack: PopAck = signed::open(&p.payload, ACK_KIND, &server_key, 1 << 20)?;
            let s = index[ack.screen_id.as_str()];
            for b in ack.batches {
                if acked.insert((ack.screen_id.clone(), b.batch_seq)) {
                    let (topic, signed_batches) = &fleet[s];
                    if let Some(batch) = signed_batches.get(next[s]) {
                        send.send((topic.clone(), batch.clone()))?;
                        next[s] += 1;
                    }
                }
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        acked.len() == total,
        "only {} of {total} batches acknowledged",
        acked.len()
    );
    let records = (screens * batches * per_batch) as f64;
    println!(
        "MQTT -> durable ledger ({on}) -> signed ack: {records} records in {total} batches of {per_batch} from {screens} screens: {secs:.2} s = {:.0} records/s",
        records / secs
    );
    shutdown.cancel();
    handle.wait().await;
    anyhow::Ok(())
    })?;
    drop(runtime);
    drop(service);
    drop(db);
    Ok(())
}
