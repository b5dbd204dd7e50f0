//! Tests of the move to epochs: a ledger written as the previous version wrote it (tables
//! keyed by screen alone) opens with its rows in the legacy epoch, once, and the screen's
//! chain goes on from where it was.

use std::sync::Arc;

use redb::{Database, ReadableDatabase, TableHandle};

use playlists::wire::pop::batch_hash;

use super::super::testkit::{key_ring, query, Agent};
use super::super::{Dimension, Incoming, Ledger, Outcome, ANOMALIES, BATCHES};
use super::*;
use crate::store::ledger::hash_bytes;
use crate::store::ledger::pack::pack;
use crate::store::ledger::reader::payload_of;

/// Batch `raw`'s key in the old tables.
fn old_key(raw: &[u8]) -> HashBytes {
    let payload = payload_of(raw).expect("an envelope");
    hash_bytes(&batch_hash(&payload).to_string()).expect("a hash")
}

/// A ledger file written in the old layout: `a`'s batches of seqs 1..=3 and 4..=5, with a
/// chain note on the second batch.
fn old_ledger(dir: &std::path::Path, a: &mut Agent) -> Database {
    let (r1, r2) = (a.plays(3, "c1", "k1"), a.plays(2, "c1", "k1"));
    let raws = [a.batch(r1), a.batch(r2)];
    let db = Database::create(dir.join("ledger.redb")).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let mut batches = tx.open_table(OLD_BATCHES).unwrap();
        let mut records = tx.open_table(OLD_RECORDS).unwrap();
        let mut seq = 0;
        for (n, raw) in raws.iter().enumerate() {
            let hash = old_key(raw);
            let batch_seq = n as u64 + 1;
            batches
                .insert(("s1", batch_seq, &hash), pack(raw).as_slice())
                .unwrap();
            for index in 0..[3u32, 2][n] {
                seq += 1;
                records
                    .insert(("s1", seq), (batch_seq, &hash, index))
                    .unwrap();
            }
        }
        let head = old_key(&raws[1]);
        tx.open_table(OLD_HEADS)
            .unwrap()
            .insert("s1", (2, &head, 5))
            .unwrap();
        tx.open_table(OLD_GAPS).unwrap();
        tx.open_table(OLD_ANOMALIES)
            .unwrap()
            .insert(("s1", 2, &head), "noted at ingest")
            .unwrap();
    }
    tx.commit().unwrap();
    db
}

#[test]
fn an_old_ledger_opens_in_the_legacy_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Agent::new(1, "s1", "v1");
    let db = Arc::new(old_ledger(dir.path(), &mut a));
    let l = Ledger::open(db.clone()).unwrap();

    // The old tables are gone; every row is in the legacy epoch.
    let tx = db.begin_read().unwrap();
    let names: Vec<String> = tx
        .list_tables()
        .unwrap()
        .map(|t| t.name().to_owned())
        .collect();
    for old in [
        "pop_batches",
        "pop_records",
        "pop_heads",
        "pop_gaps",
        "pop_anomalies",
    ] {
        assert!(!names.iter().any(|n| n == old), "{old} in {names:?}");
    }
    assert_eq!(
        tx.open_table(ANOMALIES)
            .unwrap()
            .iter()
            .unwrap()
            .map(|r| {
                let (k, v) = r.unwrap();
                let (s, e, b, _) = k.value();
                (s.to_owned(), e.to_owned(), b, v.value().to_owned())
            })
            .collect::<Vec<_>>(),
        vec![("s1".into(), LEGACY.into(), 2, "noted at ingest".into())]
    );
    drop(tx);
    let mut seqs = Vec::new();
    l.plays(&query(Dimension::Screen), &mut |r| {
        seqs.push((r.epoch.clone(), r.seq));
        Ok(())
    })
    .unwrap();
    let want: Vec<(String, u64)> = (1..=5).map(|s| (String::new(), s)).collect();
    assert_eq!(seqs, want);
    let counts = l.counts().unwrap();
    assert_eq!(
        (counts.records, counts.batches, counts.last_seq["s1"]),
        (5, 2, 5)
    );
    assert_eq!(counts.epoch["s1"], LEGACY);
    let report = l.audit(&key_ring(&[&a])).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(
        report
            .chains
            .iter()
            .map(|c| (c.epoch.as_str(), c.batches, c.records))
            .collect::<Vec<_>>(),
        vec![(LEGACY, 2, 5)]
    );

    // The old agent's chain goes on where it was: batch 3 links to the migrated batch 2.
    let r3 = a.plays(1, "c1", "k1");
    let b3 = a.batch(r3);
    let incoming = |raw: &[u8]| Incoming {
        topic_screen: "s1".into(),
        raw: raw.to_vec(),
    };
    let out = l.ingest(&[incoming(&b3)], &key_ring(&[&a])).unwrap();
    assert!(
        matches!(out[0], Outcome::Stored { records: 1, .. }),
        "{out:?}"
    );
    // Opening again migrates nothing more.
    drop(l);
    let l = Ledger::open(db).unwrap();
    let report = l.audit(&key_ring(&[&a])).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!((report.batches, report.records), (3, 6));
    assert_eq!(report.chains[0].last_batch_seq, 3);
}

