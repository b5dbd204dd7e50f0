//! Tests of the audit: a clean ledger, then one kind of damage at a time.
use super::super::testkit::{key_ring, ledger, Agent};
use super::super::{AuditProblem, Incoming, Ledger, Outcome, ProblemKind};
use super::*;
use crate::store::ledger::pack::{pack, unpack};
use playlists::wire::PopBatch;

fn send(l: &Ledger, a: &Agent, raws: &[Vec<u8>]) {
    let incoming: Vec<Incoming> = raws
        .iter()
        .map(|raw| Incoming {
            topic_screen: a.screen.clone(),
            raw: raw.clone(),
        })
        .collect();
    l.ingest(&incoming, &key_ring(&[a])).unwrap();
}

/// Audits with `a`'s key and compares the problems, as `(kind, detail)`, with `expect`.
fn check(l: &Ledger, a: &Agent, expect: &[(ProblemKind, &str)]) -> AuditReport {
    let report = l.audit(&key_ring(&[a])).unwrap();
    let got: Vec<(ProblemKind, &str)> = report
        .problems
        .iter()
        .map(|p| (p.kind, p.detail.as_str()))
        .collect();
    assert_eq!(got, expect);
    assert!(report.problems.iter().all(|p| p.screen_id == a.screen));
    report
}

/// A screen with two clean batches: seqs 1..=3, then 4..=5.
fn two_batches() -> (tempfile::TempDir, Ledger, Agent) {
    let (dir, l) = ledger();
    let mut a = Agent::new(1, "s1", "v1");
    let (r1, r2) = (a.plays(3, "c1", "k1"), a.plays(2, "c1", "k1"));
    let raws = [a.batch(r1), a.batch(r2)];
    send(&l, &a, &raws);
    (dir, l, a)
}

fn write(l: &Ledger, f: impl FnOnce(&redb::WriteTransaction)) {
    let tx = l.db.begin_write().unwrap();
    f(&tx);
    tx.commit().unwrap();
}

#[test]
fn a_clean_ledger_verifies() {
    let (_dir, l, a) = two_batches();
    let report = check(&l, &a, &[]);
    assert_eq!((report.screens, report.batches, report.records), (1, 2, 5));
}

/// A stored record reference as the bytes redb keeps.
fn ref_bytes(r: RecordRef<'_>) -> Vec<u8> {
    let bytes = <RecordRef<'static> as redb::Value>::as_bytes(&r);
    AsRef::<[u8]>::as_ref(&bytes).to_vec()
}

/// Flips the bits of `mask` in byte `at` of the stored reference of record `seq` of s1.
fn flip_record_byte(l: &Ledger, seq: u64, at: usize, mask: u8) {
    write(l, |tx| {
        let mut t = tx.open_table(RECORDS).unwrap();
        let mut bytes = {
            let g = t.get(("s1", "", seq)).unwrap().unwrap();
            ref_bytes(g.value())
        };
        bytes[at] ^= mask;
        t.insert(
            ("s1", "", seq),
            <RecordRef<'static> as redb::Value>::from_bytes(&bytes),
        )
        .unwrap();
    });
}

#[test]
fn a_flipped_byte_in_a_stored_record_is_reported() {
    let (_dir, l, a) = two_batches();
    // The last bytes are the record's index in its batch: seq 2 is at index 1.
    let len = {
        let tx = l.db.begin_read().unwrap();
        let t = tx.open_table(RECORDS).unwrap();
        let g = t.get(("s1", "", 2)).unwrap().unwrap();
        assert_eq!(g.value().2, 1);
        ref_bytes(g.value()).len()
    };
    flip_record_byte(&l, 2, len - 4, 0x02);
    check(
        &l,
        &a,
        &[(
            ProblemKind::RecordTampered,
            "seq 2: the stored record differs from the one signed in batch 1",
        )],
    );
    flip_record_byte(&l, 2, len - 4, 0x02);
    check(&l, &a, &[]);

    // Whichever byte of the reference changes, the record is reported, by seq.
    for at in 0..len {
        for mask in [0x01, 0x80, 0xff] {
            flip_record_byte(&l, 2, at, mask);
            let report = l.audit(&key_ring(&[&a])).unwrap();
            assert!(
                !report.problems.is_empty()
                    && report.problems.iter().all(|p| {
                        p.kind == ProblemKind::RecordTampered
                            && p.screen_id == "s1"
                            && p.detail.starts_with("seq 2")
                    }),
                "byte {at} ^ {mask:#x}: {:?}",
                report.problems
            );
            flip_record_byte(&l, 2, at, mask);
        }
    }
    check(&l, &a, &[]);
}

