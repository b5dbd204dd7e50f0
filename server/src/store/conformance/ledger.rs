//! Conformance of the proof-of-play ledger: the same cases on the redb ledger and on the
//! PostgreSQL one, and one scripted history whose every answer (outcomes, counts, rollups,
//! plays, audit) must be the same on both.

use std::collections::BTreeMap;

use ed25519_dalek::VerifyingKey;

use playlists::wire::{PlayRecord, PlayStatus};

use crate::store::ledger::testkit::{at, key_ring, query, Agent};
use crate::store::ledger::{
    AuditReport, Dimension, Incoming, KeysOf, LedgerCounts, LedgerStore, Outcome, ProblemKind,
    Query, Row,
};

/// A ledger under test and what it lives in (dropped after it).
pub(crate) struct LedgerFixture {
    pub ledger: Box<dyn LedgerStore>,
    _dir: tempfile::TempDir,
    _db: Option<(
        super::super::postgres::testdb::TestDb,
        super::super::postgres::PgStore,
    )>,
}

pub(crate) fn redb() -> LedgerFixture {
    let (dir, ledger) = crate::store::redb::ledger::testkit::ledger();
    LedgerFixture {
        ledger: Box::new(ledger),
        _dir: dir,
        _db: None,
    }
}

pub(crate) fn postgres() -> LedgerFixture {
    let db = super::super::postgres::testdb::TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let store = db.open(dir.path(), super::super::OpenMode::Create);
    LedgerFixture {
        ledger: Box::new(store.test_ledger()),
        _dir: dir,
        _db: Some((db, store)),
    }
}

pub(crate) fn incoming(screen: &str, raw: &[u8]) -> Incoming {
    Incoming {
        topic_screen: screen.to_owned(),
        raw: raw.to_vec(),
    }
}

/// Numbers above PostgreSQL's BIGINT are refused by both backends alike (so any ledger
/// copies either way), naming the limit; nothing is stored.
pub(crate) fn refuses_numbers_beyond_the_shared_limit(l: &dyn LedgerStore) {
    let mut a = Agent::new(1, "s1", "v1");
    let keys = key_ring(&[&a]);
    let mut recs = a.plays(1, "c1", "k1");
    recs[0].seq = i64::MAX as u64 + 1;
    let mut batch = a.payload(recs);
    let huge_seq = a.seal(&batch);
    batch.records[0].seq = 1;
    batch.batch_seq = u64::MAX;
    let huge_batch = a.seal(&batch);
    let out = l
        .ingest(
            &[incoming("s1", &huge_seq), incoming("s1", &huge_batch)],
            &keys,
        )
        .unwrap();
    for o in &out {
        assert!(
            matches!(o, Outcome::Rejected { reason, .. }
                if reason == "batch or record numbers above 9223372036854775807 are not stored"),
            "{o:?}"
        );
    }
    assert_eq!(l.counts().unwrap().records, 0);
}

