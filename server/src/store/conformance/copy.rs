//! `store copy`: the Beijing scenario's store, with users, sessions, keys, documents,
//! planned counts, settings, renditions, events and a proof-of-play ledger added, copied
//! from redb into PostgreSQL and back; every trait then reads the same from all three
//! stores (compared through the traits, beside the dumps' own equality). A ledger archived
//! in part is refused before anything is written.

use std::path::Path;

use chrono::Utc;

use super::{at, Backend};
use crate::store::dump::{copy, End};
use crate::store::ledger::testkit::{query, Agent};
use crate::store::postgres::testdb::TestDb;
use crate::store::{
    key_rings, plan_id, Dimension, EntityKind, EventKind, Incoming, IssuedDocument, LedgerError,
    OpenMode, Outcome, PlanCounts, PlanEntry, PlannedChange, PlannedPart, Role, Session,
    StoreError, StoredRendition, User,
};

/// A redb store in `dir` holding the Beijing scenario and a little of everything else.
fn beijing_store(dir: &Path) {
    let store = crate::store::open(dir, OpenMode::Create).unwrap();
    let catalogue = crate::catalogue::CatalogueService::new(store.clone());
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/beijing-role-models");
    crate::import::import(
        &catalogue,
        &scenario,
        &crate::import::ImportOptions::admin(),
    )
    .unwrap();
    let snapshot = store.snapshot().unwrap();
    let screens: Vec<&String> = snapshot.screens.keys().collect();
    for (i, screen) in screens.iter().enumerate().take(3) {
        let doc = |version: u64| IssuedDocument {
            screen_id: (*screen).clone(),
            version,
            issued_at: at(version as i64),
            expires_at: at(version as i64 + 3600),
            in_force_from: at(version as i64 + 60),
            content_hash: format!("h{i}{version}"),
            signed: format!("{{\"v\":{version}}}"),
        };
        store.record_issued(&[doc(1)]).unwrap();
        store.record_issued(&[doc(2)]).unwrap();
        store
            .add_screen_credentials(screen, &format!("key{i}"), &format!("$7$h{i}"), at(1))
            .unwrap();
    }
    store.add_screen_key(screens[0], "key0b", at(9)).unwrap();
    let user = User {
        name: "ada".into(),
        roles: vec![Role::Admin, Role::Auditor],
        token_sha256: "ab".repeat(32),
        created_at: at(2),
        password_phc: None,
    };
    store.add_user(&user, "admin").unwrap();
    store
        .set_password("ada", "$argon2id$p", "admin", at(3))
        .unwrap();
    let session = Session {
        user: "ada".into(),
        csrf_token: "csrf".into(),
        created_at: at(4),
        last_seen: at(5),
    };
    store.put_session("s-ada", &session).unwrap();
    store
        .record_event(EventKind::Login, "ada", at(4), "in")
        .unwrap();
    store.set_meta("report_window", b"{\"w\":1}").unwrap();
    let creative = snapshot.creatives.values().next().unwrap();
    store
        .put_rendition(&StoredRendition {
            source: creative.spec.sha256.clone(),
            width: 320,
            height: 180,
            fit: "fill".into(),
            background: None,
            sha256: creative.spec.sha256.clone(),
            bytes: creative.spec.bytes,
            frame: None,
        })
        .unwrap();
    planned_and_plays(&*store, &screens);
    // A screen decommissioned after its credentials: its login stays stored.
    catalogue
        .change("admin", "retired", Utc::now(), |s| {
            s.screens
                .get_mut(screens[2].as_str())
                .unwrap()
                .decommissioned_at = Some(at(8));
            Ok::<_, crate::catalogue::CatalogueError>(())
        })
        .unwrap();
}

