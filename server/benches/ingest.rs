//! Ledger ingest throughput and size against raw redb, on this machine's disk.
//!
//! Prints records/s of `Ledger::ingest` for 200,000 proof-of-play records in signed batches
//! of 1,000 (ten batches, one per screen, per call, so one durable commit per 10,000
//! records), the ledger file's bytes per record as written and after `compact`, then
//! records/s of plain redb inserting 200,000 values of 116 bytes in batches of 1,000 with a
//! durable commit per batch, and the ratio. Signing happens before the clock starts: it is
//! the agents' work. Run: `cargo bench -p server --bench ingest`.
//!
//! The realistic city shape (agents seal a batch about a second after each play, so a
//! batch holds one record; a drain takes whatever arrived from many screens):
//! `INGEST_BATCH=1 INGEST_SCREENS=500 INGEST_RECORDS=50000 cargo bench -p server --bench
//! ingest`. Each call holds one batch per screen. Records carry a 128-bit epoch and the
//! agent's play ids, as real agents send them. `INGEST_TABLES=1` also prints each table's
//! share of the file (redb's stored bytes, metadata and fragmentation).
//!
//! Then everything is archived (`Ledger::archive`, as `signage ledger archive` does) and the
//! archive files' bytes per record are printed, with the live file's after compacting again
//! (what is left: rollups, chain heads and archive markers).
//!
//! `INGEST_PG=postgres://user@host:port` (a server where that user may create databases)
//! then ingests the same calls into the PostgreSQL ledger of a database made for the run,
//! by one replica and then, on a fresh database, by two: each replica its own store (its
//! own connections) on one thread, the screens split between them as a NATS queue group or
//! `$share` subscription splits agents (an agent sends its next batch only once the last is
//! acknowledged, so one replica at a time works on a chain). Prints records/s for each and
//! the database's bytes per record (`pg_database_size`, less the empty schema's).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use redb::{Database, TableDefinition};

use playlists::wire::pop::{batch_hash, genesis_hash, play_id, BATCH_KIND};
use playlists::wire::{Keypair, PlayRecord, PlayStatus, PopBatch, VERSION};
use server::store::redb::ledger::Ledger;
use server::store::{Incoming, Outcome};

const VALUE_BYTES: usize = 116;

/// The bench's shape, from the environment (defaults: the historical 1,000-record batches).
#[derive(Clone, Copy)]
struct Shape {
    records: u64,
    batch: u64,
    screens: u64,
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        Err(_) => default,
    }
}