pub(crate) fn stores_duplicates_and_refuses_conflicts(l: &dyn LedgerStore) {
    let mut a = Agent::new(1, "s1", "v1");
    let keys = key_ring(&[&a]);
    let recs = a.plays(3, "c1", "k1"); // seqs 1..=3
    let first = a.batch(recs.clone());
    let out = l.ingest(&[incoming("s1", &first)], &keys).unwrap();
    assert!(
        matches!(&out[..], [Outcome::Stored { records: 3, gaps, .. }] if gaps.is_empty()),
        "{out:?}"
    );
    // Twice more in one call: both duplicates, nothing changes.
    let again = l
        .ingest(&[incoming("s1", &first), incoming("s1", &first)], &keys)
        .unwrap();
    assert!(
        again
            .iter()
            .all(|o| matches!(o, Outcome::Duplicate { .. }) && o.ack() == out[0].ack()),
        "{again:?}"
    );
    // Seqs 2 and 3 again (the same), then 4: only 4 is new.
    let mut overlap = recs[1..].to_vec();
    overlap.extend(a.plays(1, "c1", "k1"));
    let second = a.batch(overlap);
    let out = l.ingest(&[incoming("s1", &second)], &keys).unwrap();
    assert!(
        matches!(out[0], Outcome::Stored { records: 1, .. }),
        "{out:?}"
    );
    // Seq 4 altered, with 5: refused whole, never acknowledged.
    let mut altered = a.plays(0, "c1", "k1");
    let mut four = recs[2].clone();
    four.seq = 4;
    four.play_id = playlists::wire::pop::play_id("s1", "", 4);
    four.creative_id = "k9".into();
    altered.push(four);
    altered.extend(a.plays(1, "c1", "k1"));
    let third = a.batch_unchained(altered);
    let out = l.ingest(&[incoming("s1", &third)], &keys).unwrap();
    match &out[..] {
        [o @ Outcome::Rejected { reason, .. }] => {
            assert_eq!(o.ack(), None);
            assert_eq!(
                reason,
                "seq 4 of legacy epoch is already held with other content, from batch 2: a batch that conflicts with stored records is not stored"
            );
        }
        other => panic!("{other:?}"),
    }
    let counts = l.counts().unwrap();
    assert_eq!(
        (counts.records, counts.batches, counts.last_seq["s1"]),
        (4, 2, 4)
    );
    // The same seqs in a new epoch are other records; the screen's latest epoch moves.
    let mut b = Agent::new(1, "s1", "v1");
    b.new_epoch("e2");
    let recs = b.plays(2, "c1", "k1");
    let raw = b.batch(recs);
    let out = l.ingest(&[incoming("s1", &raw)], &keys).unwrap();
    assert!(
        matches!(out[0], Outcome::Stored { records: 2, .. }),
        "{out:?}"
    );
    let counts = l.counts().unwrap();
    assert_eq!(
        (
            counts.records,
            counts.epoch["s1"].as_str(),
            counts.last_seq["s1"],
            counts.last_batch_seq["s1"],
        ),
        (6, "e2", 2, 1)
    );
    assert_eq!(counts.chains[&("s1".to_owned(), String::new())], (2, 4));
    assert_eq!(l.batch_sizes("s1").unwrap(), BTreeMap::from([(1, 2)]));
    // Bad signatures and unknown screens are refused.
    let stranger = Agent::new(9, "s1", "v1");
    let forged = stranger.batch_unchained(vec![]);
    let out = l
        .ingest(&[incoming("s1", &forged), incoming("s7", &first)], &keys)
        .unwrap();
    assert!(
        out.iter().all(|o| matches!(o, Outcome::Rejected { .. })),
        "{out:?}"
    );
    assert_eq!(l.audit(&keys).unwrap().problems, []);
}

