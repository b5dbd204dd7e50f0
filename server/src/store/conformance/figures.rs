//! Figures for the README, comparing the two backends on a generated city (600 venues,
//! 5,000 screens): `cargo test -p server --lib store_backend_figures -- --ignored
//! --nocapture` (PostgreSQL on 127.0.0.1:5432); and archiving a day of the ledger
//! (`archive_figures`). Measurements, not checks.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{archive, at, ledger, screen, Backend};
use crate::store::dump::{copy, End};
use crate::store::ledger::testkit::Agent;
use crate::store::ledger::Incoming;
use crate::store::postgres::testdb::TestDb;
use crate::store::{Commit, IssuedDocument, OpenMode};

fn per(total: Duration, n: u32) -> Duration {
    total / n
}

fn measure(label: &str, s: &impl Backend) {
    let screens: Vec<String> = s.snapshot().unwrap().screens.keys().cloned().collect();
    let started = Instant::now();
    for _ in 0..10 {
        assert_eq!(s.snapshot().unwrap().screens.len(), screens.len());
    }
    let snapshot = per(started.elapsed(), 10);

    let started = Instant::now();
    for _ in 0..200 {
        s.head().unwrap();
    }
    let head = per(started.elapsed(), 200);

    let started = Instant::now();
    for i in 0..50u32 {
        let base = s.head().unwrap();
        s.commit(Commit {
            base,
            author: "bench".into(),
            at: at(i64::from(i)),
            comment: "one screen".into(),
            entities: vec![screen(&screens[i as usize], 1000 + i, None)],
        })
        .unwrap()
        .unwrap();
    }
    let commit = per(started.elapsed(), 50);

    let docs: Vec<IssuedDocument> = screens
        .iter()
        .map(|id| IssuedDocument {
            screen_id: id.clone(),
            version: 1,
            issued_at: at(0),
            expires_at: at(86_400),
            in_force_from: at(0),
            content_hash: "0".repeat(64),
            signed: "x".repeat(4_000),
        })
        .collect();
    let started = Instant::now();
    s.record_issued(&docs).unwrap();
    let issued = started.elapsed();
    println!(
        "{label}: snapshot of {} screens {snapshot:.2?}, head {head:.2?}, commit of one \
         screen {commit:.2?}, {} documents of 4 kB recorded in one call {issued:.2?}",
        screens.len(),
        docs.len()
    );
}

#[test]
#[ignore = "a measurement, not a check"]
fn store_backend_figures() {
    let dir = tempfile::tempdir().unwrap();
    let city = dir.path().join("city");
    let beijing = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/beijing-role-models");
    crate::generate::generate(
        &beijing,
        &city,
        &crate::generate::GenerateOptions {
            venues: 600,
            screens: 5_000,
            seed: 7,
        },
    )
    .unwrap();
    let data = dir.path().join("data");
    {
        let store = crate::store::open(&data, OpenMode::Create).unwrap();
        let catalogue = crate::catalogue::CatalogueService::new(store);
        crate::import::import(&catalogue, &city, &crate::import::ImportOptions::admin()).unwrap();
    }
    let db = TestDb::new();
    let transit = tempfile::tempdir().unwrap();
    let (from, to, copied, took) = copied_into(&data, &db, transit.path());
    println!(
        "copy into PostgreSQL: {} entities, {} media files in {took:.2?}",
        copied.entities, copied.media,
    );
    let (End::Redb(r), End::Postgres(p)) = (&from, &to) else {
        unreachable!()
    };
    measure("redb", r);
    measure("PostgreSQL", p);
}

/// The redb store in `data` copied into `db`, timed: both ends, what moved, how long.
fn copied_into(
    data: &Path,
    db: &TestDb,
    transit: &Path,
) -> (End, End, crate::store::dump::Copied, Duration) {
    let from = End::open(data.to_str().unwrap(), transit, OpenMode::Existing).unwrap();
    let to = End::open(&db.url(), transit, OpenMode::Create).unwrap();
    let started = Instant::now();
    let copied = copy(&from, &to).unwrap();
    (from, to, copied, started.elapsed())
}

