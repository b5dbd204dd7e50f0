//! `signage store copy`, through the real binary: the Beijing store (with a user and a
//! changed catalogue) copied into an empty PostgreSQL database and back into a new data
//! directory reads the same through every command that reads a store; a copy into a
//! database that holds something, or from a directory without a store, is refused with a
//! message naming it. Needs PostgreSQL on 127.0.0.1:5432 (user `postgres`, trust auth;
//! `SIGNAGE_TEST_PG` overrides), where it makes and drops its own database.

use std::path::Path;

use tests::{beijing, signage_ok as ok, signage_output as signage};

const FROM: &str = "2023-12-20T06:00:00+08:00";
const TO: &str = "2023-12-20T07:00:00+08:00";

/// A database of its own, dropped at the end.
struct Db {
    server: String,
    name: String,
}

impl Db {
    fn new(tag: &str) -> Db {
        let server = std::env::var("SIGNAGE_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let name = format!("signage_test_cli_{tag}_{}", std::process::id());
        let mut admin = postgres::Client::connect(&format!("{server}/postgres"), postgres::NoTls)
            .expect("PostgreSQL on 127.0.0.1:5432 (needed by this test)");
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            admin.batch_execute(&sql).expect("create the test database");
        }
        Db { server, name }
    }

    fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Ok(mut admin) =
            postgres::Client::connect(&format!("{}/postgres", self.server), postgres::NoTls)
        {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}

/// What the read commands print for the store in `dir`.
fn reads(dir: &Path) -> Vec<String> {
    let d = s(dir);
    vec![
        ok(&["changes", "--data-dir", d]),
        ok(&[
            "plan",
            "--data-dir",
            d,
            "--from",
            FROM,
            "--to",
            TO,
            "--format",
            "csv",
        ]),
        ok(&["emergency", "list", "--data-dir", d]),
    ]
}

#[test]
fn a_store_copied_into_postgresql_and_back_reads_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    ok(&["import", s(&beijing()), "--data-dir", s(&a)]);
    ok(&[
        "users",
        "add",
        "ada",
        "--role",
        "staff",
        "--data-dir",
        s(&a),
    ]);
    let before = reads(&a);
    assert!(before[0].contains("user ada added"), "{}", before[0]);

    let db = Db::new("roundtrip");
    let out = ok(&["store", "copy", "--from", s(&a), "--to", &db.url()]);
    assert!(out.contains("copied 162 entities, 2 revisions"), "{out}");
    assert!(out.contains("46 media files"), "{out}");
    assert!(
        out.contains("not copied: the proof-of-play ledger"),
        "{out}"
    );
    let out = ok(&["store", "copy", "--from", &db.url(), "--to", s(&b)]);
    assert!(out.contains("copied 162 entities, 2 revisions"), "{out}");

    assert_eq!(reads(&b), before);
    // Media byte for byte (the plan above only names them).
    for entry in std::fs::read_dir(a.join("media")).unwrap() {
        let entry = entry.unwrap();
        let copied = std::fs::read(b.join("media").join(entry.file_name())).unwrap();
        assert_eq!(copied, std::fs::read(entry.path()).unwrap());
    }

    // Again into the same database: refused, naming it; the copy there is untouched.
    let again = signage(&["store", "copy", "--from", s(&a), "--to", &db.url()]);
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains(&db.name) && stderr.contains("already exists"),
        "{stderr}"
    );
    let c = tmp.path().join("c");
    ok(&["store", "copy", "--from", &db.url(), "--to", s(&c)]);
    assert_eq!(reads(&c), before);
}

#[test]
fn a_copy_from_nothing_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::new("nothing");
    let out = signage(&[
        "store",
        "copy",
        "--from",
        s(&tmp.path().join("none")),
        "--to",
        &db.url(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no store in"), "{stderr}");

    // An empty database is no store to copy from either (and is left without a schema).
    let out = signage(&[
        "store",
        "copy",
        "--from",
        &db.url(),
        "--to",
        s(&tmp.path().join("x")),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no store in") && stderr.contains(&db.name),
        "{stderr}"
    );
}
