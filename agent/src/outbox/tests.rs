//! Outbox store tests: slot boundaries, crash recovery, batch chaining, acks, nonces.

use super::*;
use playlists::wire::pop::{genesis_hash, MAX_BATCH_RECORDS};

use playlists::wire::signed::open_envelope;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn record(slot_start: &str) -> PlayRecord {
    PlayRecord {
        play_id: String::new(),
        screen_id: "scr-1".into(),
        epoch: String::new(),
        seq: 0,
        venue_id: "ven-1".into(),
        campaign_id: "camp-1".into(),
        creative_id: "cr-0".into(),
        creative_sha256: "0".repeat(64),
        schedule_version: 1,
        slot_start: t(slot_start),
        started_at: t(slot_start),
        ended_at: t(slot_start),
        duration_ms: 0,
        status: PlayStatus::Complete,
        clock_synced: true,
        media_sha256: None,
    }
}

fn start(slot_start: &str) -> Option<NewPlay> {
    Some(NewPlay {
        record: record(slot_start),
        in_progress: true,
    })
}

fn done(seq: u64, ended: &str) -> Completion {
    Completion {
        seq,
        started_at: None,
        ended_at: t(ended),
        duration_ms: 15_000,
        status: PlayStatus::Complete,
    }
}

/// Plays `n` full slots from 08:00:00, leaving the last one in progress when `open_last`.
fn play(outbox: &Outbox, n: u64, open_last: bool) {
    let base = t("2023-12-18T08:00:00Z");
    let at = |i: u64| (base + chrono::Duration::seconds(15 * i as i64)).to_rfc3339();
    let first = outbox.book().next_seq;
    let mut running = outbox.book().in_progress;
    for i in 0..n {
        let complete = running.map(|s| done(s, &at(i)));
        running = outbox.boundary(complete.as_ref(), start(&at(i))).unwrap();
        assert_eq!(running, Some(first + i));
    }
    if !open_last {
        outbox
            .boundary(running.map(|s| done(s, &at(n))).as_ref(), None)
            .unwrap();
    }
}

fn tags(outbox: &Outbox) -> String {
    outbox.dump().unwrap().iter().map(|(tag, _)| *tag).collect()
}

#[test]
fn start_and_complete_in_one_transaction_per_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let (outbox, recovery) = Outbox::open(dir.path(), Durability::Immediate).unwrap();
    assert_eq!(recovery, Recovery::default());
    assert!(dir.path().join("outbox.redb").exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temp file left"
    );

    assert_eq!(
        outbox
            .boundary(None, start("2023-12-18T08:00:00Z"))
            .unwrap(),
        Some(1)
    );
    assert_eq!(tags(&outbox), "P");
    let s2 = outbox
        .boundary(
            Some(&done(1, "2023-12-18T08:00:15Z")),
            start("2023-12-18T08:00:15Z"),
        )
        .unwrap();
    assert_eq!(s2, Some(2));
    assert_eq!(tags(&outbox), "FP");
    let rows = outbox.dump().unwrap();
    let first = &rows[0].1;
    assert_eq!(
        (first.play_id.as_str(), first.seq, first.status),
        (
            play_id("scr-1", outbox.epoch(), 1).as_str(),
            1,
            PlayStatus::Complete
        )
    );
    assert_eq!(first.epoch, outbox.epoch());
    assert_eq!(outbox.epoch().len(), 32);
    assert_eq!(
        (first.ended_at, first.duration_ms),
        (t("2023-12-18T08:00:15Z"), 15_000)
    );
    // A failed play is final at once.
    let failed = NewPlay {
        record: PlayRecord {
            status: PlayStatus::Failed,
            ..record("2023-12-18T08:00:30Z")
        },
        in_progress: false,
    };
    assert_eq!(
        outbox
            .boundary(Some(&done(2, "2023-12-18T08:00:30Z")), Some(failed))
            .unwrap(),
        Some(3)
    );
    assert_eq!(tags(&outbox), "FFF");
    let book = outbox.book();
    assert_eq!(
        (
            book.ready(),
            book.backlog(),
            book.last_seq(),
            book.in_progress
        ),
        (3, 3, 3, None)
    );
    // Completing something not in progress is refused and changes nothing.
    assert!(outbox
        .boundary(
            Some(&done(3, "2023-12-18T08:00:45Z")),
            start("2023-12-18T08:00:45Z")
        )
        .is_err());
    assert_eq!(tags(&outbox), "FFF");
    assert_eq!(outbox.book().next_seq, 4);
}