/// The same decisions as [`stores_duplicates_and_refuses_conflicts`] when the batches
/// arrive in one call (a drain of several agents' re-sends): each batch is judged against
/// what the earlier ones in the call stored.
pub(crate) fn decides_each_batch_of_a_call_after_the_ones_before(l: &dyn LedgerStore) {
    let mut a = Agent::new(1, "s1", "v1");
    let mut b = Agent::new(2, "s2", "v1");
    let keys = key_ring(&[&a, &b]);
    let recs = a.plays(2, "c1", "k1"); // seqs 1, 2
    let first = a.batch(recs.clone());
    // Seq 2 again (the same) with 3: only 3 is new.
    let mut overlap = recs[1..].to_vec();
    overlap.extend(a.plays(1, "c1", "k1"));
    let second = a.batch(overlap);
    // Seq 3 altered: refused whole.
    let mut three = recs[1].clone();
    three.seq = 3;
    three.play_id = playlists::wire::pop::play_id("s1", "", 3);
    three.creative_id = "k9".into();
    let altered = a.batch_unchained(vec![three]);
    // Another screen's batch, skipping seqs 1 and 2.
    let mut other = b.plays(3, "c1", "k1");
    other.drain(..2);
    let theirs = b.batch(other);
    let out = l
        .ingest(
            &[
                incoming("s1", &first),
                incoming("s2", &theirs),
                incoming("s1", &second),
                incoming("s1", &altered),
                incoming("s1", &first),
            ],
            &keys,
        )
        .unwrap();
    match &out[..] {
        [Outcome::Stored {
            records: 2,
            gaps: g1,
            ..
        }, Outcome::Stored {
            records: 1,
            gaps: g2,
            ..
        }, Outcome::Stored {
            records: 1,
            gaps: g3,
            ..
        }, Outcome::Rejected { reason, .. }, d @ Outcome::Duplicate { .. }] => {
            assert_eq!(
                (g1.as_slice(), g2.as_slice(), g3.as_slice()),
                (&[][..], &[(1, 2)][..], &[][..])
            );
            assert_eq!(
                reason,
                "seq 3 of legacy epoch is already held with other content, from batch 2: a batch that conflicts with stored records is not stored"
            );
            assert_eq!(d.ack(), out[0].ack());
        }
        other => panic!("{other:?}"),
    }
    let counts = l.counts().unwrap();
    assert_eq!((counts.records, counts.batches), (4, 3));
    assert_eq!((counts.last_seq["s1"], counts.last_seq["s2"]), (3, 3));
    assert_eq!(counts.last_batch_seq["s1"], 2);
    let mut seen = Vec::new();
    l.plays(&query(Dimension::Screen), &mut |r| {
        seen.push((r.screen_id.clone(), r.seq, r.creative_id.clone()));
        Ok(())
    })
    .unwrap();
    seen.sort();
    let k1 = "k1".to_owned();
    assert_eq!(
        seen,
        [
            ("s1".to_owned(), 1, k1.clone()),
            ("s1".to_owned(), 2, k1.clone()),
            ("s1".to_owned(), 3, k1.clone()),
            ("s2".to_owned(), 3, k1),
        ]
    );
    // Only s2's skipped seqs are a problem.
    let audit = l.audit(&keys).unwrap();
    let screens: Vec<&str> = audit
        .problems
        .iter()
        .map(|p| p.screen_id.as_str())
        .collect();
    assert!(
        !screens.is_empty() && screens.iter().all(|s| *s == "s2"),
        "{:?}",
        audit.problems
    );
}

pub(crate) fn gaps_and_chain_anomalies_are_kept_for_the_audit(l: &dyn LedgerStore) {
    let mut a = Agent::new(1, "s1", "v1");
    let keys = key_ring(&[&a]);
    let first = a.plays(2, "c1", "k1"); // 1, 2
    let _lost = a.plays(3, "c1", "k1"); // 3..=5 never sent
    let mut next = a.plays(1, "c1", "k1"); // 6
    let _lost = a.plays(1, "c1", "k1"); // 7
    next.extend(a.plays(1, "c1", "k1")); // 8
    let b1 = a.batch(first);
    let b2 = a.batch(next);
    let late = a.plays(1, "c1", "k1"); // 9, in batch 3: arrives late
    let b3 = a.batch(late);
    let b4 = a.plays(1, "c1", "k1"); // 10
    let b4 = a.batch(b4);
    let out = l
        .ingest(
            &[
                incoming("s1", &b1),
                incoming("s1", &b2),
                incoming("s1", &b4),
            ],
            &keys,
        )
        .unwrap();
    assert!(
        matches!(&out[1], Outcome::Stored { gaps, records: 2, .. } if gaps == &[(3, 5), (7, 7)]),
        "{out:?}"
    );
    assert!(
        matches!(&out[2], Outcome::Stored { gaps, records: 1, .. } if gaps == &[(9, 9)]),
        "{out:?}"
    );
    let report = l.audit(&keys).unwrap();
    let found: Vec<(ProblemKind, &str)> = report
        .problems
        .iter()
        .map(|p| (p.kind, p.detail.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (
                ProblemKind::ChainBreak,
                "batch 4: its predecessor, batch 3 with hash {h3}, is not stored (at ingest: batch 4 arrived where batch 3 was expected)"
                    .replace("{h3}", &hash_of(&b3))
                    .as_str()
            ),
            (ProblemKind::Gap, "seqs 3..=5 were skipped: 3 of 3 still missing"),
            (ProblemKind::Gap, "seqs 7..=7 were skipped: 1 of 1 still missing"),
            (ProblemKind::Gap, "seqs 9..=9 were skipped: 1 of 1 still missing"),
        ]
        .map(|(k, d)| (k, d.to_owned()))
        .iter()
        .map(|(k, d)| (*k, d.as_str()))
        .collect::<Vec<_>>()
    );
    // The late batch arrives: the chain verifies, its gap is filled, the head stays.
    let out = l.ingest(&[incoming("s1", &b3)], &keys).unwrap();
    assert!(
        matches!(&out[0], Outcome::Stored { records: 1, gaps, .. } if gaps.is_empty()),
        "{out:?}"
    );
    let report = l.audit(&keys).unwrap();
    assert_eq!(
        report.problems.iter().map(|p| p.kind).collect::<Vec<_>>(),
        [ProblemKind::Gap, ProblemKind::Gap]
    );
    let counts = l.counts().unwrap();
    assert_eq!(
        (counts.last_batch_seq["s1"], counts.last_seq["s1"]),
        (4, 10)
    );
}

