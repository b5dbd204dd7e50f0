//! Tests of `ingest`.

use super::super::testkit::{key_ring, ledger, Agent};
use super::super::{Incoming, Outcome, ANOMALIES, GAPS};
use playlists::wire::pop::{PopBatch, BATCH_KIND};
use playlists::wire::{Keypair, PlayStatus, MAX_POP_BYTES};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

fn incoming(screen: &str, raw: &[u8]) -> Incoming {
    Incoming {
        topic_screen: screen.to_owned(),
        raw: raw.to_vec(),
    }
}

/// Ingests one message from `a`'s topic and expects a rejection containing `reason`.
fn check_rejected(a: &Agent, raw: &[u8], reason: &str) {
    let (_dir, l) = ledger();
    let out = l
        .ingest(&[incoming(&a.screen, raw)], &key_ring(&[a]))
        .unwrap();
    match &out[..] {
        [Outcome::Rejected {
            screen_id,
            reason: got,
        }] => {
            assert_eq!(screen_id, &a.screen);
            assert!(got.contains(reason), "reason {got:?} lacks {reason:?}");
        }
        other => panic!("expected a rejection for {reason:?}, got {other:?}"),
    }
    assert_eq!(l.counts().unwrap().records, 0);
}

#[test]
fn stores_then_reacks_a_duplicate() {
    let (_dir, l) = ledger();
    let mut a = Agent::new(1, "s1", "v1");
    let recs = a.plays(3, "c1", "k1");
    let raw = a.batch(recs);
    let keys = key_ring(&[&a]);
    let first = l.ingest(&[incoming("s1", &raw)], &keys).unwrap();
    let Outcome::Stored {
        screen_id,
        ack,
        records,
        gaps,
    } = &first[0]
    else {
        panic!("{first:?}")
    };
    assert_eq!(
        (screen_id.as_str(), ack.batch_seq, *records, gaps.len()),
        ("s1", 1, 3, 0)
    );
    let again = l
        .ingest(&[incoming("s1", &raw), incoming("s1", &raw)], &keys)
        .unwrap();
    assert_eq!(
        again,
        vec![
            Outcome::Duplicate {
                screen_id: "s1".into(),
                ack: ack.clone()
            };
            2
        ]
    );
    let counts = l.counts().unwrap();
    assert_eq!(
        (counts.records, counts.batches, counts.last_seq["s1"]),
        (3, 1, 3)
    );
}

#[test]
fn same_batch_twice_in_one_call_counts_once() {
    let (_dir, l) = ledger();
    let mut a = Agent::new(1, "s1", "v1");
    let recs = a.plays(2, "c1", "k1");
    let raw = a.batch(recs);
    let out = l
        .ingest(
            &[incoming("s1", &raw), incoming("s1", &raw)],
            &key_ring(&[&a]),
        )
        .unwrap();
    assert!(matches!(out[0], Outcome::Stored { records: 2, .. }));
    assert!(matches!(out[1], Outcome::Duplicate { .. }));
    assert_eq!(l.counts().unwrap().records, 2);
    let rows = l
        .delivered(&super::super::testkit::query(
            super::super::Dimension::Screen,
        ))
        .unwrap();
    assert_eq!(rows[0].complete, 2);
}

#[test]
fn overlapping_seqs_are_skipped() {
    let (_dir, l) = ledger();
    let mut a = Agent::new(1, "s1", "v1");
    let recs = a.plays(3, "c1", "k1"); // seqs 1..=3
    let first = a.batch(recs.clone());
    let mut overlap = recs[1..].to_vec(); // seqs 2, 3 again, then 4
    overlap.extend(a.plays(1, "c1", "k1"));
    let second = a.batch(overlap);
    let out = l
        .ingest(
            &[incoming("s1", &first), incoming("s1", &second)],
            &key_ring(&[&a]),
        )
        .unwrap();
    assert!(
        matches!(out[1], Outcome::Stored { records: 1, .. }),
        "{out:?}"
    );
    let counts = l.counts().unwrap();
    assert_eq!(
        (counts.records, counts.batches, counts.last_seq["s1"]),
        (4, 2, 4)
    );
    assert!(l.audit(&key_ring(&[&a])).unwrap().problems.is_empty());
    // The rollups count each play once.
    let rows = l
        .delivered(&super::super::testkit::query(
            super::super::Dimension::Campaign,
        ))
        .unwrap();
    assert_eq!(rows[0].complete, 4);
}

