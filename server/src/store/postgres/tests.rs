//! What only the PostgreSQL store does: replicas sharing one database, media read back by
//! range and fetched by another replica, damaged rows and values PostgreSQL cannot keep
//! as typed errors. (What both backends do is in `store::conformance`.)

use sha2::Digest;

use playlists::Sha256;

use super::testdb::TestDb;
use super::{PgStore, CHUNK_SIZE};
use crate::store::conformance::{at, screen, venue};
use crate::store::{
    BrokerLoginStore, CatalogueStore, Commit, DocumentStore, IssuedDocument, KeyStore, MediaStore,
    OpenMode, RenditionStore, StoreError, UserStore,
};

fn replicas(db: &TestDb) -> (PgStore, PgStore, tempfile::TempDir, tempfile::TempDir) {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let one = db.open(d1.path(), OpenMode::Create);
    let two = db.open(d2.path(), OpenMode::Existing);
    (one, two, d1, d2)
}

fn commit(base: u64, entities: Vec<crate::store::Entity>) -> Commit {
    Commit {
        base,
        author: "ada".into(),
        at: at(0),
        comment: "c".into(),
        entities,
    }
}

fn sha_of(data: &[u8]) -> Sha256 {
    Sha256::parse(&hex::encode(sha2::Sha256::digest(data))).unwrap()
}

#[test]
fn replicas_share_the_catalogue_and_conflict_with_each_other() {
    let db = TestDb::new();
    let (one, two, _d1, _d2) = replicas(&db);
    one.commit(commit(0, vec![venue("v1")])).unwrap().unwrap();
    assert_eq!(two.snapshot().unwrap(), one.snapshot().unwrap());
    let e = two.commit(commit(0, vec![venue("v2")])).unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Conflict {
                expected: 0,
                head: 1
            }
        ),
        "{e:?}"
    );
    let kept = one.snapshot().unwrap();
    two.commit(commit(1, vec![venue("v2")])).unwrap().unwrap();
    assert_eq!(one.head().unwrap(), 2);
    // The snapshot `one` keeps for its head gives way to the other replica's commit.
    let after = one.snapshot().unwrap();
    assert_eq!((kept.head, after.head), (1, 2));
    assert_eq!(
        after.venues.keys().collect::<Vec<_>>(),
        ["v1", "v2"],
        "the other replica's venue is read"
    );
}

#[test]
fn media_by_range_and_fetched_by_another_replica() {
    let db = TestDb::new();
    let (one, two, _d1, _d2) = replicas(&db);
    // Two and a half chunks.
    let data: Vec<u8> = (0..CHUNK_SIZE * 5 / 2).map(|i| (i % 253) as u8).collect();
    let sha = sha_of(&data);
    one.put_media(&sha, &data).unwrap();
    assert_eq!(two.media_len(&sha).unwrap(), Some(data.len() as u64));
    let read = |range: std::ops::Range<u64>| {
        let mut out = Vec::new();
        let n = two
            .read_media(&sha, range, &mut |part| {
                out.extend_from_slice(part);
                Ok(())
            })
            .unwrap();
        assert_eq!(n as usize, out.len());
        out
    };
    let c = CHUNK_SIZE as u64;
    for (from, to) in [
        (0, 10),
        (c - 3, c + 3),
        (5, 2 * c + 7),
        (2 * c, 5 * c),
        (0, u64::MAX),
    ] {
        let end = (to as usize).min(data.len());
        assert_eq!(read(from..to), data[from as usize..end], "{from}..{to}");
    }
    assert!(read(10 * c..11 * c).is_empty(), "past the end");

    // The other replica has no local copy until it fetches one, checked.
    assert!(!two.media_path(&sha).exists());
    let path = two.local_media(&sha).unwrap();
    assert_eq!(path, two.media_path(&sha));
    assert_eq!(std::fs::read(&path).unwrap(), data);

    let unknown = sha_of(b"never stored");
    assert_eq!(two.media_len(&unknown).unwrap(), None);
    let e = two.local_media(&unknown).unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e:?}");

    // Through the trait, as renditions and `/media` use it: held before any local copy.
    let (d3, small) = (tempfile::tempdir().unwrap(), b"small".to_vec());
    let three = db.open(d3.path(), OpenMode::Existing);
    let small_sha = sha_of(&small);
    one.put_media(&small_sha, &small).unwrap();
    assert!(three.has_media(&small_sha).unwrap());
    assert!(!three.media_path(&small_sha).exists());
    assert!(!three.has_media(&unknown).unwrap());
    let path = MediaStore::local_copy(&three, &small_sha).unwrap();
    assert_eq!(std::fs::read(path).unwrap(), small);
    let e = MediaStore::local_copy(&three, &unknown).unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e:?}");
}