/// The batch hash of a signed envelope, in hex.
fn hash_of(raw: &[u8]) -> String {
    let env: playlists::wire::SignedEnvelope = serde_json::from_slice(raw).unwrap();
    playlists::wire::pop::batch_hash(&env.payload).to_string()
}

/// Three screens at two venues, two campaigns, several hours and statuses, in batches of
/// one to three records over two ingest calls; returns the agents and every record sent.
fn fleet(l: &dyn LedgerStore) -> (Vec<Agent>, Vec<PlayRecord>) {
    let mut agents = vec![
        Agent::new(1, "s1", "v1"),
        Agent::new(2, "s2", "v1"),
        Agent::new(3, "s3", "v2"),
    ];
    let mut all = Vec::new();
    let statuses = [
        PlayStatus::Complete,
        PlayStatus::Partial,
        PlayStatus::Failed,
    ];
    for call in 0..2u32 {
        let mut batch = Vec::new();
        for (n, a) in agents.iter_mut().enumerate() {
            for b in 0..3u32 {
                let recs: Vec<PlayRecord> = (0..=b)
                    .map(|i| {
                        let k = call * 7 + b * 3 + i + n as u32;
                        let mut r = a.play(
                            ["c1", "c2"][(k % 2) as usize],
                            ["k1", "k2", "k3"][(k % 3) as usize],
                            at(8 + k % 5, (k * 13) % 60),
                        );
                        r.status = statuses[(k % 4).min(2) as usize];
                        r
                    })
                    .collect();
                all.extend(recs.iter().cloned());
                batch.push(incoming(&a.screen.clone(), &a.batch(recs)));
            }
        }
        let keys = key_ring(&agents.iter().collect::<Vec<_>>());
        let out = l.ingest(&batch, &keys).unwrap();
        assert!(
            out.iter().all(|o| matches!(o, Outcome::Stored { .. })),
            "{out:?}"
        );
    }
    (agents, all)
}

/// What `delivered` must answer for `q`, counted from the records themselves.
pub(crate) fn expected(records: &[PlayRecord], q: &Query) -> Vec<Row> {
    let hour = |t: chrono::DateTime<chrono::Utc>| t.timestamp().div_euclid(3600);
    let first_hour = |t: chrono::DateTime<chrono::Utc>| {
        let s = t.timestamp();
        s.div_euclid(3600) + i64::from(s.rem_euclid(3600) != 0)
    };
    let mut sums: BTreeMap<String, Row> = BTreeMap::new();
    for r in records {
        let h = hour(r.slot_start);
        if q.from.is_some_and(|t| h < first_hour(t)) || q.to.is_some_and(|t| h >= first_hour(t)) {
            continue;
        }
        if q.venue.as_ref().is_some_and(|v| *v != r.venue_id)
            || q.screen.as_ref().is_some_and(|s| *s != r.screen_id)
        {
            continue;
        }
        let key = match q.dimension {
            Dimension::Venue => &r.venue_id,
            Dimension::Screen => &r.screen_id,
            Dimension::Campaign => &r.campaign_id,
            Dimension::Creative => &r.creative_id,
        };
        let row = sums.entry(key.clone()).or_insert_with(|| Row {
            key: key.clone(),
            complete: 0,
            partial: 0,
            failed: 0,
        });
        match r.status {
            PlayStatus::Complete => row.complete += 1,
            PlayStatus::Partial => row.partial += 1,
            PlayStatus::Failed => row.failed += 1,
        }
    }
    sums.into_values().collect()
}