fn main() {
    let shape = Shape {
        records: env_u64("INGEST_RECORDS", 200_000),
        batch: env_u64("INGEST_BATCH", 1_000),
        screens: env_u64("INGEST_SCREENS", 10),
    };
    let Shape {
        records,
        batch,
        screens,
    } = shape;
    assert!(
        records > 0 && batch > 0 && screens > 0 && records % (batch * screens) == 0,
        "INGEST_RECORDS must be a multiple of INGEST_BATCH x INGEST_SCREENS"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let l = ledger_ingest(&dir.path().join("ledger.redb"), shape);
    let (raw_rate, raw_bytes) = raw_redb(&dir.path().join("raw.redb"), shape);
    println!(
        "Ledger::ingest: {records} records, batches of {batch}, {screens} batches per call: {:>9.0} records/s, {:.1} MiB",
        l.rate,
        mib(l.written)
    );
    println!(
        "ledger bytes per record: {:.0} as written, {:.0} after compact ({:.1} MiB)",
        l.written as f64 / records as f64,
        l.compacted as f64 / records as f64,
        mib(l.compacted)
    );
    println!(
        "archived: {:.0} bytes per record in the archive files, {:.0} left in the live file ({:.1} MiB: rollups, heads)",
        l.archive as f64 / records as f64,
        l.after_archive as f64 / records as f64,
        mib(l.after_archive)
    );
    println!(
        "raw redb:       {records} values of {VALUE_BYTES} bytes, durable commit per {}:     {raw_rate:>9.0} records/s, {:.1} MiB",
        batch * screens,
        mib(raw_bytes)
    );
    println!("ratio (ledger / raw): {:.2}", l.rate / raw_rate);
    if let Ok(url) = std::env::var("INGEST_PG") {
        for replicas in [1, 2] {
            let (rate, bytes) = pg_ingest(&url, shape, replicas);
            println!(
                "PostgreSQL ledger, {replicas} replica(s): {rate:>9.0} records/s, {:.0} bytes per record",
                bytes as f64 / records as f64
            );
        }
    }
}

/// The calls into a new database at `server` by `replicas` stores side by side; returns
/// records/s and what the ledger added to the database's size. The database is dropped.
fn pg_ingest(server: &str, shape: Shape, replicas: usize) -> (f64, u64) {
    use server::store::{open_url, OpenMode};
    let (calls, screens) = signed_calls(shape);
    let keys: std::collections::HashMap<String, ed25519_dalek::VerifyingKey> = screens
        .iter()
        .map(|(s, k)| (s.clone(), k.public()))
        .collect();
    let name = format!("signage_bench_ingest_{}_{replicas}", std::process::id());
    let server = server.trim_end_matches('/');
    let mut admin = postgres::Client::connect(&format!("{server}/postgres"), postgres::NoTls)
        .expect("connect to PostgreSQL (INGEST_PG)");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create the bench database");
    let url = format!("{server}/{name}");
    let local = tempfile::tempdir().expect("temp dir");
    let stores: Vec<_> = (0..replicas)
        .map(|r| {
            let mode = if r == 0 {
                OpenMode::Create
            } else {
                OpenMode::Existing
            };
            let dir = local.path().join(r.to_string());
            std::fs::create_dir_all(&dir).expect("replica dir");
            open_url(&url, &dir, mode).expect("open the PostgreSQL store")
        })
        .collect();
    let size = |admin: &mut postgres::Client| -> u64 {
        let row = admin
            .query_one("SELECT pg_database_size($1)", &[&name])
            .expect("database size");
        row.get::<_, i64>(0) as u64
    };
    let empty = size(&mut admin);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for (r, store) in stores.iter().enumerate() {
            let (calls, keys) = (&calls, &keys);
            scope.spawn(move || {
                let ledger = store.ledger();
                let key_of = |s: &str| keys.get(s).copied().into_iter().collect();
                for call in calls {
                    // This replica's screens: batch j of a call is screen j's.
                    let mine: Vec<Incoming> = call
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| j % replicas == r)
                        .map(|(_, b)| b.clone())
                        .collect();
                    for outcome in ledger.ingest(&mine, &key_of).expect("ingest") {
                        assert!(
                            matches!(outcome, Outcome::Stored { .. }),
                            "unexpected {outcome:?}"
                        );
                    }
                }
            });
        }
    });
    let took = started.elapsed();
    let stored = stores[0].ledger().counts().expect("counts").records;
    assert_eq!(stored, shape.records);
    let bytes = size(&mut admin).saturating_sub(empty);
    drop(stores);
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .expect("drop the bench database");
    (rate(shape.records, took), bytes)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn rate(n: u64, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64()
}

