//! Conformance of retention, the same cases on both ledgers: one-record batches (the shape
//! agents send) round-trip and verify; archiving moves whole chain prefixes into daily
//! files that verify, leaves the live ledger auditing clean and the reports unchanged; a
//! batch or a record re-sent after its day was archived is not counted again; tampering
//! and a crash between writing a file and deleting from the ledger are caught or harmless.
//! On PostgreSQL, two replicas archiving at once while ingest goes on archive each batch
//! once and lose none.

use std::path::Path;

use chrono::{Duration, NaiveDate};

use playlists::wire::{PlayRecord, PopBatch};

use super::ledger::{incoming, postgres, redb};
use crate::store::ledger::archive::verify::ArchiveReport;
use crate::store::ledger::archive::{file_of, read_file, write_file};
use crate::store::ledger::reader::payload_of;
use crate::store::ledger::testkit::{at, key_ring, query, Agent};
use crate::store::ledger::{
    AuditProblem, Dimension, Incoming, KeysOf, LedgerError, LedgerStore, Outcome, Row,
};

/// Two screens, each playing `per_day` one-record batches a day on 2025-03-01, -02 and -03
/// (from 08:00, 15 minutes apart, alternating two campaigns); returns the agents and every
/// signed batch sent, in order.
fn three_days(l: &dyn LedgerStore, per_day: usize) -> (Vec<Agent>, Vec<(String, Vec<u8>)>) {
    let mut agents = vec![Agent::new(1, "s1", "v1"), Agent::new(2, "s2", "v2")];
    agents[1].new_epoch("0123456789abcdef0123456789abcdef");
    let mut sent = Vec::new();
    for day in 0..3 {
        for n in 0..per_day {
            let slot = at(8, 0) + Duration::days(day) + Duration::minutes(15 * n as i64);
            let mut call = Vec::new();
            for a in &mut agents {
                let campaign = if n % 2 == 0 { "c1" } else { "c2" };
                let r = a.play(campaign, "k1", slot);
                let raw = a.batch(vec![r]);
                sent.push((a.screen.clone(), raw.clone()));
                call.push(Incoming {
                    topic_screen: a.screen.clone(),
                    raw,
                });
            }
            let keys = key_ring(&agents.iter().collect::<Vec<_>>());
            for o in l.ingest(&call, &keys).unwrap() {
                assert!(matches!(o, Outcome::Stored { records: 1, .. }), "{o:?}");
            }
        }
    }
    (agents, sent)
}

pub(super) fn ring(agents: &[Agent]) -> impl Fn(&str) -> Vec<ed25519_dalek::VerifyingKey> {
    key_ring(&agents.iter().collect::<Vec<_>>())
}

pub(super) fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 3, d).unwrap()
}

/// Every report the rollups answer, by each dimension.
fn reports(l: &dyn LedgerStore) -> Vec<Vec<Row>> {
    Dimension::ALL
        .iter()
        .map(|d| l.delivered(&query(*d)).unwrap())
        .collect()
}

/// Every exported record's (screen, seq).
fn exported(l: &dyn LedgerStore) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    l.plays(&query(Dimension::Screen), &mut |r| {
        out.push((r.screen_id.clone(), r.seq));
        Ok(())
    })
    .unwrap();
    out
}

/// The archive audit, and the (screen, seq) of each archived play it hands over.
pub(super) fn verify(
    l: &dyn LedgerStore,
    dir: &Path,
    keys: KeysOf<'_>,
) -> (ArchiveReport, Vec<(String, u64)>) {
    let mut plays = Vec::new();
    let report = l
        .verify_archive(dir, keys, &mut |r| {
            plays.push((r.screen_id.clone(), r.seq));
            Ok(())
        })
        .unwrap();
    (report, plays)
}

/// The batch an envelope carries.
fn batch_of(raw: &[u8]) -> PopBatch {
    serde_json::from_str(&payload_of(raw).unwrap()).unwrap()
}

/// The day of a batch: its first record's, UTC.
fn day_of(raw: &[u8]) -> NaiveDate {
    batch_of(raw).records[0].slot_start.date_naive()
}

fn details(problems: &[AuditProblem]) -> Vec<String> {
    problems.iter().map(ToString::to_string).collect()
}