/// Every query `delivered` is checked with: each dimension, with and without filters and
/// windows.
pub(crate) fn queries() -> Vec<Query> {
    let mut out = Vec::new();
    for dimension in Dimension::ALL {
        for (venue, screen) in [
            (None, None),
            (Some("v1"), None),
            (None, Some("s3")),
            (Some("v1"), Some("s2")),
        ] {
            for (from, to) in [
                (None, None),
                (Some(at(9, 0)), Some(at(11, 0))),
                (Some(at(10, 30)), None),
            ] {
                out.push(Query {
                    from,
                    to,
                    dimension,
                    venue: venue.map(str::to_owned),
                    screen: screen.map(str::to_owned),
                });
            }
        }
    }
    out
}

pub(crate) fn delivered_equals_an_independent_count(l: &dyn LedgerStore) {
    let (_, records) = fleet(l);
    for q in queries() {
        assert_eq!(l.delivered(&q).unwrap(), expected(&records, &q), "{q:?}");
    }
}

pub(crate) fn plays_by_screen_epoch_and_seq(l: &dyn LedgerStore) {
    let (agents, mut records) = fleet(l);
    // A new epoch of s1, named to sort before the legacy one's records? No: "" sorts first.
    let mut a = Agent::new(1, "s1", "v1");
    a.new_epoch("e2");
    let recs = vec![a.play("c1", "k1", at(10, 0))];
    records.extend(recs.iter().cloned());
    l.ingest(&[incoming("s1", &a.batch(recs))], &key_ring(&[&a]))
        .unwrap();
    records.sort_by(|x, y| (&x.screen_id, &x.epoch, x.seq).cmp(&(&y.screen_id, &y.epoch, y.seq)));
    let check = |q: Query| {
        let mut got = Vec::new();
        let n = l
            .plays(&q, &mut |r| {
                got.push(r.clone());
                Ok(())
            })
            .unwrap();
        let want: Vec<PlayRecord> = records
            .iter()
            .filter(|r| {
                q.from.is_none_or(|t| r.slot_start >= t)
                    && q.to.is_none_or(|t| r.slot_start < t)
                    && q.venue.as_ref().is_none_or(|v| *v == r.venue_id)
                    && q.screen.as_ref().is_none_or(|s| *s == r.screen_id)
            })
            .cloned()
            .collect();
        assert_eq!(n, want.len() as u64, "{q:?}");
        assert_eq!(got, want, "{q:?}");
    };
    for q in queries() {
        check(q);
    }
    check(Query {
        screen: Some("s9".into()),
        ..query(Dimension::Screen)
    });
    let err = l
        .plays(&query(Dimension::Screen), &mut |_| {
            Err(crate::store::ledger::LedgerError::Io("disk full".into()))
        })
        .unwrap_err();
    assert_eq!(err.to_string(), "export: disk full");
    let keys = key_ring(&agents.iter().chain([&a]).collect::<Vec<_>>());
    let report = l.audit(&keys).unwrap();
    assert_eq!(report.problems, []);
    assert_eq!((report.screens, report.records), (3, records.len() as u64));
}

/// Everything a ledger answers after a scripted history, to compare backends.
#[derive(Debug, PartialEq)]
struct Transcript {
    outcomes: Vec<Vec<Outcome>>,
    counts: LedgerCounts,
    delivered: Vec<Vec<Row>>,
    plays: Vec<PlayRecord>,
    audit: AuditReport,
    batch_sizes: BTreeMap<u64, u64>,
}