/// Signed batches for `shape.screens` screens, `shape.records` records in all, grouped into
/// ingest calls of one batch per screen.
fn signed_calls(shape: Shape) -> (Vec<Vec<Incoming>>, Vec<(String, Keypair)>) {
    let Shape {
        records: total,
        batch: per_batch,
        screens: n_screens,
    } = shape;
    let screens: Vec<(String, Keypair)> = (0..n_screens)
        .map(|i| {
            let mut secret = [1u8; 32];
            secret[..8].copy_from_slice(&(i + 1).to_le_bytes());
            (format!("bench-venue-{i}-s1"), Keypair::from_secret(secret))
        })
        .collect();
    // A 128-bit epoch per screen, as agents make them (hex).
    let epochs: Vec<String> = (0..n_screens)
        .map(|i| {
            let d = <sha2::Sha256 as sha2::Digest>::digest(i.to_le_bytes());
            hex::encode(&d[..16])
        })
        .collect();
    let start = Utc
        .with_ymd_and_hms(2025, 3, 1, 6, 0, 0)
        .single()
        .expect("valid time");
    let mut prev: Vec<String> = vec![genesis_hash(); screens.len()];
    let batches_per_screen = total / per_batch / n_screens;
    let mut calls = Vec::new();
    for b in 0..batches_per_screen {
        let mut call = Vec::new();
        for (i, (screen, key)) in screens.iter().enumerate() {
            let epoch = &epochs[i];
            let records = (0..per_batch)
                .map(|j| {
                    let seq = b * per_batch + j + 1;
                    let slot_start = start + chrono::Duration::seconds(10 * seq as i64);
                    PlayRecord {
                        play_id: play_id(screen, epoch, seq),
                        screen_id: screen.clone(),
                        epoch: epoch.clone(),
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
                epoch: epoch.clone(),
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

/// What the ledger half of the bench measured.
struct Measured {
    rate: f64,
    /// The file's size as ingest left it.
    written: u64,
    /// Its size after `Database::compact`.
    compacted: u64,
    /// The archive files' total size once everything is archived.
    archive: u64,
    /// The live file's size after that, compacted.
    after_archive: u64,
}

fn ledger_ingest(path: &std::path::Path, shape: Shape) -> Measured {
    let (calls, screens) = signed_calls(shape);
    let keys: std::collections::HashMap<String, ed25519_dalek::VerifyingKey> = screens
        .iter()
        .map(|(s, k)| (s.clone(), k.public()))
        .collect();
    let key_of = |s: &str| keys.get(s).copied().into_iter().collect();
    let db = Arc::new(Database::create(path).expect("create redb"));
    let ledger = Ledger::open(db.clone()).expect("open ledger");
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
    assert_eq!(stored, shape.records);
    assert_eq!(ledger.counts().expect("counts").records, shape.records);
    drop(ledger);
    let written = std::fs::metadata(path).expect("file").len();
    let mut db = Arc::into_inner(db).expect("the only handle");
    while db.compact().expect("compact") {}
    if std::env::var_os("INGEST_TABLES").is_some() {
        print_tables(&db, shape.records);
    }
    let compacted = std::fs::metadata(path).expect("file").len();
    let db = Arc::new(db);
    let ledger = Ledger::open(db.clone()).expect("open ledger");
    let dir = path.with_extension("archive");
    let far = chrono::NaiveDate::from_ymd_opt(2100, 1, 1).expect("a date");
    let summary = ledger.archive(&dir, far).expect("archive");
    let archive: u64 = summary.days.iter().map(|d| d.file_bytes).sum();
    let archived: u64 = summary.days.iter().map(|d| d.records).sum();
    assert_eq!(archived, shape.records);
    drop(ledger);
    let mut db = Arc::into_inner(db).expect("the only handle");
    while db.compact().expect("compact") {}
    drop(db);
    Measured {
        rate: rate(shape.records, took),
        written,
        compacted,
        archive,
        after_archive: std::fs::metadata(path).expect("file").len(),
    }
}

/// Each table's stored bytes per record, and redb's own overhead.
fn print_tables(db: &Database, records: u64) {
    use redb::{ReadableDatabase, TableHandle};
    let tx = db.begin_write().expect("begin");
    let stats = tx.stats().expect("stats");
    println!(
        "file: stored {:.0} B/record, metadata {:.0}, fragmented {:.0}, tree height {}",
        stats.stored_bytes() as f64 / records as f64,
        stats.metadata_bytes() as f64 / records as f64,
        stats.fragmented_bytes() as f64 / records as f64,
        stats.tree_height()
    );
    drop(tx);
    let tx = db.begin_read().expect("begin");
    for t in tx.list_tables().expect("tables") {
        let table = tx
            .open_untyped_table(redb::TableDefinition::<&[u8], &[u8]>::new(t.name()))
            .expect("open");
        let s = redb::ReadableTableMetadata::stats(&table).expect("stats");
        println!(
            "  {:<22} stored {:>6.0} B/record, metadata {:>5.0}, fragmented {:>5.0}",
            t.name(),
            s.stored_bytes() as f64 / records as f64,
            s.metadata_bytes() as f64 / records as f64,
            s.fragmented_bytes() as f64 / records as f64
        );
    }
}

fn raw_redb(path: &std::path::Path, shape: Shape) -> (f64, u64) {
    const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("bench");
    let db = Database::create(path).expect("create redb");
    let mut value = [0u8; VALUE_BYTES];
    let per_commit = shape.batch * shape.screens;
    let started = Instant::now();
    for b in 0..shape.records / per_commit {
        let tx = db.begin_write().expect("begin");
        {
            let mut t = tx.open_table(TABLE).expect("table");
            for i in 0..per_commit {
                let n = b * per_commit + i;
                value[..8].copy_from_slice(&n.to_le_bytes());
                t.insert(n, value.as_slice()).expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    let took = started.elapsed();
    drop(db);
    (
        rate(shape.records, took),
        std::fs::metadata(path).expect("file").len(),
    )
}