#[test]
fn crash_leaves_a_partial_record_never_lost_or_reused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (outbox, _) = Outbox::open(dir.path(), Durability::Immediate).unwrap();
        play(&outbox, 3, true);
        assert_eq!(tags(&outbox), "FFP");
        // Dropped without completing: a power cut.
    }
    let (outbox, recovery) = Outbox::open(dir.path(), Durability::Immediate).unwrap();
    assert_eq!(recovery.partial, vec![3]);
    assert_eq!(tags(&outbox), "FFF");
    let (_, third) = outbox.dump().unwrap().pop().unwrap();
    assert_eq!(
        (third.status, third.duration_ms, third.ended_at),
        (PlayStatus::Partial, 0, third.started_at)
    );
    assert_eq!(third.play_id, play_id("scr-1", outbox.epoch(), 3));
    let book = outbox.book();
    assert_eq!(
        (book.ready(), book.in_progress, book.next_seq),
        (3, None, 4)
    );
    assert_eq!(
        outbox
            .boundary(None, start("2023-12-18T09:00:00Z"))
            .unwrap(),
        Some(4)
    );
    drop(outbox);
    // Opening again finds nothing more to repair and keeps the numbers.
    let (outbox, recovery) = Outbox::open(dir.path(), Durability::Relaxed).unwrap();
    assert_eq!(recovery.partial, vec![4]);
    assert_eq!(outbox.book().next_seq, 5);
}

#[test]
fn batches_chain_are_signed_and_acks_delete() {
    let dir = tempfile::tempdir().unwrap();
    let key = Keypair::from_secret([3; 32]);
    let (outbox, _) = Outbox::open(dir.path(), Durability::Immediate).unwrap();
    assert_eq!(
        outbox.form_batch("scr-1", &key, MAX_BATCH_RECORDS).unwrap(),
        None
    );
    play(&outbox, 5, true);

    let b1 = outbox.form_batch("scr-1", &key, 3).unwrap().unwrap();
    assert_eq!(
        (b1.info.batch_seq, b1.info.first_seq, b1.info.last_seq),
        (1, 1, 3)
    );
    let env = open_envelope(&b1.bytes, BATCH_KIND, &key.public(), MAX_POP_BYTES).unwrap();
    assert_eq!(batch_hash(&env.payload).to_string(), b1.info.hash);
    let batch: PopBatch = serde_json::from_str(&env.payload).unwrap();
    let epoch = outbox.epoch().to_owned();
    assert_eq!(batch.epoch, epoch);
    assert_eq!(
        (
            batch.batch_seq,
            batch.prev_hash.clone(),
            batch.screen_id.as_str()
        ),
        (1, genesis_hash(), "scr-1")
    );
    assert_eq!(
        batch.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(tags(&outbox), "BBBFP");
    // One batch in flight at a time.
    assert_eq!(outbox.form_batch("scr-1", &key, 3).unwrap(), None);

    // After a restart the identical bytes are there to resend.
    drop(outbox);
    let (outbox, _) = Outbox::open(dir.path(), Durability::Immediate).unwrap();
    assert_eq!(outbox.in_flight().unwrap().as_ref(), Some(&b1));
    assert_eq!(tags(&outbox), "BBBFF");

    // Forged or stale acks change nothing.
    assert_eq!(
        outbox.ack(&epoch, 1, &"f".repeat(64)).unwrap(),
        AckOutcome::Ignored
    );
    assert_eq!(
        outbox.ack(&epoch, 2, &b1.info.hash).unwrap(),
        AckOutcome::Ignored
    );
    assert_eq!(tags(&outbox), "BBBFF");
    // An ack naming another epoch is not for this outbox.
    assert_eq!(
        outbox.ack("", 1, &b1.info.hash).unwrap(),
        AckOutcome::Ignored
    );
    assert_eq!(
        outbox.ack(&epoch, 1, &b1.info.hash).unwrap(),
        AckOutcome::Deleted
    );
    assert_eq!(tags(&outbox), "FF");
    assert_eq!(
        outbox.ack(&epoch, 1, &b1.info.hash).unwrap(),
        AckOutcome::Ignored
    );
    assert_eq!(outbox.in_flight().unwrap(), None);

    let b2 = outbox
        .form_batch("scr-1", &key, MAX_BATCH_RECORDS)
        .unwrap()
        .unwrap();
    let env = open_envelope(&b2.bytes, BATCH_KIND, &key.public(), MAX_POP_BYTES).unwrap();
    let batch: PopBatch = serde_json::from_str(&env.payload).unwrap();
    assert_eq!(
        (batch.batch_seq, batch.prev_hash.as_str()),
        (2, b1.info.hash.as_str())
    );
    assert_eq!(
        batch.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [4, 5]
    );
    assert_eq!(batch.records[1].status, PlayStatus::Partial);
    assert_eq!(
        outbox.ack(&epoch, 2, &b2.info.hash).unwrap(),
        AckOutcome::Deleted
    );
    let book = outbox.book();
    assert_eq!(
        (
            book.backlog(),
            book.rows,
            book.next_seq,
            book.chain_head.as_str()
        ),
        (0, 0, 6, b2.info.hash.as_str())
    );
    drop(outbox);
    let (outbox, _) = Outbox::open(dir.path(), Durability::Immediate).unwrap();
    assert_eq!(outbox.book(), book);
}

#[test]
fn schedule_and_command_nonces_persist() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (outbox, _) = Outbox::open(dir.path(), Durability::Immediate).unwrap();
        assert_eq!(outbox.load_schedule().unwrap(), None);
        outbox.store_schedule(b"signed bytes").unwrap();
        assert!(outbox.remember_command("c1").unwrap());
        assert!(!outbox.remember_command("c1").unwrap());
        for i in 0..COMMAND_IDS_KEPT {
            assert!(outbox.remember_command(&format!("x{i}")).unwrap());
        }
        outbox.flush().unwrap();
    }
    let (outbox, _) = Outbox::open(dir.path(), Durability::Immediate).unwrap();
    assert_eq!(
        outbox.load_schedule().unwrap().as_deref(),
        Some(b"signed bytes".as_slice())
    );
    // The oldest id fell out of the window; the newest are still known.
    assert!(!outbox
        .remember_command(&format!("x{}", COMMAND_IDS_KEPT - 1))
        .unwrap());
    assert!(outbox.remember_command("c1").unwrap());
}

