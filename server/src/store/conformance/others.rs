//! Conformance of the other component traits: documents, keys, broker logins, users,
//! sessions, settings, media and renditions.

use playlists::Sha256;

use super::{at, screen, venue, Backend};
use crate::store::{Commit, IssuedDocument, Role, Session, StoreError, StoredRendition, User};

fn doc(screen: &str, version: u64) -> IssuedDocument {
    IssuedDocument {
        screen_id: screen.into(),
        version,
        issued_at: at(version as i64),
        expires_at: at(version as i64 + 86_400),
        in_force_from: at(version as i64 + 60),
        content_hash: format!("hash{version}"),
        signed: format!("{{\"signed\":{version}}}"),
    }
}

/// Commits `s1` (in service) and `s2` (decommissioned) at base 0.
fn two_screens(s: &impl Backend) {
    s.commit(Commit {
        base: 0,
        author: "ada".into(),
        at: at(0),
        comment: "screens".into(),
        entities: vec![
            venue("v1"),
            screen("s1", 1920, None),
            screen("s2", 1920, Some(at(1))),
        ],
    })
    .unwrap()
    .unwrap();
}

pub(crate) fn documents_issued_and_published(s: &impl Backend) {
    assert!(s.published().unwrap().is_empty());
    s.record_issued(&[]).unwrap();
    s.record_issued(&[doc("s1", 1), doc("s2", 1)]).unwrap();
    s.record_issued(&[doc("s1", 2)]).unwrap();
    let published = s.published().unwrap();
    assert_eq!(published.len(), 2);
    let p = &published["s1"];
    assert_eq!((p.version, p.content_hash.as_str()), (2, "hash2"));
    assert_eq!(
        (p.issued_at, p.expires_at),
        (Some(at(2)), Some(at(2 + 86_400)))
    );
    assert_eq!(published["s2"].version, 1);
    assert_eq!(s.issued("s1").unwrap(), vec![doc("s1", 1), doc("s1", 2)]);
    assert_eq!(s.issued("s2").unwrap(), vec![doc("s2", 1)]);
    assert!(s.issued("nobody").unwrap().is_empty());

    // One call naming a screen twice: the later document wins, as written one by one.
    let mut again = doc("s3", 1);
    again.content_hash = "rewritten".into();
    s.record_issued(&[doc("s3", 1), doc("s3", 2), again.clone()])
        .unwrap();
    assert_eq!(s.published().unwrap()["s3"].version, 1);
    assert_eq!(s.published().unwrap()["s3"].content_hash, "rewritten");
    // (Version 2 is then kept above the published one: a damaged pair, as either
    // backend reports it.)
    assert!(matches!(s.issued("s3"), Err(StoreError::Corrupt { .. })));
    s.record_issued(&[doc("s4", 1), doc("s4", 2)]).unwrap();
    assert_eq!(s.published().unwrap()["s4"].version, 2);
    assert_eq!(s.issued("s4").unwrap(), vec![doc("s4", 1), doc("s4", 2)]);
}

pub(crate) fn keys_and_their_validity(s: &impl Backend) {
    two_screens(s);
    let unknown = s.add_screen_key("nobody", "aa", at(1)).unwrap_err();
    assert!(
        matches!(unknown, StoreError::NotFound { .. }),
        "{unknown:?}"
    );
    let retired = s.add_screen_key("s2", "aa", at(1)).unwrap_err();
    assert!(
        matches!(retired, StoreError::NotFound { .. }),
        "{retired:?}"
    );
    assert!(
        s.screen_keys().unwrap().is_empty(),
        "refusals write nothing"
    );

    s.add_screen_key("s1", "k1", at(10)).unwrap();
    s.add_screen_key("s1", "k2", at(20)).unwrap();
    let keys = &s.screen_keys().unwrap()["s1"];
    assert_eq!(keys.len(), 2);
    assert_eq!(
        (keys[0].public_hex.as_str(), keys[0].valid_from),
        ("k1", at(10))
    );
    assert_eq!(
        keys[0].valid_until,
        Some(at(20)),
        "ended where the next begins"
    );
    assert_eq!(
        (keys[1].public_hex.as_str(), keys[1].valid_until),
        ("k2", None)
    );
    let current = crate::store::current_keys(s).unwrap();
    assert_eq!(current["s1"], "k2");
    // Read for some screens only (ingest's read): unknown and keyless screens are left out.
    let some = s.keys_of(&["s1", "s2", "nobody"]).unwrap();
    assert_eq!(some.keys().collect::<Vec<_>>(), ["s1"]);
    assert_eq!(some["s1"], s.screen_keys().unwrap()["s1"]);
    assert!(s.keys_of(&[]).unwrap().is_empty());
}