pub(crate) fn one_record_batches_round_trip_and_verify(l: &dyn LedgerStore) {
    let (agents, _) = three_days(l, 20);
    let report = l.audit(&ring(&agents)).unwrap();
    assert_eq!(report.problems, []);
    assert_eq!((report.batches, report.records), (120, 120));
    // Every record comes back, once, in order.
    let mut want: Vec<(String, u64)> = Vec::new();
    for s in ["s1", "s2"] {
        want.extend((1..=60).map(|seq| (s.to_owned(), seq)));
    }
    assert_eq!(exported(l), want);
    let sizes = l.batch_sizes("s1").unwrap();
    assert_eq!(sizes.len(), 60);
    assert!(sizes.values().all(|n| *n == 1));
}

pub(crate) fn archive_then_verify_clean_and_reports_unchanged(l: &dyn LedgerStore) {
    let dir = tempfile::tempdir().unwrap();
    let (agents, sent) = three_days(l, 10);
    let keys = ring(&agents);
    let before = reports(l);
    let archive = dir.path().join("archive");

    let summary = l.archive(&archive, day(3)).unwrap();
    let days: Vec<(NaiveDate, u64, u64)> = summary
        .days
        .iter()
        .map(|d| (d.day, d.batches, d.records))
        .collect();
    assert_eq!(days, [(day(1), 20, 20), (day(2), 20, 20)]);
    for d in [1, 2] {
        assert!(file_of(&archive, day(d)).exists(), "file of day {d}");
    }
    assert!(!file_of(&archive, day(3)).exists());
    // Only the third day is live; the reports are the same.
    let counts = l.counts().unwrap();
    assert_eq!((counts.batches, counts.records), (20, 20));
    assert_eq!(reports(l), before);
    // The export reads archived plays from the files: every play sent, once, in order.
    let mut want: Vec<(String, u64)> = Vec::new();
    for s in ["s1", "s2"] {
        want.extend((1..=30).map(|seq| (s.to_owned(), seq)));
    }
    assert_eq!(exported(l), want);
    // The archive audit hands over the same archived plays (the first two days).
    let mut archived = verify(l, &archive, &keys).1;
    archived.sort();
    let early: Vec<(String, u64)> = want.iter().filter(|(_, q)| *q <= 20).cloned().collect();
    assert_eq!(archived, early);
    // A window within an archived day, and one screen.
    let mut q = query(Dimension::Screen);
    q.from = Some(at(8, 0) + Duration::days(1));
    q.to = Some(at(9, 0) + Duration::days(1));
    q.screen = Some("s2".into());
    let mut got = Vec::new();
    l.plays(&q, &mut |r| {
        got.push(r.seq);
        Ok(())
    })
    .unwrap();
    assert_eq!(got, [11, 12, 13, 14]);

    let audit = l.audit(&keys).unwrap();
    assert_eq!(details(&audit.problems), Vec::<String>::new());
    let verified = verify(l, &archive, &keys).0;
    assert_eq!(details(&verified.problems), Vec::<String>::new());
    assert_eq!(
        (
            verified.files,
            verified.batches,
            verified.records,
            verified.also_live
        ),
        (2, 40, 40, 0)
    );
    // Independently of the audit: the files hold exactly the envelopes sent on days 1 and 2.
    let mut held: Vec<Vec<u8>> = [1, 2]
        .iter()
        .flat_map(|d| read_file(&file_of(&archive, day(*d))).unwrap())
        .collect();
    let mut want: Vec<Vec<u8>> = sent
        .iter()
        .filter(|(_, raw)| {
            let b: PopBatch = serde_json::from_str(&payload_of(raw).unwrap()).unwrap();
            b.records[0].slot_start.date_naive() < day(3)
        })
        .map(|(_, raw)| raw.clone())
        .collect();
    held.sort();
    want.sort();
    assert_eq!(held, want);

    // Archiving again moves nothing; a batch re-sent from the archive is acknowledged and
    // counted nowhere; the chains go on.
    assert_eq!(l.archive(&archive, day(3)).unwrap().days, []);
    let (screen, old) = &sent[0];
    let o = l
        .ingest(
            &[Incoming {
                topic_screen: screen.clone(),
                raw: old.clone(),
            }],
            &keys,
        )
        .unwrap();
    assert!(matches!(o[..], [Outcome::Duplicate { .. }]), "{o:?}");
    assert_eq!(reports(l), before);
    let mut agents = agents;
    let r = agents[0].play("c1", "k1", at(9, 0) + Duration::days(3));
    let raw = agents[0].batch(vec![r]);
    let o = l
        .ingest(
            &[Incoming {
                topic_screen: "s1".into(),
                raw,
            }],
            &keys,
        )
        .unwrap();
    assert!(
        matches!(o[..], [Outcome::Stored { records: 1, .. }]),
        "{o:?}"
    );
    assert_eq!(
        details(&l.audit(&keys).unwrap().problems),
        Vec::<String>::new()
    );

    // Everything archived: the live chains continue from the archive alone.
    l.archive(&archive, day(5)).unwrap();
    assert_eq!(l.counts().unwrap().batches, 0);
    assert_eq!(
        details(&l.audit(&keys).unwrap().problems),
        Vec::<String>::new()
    );
    let verified = verify(l, &archive, &keys).0;
    assert_eq!(details(&verified.problems), Vec::<String>::new());
    assert_eq!((verified.files, verified.records), (4, 61));
}