#[test]
fn a_new_outbox_is_a_new_epoch_and_keeps_it() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (first, _) = Outbox::open(a.path(), Durability::Immediate).unwrap();
    let epoch = first.epoch().to_owned();
    assert!(epoch.len() == 32 && epoch.chars().all(|c| c.is_ascii_hexdigit()));
    play(&first, 2, false);
    drop(first);
    let (again, _) = Outbox::open(a.path(), Durability::Immediate).unwrap();
    assert_eq!(again.epoch(), epoch);
    assert_eq!(again.book().next_seq, 3);
    // A wiped outbox (a fresh file) is another epoch, numbering from 1 again.
    drop(again);
    std::fs::remove_file(a.path().join("outbox.redb")).unwrap();
    let (wiped, _) = Outbox::open(a.path(), Durability::Immediate).unwrap();
    assert_ne!(wiped.epoch(), epoch);
    assert_eq!(wiped.book().next_seq, 1);
    let (other, _) = Outbox::open(b.path(), Durability::Immediate).unwrap();
    assert_ne!(other.epoch(), wiped.epoch());
}

#[test]
fn an_outbox_from_before_epochs_keeps_the_legacy_epoch() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (outbox, _) = Outbox::open(dir.path(), Durability::Immediate).unwrap();
        play(&outbox, 2, false);
        let key = Keypair::from_secret([3; 32]);
        let b = outbox.form_batch("scr-1", &key, 10).unwrap().unwrap();
        let epoch = outbox.epoch().to_owned();
        assert_eq!(
            outbox.ack(&epoch, 1, &b.info.hash).unwrap(),
            AckOutcome::Deleted
        );
        // What a file from before epochs looks like: no epoch, used.
        let tx = outbox.db.begin_write().unwrap();
        tx.open_table(STATE).unwrap().remove("epoch").unwrap();
        tx.commit().unwrap();
    }
    let (outbox, _) = Outbox::open(dir.path(), Durability::Immediate).unwrap();
    assert_eq!(outbox.epoch(), "");
    play(&outbox, 1, false);
    let (_, r) = outbox.dump().unwrap().pop().unwrap();
    assert_eq!((r.play_id.as_str(), r.epoch.as_str()), ("scr-1-3", ""));
    let key = Keypair::from_secret([3; 32]);
    let b = outbox.form_batch("scr-1", &key, 10).unwrap().unwrap();
    let env = open_envelope(&b.bytes, BATCH_KIND, &key.public(), MAX_POP_BYTES).unwrap();
    assert!(!env.payload.contains("epoch"), "{}", env.payload);
}