#[test]
fn a_reference_to_another_version_of_the_batch_is_reported() {
    let (_dir, l, a) = two_batches();
    write(&l, |tx| {
        let mut t = tx.open_table(RECORDS).unwrap();
        t.insert(("s1", "", 5), (2, &[7; 32], 1)).unwrap();
    });
    check(
        &l,
        &a,
        &[(
            ProblemKind::RecordTampered,
            &format!(
                "seq 5 is stored as coming from batch 2 with hash {}, which is not stored",
                "07".repeat(32)
            ),
        )],
    );
}

#[test]
fn missing_inserted_and_moved_records_are_reported() {
    let (_dir, l, a) = two_batches();
    write(&l, |tx| {
        let mut t = tx.open_table(RECORDS).unwrap();
        t.remove(("s1", "", 4)).unwrap();
        let (batch_seq, hash, index) = {
            let g = t.get(("s1", "", 1)).unwrap().unwrap();
            let (b, h, i) = g.value();
            (b, *h, i)
        };
        t.insert(("s1", "", 9), (batch_seq, &hash, index)).unwrap();
        t.insert(("s9", "", 1), (batch_seq, &hash, index)).unwrap();
    });
    let found: Vec<String> = l
        .audit(&key_ring(&[&a]))
        .unwrap()
        .problems
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        found,
        [
            "missing-record s1: seq 4 of batch 2 is not stored",
            "record-tampered s1: seq 9 is stored as coming from batch 1, which does not carry it",
            "record-tampered s9: 1 records are stored but no batch of this screen is",
        ]
    );
}

#[test]
fn a_missing_batch_breaks_the_chain() {
    let (_dir, l) = ledger();
    let mut a = Agent::new(1, "s1", "v1");
    let raws: Vec<Vec<u8>> = (0..3)
        .map(|_| {
            let r = a.plays(1, "c1", "k1");
            a.batch(r)
        })
        .collect();
    send(&l, &a, &[raws[0].clone(), raws[2].clone()]);
    let report = l.audit(&key_ring(&[&a])).unwrap();
    assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
    assert_eq!(report.problems[0].kind, ProblemKind::ChainBreak);
    assert!(
        report.problems[0]
            .detail
            .starts_with("batch 3: its predecessor, batch 2 with hash "),
        "{}",
        report.problems[0]
    );
    assert!(report.problems[0]
        .detail
        .ends_with("is not stored (at ingest: batch 3 arrived where batch 2 was expected)"));
    assert_eq!(
        report.problems[1],
        AuditProblem {
            screen_id: "s1".into(),
            kind: ProblemKind::Gap,
            detail: "seqs 2..=2 were skipped: 1 of 1 still missing".into()
        }
    );

    // Batch 2 arrives late: the chain and the seqs are whole again.
    send(&l, &a, &[raws[1].clone()]);
    check(&l, &a, &[]);
}

#[test]
fn a_batch_signed_over_a_wrong_link_breaks_the_chain() {
    let (_dir, l) = ledger();
    let mut a = Agent::new(1, "s1", "v1");
    let r = a.plays(1, "c1", "k1");
    let first = a.batch(r);
    let r = a.plays(1, "c1", "k1");
    let wrong = a.seal(&PopBatch {
        prev_hash: "ab".repeat(32),
        ..a.payload(r)
    });
    send(&l, &a, &[first, wrong]);
    let report = l.audit(&key_ring(&[&a])).unwrap();
    assert_eq!(report.problems.len(), 1);
    assert!(report.problems[0].detail.starts_with(&format!(
        "batch 2: its predecessor, batch 1 with hash {}, is not stored",
        "ab".repeat(32)
    )));
}

#[test]
fn signatures_are_checked_with_the_current_key() {
    let (_dir, l, a) = two_batches();
    let rekeyed = Agent::new(2, "s1", "v1");
    let report = l.audit(&key_ring(&[&rekeyed])).unwrap();
    let kinds: Vec<(ProblemKind, &str)> = report
        .problems
        .iter()
        .map(|p| (p.kind, p.detail.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (ProblemKind::BadSignature, "batch 1: bad signature"),
            (ProblemKind::BadSignature, "batch 2: bad signature")
        ]
    );
    let report = l.audit(&key_ring(&[])).unwrap();
    assert_eq!(report.problems.len(), 1);
    assert_eq!(
        report.problems[0].detail,
        "the screen has no registered key: its signatures cannot be checked"
    );
    check(&l, &a, &[]);
}