/// Rewrites archive file `file`, changing its envelopes with `f`.
fn rewrite(file: &Path, f: impl FnOnce(&mut Vec<Vec<u8>>)) {
    let mut envelopes = read_file(file).unwrap();
    f(&mut envelopes);
    std::fs::remove_file(file).unwrap();
    write_file(file, envelopes.iter().map(Vec::as_slice)).unwrap();
}

pub(crate) fn a_tampered_archive_file_is_named(l: &dyn LedgerStore) {
    let dir = tempfile::tempdir().unwrap();
    let (agents, _) = three_days(l, 4);
    let keys = ring(&agents);
    let archive = dir.path().join("archive");
    l.archive(&archive, day(3)).unwrap();
    let file = file_of(&archive, day(2));
    let name = file.display().to_string();

    // A record's campaign changed inside a signed batch.
    rewrite(&file, |e| {
        let text = String::from_utf8(e[0].clone()).unwrap();
        e[0] = text.replacen("\\\"c1\\\"", "\\\"c9\\\"", 1).into_bytes();
        assert_ne!(e[0], text.as_bytes());
    });
    let report = verify(l, &archive, &keys).0;
    let got = details(&report.problems);
    assert!(
        got.iter().any(|p| p.starts_with("bad-signature s1")
            && p.contains(&name)
            && p.contains("batch 5 of legacy epoch does not verify")),
        "{got:#?}"
    );

    // A batch removed: the chain break names the file and the batches missing.
    rewrite(&file, |e| {
        e.remove(0);
    });
    let got = details(&verify(l, &archive, &keys).0.problems);
    assert!(
        got.iter().any(|p| p.starts_with("chain-break s1")
            && p.contains(&name)
            && p.contains("batches 5..=5 are missing")),
        "{got:#?}"
    );

    // A damaged file.
    std::fs::write(&file, b"not zstd at all").unwrap();
    let got = details(&verify(l, &archive, &keys).0.problems);
    assert!(
        got.iter()
            .any(|p| p.contains(&format!("archive file {name} not zstd"))
                || p.contains(&format!("archive file {name} does not decompress"))),
        "{got:#?}"
    );
    // And a missing one: the ledger's markers name what is gone, and the export of its
    // plays fails naming it rather than undercount.
    std::fs::remove_file(&file).unwrap();
    let e = l
        .plays(&query(Dimension::Screen), &mut |_| Ok(()))
        .unwrap_err()
        .to_string();
    assert!(e.contains(&name) && e.contains("cannot be read"), "{e}");
    let got = details(&verify(l, &archive, &keys).0.problems);
    assert!(
        got.iter()
            .any(|p| p.contains("the ledger archived batches up to batch 8")),
        "{got:#?}"
    );
    // Archiving never overwrites a damaged file, and deletes nothing when it cannot write.
    let third = file_of(&archive, day(3));
    std::fs::write(&third, b"damaged").unwrap();
    let live = l.counts().unwrap();
    assert!(
        matches!(l.archive(&archive, day(4)), Err(LedgerError::Corrupt(m)) if m.contains(&third.display().to_string())),
        "a damaged file is named, not overwritten"
    );
    assert_eq!(std::fs::read(&third).unwrap(), b"damaged");
    assert_eq!(l.counts().unwrap(), live);
}