fn history(l: &dyn LedgerStore) -> Transcript {
    let mut a = Agent::new(1, "s1", "v1");
    let mut b = Agent::new(2, "s2", "v2");
    let mut outcomes = Vec::new();
    let b1 = a.plays(3, "c1", "k1");
    let a1 = a.batch(b1);
    let _ = a.plays(2, "c1", "k1"); // a gap
    let b2 = a.plays(2, "c2", "k2");
    let a2 = a.batch(b2);
    let b3 = a.plays(1, "c2", "k2");
    let _a3 = a.batch(b3); // never arrives
    let b4 = a.plays(1, "c1", "k3");
    let a4 = a.batch(b4);
    let c1 = b.plays(4, "c1", "k1");
    let x1 = b.batch(c1);
    let keys1 = key_ring(&[&a, &b]);
    outcomes.push(
        l.ingest(
            &[
                incoming("s1", &a1),
                incoming("s2", &x1),
                incoming("s1", &a1),
                incoming("s1", &a4),
            ],
            &keys1,
        )
        .unwrap(),
    );
    // s2 re-provisioned: its next batches are signed with a new key, the old still counts.
    b.rekey(12);
    let c2 = b.plays(1, "c2", "k2");
    let x2 = b.batch(c2);
    b.new_epoch("e2");
    let c3 = b.plays(2, "c2", "k2");
    let x3 = b.batch(c3);
    let keys2 = key_ring(&[&a, &Agent::new(2, "s2", "v2"), &b]);
    outcomes.push(
        l.ingest(
            &[
                incoming("s2", &x2),
                incoming("s1", &a2),
                incoming("s2", &x3),
                incoming("s2", &x1),
            ],
            &keys2,
        )
        .unwrap(),
    );
    let mut plays = Vec::new();
    l.plays(&query(Dimension::Screen), &mut |r| {
        plays.push(r.clone());
        Ok(())
    })
    .unwrap();
    Transcript {
        outcomes,
        counts: l.counts().unwrap(),
        delivered: queries().iter().map(|q| l.delivered(q).unwrap()).collect(),
        plays,
        audit: l.audit(&keys2).unwrap(),
        batch_sizes: l.batch_sizes("s2").unwrap(),
    }
}

#[test]
fn both_backends_answer_a_history_alike() {
    let (r, p) = (redb(), postgres());
    let on_redb = history(&*r.ledger);
    let on_postgres = history(&*p.ledger);
    assert!(
        !on_redb.audit.problems.is_empty(),
        "the history has a gap and a break"
    );
    assert_eq!(on_redb, on_postgres);
}

/// What a ledger answers about what it holds, to compare a ledger with its copy.
#[derive(Debug, PartialEq)]
struct Holdings {
    counts: LedgerCounts,
    delivered: Vec<Vec<Row>>,
    plays: Vec<PlayRecord>,
    audit: AuditReport,
    batch_sizes: Vec<BTreeMap<u64, u64>>,
}

fn holdings(l: &dyn LedgerStore, keys: KeysOf<'_>) -> Holdings {
    let mut plays = Vec::new();
    l.plays(&query(Dimension::Screen), &mut |r| {
        plays.push(r.clone());
        Ok(())
    })
    .unwrap();
    Holdings {
        counts: l.counts().unwrap(),
        delivered: queries().iter().map(|q| l.delivered(q).unwrap()).collect(),
        plays,
        audit: l.audit(keys).unwrap(),
        batch_sizes: ["s1", "s2", "s3"]
            .iter()
            .map(|s| l.batch_sizes(s).unwrap())
            .collect(),
    }
}

/// Every batch `from` gives back, ingested into `to` two at a time (so chunks cut chains);
/// each must be stored. Returns how many.
fn reingest(from: &dyn LedgerStore, to: &dyn LedgerStore, keys: KeysOf<'_>) -> u64 {
    let mut chunk = Vec::new();
    let flush = |chunk: &mut Vec<Incoming>| {
        let out = to.ingest(chunk, keys).unwrap();
        assert!(
            out.iter().all(|o| matches!(o, Outcome::Stored { .. })),
            "{out:?}"
        );
        chunk.clear();
    };
    let n = from
        .batches(&mut |screen, raw| {
            chunk.push(incoming(screen, raw));
            if chunk.len() == 2 {
                flush(&mut chunk);
            }
            Ok(())
        })
        .unwrap();
    flush(&mut chunk);
    n
}