/// Many requests at once for a file this replica has no copy of (every screen asking for
/// a new creative) wait for one copy from the database, and all get the whole file.
#[test]
fn many_requests_for_a_missing_file_make_one_copy() {
    let db = TestDb::new();
    let (one, two, _d1, _d2) = replicas(&db);
    let data: Vec<u8> = (0..CHUNK_SIZE * 3).map(|i| (i % 241) as u8).collect();
    let sha = sha_of(&data);
    one.put_media(&sha, &data).unwrap();
    let unknown = sha_of(b"never stored");
    let start = std::sync::Barrier::new(16);
    std::thread::scope(|s| {
        let asks: Vec<_> = (0..16)
            .map(|i| {
                let (two, start) = (&two, &start);
                let (sha, unknown) = (&sha, &unknown);
                s.spawn(move || {
                    start.wait();
                    let wanted = if i % 4 == 3 { unknown } else { sha };
                    MediaStore::local_copy(two, wanted)
                })
            })
            .collect();
        for (i, ask) in asks.into_iter().enumerate() {
            match ask.join().unwrap() {
                Ok(path) => {
                    assert_ne!(i % 4, 3, "an unknown file has no copy");
                    assert_eq!(std::fs::read(path).unwrap(), data, "request {i}");
                }
                Err(e) => {
                    assert_eq!(i % 4, 3, "request {i}: {e:?}");
                    assert!(matches!(e, StoreError::NotFound { .. }), "{e:?}");
                }
            }
        }
    });
    // One copy of the file; each request for the unknown one looked again (none was made).
    assert_eq!(two.media_copies(), 1 + 4);
    let left: Vec<_> = std::fs::read_dir(two.upload_dir()).unwrap().collect();
    assert!(left.is_empty(), "no temporary file left: {left:?}");
}

#[test]
fn replicas_finishing_renditions_at_once_get_numbers_in_commit_order() {
    let db = TestDb::new();
    let (one, two, _d1, _d2) = replicas(&db);
    let finish = |store: &PgStore, source: char| {
        (0..20u32)
            .map(|w| {
                let r = crate::store::StoredRendition {
                    source: source.to_string().repeat(64),
                    width: w + 1,
                    height: 1,
                    fit: "fill".into(),
                    background: None,
                    sha256: "e".repeat(64),
                    bytes: 1,
                    frame: None,
                };
                store.put_finished_rendition(&r).unwrap()
            })
            .collect::<Vec<u64>>()
    };
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| finish(&one, 'a'));
        let b = scope.spawn(|| finish(&two, 'b'));
        (a.join().unwrap(), b.join().unwrap())
    });
    // Each replica's own finishes rise; together they are 1..=40, each once.
    assert!(a.windows(2).all(|w| w[0] < w[1]) && b.windows(2).all(|w| w[0] < w[1]));
    let mut all: Vec<u64> = a.iter().chain(&b).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (1..=40).collect::<Vec<u64>>());
    let read = two.finished_renditions(0, 100).unwrap();
    assert_eq!(read.iter().map(|(n, _)| *n).collect::<Vec<_>>(), all);
    assert_eq!(one.last_finished_rendition().unwrap(), 40);
}

#[test]
fn damaged_media_is_refused_and_leaves_no_file() {
    let db = TestDb::new();
    let (one, two, _d1, _d2) = replicas(&db);
    let data = vec![7u8; CHUNK_SIZE + 10];
    let sha = sha_of(&data);
    one.put_media(&sha, &data).unwrap();
    one.with_client(|c| {
        c.execute(
            "UPDATE media_chunks SET data = $2 WHERE sha256 = $1 AND n = 1",
            &[&sha.as_str(), &vec![8u8; 10]],
        )
        .unwrap()
    });
    let e = two.local_media(&sha).unwrap_err();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}");
    assert!(e.to_string().contains("hash to"), "{e}");
    assert!(!two.media_path(&sha).exists(), "no damaged file in place");

    one.with_client(|c| {
        c.execute("DELETE FROM media_chunks WHERE n = 1", &[])
            .unwrap()
    });
    let e = two.local_media(&sha).unwrap_err();
    assert!(e.to_string().contains("chunk 1 is missing"), "{e}");
    let uploads = std::fs::read_dir(two.upload_dir()).unwrap().count();
    assert_eq!(uploads, 0, "no temporary file left");
}