#[test]
fn tampered_batches_and_heads_are_reported() {
    let (_dir, l, a) = two_batches();
    // A byte of the envelope as received (stored packed) changes: campaign c1 becomes c2.
    write(&l, |tx| {
        let mut t = tx.open_table(BATCHES).unwrap();
        let (key, mut raw) = {
            let (k, v) = t.last().unwrap().unwrap();
            let (s, _, b, h) = k.value();
            let raw = unpack(v.value(), usize::MAX).unwrap().into_owned();
            ((s.to_owned(), b, *h), raw)
        };
        let at = raw.windows(2).position(|w| w == b"c1").unwrap() + 1;
        raw[at] = b'2';
        t.insert((key.0.as_str(), "", key.1, &key.2), pack(&raw).as_slice())
            .unwrap();
    });
    let report = l.audit(&key_ring(&[&a])).unwrap();
    let kinds: Vec<ProblemKind> = report.problems.iter().map(|p| p.kind).collect();
    // The records it stored (their bytes are in it) are not proven either.
    assert_eq!(
        kinds,
        [
            ProblemKind::BadSignature,
            ProblemKind::ChainBreak,
            ProblemKind::RecordTampered
        ],
        "{:?}",
        report.problems
    );
    assert!(report.problems[1].detail.contains("its payload hashes to"));
    assert_eq!(
        report.problems[2].detail,
        "seqs 4..=5 (2 records) stored from batch 2 are not proven: the batch changed after they were stored"
    );

    let (_dir, l, a) = two_batches();
    write(&l, |tx| {
        let mut t = tx.open_table(BATCHES).unwrap();
        let key = {
            let (k, _) = t.last().unwrap().unwrap();
            let (s, _, b, h) = k.value();
            (s.to_owned(), b, *h)
        };
        t.remove((key.0.as_str(), "", key.1, &key.2)).unwrap();
    });
    let report = l.audit(&key_ring(&[&a])).unwrap();
    let kinds: Vec<ProblemKind> = report.problems.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        [
            ProblemKind::RecordTampered,
            ProblemKind::RecordTampered,
            ProblemKind::ChainBreak
        ],
        "{:?}",
        report.problems
    );
    assert!(report.problems[2]
        .detail
        .starts_with("the chain head, batch 2 with hash "));
}

#[test]
fn a_flipped_byte_in_a_stored_envelope_is_reported() {
    let (_dir, l, a) = two_batches();
    let (key, stored) = {
        let tx = l.db.begin_read().unwrap();
        let t = tx.open_table(BATCHES).unwrap();
        let (k, v) = t.last().unwrap().unwrap();
        let (s, _, b, h) = k.value();
        ((s.to_owned(), b, *h), v.value().to_vec())
    };
    assert_eq!(stored[0], crate::store::ledger::pack::ZSTD_DICT1);
    let put = |bytes: &[u8]| {
        write(&l, |tx| {
            let mut t = tx.open_table(BATCHES).unwrap();
            t.insert((key.0.as_str(), "", key.1, &key.2), bytes)
                .unwrap();
        })
    };
    // Every byte of the stored value: batch 2 (or the records it stored) is reported, unless
    // the packed bytes still unpack to the envelope received (a back reference moved to an
    // equal run of bytes): then nothing signed changed.
    let received = unpack(&stored, usize::MAX).unwrap().into_owned();
    let mut reported = 0;
    for at in 0..stored.len() {
        let mut bad = stored.clone();
        bad[at] ^= 0x04;
        put(&bad);
        let report = l.audit(&key_ring(&[&a])).unwrap();
        if unpack(&bad, usize::MAX).as_deref() == Some(received.as_slice()) {
            assert_eq!(report.problems, [], "byte {at}");
            continue;
        }
        reported += 1;
        assert!(
            report.problems.iter().any(|p| p.detail.contains("batch 2")),
            "byte {at}: {:?}",
            report.problems
        );
        assert!(report.problems.iter().all(|p| p.screen_id == "s1"));
    }
    assert!(
        reported > stored.len() * 9 / 10,
        "{reported} of {}",
        stored.len()
    );
    put(&stored);
    check(&l, &a, &[]);
}

#[test]
fn an_agent_that_restarts_its_chain_in_its_epoch_is_refused() {
    let (_dir, l, a) = two_batches();
    let mut reborn = Agent::new(1, "s1", "v1");
    let r = reborn.plays(1, "c9", "k9"); // seq 1 of the same epoch again, other content
    let raw = reborn.batch(r);
    let out = l
        .ingest(
            &[Incoming {
                topic_screen: "s1".into(),
                raw,
            }],
            &key_ring(&[&reborn]),
        )
        .unwrap();
    assert!(
        matches!(&out[0], Outcome::Rejected { reason, .. } if reason.starts_with("seq 1 of legacy epoch is already held with other content, from batch 1")),
        "{out:?}"
    );
    // Nothing of it was stored: the audit is clean and the head has not moved.
    check(&l, &a, &[]);
    assert_eq!(l.counts().unwrap().last_batch_seq["s1"], 2);
}