/// The scripted history, then screen s3 in epoch "b" and then "a": its latest epoch sorts
/// first. Returns the keys that verify everything.
fn history_and_epochs(l: &dyn LedgerStore) -> impl Fn(&str) -> Vec<VerifyingKey> {
    history(l);
    let mut c = Agent::new(3, "s3", "v2");
    c.new_epoch("b");
    let b1 = c.plays(2, "c1", "k1");
    let first = c.batch(b1);
    c.new_epoch("a");
    let a1 = c.plays(1, "c2", "k2");
    let second = c.batch(a1);
    let mut s2 = Agent::new(2, "s2", "v2");
    let old_s2 = Agent::new(2, "s2", "v2");
    s2.rekey(12);
    let keys = key_ring(&[&Agent::new(1, "s1", "v1"), &old_s2, &s2, &c]);
    let out = l
        .ingest(&[incoming("s3", &first), incoming("s3", &second)], &keys)
        .unwrap();
    assert!(out.iter().all(|o| matches!(o, Outcome::Stored { .. })));
    keys
}

/// The audit's problems taken out of `h`: each break by screen, and per screen how many
/// skipped seqs are still missing.
fn problems(h: &mut Holdings) -> (Vec<(String, ProblemKind)>, BTreeMap<String, u64>) {
    let mut breaks = Vec::new();
    let mut missing = BTreeMap::new();
    for p in h.audit.problems.drain(..) {
        if p.kind != ProblemKind::Gap {
            breaks.push((p.screen_id, p.kind));
            continue;
        }
        // "seqs 4..=8 were skipped: 3 of 5 still missing"
        let n = p
            .detail
            .rsplit(": ")
            .next()
            .and_then(|t| t.split(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("a gap's detail: {}", p.detail));
        *missing.entry(p.screen_id).or_insert(0) += n;
    }
    (breaks, missing)
}

#[test]
fn batches_read_back_reingest_into_the_other_backend_alike() {
    for (from, to) in [(redb(), postgres()), (postgres(), redb())] {
        // A clean fleet: the copy's audit is clean too.
        let (agents, _) = fleet(&*from.ledger);
        let keys = key_ring(&agents.iter().collect::<Vec<_>>());
        let n = reingest(&*from.ledger, &*to.ledger, &keys);
        let (original, copy) = (holdings(&*from.ledger, &keys), holdings(&*to.ledger, &keys));
        assert_eq!(n, original.counts.batches);
        assert_eq!(copy.audit.problems, []);
        assert_eq!(copy, original);
    }
    for (from, to) in [(redb(), postgres()), (postgres(), redb())] {
        // Gaps, a late batch, a re-keyed screen and epochs: the same answers and the same
        // problems, but worded as this order finds them: a batch that arrived late is in its
        // place now, so its break's note and the runs of skipped seqs (the same seqs still
        // missing) read differently.
        let keys = history_and_epochs(&*from.ledger);
        reingest(&*from.ledger, &*to.ledger, &keys);
        let (mut original, mut copy) =
            (holdings(&*from.ledger, &keys), holdings(&*to.ledger, &keys));
        assert_eq!(copy.counts.epoch["s3"], "a");
        assert!(!original.audit.problems.is_empty());
        assert_eq!(problems(&mut copy), problems(&mut original));
        assert_eq!(copy, original);
    }
}

macro_rules! ledger_cases {
    ($($case:ident),* $(,)?) => {
        mod on_redb {
            $(
                #[test]
                fn $case() {
                    let f = super::redb();
                    super::$case(&*f.ledger);
                }
            )*
        }
        mod on_postgres {
            $(
                #[test]
                fn $case() {
                    let f = super::postgres();
                    super::$case(&*f.ledger);
                }
            )*
        }
    };
}

/// The ledger's cases of another module of the suite, on both backends.
pub(crate) use ledger_cases;

ledger_cases!(
    refuses_numbers_beyond_the_shared_limit,
    stores_duplicates_and_refuses_conflicts,
    decides_each_batch_of_a_call_after_the_ones_before,
    gaps_and_chain_anomalies_are_kept_for_the_audit,
    delivered_equals_an_independent_count,
    plays_by_screen_epoch_and_seq,
);
