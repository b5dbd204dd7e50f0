//! `store copy`: the Beijing scenario's store, with users, sessions, keys, documents,
//! settings, renditions and events added, copied from redb into PostgreSQL and back; every
//! trait then reads the same from all three stores (compared through the traits, beside
//! the dumps' own equality).

use std::path::Path;

use chrono::Utc;

use super::{at, Backend};
use crate::store::dump::{copy, End};
use crate::store::postgres::testdb::TestDb;
use crate::store::{
    EntityKind, EventKind, IssuedDocument, OpenMode, Role, Session, StoreError, StoredRendition,
    User,
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
        })
        .unwrap();
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

    let back_dir = back.path().join("data");
    let again = End::open(back_dir.to_str().unwrap(), transit.path(), OpenMode::Create).unwrap();
    assert_eq!(copy(&to, &again).unwrap(), copied);

    let (End::Redb(r), End::Postgres(p), End::Redb(r2)) = (&from, &to, &again) else {
        unreachable!()
    };
    same_contents(r, p);
    same_contents(p, r2);
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