#[test]
fn each_epoch_is_its_own_chain() {
    let (_dir, l, mut a) = two_batches();
    // The kiosk's outbox is wiped: a new epoch, counting from seq 1 and batch 1 again.
    a.new_epoch("e2");
    let (r1, r2) = (a.plays(2, "c2", "k2"), a.plays(1, "c2", "k2"));
    let raws = [a.batch(r1), a.batch(r2)];
    send(&l, &a, &raws);
    let report = check(&l, &a, &[]);
    assert_eq!((report.batches, report.records), (4, 8));
    let chains: Vec<(&str, u64, u64, u64)> = report
        .chains
        .iter()
        .map(|c| (c.epoch.as_str(), c.batches, c.last_batch_seq, c.records))
        .collect();
    assert_eq!(chains, [("", 2, 2, 5), ("e2", 2, 2, 3)]);
    let counts = l.counts().unwrap();
    assert_eq!(
        (counts.epoch["s1"].as_str(), counts.last_seq["s1"]),
        ("e2", 3)
    );
    // A break inside the new epoch is reported with the epoch's name.
    let r4 = a.plays(1, "c2", "k2");
    let _lost = a.batch(r4);
    let r5 = a.plays(1, "c2", "k2");
    let b5 = a.batch(r5);
    send(&l, &a, &[b5]);
    let report = l.audit(&key_ring(&[&a])).unwrap();
    let got: Vec<(ProblemKind, &str)> = report
        .problems
        .iter()
        .map(|p| (p.kind, p.detail.as_str()))
        .collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0, ProblemKind::ChainBreak);
    assert!(
        got[0]
            .1
            .starts_with("epoch e2: batch 4: its predecessor, batch 3 with hash"),
        "{got:?}"
    );
    assert_eq!(
        got[1],
        (
            ProblemKind::Gap,
            "epoch e2: seqs 4..=4 were skipped: 1 of 1 still missing"
        )
    );
}

#[test]
fn batches_verify_with_the_key_that_signed_them() {
    let (_dir, l, mut a) = two_batches();
    let old = Agent::new(1, "s1", "v1");
    // Re-provisioned: the agent signs with a new key; the screen has both, newest first.
    a.rekey(2);
    let r3 = a.plays(1, "c1", "k1");
    let b3 = a.batch(r3);
    let ring = key_ring(&[&old, &a]);
    let out = l
        .ingest(
            &[Incoming {
                topic_screen: "s1".into(),
                raw: b3,
            }],
            &ring,
        )
        .unwrap();
    assert!(
        matches!(out[0], Outcome::Stored { records: 1, .. }),
        "{out:?}"
    );
    // A late batch of the replaced kiosk, signed with the old key, still counts.
    let mut late = Agent::new(1, "s1", "v1");
    late.new_epoch("old-kiosk");
    let r = late.plays(1, "c1", "k1");
    let raw = late.batch(r);
    let out = l
        .ingest(
            &[Incoming {
                topic_screen: "s1".into(),
                raw,
            }],
            &ring,
        )
        .unwrap();
    assert!(
        matches!(out[0], Outcome::Stored { records: 1, .. }),
        "{out:?}"
    );

    let report = l.audit(&ring).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    /// Runs of batches per key: (key, first batch, last batch).
    type Runs = Vec<(VerifyingKey, u64, u64)>;
    let signers: Vec<(&str, Runs)> = report
        .chains
        .iter()
        .map(|c| {
            let runs = c
                .signers
                .iter()
                .map(|s| (s.key, s.first_batch, s.last_batch))
                .collect();
            (c.epoch.as_str(), runs)
        })
        .collect();
    let (k1, k2) = (old.key.public(), a.key.public());
    assert_eq!(
        signers,
        [
            ("", vec![(k1, 1, 2), (k2, 3, 3)]),
            ("old-kiosk", vec![(k1, 1, 1)])
        ]
    );

    // With only the new key registered, the old batches fail, naming the batch.
    let report = l.audit(&key_ring(&[&a])).unwrap();
    let kinds: Vec<ProblemKind> = report.problems.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        [ProblemKind::BadSignature; 3],
        "{:?}",
        report.problems
    );
    // And a key the screen never had verifies nothing.
    let stranger = Agent::new(9, "s1", "v1");
    let r = stranger.batch_unchained(vec![]);
    let out = l
        .ingest(
            &[Incoming {
                topic_screen: "s1".into(),
                raw: r,
            }],
            &ring,
        )
        .unwrap();
    assert!(matches!(out[0], Outcome::Rejected { .. }), "{out:?}");
}