/// A ledger the old codec wrote (zstd-compressed here to keep the repository small):
/// screens `bj-metro-xidan-s1` (key `[3; 32]`, batches of 1, 1, 20 and 1 records) and
/// `bj-community-shuanglu-s1` (key `[4; 32]`, 3, 3, 22 and 3), as the testkit's agents
/// make them. It opens, audits clean, exports, and takes new batches packed with zstd.
#[test]
fn a_ledger_written_by_the_old_codec_reads_audits_and_grows() {
    let old = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/ledger-pack-v1.redb.zst"
    ));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.redb");
    std::fs::write(&path, zstd::stream::decode_all(&old[..]).unwrap()).unwrap();
    let l = Ledger::open(Arc::new(redb::Database::open(&path).unwrap())).unwrap();

    // The agents as they were, their chains replayed up to the stored heads.
    let mut a = Agent::new(3, "bj-metro-xidan-s1", "bj-metro-xidan");
    let mut b = Agent::new(4, "bj-community-shuanglu-s1", "bj-community-shuanglu");
    for n in [1, 1, 20, 1] {
        let p = a.plays(n, "rm2023-annual", "rm2023-annual-01-l");
        a.batch(p);
        let p = b.plays(n + 2, "house-filler", "house-capital-civility-p");
        b.batch(p);
    }
    let keys = key_ring(&[&a, &b]);
    let counts = l.counts().unwrap();
    assert_eq!((counts.records, counts.batches), (54, 8));
    let report = l.audit(&keys).unwrap();
    assert_eq!(report.problems, [], "an old ledger audits clean");
    assert_eq!(report.records, 54);
    let mut seen = 0;
    let query = query(Dimension::Screen);
    l.plays(&query, &mut |r| {
        assert!(r.campaign_id == "rm2023-annual" || r.campaign_id == "house-filler");
        seen += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, 54);

    let p = a.plays(5, "rm2023-annual", "rm2023-annual-02-l");
    let next = Incoming {
        topic_screen: a.screen.clone(),
        raw: a.batch(p),
    };
    let outcomes = l.ingest(&[next], &keys).unwrap();
    assert!(
        matches!(outcomes[..], [Outcome::Stored { records: 5, .. }]),
        "{outcomes:?}"
    );
    let report = l.audit(&keys).unwrap();
    assert_eq!(report.problems, [], "old and new envelopes side by side");
    assert_eq!((report.batches, report.records), (9, 59));
    let tags: Vec<u8> = {
        let tx = l.db.begin_read().unwrap();
        let t = tx.open_table(BATCHES).unwrap();
        redb::ReadableTable::iter(&t)
            .unwrap()
            .map(|row| row.unwrap().1.value()[0])
            .collect()
    };
    assert_eq!(
        tags.iter()
            .filter(|t| **t == crate::store::ledger::pack::LZ)
            .count(),
        8,
        "{tags:?}"
    );
    assert_eq!(
        tags.iter()
            .filter(|t| **t == crate::store::ledger::pack::ZSTD_DICT1)
            .count(),
        1,
        "{tags:?}"
    );
}