#[test]
fn damaged_rows_are_corrupt_errors_naming_them() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let s = db.open(dir.path(), OpenMode::Create);
    s.commit(commit(0, vec![venue("v1"), screen("s1", 1, None)]))
        .unwrap()
        .unwrap();
    s.add_screen_key("s1", "k1", at(1)).unwrap();
    s.with_client(|c| {
        c.batch_execute(
            r#"UPDATE entities SET body = '{"spec": 3}' WHERE id = 's1';
               UPDATE revisions SET body = '[]';
               UPDATE screen_keys SET keys = '{"not": "a list"}';
               INSERT INTO users (name, token_sha256, body) VALUES ('eve', 't', '{"name": 1}')"#,
        )
        .unwrap()
    });
    let corrupt = |e: StoreError, names: &str| {
        assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}");
        assert!(e.to_string().contains(names), "{e}");
    };
    corrupt(s.revisions(0, 10).unwrap_err(), "revision 1");
    corrupt(s.screen_keys().unwrap_err(), "keys of screen s1");
    corrupt(s.user("eve").unwrap_err(), "user \"eve\"");
    corrupt(s.snapshot().unwrap_err(), "screen \"s1\"");
    // A commit over a damaged screen reads only its JSON: it replaces it.
    s.commit(commit(1, vec![screen("s1", 2, None)]))
        .unwrap()
        .unwrap();
    assert!(s.snapshot().is_ok());
}

#[test]
fn values_postgresql_cannot_keep_are_refused_and_write_nothing() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let s = db.open(dir.path(), OpenMode::Create);
    let doc = |version| IssuedDocument {
        screen_id: "s1".into(),
        version,
        issued_at: at(0),
        expires_at: at(1),
        in_force_from: at(0),
        content_hash: "h".into(),
        signed: "{}".into(),
    };
    let e = s.record_issued(&[doc(1), doc(u64::MAX)]).unwrap_err();
    assert!(matches!(e, StoreError::Backend(_)), "{e:?}");
    assert!(e.to_string().contains("above what PostgreSQL keeps"), "{e}");
    assert!(s.published().unwrap().is_empty(), "the batch wrote nothing");
    assert!(s.issued("s1").unwrap().is_empty());
    assert!(s.users().unwrap().is_empty());
}

#[test]
fn a_bad_url_or_an_absent_server_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = PgStore::open("postgres://host:notaport/db", dir.path(), OpenMode::Create).unwrap_err();
    assert!(e.to_string().contains("is not a PostgreSQL URL"), "{e}");
    let e = PgStore::open(
        "postgres://nobody:secret@127.0.0.1:1/none?connect_timeout=1",
        dir.path(),
        OpenMode::Create,
    )
    .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("cannot connect to postgres://nobody@127.0.0.1:1/none"),
        "{text}"
    );
    assert!(!text.contains("secret"), "no password in messages: {text}");
    let db = TestDb::new();
    let absent = db.url().replace("signage_test_", "absent_");
    let e = PgStore::open(&absent, dir.path(), OpenMode::Create).unwrap_err();
    assert!(
        e.to_string().contains("does not exist (SQLSTATE 3D000)"),
        "{e}"
    );
}

/// A decommissioning committed while credentials are being registered: the registration
/// waits on the screen's row, then finds it out of service and writes nothing.
#[test]
fn credentials_wait_for_a_decommissioning_in_progress_and_are_refused() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let s = db.open(dir.path(), OpenMode::Create);
    s.commit(commit(0, vec![venue("v1"), screen("s1", 1, None)]))
        .unwrap()
        .unwrap();
    let retired = screen("s1", 1, Some(at(5))).to_json();
    let mut writer = ::postgres::Client::connect(&db.url(), ::postgres::NoTls).unwrap();
    let mut tx = writer.transaction().unwrap();
    tx.execute(
        "UPDATE entities SET body = $1 WHERE kind = 'screen' AND id = 's1'",
        &[&retired],
    )
    .unwrap();
    let outcome = std::thread::scope(|scope| {
        let registering = scope.spawn(|| s.add_screen_credentials("s1", "k1", "$7$h", at(6)));
        // Until the registration waits on the row lock (a condition, not a duration).
        let mut watcher = ::postgres::Client::connect(&db.url(), ::postgres::NoTls).unwrap();
        loop {
            let waiting: i64 = watcher
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                    &[],
                )
                .unwrap()
                .get(0);
            if waiting > 0 || registering.is_finished() {
                break;
            }
            std::thread::yield_now();
        }
        tx.commit().unwrap();
        registering.join().unwrap()
    });
    assert!(
        matches!(outcome, Err(StoreError::NotFound { .. })),
        "{outcome:?}"
    );
    assert!(s.screen_keys().unwrap().is_empty());
    assert_eq!(s.broker_login("s1").unwrap(), None);
}