#[test]
fn rejections() {
    let mut a = Agent::new(1, "s1", "v1");
    let recs = a.plays(2, "c1", "k1");
    let good = a.batch_unchained(recs.clone());

    // Signed with another screen's key.
    let forger = Agent::new(2, "s1", "v1");
    check_rejected(&a, &forger.seal(&a.payload(recs.clone())), "bad signature");
    // Screen s2 signs a batch claiming to be s1, on its own topic.
    let mut s2 = Agent::new(2, "s2", "v1");
    let (_dir, l) = ledger();
    let out = l
        .ingest(
            &[incoming("s2", &s2.seal(&a.payload(recs.clone())))],
            &key_ring(&[&a, &s2]),
        )
        .unwrap();
    assert!(
        matches!(&out[0], Outcome::Rejected { reason, .. } if reason.contains("arrived on the topic of screen \"s2\"")),
        "{out:?}"
    );
    // A record of another screen inside s2's own batch.
    let own = s2.plays(1, "c1", "k1");
    let mut p = s2.payload(own);
    p.records.push(recs[1].clone());
    let out = l
        .ingest(&[incoming("s2", &s2.seal(&p))], &key_ring(&[&s2]))
        .unwrap();
    assert!(
        matches!(&out[0], Outcome::Rejected { reason, .. } if reason.contains("belongs to screen \"s1\"")),
        "{out:?}"
    );

    check_rejected(
        &a,
        &vec![b' '; MAX_POP_BYTES + 1],
        "exceeds the 1048576-byte limit",
    );
    check_rejected(&a, b"{not json", "malformed");
    let (_dir, l) = ledger();
    let out = l
        .ingest(&[incoming("s9", &good)], &key_ring(&[&a]))
        .unwrap();
    assert!(
        matches!(&out[0], Outcome::Rejected { reason, .. } if reason == "unknown screen \"s9\""),
        "{out:?}"
    );

    check_rejected(&a, &a.seal(&a.payload(vec![])), "empty batch");
    let mut many = Agent::new(1, "s1", "v1");
    let too_many = many.plays(1001, "c1", "k1");
    check_rejected(
        &a,
        &a.seal(&a.payload(too_many)),
        "1001 records exceeds the 1000-record limit",
    );
    check_rejected(
        &a,
        &a.seal(&a.payload(vec![recs[1].clone(), recs[0].clone()])),
        "strictly increase: 1 follows 2",
    );
    check_rejected(
        &a,
        &a.seal(&PopBatch {
            v: 2,
            ..a.payload(recs.clone())
        }),
        "unsupported pop-batch version 2",
    );
    let other_kind = Keypair::from_secret([1; 32]).seal("pop-ack", &a.payload(recs));
    check_rejected(&a, &other_kind, "expected a pop-batch message");
    assert_eq!(BATCH_KIND, "pop-batch");
}

#[test]
fn gaps_are_recorded() {
    let (_dir, l) = ledger();
    let mut a = Agent::new(1, "s1", "v1");
    let first = a.plays(2, "c1", "k1"); // 1, 2
    let _lost = a.plays(3, "c1", "k1"); // 3..=5 never sent
    let mut next = a.plays(1, "c1", "k1"); // 6
    let _lost = a.plays(1, "c1", "k1"); // 7
    next.extend(a.plays(1, "c1", "k1")); // 8
    let raws = [a.batch(first), a.batch(next)];
    let out = l
        .ingest(
            &[incoming("s1", &raws[0]), incoming("s1", &raws[1])],
            &key_ring(&[&a]),
        )
        .unwrap();
    assert!(
        matches!(&out[1], Outcome::Stored { gaps, records: 2, .. } if gaps == &[(3, 5), (7, 7)]),
        "{out:?}"
    );
    let tx = l.db.begin_read().unwrap();
    assert_eq!(tx.open_table(GAPS).unwrap().len().unwrap(), 2);
    assert_eq!(tx.open_table(ANOMALIES).unwrap().len().unwrap(), 0);
}

