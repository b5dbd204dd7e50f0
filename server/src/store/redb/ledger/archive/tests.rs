//! Tests of retention: one-record batches (the shape agents send) round-trip and verify;
//! archiving moves whole chain prefixes into daily files that verify, leaves the live
//! ledger auditing clean and the reports unchanged; tampering and a crash between writing a
//! file and deleting from the ledger are caught or harmless.

use std::path::Path;

use chrono::{Duration, NaiveDate};

use super::super::testkit::{at, key_ring, ledger, query, Agent};
use super::super::{Dimension, Incoming, KeysOf, Ledger, Outcome, Row};
use super::*;

/// Two screens, each playing `per_day` one-record batches a day on 2025-03-01, -02 and -03
/// (from 08:00, 15 minutes apart, alternating two campaigns); returns the agents and every
/// signed batch sent, in order.
fn three_days(l: &Ledger, per_day: usize) -> (Vec<Agent>, Vec<(String, Vec<u8>)>) {
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

fn ring(agents: &[Agent]) -> impl Fn(&str) -> Vec<ed25519_dalek::VerifyingKey> {
    key_ring(&agents.iter().collect::<Vec<_>>())
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 3, d).unwrap()
}

/// Every report the rollups answer, by each dimension.
fn reports(l: &Ledger) -> Vec<Vec<Row>> {
    Dimension::ALL
        .iter()
        .map(|d| l.delivered(&query(*d)).unwrap())
        .collect()
}

/// Every exported record's (screen, seq).
fn exported(l: &Ledger) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    l.plays(&query(Dimension::Screen), &mut |r| {
        out.push((r.screen_id.clone(), r.seq));
        Ok(())
    })
    .unwrap();
    out
}

/// The archive audit, and the (screen, seq) of each archived play it hands over.
fn verify(l: &Ledger, dir: &Path, keys: KeysOf<'_>) -> (verify::ArchiveReport, Vec<(String, u64)>) {
    let mut plays = Vec::new();
    let report = l
        .verify_archive(dir, keys, &mut |r| {
            plays.push((r.screen_id.clone(), r.seq));
            Ok(())
        })
        .unwrap();
    (report, plays)
}

fn details(problems: &[super::super::AuditProblem]) -> Vec<String> {
    problems.iter().map(ToString::to_string).collect()
}

#[test]
fn one_record_batches_round_trip_and_verify() {
    let (_dir, l) = ledger();
    let (agents, _) = three_days(&l, 20);
    let report = l.audit(&ring(&agents)).unwrap();
    assert_eq!(report.problems, []);
    assert_eq!((report.batches, report.records), (120, 120));
    // Every record comes back, once, in order.
    let mut want: Vec<(String, u64)> = Vec::new();
    for s in ["s1", "s2"] {
        want.extend((1..=60).map(|seq| (s.to_owned(), seq)));
    }
    assert_eq!(exported(&l), want);
    let sizes = super::super::super::super::LedgerStore::batch_sizes(&l, "s1").unwrap();
    assert_eq!(sizes.len(), 60);
    assert!(sizes.values().all(|n| *n == 1));
}

#[test]
fn archive_then_verify_clean_and_reports_unchanged() {
    let (dir, l) = ledger();
    let (agents, sent) = three_days(&l, 10);
    let keys = ring(&agents);
    let before = reports(&l);
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
    assert_eq!(reports(&l), before);
    // The export reads archived plays from the files: every play sent, once, in order.
    let mut want: Vec<(String, u64)> = Vec::new();
    for s in ["s1", "s2"] {
        want.extend((1..=30).map(|seq| (s.to_owned(), seq)));
    }
    assert_eq!(exported(&l), want);
    // The archive audit hands over the same archived plays (the first two days).
    let mut archived = verify(&l, &archive, &keys).1;
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
    let verified = verify(&l, &archive, &keys).0;
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
    assert_eq!(reports(&l), before);
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
    let verified = verify(&l, &archive, &keys).0;
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

#[test]
fn a_tampered_archive_file_is_named() {
    let (dir, l) = ledger();
    let (agents, _) = three_days(&l, 4);
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
    let report = verify(&l, &archive, &keys).0;
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
    let got = details(&verify(&l, &archive, &keys).0.problems);
    assert!(
        got.iter().any(|p| p.starts_with("chain-break s1")
            && p.contains(&name)
            && p.contains("batches 5..=5 are missing")),
        "{got:#?}"
    );

    // A damaged file.
    std::fs::write(&file, b"not zstd at all").unwrap();
    let got = details(&verify(&l, &archive, &keys).0.problems);
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
    let got = details(&verify(&l, &archive, &keys).0.problems);
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

#[test]
fn a_crash_between_writing_and_deleting_loses_and_doubles_nothing() {
    let (dir, l) = ledger();
    let (agents, _) = three_days(&l, 6);
    let keys = ring(&agents);
    let before = reports(&l);
    let archive = dir.path().join("archive");
    std::fs::create_dir_all(&archive).unwrap();

    // The run writes day 1's file and stops before its transaction.
    let (d, chosen) = next_day(&l.db, day(3)).unwrap().unwrap();
    assert_eq!((d, chosen.len()), (day(1), 12));
    write_file(
        &file_of(&archive, d),
        chosen.iter().map(|c| c.raw.as_slice()),
    )
    .unwrap();

    // Nothing is lost, nothing counted twice: the ledger still holds every record, and the
    // archive's batches are the live ones.
    let counts = l.counts().unwrap();
    assert_eq!((counts.batches, counts.records), (36, 36));
    assert_eq!(exported(&l).len(), 36);
    assert_eq!(reports(&l), before);
    assert_eq!(
        details(&l.audit(&keys).unwrap().problems),
        Vec::<String>::new()
    );
    let verified = verify(&l, &archive, &keys).0;
    assert_eq!(details(&verified.problems), Vec::<String>::new());
    assert_eq!((verified.batches, verified.also_live), (12, 12));

    // The next run finishes the job: the same file, each batch once.
    let summary = l.archive(&archive, day(3)).unwrap();
    assert_eq!(summary.days.len(), 2);
    assert_eq!(read_file(&file_of(&archive, day(1))).unwrap().len(), 12);
    let counts = l.counts().unwrap();
    assert_eq!((counts.batches, counts.records), (12, 12));
    assert_eq!(reports(&l), before);
    let verified = verify(&l, &archive, &keys).0;
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
