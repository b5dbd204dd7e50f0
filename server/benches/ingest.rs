//! Ledger ingest throughput against raw redb, on this machine's disk.
//!
//! Prints records/s of `Ledger::ingest` for 200,000 proof-of-play records in signed batches
//! of 1,000 (ten batches, one per screen, per call, so one durable commit per 10,000
//! records), then records/s of plain redb inserting 200,000 values of 116 bytes in batches
//! of 1,000 with a durable commit per batch, and the ratio. Signing happens before the clock
//! starts: it is the agents' work. Run: `cargo bench -p server --bench ingest`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use redb::{Database, TableDefinition};

use playlists::wire::pop::{batch_hash, genesis_hash, BATCH_KIND};
use playlists::wire::{Keypair, PlayRecord, PlayStatus, PopBatch, VERSION};
use server::store::redb::ledger::Ledger;
use server::store::{Incoming, Outcome};

const RECORDS: u64 = 200_000;
const BATCH: u64 = 1_000;
const SCREENS: u64 = 10;
const VALUE_BYTES: usize = 116;

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ledger_rate, ledger_bytes) = ledger_ingest(&dir.path().join("ledger.redb"));
    let (raw_rate, raw_bytes) = raw_redb(&dir.path().join("raw.redb"));
    println!(
        "Ledger::ingest: {RECORDS} records, batches of {BATCH}, {SCREENS} batches per call: {ledger_rate:>9.0} records/s, {:.1} MiB",
        mib(ledger_bytes)
    );
    println!(
        "raw redb:       {RECORDS} values of {VALUE_BYTES} bytes, durable commit per {BATCH}:     {raw_rate:>9.0} records/s, {:.1} MiB",
        mib(raw_bytes)
    );
    println!("ratio (ledger / raw): {:.2}", ledger_rate / raw_rate);
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn rate(n: u64, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64()
}

/// Signed batches for `SCREENS` screens, `RECORDS` records in all, grouped into ingest calls.
fn signed_calls() -> (Vec<Vec<Incoming>>, Vec<(String, Keypair)>) {
    let screens: Vec<(String, Keypair)> = (0..SCREENS)
        .map(|i| {
            (
                format!("bench-venue-{i}-s1"),
                Keypair::from_secret([i as u8 + 1; 32]),
            )
        })
        .collect();
    let start = Utc
        .with_ymd_and_hms(2025, 3, 1, 6, 0, 0)
        .single()
        .expect("valid time");
    let mut prev: Vec<String> = vec![genesis_hash(); screens.len()];
    let batches_per_screen = RECORDS / BATCH / SCREENS;
    let mut calls = Vec::new();
    for b in 0..batches_per_screen {
        let mut call = Vec::new();
        for (i, (screen, key)) in screens.iter().enumerate() {
            let records = (0..BATCH)
                .map(|j| {
                    let seq = b * BATCH + j + 1;
                    let slot_start = start + chrono::Duration::seconds(10 * seq as i64);
                    PlayRecord {
                        play_id: format!("{screen}-{seq}"),
                        screen_id: screen.clone(),
                        epoch: String::new(),
                        seq,
                        venue_id: format!("bench-venue-{i}"),
                        campaign_id: format!("campaign-{}", seq % 7),
                        creative_id: format!("creative-{}", seq % 13),
                        creative_sha256: "5e".repeat(32),
                        schedule_version: 42,
                        slot_start,
                        started_at: slot_start,
                        ended_at: slot_start + chrono::Duration::seconds(10),
                        duration_ms: 10_000,
                        status: PlayStatus::Complete,
                        clock_synced: true,
                        media_sha256: None,
                    }
                })
                .collect();
            let batch = PopBatch {
                v: VERSION,
                screen_id: screen.clone(),
                epoch: String::new(),
                batch_seq: b + 1,
                prev_hash: prev[i].clone(),
                records,
            };
            let env = key.sign(
                BATCH_KIND,
                serde_json::to_string(&batch).expect("serialises"),
            );
            prev[i] = batch_hash(&env.payload).to_string();
            call.push(Incoming {
                topic_screen: screen.clone(),
                raw: serde_json::to_vec(&env).expect("serialises"),
            });
        }
        calls.push(call);
    }
    (calls, screens)
}

fn ledger_ingest(path: &std::path::Path) -> (f64, u64) {
    let (calls, screens) = signed_calls();
    let keys: std::collections::HashMap<String, ed25519_dalek::VerifyingKey> = screens
        .iter()
        .map(|(s, k)| (s.clone(), k.public()))
        .collect();
    let key_of = |s: &str| keys.get(s).copied().into_iter().collect();
    let ledger =
        Ledger::open(Arc::new(Database::create(path).expect("create redb"))).expect("open ledger");
    let started = Instant::now();
    let mut stored = 0;
    for call in &calls {
        for outcome in ledger.ingest(call, &key_of).expect("ingest") {
            match outcome {
                Outcome::Stored { records, .. } => stored += records as u64,
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    let took = started.elapsed();
    assert_eq!(stored, RECORDS);
    assert_eq!(ledger.counts().expect("counts").records, RECORDS);
    drop(ledger);
    (
        rate(RECORDS, took),
        std::fs::metadata(path).expect("file").len(),
    )
}

fn raw_redb(path: &std::path::Path) -> (f64, u64) {
    const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("bench");
    let db = Database::create(path).expect("create redb");
    let mut value = [0u8; VALUE_BYTES];
    let started = Instant::now();
    for b in 0..RECORDS / BATCH {
        let tx = db.begin_write().expect("begin");
        {
            let mut t = tx.open_table(TABLE).expect("table");
            for i in 0..BATCH {
                let n = b * BATCH + i;
                value[..8].copy_from_slice(&n.to_le_bytes());
                t.insert(n, value.as_slice()).expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    let took = started.elapsed();
    drop(db);
    (
        rate(RECORDS, took),
        std::fs::metadata(path).expect("file").len(),
    )
}