#[test]
#[ignore = "a measurement, not a check"]
fn store_copy_ledger_figures() {
    use crate::store::ledger::testkit::Agent;
    use crate::store::{key_rings, Incoming, Outcome};
    // Each of the Beijing screens sends this many one-record batches.
    const BATCHES: usize = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let store = crate::store::open(&data, OpenMode::Create).unwrap();
        let catalogue = crate::catalogue::CatalogueService::new(store.clone());
        let beijing =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/beijing-role-models");
        crate::import::import(&catalogue, &beijing, &crate::import::ImportOptions::admin())
            .unwrap();
        let mut agents: Vec<Agent> = store
            .snapshot()
            .unwrap()
            .screens
            .keys()
            .zip(1..)
            .map(|(s, n)| Agent::new(n, s, "v1"))
            .collect();
        for a in &agents {
            store
                .add_screen_key(&a.screen, &a.key.public_hex(), super::at(0))
                .unwrap();
        }
        let rings = key_rings(&*store).unwrap();
        let key_of = |s: &str| rings.get(s).cloned().unwrap_or_default();
        for _ in 0..BATCHES / 10 {
            let mut batch = Vec::new();
            for a in &mut agents {
                for _ in 0..10 {
                    let records = a.plays(1, "c1", "k1");
                    batch.push(Incoming {
                        topic_screen: a.screen.clone(),
                        raw: a.batch(records),
                    });
                }
            }
            let out = store.ledger().ingest(&batch, &key_of).unwrap();
            assert!(out.iter().all(|o| matches!(o, Outcome::Stored { .. })));
        }
    }
    let db = TestDb::new();
    let transit = tempfile::tempdir().unwrap();
    let (_, to, copied, took) = copied_into(&data, &db, transit.path());
    println!(
        "ledger copy into PostgreSQL: {} one-record batches, {} records in {took:.2?}",
        copied.batches, copied.records,
    );
    let back = End::open(
        dir.path().join("back").to_str().unwrap(),
        transit.path(),
        OpenMode::Create,
    )
    .unwrap();
    let started = Instant::now();
    let again = copy(&to, &back).unwrap();
    println!(
        "and back into redb: {} batches, {} records in {:.2?}",
        again.batches,
        again.records,
        started.elapsed()
    );
}

/// The figure for the README: archiving one day of one-record batches (what agents send),
/// 500 screens with 40 plays each, on both backends: `cargo test -p server --lib
/// archive_figures -- --ignored --nocapture` (PostgreSQL on 127.0.0.1:5432). A
/// measurement, not a check.
#[test]
#[ignore = "a measurement: run by hand"]
fn archive_figures() {
    for (label, f) in [("redb", ledger::redb()), ("postgres", ledger::postgres())] {
        let l = &*f.ledger;
        let mut agents: Vec<Agent> = (0..500u32)
            .map(|n| Agent::new((n % 250) as u8 + 1, &format!("s{n:03}"), "v1"))
            .collect();
        let keys = archive::ring(&agents);
        for n in 0..40 {
            let slot = crate::store::ledger::testkit::at(8, 0) + chrono::Duration::minutes(15 * n);
            let call: Vec<Incoming> = agents
                .iter_mut()
                .map(|a| {
                    let r = a.play("c1", "k1", slot);
                    ledger::incoming(&a.screen.clone(), &a.batch(vec![r]))
                })
                .collect();
            l.ingest(&call, &keys).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let started = std::time::Instant::now();
        let summary = l.archive(dir.path(), archive::day(2)).unwrap();
        let took = started.elapsed();
        let d = &summary.days[0];
        let started = std::time::Instant::now();
        let verified = archive::verify(l, dir.path(), &keys).0;
        let verify_took = started.elapsed();
        assert_eq!(verified.problems, []);
        println!(
            "{label}: archived {} batches ({} records) in {took:.2?} ({:.0} batches/s), file {} bytes ({:.0} bytes/record); verify {verify_took:.2?}",
            d.batches,
            d.records,
            d.batches as f64 / took.as_secs_f64(),
            d.file_bytes,
            d.file_bytes as f64 / d.records as f64
        );
    }
}