/// Planned counts for a third document of the first screen, and a ledger: two screens'
/// agents (keys registered after the placeholders above) sending batches, one screen in
/// two epochs.
fn planned_and_plays(store: &dyn crate::store::Store, screens: &[&String]) {
    let counts = PlanCounts {
        source: None,
        campaigns: vec!["c1".into()],
        creatives: vec!["k1".into()],
        entries: vec![PlanEntry(1_780_000_000 / 3600 * 3600, 0, 0, 4)],
    };
    let plan = plan_id(&serde_json::to_vec(&counts).unwrap());
    let change = PlannedChange {
        remove: Vec::new(),
        parts: vec![PlannedPart {
            screen_id: screens[0].clone(),
            version: 3,
            venue_id: "v".into(),
            venue_type: "mall".into(),
            district: None,
            from: at(60),
            to: at(3600),
            plan,
        }],
        plans: vec![(plan, counts)],
    };
    let doc = IssuedDocument {
        screen_id: screens[0].clone(),
        version: 3,
        issued_at: at(3),
        expires_at: at(3603),
        in_force_from: at(63),
        content_hash: "h03".into(),
        signed: "{\"v\":3}".into(),
    };
    let planned = store.planned_store().unwrap();
    planned.record_issued_planned(&[doc], &change).unwrap();

    let mut agents: Vec<Agent> = (0..2u8)
        .map(|n| Agent::new(n + 1, screens[usize::from(n)], "v"))
        .collect();
    for a in &agents {
        store
            .add_screen_key(&a.screen, &a.key.public_hex(), at(10))
            .unwrap();
    }
    let rings = key_rings(store).unwrap();
    let key_of = |s: &str| rings.get(s).cloned().unwrap_or_default();
    let mut batches = Vec::new();
    for round in 0..3 {
        if round == 2 {
            agents[1].new_epoch("e2");
        }
        for a in &mut agents {
            let records = a.plays(round + 1, "c1", "k1");
            batches.push(Incoming {
                topic_screen: a.screen.clone(),
                raw: a.batch(records),
            });
        }
    }
    // Then 520 one-record batches of the first screen, as agents send them: the copy
    // ingests them in two chunks, the chain cut between them.
    for _ in 0..520 {
        let records = agents[0].plays(1, "c2", "k1");
        batches.push(Incoming {
            topic_screen: agents[0].screen.clone(),
            raw: agents[0].batch(records),
        });
    }
    let out = store.ledger().ingest(&batches, &key_of).unwrap();
    assert!(out.iter().all(|o| matches!(o, Outcome::Stored { .. })));
}

/// The ledgers and planned counts of `a` and `b` read the same; the audit is clean.
fn same_ledger(a: &impl Backend, b: &impl Backend) {
    let (la, lb) = (a.ledger(), b.ledger());
    let rings = key_rings(b).unwrap();
    let key_of = |s: &str| rings.get(s).cloned().unwrap_or_default();
    let audit = lb.audit(&key_of).unwrap();
    assert_eq!(audit.problems, []);
    assert_eq!(audit, la.audit(&key_of).unwrap());
    assert_eq!(la.counts().unwrap(), lb.counts().unwrap());
    assert_eq!(lb.counts().unwrap().records, 532);
    let plays = |l: &dyn crate::store::LedgerStore| {
        let mut out = Vec::new();
        l.plays(&query(Dimension::Screen), &mut |r| {
            out.push(r.clone());
            Ok(())
        })
        .unwrap();
        out
    };
    assert_eq!(plays(&*la), plays(&*lb));
    for d in Dimension::ALL {
        let q = query(d);
        assert_eq!(la.delivered(&q).unwrap(), lb.delivered(&q).unwrap());
    }
    let (pa, pb) = (a.planned_store().unwrap(), b.planned_store().unwrap());
    let parts = pa.planned_parts(None, at(0), at(86_400)).unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts, pb.planned_parts(None, at(0), at(86_400)).unwrap());
    assert_eq!(
        pa.plan_counts(parts[0].plan, i64::MIN, i64::MAX).unwrap(),
        pb.plan_counts(parts[0].plan, i64::MIN, i64::MAX).unwrap()
    );
}

/// Every trait's contents of `a` and `b` are the same (media compared apart).
fn same_contents(a: &impl Backend, b: &impl Backend) {
    let snapshot = a.snapshot().unwrap();
    assert!(!snapshot.screens.is_empty());
    assert_eq!(snapshot, b.snapshot().unwrap());
    assert_eq!(a.head().unwrap(), b.head().unwrap());
    assert_eq!(
        a.revisions(0, usize::MAX).unwrap(),
        b.revisions(0, usize::MAX).unwrap()
    );
    assert_eq!(a.published().unwrap(), b.published().unwrap());
    for screen in snapshot.screens.keys() {
        assert_eq!(a.issued(screen).unwrap(), b.issued(screen).unwrap());
        assert_eq!(
            a.broker_login(screen).unwrap(),
            b.broker_login(screen).unwrap()
        );
    }
    assert_eq!(a.screen_keys().unwrap(), b.screen_keys().unwrap());
    assert_eq!(a.broker_logins().unwrap(), b.broker_logins().unwrap());
    assert_eq!(a.users().unwrap(), b.users().unwrap());
    for u in a.users().unwrap() {
        assert_eq!(
            a.user_by_token(&u.token_sha256).unwrap(),
            b.user_by_token(&u.token_sha256).unwrap()
        );
    }
    assert_eq!(a.session("s-ada").unwrap(), b.session("s-ada").unwrap());
    assert!(b.session("s-ada").unwrap().is_some());
    assert_eq!(
        a.meta("report_window").unwrap(),
        b.meta("report_window").unwrap()
    );
    for c in snapshot.creatives.values() {
        assert_eq!(
            a.renditions_of(&c.spec.sha256).unwrap(),
            b.renditions_of(&c.spec.sha256).unwrap()
        );
    }
}