pub(crate) fn a_crash_between_writing_and_deleting_loses_and_doubles_nothing(l: &dyn LedgerStore) {
    let dir = tempfile::tempdir().unwrap();
    let (agents, _) = three_days(l, 6);
    let keys = ring(&agents);
    let before = reports(l);
    let archive = dir.path().join("archive");
    std::fs::create_dir_all(&archive).unwrap();

    // The run writes day 1's file and stops before its transaction.
    let mut first_day = Vec::new();
    l.batches(&mut |_, raw| {
        if day_of(raw) == day(1) {
            first_day.push(raw.to_vec());
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(first_day.len(), 12);
    write_file(
        &file_of(&archive, day(1)),
        first_day.iter().map(Vec::as_slice),
    )
    .unwrap();

    // Nothing is lost, nothing counted twice: the ledger still holds every record, and the
    // archive's batches are the live ones.
    let counts = l.counts().unwrap();
    assert_eq!((counts.batches, counts.records), (36, 36));
    assert_eq!(exported(l).len(), 36);
    assert_eq!(reports(l), before);
    assert_eq!(
        details(&l.audit(&keys).unwrap().problems),
        Vec::<String>::new()
    );
    let verified = verify(l, &archive, &keys).0;
    assert_eq!(details(&verified.problems), Vec::<String>::new());
    assert_eq!((verified.batches, verified.also_live), (12, 12));

    // The next run finishes the job: the same file, each batch once.
    let summary = l.archive(&archive, day(3)).unwrap();
    assert_eq!(summary.days.len(), 2);
    assert_eq!(read_file(&file_of(&archive, day(1))).unwrap().len(), 12);
    let counts = l.counts().unwrap();
    assert_eq!((counts.batches, counts.records), (12, 12));
    assert_eq!(reports(l), before);
    let verified = verify(l, &archive, &keys).0;
    assert_eq!(details(&verified.problems), Vec::<String>::new());
    assert_eq!(
        (verified.batches, verified.records, verified.also_live),
        (24, 24, 0)
    );
    assert_eq!(
        details(&l.audit(&keys).unwrap().problems),
        Vec::<String>::new()
    );
}

/// A batch re-sent after its day was archived is acknowledged and counted nowhere; a new
/// batch carrying an archived record (an agent that re-sends a record with its next ones)
/// stores only the new one; the audits stay clean and every play is exported once.
pub(crate) fn a_record_resent_after_its_batch_was_archived(l: &dyn LedgerStore) {
    let dir = tempfile::tempdir().unwrap();
    let (mut agents, sent) = three_days(l, 4);
    let keys = ring(&agents);
    let archive = dir.path().join("archive");
    l.archive(&archive, day(3)).unwrap();
    let before = (reports(l), l.counts().unwrap());

    // Every archived batch again, one call: each a duplicate, nothing stored or counted.
    let old: Vec<Incoming> = sent
        .iter()
        .filter(|(_, raw)| day_of(raw) < day(3))
        .map(|(s, raw)| incoming(s, raw))
        .collect();
    assert_eq!(old.len(), 16);
    for o in l.ingest(&old, &keys).unwrap() {
        assert!(matches!(o, Outcome::Duplicate { .. }), "{o:?}");
    }
    assert_eq!((reports(l), l.counts().unwrap()), before);

    // s1's archived seq 2 with its next play, in its next batch.
    let again: PlayRecord = batch_of(&sent[2].1).records[0].clone();
    assert_eq!((again.screen_id.as_str(), again.seq), ("s1", 2));
    let next = agents[0].play("c1", "k1", at(9, 0) + Duration::days(2));
    let raw = agents[0].batch(vec![again, next]);
    let o = l.ingest(&[incoming("s1", &raw)], &keys).unwrap();
    assert!(
        matches!(&o[..], [Outcome::Stored { records: 1, gaps, .. }] if gaps.is_empty()),
        "{o:?}"
    );
    let counts = l.counts().unwrap();
    assert_eq!(
        (counts.batches, counts.records),
        (before.1.batches + 1, before.1.records + 1)
    );
    // The rollups gained exactly the new play.
    let s1 = |rows: &[Row]| {
        rows.iter()
            .find(|r| r.key == "s1")
            .map_or(0, |r| r.complete)
    };
    assert_eq!(
        s1(&l.delivered(&query(Dimension::Screen)).unwrap()),
        s1(&before.0[1]) + 1
    );
    assert_eq!(
        details(&l.audit(&keys).unwrap().problems),
        Vec::<String>::new()
    );
    let verified = verify(l, &archive, &keys).0;
    assert_eq!(details(&verified.problems), Vec::<String>::new());
    let mut want: Vec<(String, u64)> = (1..=13).map(|q| ("s1".to_owned(), q)).collect();
    want.extend((1..=12).map(|q| ("s2".to_owned(), q)));
    assert_eq!(exported(l), want);
    // And once that batch is archived too.
    l.archive(&archive, day(4)).unwrap();
    assert_eq!(l.counts().unwrap().batches, 0);
    assert_eq!(exported(l), want);
    let verified = verify(l, &archive, &keys).0;
    assert_eq!(details(&verified.problems), Vec::<String>::new());
    assert_eq!(verified.records, 25);
}

/// Two replicas (two stores, two pools on one PostgreSQL database) archive the same days
/// at once while a third thread re-sends every batch and sends new ones: each batch is
/// archived by one of them (the days' batches add up once), the files hold exactly the
/// envelopes of those days, every re-sent batch is a duplicate, new ones are stored once,
/// and the reports, the export and both audits agree.
#[test]
fn two_archivers_at_once_on_postgres() {
    let db = super::super::postgres::testdb::TestDb::new();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let replicas = [
        db.open(d1.path(), super::super::OpenMode::Create)
            .test_ledger(),
        db.open(d2.path(), super::super::OpenMode::Existing)
            .test_ledger(),
    ];
    let (mut agents, sent) = three_days(&replicas[0], 10);
    let keys = ring(&agents);
    let before = reports(&replicas[0]);
    let archive = d1.path().join("archive");
    // Day 4's plays, to send while archiving runs.
    let fresh: Vec<Incoming> = (0..10)
        .flat_map(|n| {
            let slot = at(8, 0) + Duration::days(3) + Duration::minutes(15 * n);
            agents
                .iter_mut()
                .map(|a| {
                    let r = a.play("c1", "k1", slot);
                    incoming(&a.screen.clone(), &a.batch(vec![r]))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let start = std::sync::Barrier::new(3);
    let (summaries, outcomes) = std::thread::scope(|s| {
        let archivers: Vec<_> = replicas
            .iter()
            .map(|l| {
                let (start, archive) = (&start, &archive);
                s.spawn(move || {
                    start.wait();
                    l.archive(archive, day(3)).unwrap()
                })
            })
            .collect();
        let sender = s.spawn(|| {
            start.wait();
            let mut out = Vec::new();
            for (n, (screen, raw)) in sent.iter().enumerate() {
                out.extend(
                    replicas[n % 2]
                        .ingest(&[incoming(screen, raw)], &keys)
                        .unwrap(),
                );
                if let Some(f) = fresh.get(n) {
                    out.extend(
                        replicas[n % 2]
                            .ingest(std::slice::from_ref(f), &keys)
                            .unwrap(),
                    );
                }
            }
            out
        });
        let summaries: Vec<_> = archivers.into_iter().map(|h| h.join().unwrap()).collect();
        (summaries, sender.join().unwrap())
    });
    // Each day archived once, by one archiver or split between them.
    let mut per_day = std::collections::BTreeMap::new();
    for d in summaries.iter().flat_map(|s| &s.days) {
        *per_day.entry(d.day).or_insert(0) += d.batches;
    }
    assert_eq!(
        per_day.into_iter().collect::<Vec<_>>(),
        [(day(1), 20), (day(2), 20)]
    );
    let stored = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Stored { records: 1, .. }))
        .count();
    let duplicates = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Duplicate { .. }))
        .count();
    assert_eq!(
        (stored, duplicates),
        (fresh.len(), sent.len()),
        "{outcomes:?}"
    );
    // The files hold exactly the envelopes of days 1 and 2.
    let mut held: Vec<Vec<u8>> = [1, 2]
        .iter()
        .flat_map(|d| read_file(&file_of(&archive, day(*d))).unwrap())
        .collect();
    let mut want: Vec<Vec<u8>> = sent
        .iter()
        .filter(|(_, raw)| day_of(raw) < day(3))
        .map(|(_, raw)| raw.clone())
        .collect();
    held.sort();
    want.sort();
    assert_eq!(held, want);
    for l in &replicas {
        let counts = l.counts().unwrap();
        assert_eq!((counts.batches, counts.records), (40, 40));
        let mut want: Vec<(String, u64)> = Vec::new();
        for s in ["s1", "s2"] {
            want.extend((1..=40).map(|seq| (s.to_owned(), seq)));
        }
        assert_eq!(exported(l), want);
        assert_eq!(
            details(&l.audit(&keys).unwrap().problems),
            Vec::<String>::new()
        );
        let verified = verify(l, &archive, &keys).0;
        assert_eq!(details(&verified.problems), Vec::<String>::new());
        assert_eq!(
            (verified.batches, verified.records, verified.also_live),
            (40, 40, 0)
        );
    }
    // The reports: the first three days as before, and day 4's 20 plays.
    let after = reports(&replicas[1]);
    let total = |rows: &[Row]| rows.iter().map(|r| r.complete).sum::<u64>();
    assert_eq!(total(&after[0]), total(&before[0]) + 20);
}

super::ledger::ledger_cases!(
    one_record_batches_round_trip_and_verify,
    archive_then_verify_clean_and_reports_unchanged,
    a_tampered_archive_file_is_named,
    a_crash_between_writing_and_deleting_loses_and_doubles_nothing,
    a_record_resent_after_its_batch_was_archived,
);