#[test]
fn out_of_chain_batches_are_stored_and_noted() {
    let (_dir, l) = ledger();
    let mut a = Agent::new(1, "s1", "v1");
    let b1 = a.plays(1, "c1", "k1");
    let b1 = a.batch(b1);
    let b2 = a.plays(1, "c1", "k1");
    let _b2 = a.batch(b2); // never arrives
    let b3 = a.plays(1, "c1", "k1");
    let b3 = a.batch(b3);
    let out = l
        .ingest(
            &[incoming("s1", &b1), incoming("s1", &b3)],
            &key_ring(&[&a]),
        )
        .unwrap();
    assert!(
        out.iter().all(|o| matches!(o, Outcome::Stored { .. })),
        "{out:?}"
    );
    let tx = l.db.begin_read().unwrap();
    let anomalies = tx.open_table(ANOMALIES).unwrap();
    let (_, detail) = anomalies.first().unwrap().unwrap();
    assert_eq!(detail.value(), "batch 3 arrived where batch 2 was expected");
    assert_eq!(l.counts().unwrap().last_batch_seq["s1"], 3);
}

#[test]
fn statuses_reach_the_rollups() {
    let (_dir, l) = ledger();
    let mut a = Agent::new(1, "s1", "v1");
    let mut recs = a.plays(3, "c1", "k1");
    recs[1].status = PlayStatus::Partial;
    recs[2].status = PlayStatus::Failed;
    let raw = a.batch(recs);
    l.ingest(&[incoming("s1", &raw)], &key_ring(&[&a])).unwrap();
    let rows = l
        .delivered(&super::super::testkit::query(
            super::super::Dimension::Campaign,
        ))
        .unwrap();
    assert_eq!(
        (rows[0].complete, rows[0].partial, rows[0].failed),
        (1, 1, 1)
    );
}

#[test]
fn a_batch_that_conflicts_with_held_records_is_never_acknowledged() {
    let (_dir, l) = ledger();
    let mut a = Agent::new(1, "s1", "v1");
    let recs = a.plays(3, "c1", "k1"); // seqs 1..=3
    let first = a.batch(recs.clone());
    let keys = key_ring(&[&a]);
    l.ingest(&[incoming("s1", &first)], &keys).unwrap();
    // Seqs 3 (held, but altered) and 4 (new): nothing of it may be stored or acknowledged.
    let mut altered = recs[2].clone();
    altered.creative_id = "k2".into();
    let mut recs2 = vec![altered];
    recs2.extend(a.plays(1, "c1", "k1"));
    let second = a.batch_unchained(recs2);
    let out = l.ingest(&[incoming("s1", &second)], &keys).unwrap();
    match &out[..] {
        [o @ Outcome::Rejected { reason, .. }] => {
            assert_eq!(o.ack(), None);
            assert_eq!(
                reason,
                "seq 3 of legacy epoch is already held with other content, from batch 1: a batch that conflicts with stored records is not stored"
            );
        }
        other => panic!("{other:?}"),
    }
    let counts = l.counts().unwrap();
    assert_eq!(
        (counts.records, counts.batches, counts.last_seq["s1"]),
        (3, 1, 3)
    );
    // The same seqs in another epoch are other records: stored, acknowledged in that epoch.
    let mut b = Agent::new(1, "s1", "v1");
    b.new_epoch("e2");
    let recs = b.plays(3, "c1", "k1");
    let raw = b.batch(recs);
    let out = l.ingest(&[incoming("s1", &raw)], &keys).unwrap();
    match &out[..] {
        [Outcome::Stored {
            ack, records: 3, ..
        }] => {
            assert_eq!((ack.epoch.as_str(), ack.batch_seq), ("e2", 1));
        }
        other => panic!("{other:?}"),
    }
    let counts = l.counts().unwrap();
    assert_eq!(
        (
            counts.records,
            counts.epoch["s1"].as_str(),
            counts.last_seq["s1"]
        ),
        (6, "e2", 3)
    );
    // A record of another epoch inside a batch is refused.
    let mut c = Agent::new(1, "s1", "v1");
    c.new_epoch("e3");
    let mut recs = c.plays(1, "c1", "k1");
    recs[0].epoch = "e2".into();
    let raw = c.batch(recs);
    check_rejected(
        &c,
        &raw,
        "record seq 1 is of epoch e2, not of the batch's epoch e3",
    );
}