#[test]
fn the_beijing_store_copied_into_postgresql_and_back_reads_the_same() {
    let (src, back, transit) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    beijing_store(src.path());
    let db = TestDb::new();
    let from = End::open(
        src.path().to_str().unwrap(),
        transit.path(),
        OpenMode::Existing,
    )
    .unwrap();
    let to = End::open(&db.url(), transit.path(), OpenMode::Create).unwrap();
    let copied = copy(&from, &to).unwrap();
    assert!(copied.entities > 10 && copied.media > 0, "{copied:?}");
    assert_eq!(
        (copied.planned_parts, copied.batches, copied.records),
        (1, 526, 532)
    );

    let back_dir = back.path().join("data");
    let again = End::open(back_dir.to_str().unwrap(), transit.path(), OpenMode::Create).unwrap();
    assert_eq!(copy(&to, &again).unwrap(), copied);

    let (End::Redb(r), End::Postgres(p), End::Redb(r2)) = (&from, &to, &again) else {
        unreachable!()
    };
    same_contents(r, p);
    same_contents(p, r2);
    same_ledger(r, p);
    same_ledger(p, r2);
    // Decommissioned screens' logins are kept too (the traits no longer show them).
    let dump = r.export().unwrap();
    assert_eq!(dump.broker_logins.len(), 3);
    assert_eq!(p.export().unwrap(), dump);
    assert_eq!(r2.export().unwrap(), dump);
    let screens = dump
        .entities
        .iter()
        .filter(|e| e.kind() == EntityKind::Screen)
        .count();
    assert!(screens > 3);

    // Every media file, byte for byte, in all three.
    for sha in &dump.media {
        let original = std::fs::read(crate::store::MediaStore::media_path(r, sha)).unwrap();
        assert_eq!(
            std::fs::read(p.local_media(sha).unwrap()).unwrap(),
            original
        );
        let copied = std::fs::read(crate::store::MediaStore::media_path(r2, sha)).unwrap();
        assert_eq!(copied, original);
    }
}

#[test]
fn a_copy_into_a_store_that_holds_something_is_refused_and_writes_nothing() {
    let (src, transit) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    beijing_store(src.path());
    let db = TestDb::new();
    let from = End::open(
        src.path().to_str().unwrap(),
        transit.path(),
        OpenMode::Existing,
    )
    .unwrap();
    let to = End::open(&db.url(), transit.path(), OpenMode::Create).unwrap();
    let End::Postgres(p) = &to else {
        unreachable!()
    };
    crate::store::MetaStore::set_meta(p, "k", b"v").unwrap();
    let e = copy(&from, &to).unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Exists {
                entity: "store",
                ..
            }
        ),
        "{e:?}"
    );
    let dump = p.export().unwrap();
    assert!(dump.entities.is_empty() && dump.revisions.is_empty() && dump.users.is_empty());

    // Nor between two stores of one kind.
    let other = tempfile::tempdir().unwrap();
    let redb = End::open(
        other.path().to_str().unwrap(),
        transit.path(),
        OpenMode::Create,
    )
    .unwrap();
    assert!(copy(&from, &redb).is_err());
}

#[test]
fn a_ledger_archived_in_part_is_refused_before_anything_is_written() {
    let (src, transit, archive) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    beijing_store(src.path());
    let from = End::open(
        src.path().to_str().unwrap(),
        transit.path(),
        OpenMode::Existing,
    )
    .unwrap();
    let End::Redb(r) = &from else { unreachable!() };
    // The agents' plays are on 2025-03-01.
    let day = chrono::NaiveDate::from_ymd_opt(2025, 3, 2).unwrap();
    crate::store::Store::ledger(r)
        .archive(archive.path(), day)
        .unwrap();
    let db = TestDb::new();
    let to = End::open(&db.url(), transit.path(), OpenMode::Create).unwrap();
    let e = copy(&from, &to).unwrap_err();
    assert!(
        matches!(&e, StoreError::Ledger(LedgerError::Archived { batch_seq, .. }) if *batch_seq > 0),
        "{e:?}"
    );
    assert!(e.to_string().contains("ledger archive"), "{e}");
    let End::Postgres(p) = &to else {
        unreachable!()
    };
    assert!(p.holds_nothing(true).unwrap());
}