#[test]
fn a_damaged_outbox_is_moved_aside_and_a_new_epoch_starts() {
    for garbage in [b"not a database at all".repeat(1_000), vec![0xff; 4096]] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.redb");
        let old_epoch = {
            let (outbox, _) = Outbox::open(dir.path(), Durability::Immediate).unwrap();
            play(&outbox, 3, false);
            outbox.epoch().to_owned()
        };
        std::fs::write(&path, &garbage).unwrap();
        let (outbox, recovery) = Outbox::open(dir.path(), Durability::Immediate).unwrap();
        let (aside, why) = recovery.moved_aside.expect("moved aside");
        assert!(!why.is_empty());
        // The damaged file is kept, byte for byte, beside the fresh one.
        assert_eq!(std::fs::read(&aside).unwrap(), garbage);
        let name = aside.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("outbox.redb.damaged-"), "{name}");
        assert_ne!(outbox.epoch(), old_epoch);
        assert_eq!(outbox.book().next_seq, 1);
        play(&outbox, 1, false);
        assert_eq!(tags(&outbox), "F");
        drop(outbox);
        // The fresh outbox opens cleanly next time.
        let (_, recovery) = Outbox::open(dir.path(), Durability::Immediate).unwrap();
        assert_eq!(recovery.moved_aside, None);
    }
}

#[test]
fn an_emptied_outbox_file_is_a_new_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    let old_epoch = {
        let (outbox, _) = Outbox::open(dir.path(), Durability::Immediate).unwrap();
        play(&outbox, 3, false);
        outbox.epoch().to_owned()
    };
    std::fs::write(&path, b"").unwrap();
    let (outbox, _) = Outbox::open(dir.path(), Durability::Immediate).unwrap();
    assert_ne!(outbox.epoch(), old_epoch);
    assert_eq!(outbox.epoch().len(), 32);
    assert_eq!(outbox.book().next_seq, 1);
}

#[test]
fn an_outbox_in_use_is_not_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let (_held, _) = Outbox::open(dir.path(), Durability::Immediate).unwrap();
    let err = Outbox::open(dir.path(), Durability::Immediate)
        .err()
        .expect("in use");
    assert!(!err.is_damage(), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn an_outbox_in_memory_numbers_batches_and_acks_as_a_file_does() {
    let key = Keypair::from_secret([3; 32]);
    let (outbox, recovery) = Outbox::in_memory(Durability::Relaxed).unwrap();
    assert_eq!(recovery, Recovery::default());
    let epoch = outbox.epoch().to_owned();
    assert!(epoch.len() == 32 && epoch.chars().all(|c| c.is_ascii_hexdigit()));
    play(&outbox, 4, true);
    assert_eq!(tags(&outbox), "FFFP");
    let b = outbox.form_batch("scr-1", &key, 10).unwrap().unwrap();
    assert_eq!((b.info.first_seq, b.info.last_seq), (1, 3));
    assert_eq!(tags(&outbox), "BBBP");
    assert_eq!(
        outbox.ack(&epoch, b.info.batch_seq, &b.info.hash).unwrap(),
        AckOutcome::Deleted
    );
    assert_eq!(tags(&outbox), "P");
    outbox.store_schedule(b"{}").unwrap();
    assert_eq!(outbox.load_schedule().unwrap().as_deref(), Some(&b"{}"[..]));
    // Each is its own store, in its own epoch.
    let (other, _) = Outbox::in_memory(Durability::Relaxed).unwrap();
    assert_ne!(other.epoch(), epoch);
    assert_eq!(other.book().next_seq, 1);
}