pub(crate) fn broker_logins_only_for_screens_in_service(s: &impl Backend) {
    two_screens(s);
    let e = s
        .add_screen_credentials("s2", "k9", "$7$hash2", at(5))
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e:?}");
    assert!(s
        .add_screen_credentials("ghost", "k9", "$7$x", at(5))
        .is_err());
    assert!(
        s.screen_keys().unwrap().is_empty(),
        "no key for a refused screen"
    );
    assert_eq!(s.broker_login("s2").unwrap(), None);

    s.add_screen_credentials("s1", "k1", "$7$hash1", at(5))
        .unwrap();
    assert_eq!(s.broker_login("s1").unwrap().as_deref(), Some("$7$hash1"));
    assert_eq!(s.screen_keys().unwrap()["s1"][0].public_hex, "k1");
    s.add_screen_credentials("s1", "k2", "$7$hash1b", at(6))
        .unwrap();
    assert_eq!(s.broker_login("s1").unwrap().as_deref(), Some("$7$hash1b"));
    assert_eq!(s.screen_keys().unwrap()["s1"].len(), 2);
    let all = s.broker_logins().unwrap();
    assert_eq!(
        all.into_iter().collect::<Vec<_>>(),
        [("s1".to_owned(), "$7$hash1b".to_owned())]
    );

    // Decommissioned later: its login no longer counts.
    let head = s.head().unwrap();
    s.commit(Commit {
        base: head,
        author: "ada".into(),
        at: at(7),
        comment: "s1 retired".into(),
        entities: vec![screen("s1", 1920, Some(at(7)))],
    })
    .unwrap()
    .unwrap();
    assert_eq!(s.broker_login("s1").unwrap(), None);
    assert!(s.broker_logins().unwrap().is_empty());
}

fn user(name: &str, token: &str) -> User {
    User {
        name: name.into(),
        roles: vec![Role::Staff, Role::Approver],
        token_sha256: token.into(),
        created_at: at(3),
        password_phc: None,
    }
}

fn session(user: &str, last_seen: i64) -> Session {
    Session {
        user: user.into(),
        csrf_token: format!("csrf-{user}"),
        created_at: at(0),
        last_seen: at(last_seen),
    }
}

pub(crate) fn users_tokens_and_passwords(s: &impl Backend) {
    assert!(s.users().unwrap().is_empty());
    let r1 = s.add_user(&user("zoe", "t-zoe"), "admin").unwrap();
    assert_eq!(r1.number, 1);
    assert_eq!(s.head().unwrap(), 1, "a user added is a revision");
    s.add_user(&user("ada", "t-ada"), "admin").unwrap();
    let e = s.add_user(&user("ada", "t-other"), "admin").unwrap_err();
    assert!(matches!(e, StoreError::Exists { .. }), "{e:?}");
    assert_eq!(
        s.revisions(0, 10).unwrap().len(),
        2,
        "a refusal logs nothing"
    );

    let names: Vec<String> = s.users().unwrap().into_iter().map(|u| u.name).collect();
    assert_eq!(names, ["ada", "zoe"]);
    assert_eq!(s.user("ada").unwrap(), Some(user("ada", "t-ada")));
    assert_eq!(s.user("nobody").unwrap(), None);
    assert_eq!(
        s.user_by_token("t-zoe").unwrap().map(|u| u.name).as_deref(),
        Some("zoe")
    );
    assert_eq!(s.user_by_token("t-nobody").unwrap(), None);

    s.put_session("sa", &session("ada", 1)).unwrap();
    s.put_session("sz", &session("zoe", 1)).unwrap();
    let e = s
        .set_password("nobody", "$argon2id$x", "admin", at(9))
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e:?}");
    let r = s
        .set_password("ada", "$argon2id$secret", "admin", at(9))
        .unwrap();
    assert_eq!(r.number, 3);
    assert!(
        !serde_json::to_string(&r).unwrap().contains("secret"),
        "the revision never holds the hash"
    );
    assert_eq!(
        s.user("ada").unwrap().unwrap().password_phc.as_deref(),
        Some("$argon2id$secret")
    );
    assert_eq!(s.session("sa").unwrap(), None, "ada's sessions ended");
    assert_eq!(s.session("sz").unwrap(), Some(session("zoe", 1)));
}

pub(crate) fn sessions_kept_ended_and_purged(s: &impl Backend) {
    assert_eq!(s.session("x").unwrap(), None);
    s.put_session("a", &session("ada", 10)).unwrap();
    s.put_session("b", &session("bob", 20)).unwrap();
    s.put_session("c", &session("cy", 30)).unwrap();
    assert_eq!(s.session("a").unwrap(), Some(session("ada", 10)));
    s.put_session("a", &session("ada", 40)).unwrap();
    assert_eq!(
        s.session("a").unwrap(),
        Some(session("ada", 40)),
        "replaced"
    );
    s.delete_session("c").unwrap();
    s.delete_session("never").unwrap();
    assert_eq!(s.session("c").unwrap(), None);
    assert_eq!(s.purge_sessions(at(25)).unwrap(), 1);
    assert_eq!(s.session("b").unwrap(), None);
    assert!(s.session("a").unwrap().is_some());
    assert_eq!(s.purge_sessions(at(25)).unwrap(), 0);
}