/// The same from PostgreSQL: a store copied there whole, then archived in part, does not
/// copy back, and the redb target holds nothing.
#[test]
fn a_postgres_ledger_archived_in_part_is_refused_too() {
    let (src, transit, archive, back) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    beijing_store(src.path());
    let from = End::open(
        src.path().to_str().unwrap(),
        transit.path(),
        OpenMode::Existing,
    )
    .unwrap();
    let db = TestDb::new();
    let pg = End::open(&db.url(), transit.path(), OpenMode::Create).unwrap();
    copy(&from, &pg).unwrap();
    let End::Postgres(p) = &pg else {
        unreachable!()
    };
    let day = chrono::NaiveDate::from_ymd_opt(2025, 3, 2).unwrap();
    let summary = crate::store::Store::ledger(p)
        .archive(archive.path(), day)
        .unwrap();
    assert!(!summary.days.is_empty());
    let to = End::open(
        back.path().to_str().unwrap(),
        transit.path(),
        OpenMode::Create,
    )
    .unwrap();
    let e = copy(&pg, &to).unwrap_err();
    assert!(
        matches!(&e, StoreError::Ledger(LedgerError::Archived { batch_seq, .. }) if *batch_seq > 0),
        "{e:?}"
    );
    let End::Redb(r) = &to else { unreachable!() };
    assert!(r.holds_nothing().unwrap());
}

/// A target whose ledger was archived whole (no batch or record left, its chains and
/// markers still there) is not empty: a copy into it is refused.
#[test]
fn a_target_whose_ledger_was_archived_whole_is_not_empty() {
    let (src, transit, archive) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    beijing_store(src.path());
    let from = End::open(
        src.path().to_str().unwrap(),
        transit.path(),
        OpenMode::Existing,
    )
    .unwrap();
    let db = TestDb::new();
    let to = End::open(&db.url(), transit.path(), OpenMode::Create).unwrap();
    let End::Postgres(p) = &to else {
        unreachable!()
    };
    let ledger = crate::store::Store::ledger(p);
    let mut a = Agent::new(1, "s1", "v1");
    let r = a.play("c1", "k1", at(0));
    let incoming = Incoming {
        topic_screen: "s1".into(),
        raw: a.batch(vec![r]),
    };
    let keys = crate::store::ledger::testkit::key_ring(&[&a]);
    ledger.ingest(&[incoming], &keys).unwrap();
    let day = at(0).date_naive().succ_opt().unwrap();
    assert_eq!(ledger.archive(archive.path(), day).unwrap().days.len(), 1);
    assert_eq!(ledger.counts().unwrap().batches, 0);
    let e = copy(&from, &to).unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Exists {
                entity: "store",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn a_batch_the_target_refuses_fails_the_copy_naming_it() {
    let (src, transit) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    beijing_store(src.path());
    let screen = {
        let store = crate::store::open(src.path(), OpenMode::Existing).unwrap();
        let screen = store
            .snapshot()
            .unwrap()
            .screens
            .keys()
            .nth(3)
            .unwrap()
            .clone();
        // Signed by a key the store does not hold (accepted here with it): the copy,
        // verifying with the copied keys, cannot store it.
        let mut stranger = Agent::new(99, &screen, "v");
        let ring = vec![stranger.key.public()];
        let records = stranger.plays(1, "c1", "k1");
        let batch = Incoming {
            topic_screen: screen.clone(),
            raw: stranger.batch(records),
        };
        let out = store.ledger().ingest(&[batch], &|_| ring.clone()).unwrap();
        assert!(matches!(&out[..], [Outcome::Stored { .. }]), "{out:?}");
        screen
    };
    let from = End::open(
        src.path().to_str().unwrap(),
        transit.path(),
        OpenMode::Existing,
    )
    .unwrap();
    let db = TestDb::new();
    let to = End::open(&db.url(), transit.path(), OpenMode::Create).unwrap();
    let e = copy(&from, &to).unwrap_err();
    let StoreError::PartialCopy { target, problem } = &e else {
        panic!("{e:?}")
    };
    let url = db.url();
    let name = url.rsplit('/').next().unwrap();
    assert!(target.ends_with(name), "{target}");
    assert!(
        problem.starts_with(&format!(
            "batch 1 of screen {screen}'s legacy epoch was not stored in the copy: refused:"
        )),
        "{problem}"
    );
    assert!(e.to_string().contains("partial copy"), "{e}");
}
