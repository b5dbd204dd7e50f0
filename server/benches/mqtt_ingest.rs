//! Proof-of-play ingest end to end: signed, hash-chained batches published over MQTT to the
//! embedded broker, verified and written durably by the running server, acknowledged back.
//! Prints records per second from the first publish to the last signed ack.
//! Run: `cargo bench -p server --bench mqtt_ingest`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use playlists::wire::pop::{batch_hash, genesis_hash, PopAck, ACK_KIND, BATCH_KIND};
use playlists::wire::{signed, Keypair, PlayRecord, PlayStatus, PopBatch, Topics};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use server::app::{self, MqttTarget};
use server::store::OpenMode;
use tokio_util::sync::CancellationToken;

const SCREENS: u64 = 20;
const BATCHES: u64 = 10;
const RECORDS: u64 = 1_000;

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

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn,rumqttd=warn"))
        .init();
    let dir = tempfile::tempdir()?;
    let store = server::store::open(dir.path(), OpenMode::Create)?;
    let topics = Topics::default();
    let mut payloads = Vec::new();
    for s in 0..SCREENS {
        let screen = format!("bench-screen-{s}");
        let key = Keypair::from_secret([s as u8 + 1; 32]);
        store.add_screen_key(&screen, &key.public_hex(), chrono::Utc::now())?;
        let mut prev = genesis_hash();
        for b in 0..BATCHES {
            let records = (1..=RECORDS)
                .map(|i| record(&screen, b * RECORDS + i))
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
            payloads.push((topics.pop(&screen), serde_json::to_vec(&env)?));
        }
    }
    let server_key = server::keys::server_key(dir.path())?.public();

    let logins = server::broker::Logins::of(&store)?;
    let login = logins.server.clone();
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
    // Wait for the subscription before starting the clock.
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = events.poll().await? {
            break;
        }
    }
    let total = payloads.len();
    let publisher = client.clone();
    let started = Instant::now();
    tokio::spawn(async move {
        for (topic, payload) in payloads {
            publisher
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .expect("publish");
        }
    });
    let mut acked = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while acked.len() < total && Instant::now() < deadline {
        if let Event::Incoming(Packet::Publish(p)) = events.poll().await? {
            let ack: PopAck = signed::open(&p.payload, ACK_KIND, &server_key, 1 << 20)?;
            for b in ack.batches {
                acked.insert((ack.screen_id.clone(), b.batch_seq));
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        acked.len() == total,
        "only {} of {total} batches acknowledged",
        acked.len()
    );
    let records = (SCREENS * BATCHES * RECORDS) as f64;
    println!(
        "MQTT -> durable ledger -> signed ack: {} records in {} batches of {RECORDS} from {SCREENS} screens: {secs:.2} s = {:.0} records/s",
        records,
        total,
        records / secs
    );
    shutdown.cancel();
    handle.wait().await;
    Ok(())
}