pub(crate) fn meta_settings(s: &impl Backend) {
    assert_eq!(s.meta("k").unwrap(), None);
    let bytes = [0u8, 255, 1, 2, 0];
    s.set_meta("k", &bytes).unwrap();
    assert_eq!(s.meta("k").unwrap().as_deref(), Some(&bytes[..]));
    s.set_meta("k", b"").unwrap();
    assert_eq!(s.meta("k").unwrap().as_deref(), Some(&b""[..]));
}

fn sha_of(data: &[u8]) -> Sha256 {
    use sha2::Digest;
    Sha256::parse(&hex::encode(sha2::Sha256::digest(data))).unwrap()
}

pub(crate) fn media_put_and_adopted(s: &impl Backend) {
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let sha = sha_of(&data);
    s.put_media(&sha, &data).unwrap();
    s.put_media(&sha, &data).unwrap();
    assert_eq!(std::fs::read(s.media_path(&sha)).unwrap(), data);

    let other = b"another file".to_vec();
    let other_sha = sha_of(&other);
    let upload = s.upload_dir().join("in-progress");
    std::fs::write(&upload, &other).unwrap();
    s.adopt_media(&other_sha, &upload).unwrap();
    assert!(!upload.exists(), "moved into place");
    assert_eq!(std::fs::read(s.media_path(&other_sha)).unwrap(), other);
    // Adopting what is already there drops the upload.
    std::fs::write(&upload, &other).unwrap();
    s.adopt_media(&other_sha, &upload).unwrap();
    assert!(!upload.exists());
    assert_eq!(std::fs::read(s.media_path(&other_sha)).unwrap(), other);

    let empty_sha = sha_of(b"");
    s.put_media(&empty_sha, b"").unwrap();
    assert_eq!(std::fs::read(s.media_path(&empty_sha)).unwrap(), b"");
}

fn rendition(source: &str, width: u32, fit: &str) -> StoredRendition {
    StoredRendition {
        source: source.into(),
        width,
        height: 100,
        fit: fit.into(),
        background: (fit == "fit").then(|| "#000000".into()),
        sha256: format!("{width:064x}"),
        bytes: u64::from(width),
        frame: None,
    }
}

pub(crate) fn renditions_by_source_size_and_fit(s: &impl Backend) {
    let (a, b) = ("a".repeat(64), "b".repeat(64));
    let made = [
        rendition(&a, 10, "fit"),
        rendition(&a, 20, "fill"),
        rendition(&a, 100, "fill"),
        rendition(&b, 30, "fit"),
    ];
    for r in made.iter().rev() {
        s.put_rendition(r).unwrap();
    }
    assert_eq!(s.rendition(&made[1].key()).unwrap(), Some(made[1].clone()));
    assert_eq!(s.rendition(&rendition(&a, 20, "fit").key()).unwrap(), None);
    // In key order (bytes: "100x…" before "10x…" before "20x…").
    let mut expected = made[..3].to_vec();
    expected.sort_by_key(StoredRendition::key);
    assert_eq!(s.renditions_of(&a).unwrap(), expected);
    assert_eq!(s.renditions_of(&b).unwrap(), made[3..].to_vec());
    assert!(s.renditions_of(&"c".repeat(64)).unwrap().is_empty());
}

pub(crate) fn renditions_finished_in_order(s: &impl Backend) {
    let (a, b) = ("a".repeat(64), "b".repeat(64));
    assert_eq!(s.last_finished_rendition().unwrap(), 0);
    assert!(s.finished_renditions(0, 10).unwrap().is_empty());
    // A still made while publishing is indexed, not numbered.
    s.put_rendition(&rendition(&a, 10, "fit")).unwrap();
    assert_eq!(s.last_finished_rendition().unwrap(), 0);

    let (one, two) = (rendition(&a, 20, "fill"), rendition(&b, 30, "fit"));
    assert_eq!(s.put_finished_rendition(&one).unwrap(), 1);
    assert_eq!(s.put_finished_rendition(&two).unwrap(), 2);
    assert_eq!(
        s.rendition(&two.key()).unwrap(),
        Some(two.clone()),
        "indexed"
    );
    assert_eq!(
        s.finished_renditions(0, 10).unwrap(),
        vec![(1, one.clone()), (2, two.clone())]
    );
    assert_eq!(s.finished_renditions(0, 1).unwrap(), vec![(1, one.clone())]);
    assert_eq!(
        s.finished_renditions(1, 10).unwrap(),
        vec![(2, two.clone())]
    );
    assert!(s.finished_renditions(2, 10).unwrap().is_empty());
    assert_eq!(s.last_finished_rendition().unwrap(), 2);

    // Made again (another file): a later number, and both name what is indexed now.
    let again = StoredRendition {
        sha256: "f".repeat(64),
        ..one.clone()
    };
    assert_eq!(s.put_finished_rendition(&again).unwrap(), 3);
    assert_eq!(
        s.finished_renditions(0, 10).unwrap(),
        vec![(1, again.clone()), (2, two), (3, again.clone())]
    );
    assert_eq!(s.rendition(&one.key()).unwrap(), Some(again));
    assert_eq!(s.last_finished_rendition().unwrap(), 3);
}
