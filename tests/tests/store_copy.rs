//! `signage store copy`, through the real binary: the Beijing store after an hour of three
//! real agents on the virtual clock (so documents with planned counts, and a ledger of
//! signed batches), with a user added, copied into an empty PostgreSQL database and back
//! into a new data directory reads the same through every command that reads a store
//! (the change log, the plan, plays, planned against delivered, the audit) and holds the
//! same planned counts; a copy into a database that holds something, or from a directory
//! without a store, is refused with a message naming it. Needs PostgreSQL on
//! 127.0.0.1:5432 (user `postgres`, trust auth; `SIGNAGE_TEST_PG` overrides), where it
//! makes and drops its own database, and the `signage-agent` binary.

use std::path::Path;

use chrono::{DateTime, Utc};
use server::store::{OpenMode, PlannedPart};
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

const SCREENS: [&str; 3] = [
    "bj-metro-xidan-s1",
    "bj-bus-daxing-huangcun-s1",
    "bj-community-daxing-xihongmen-s1",
];

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The Beijing scenario in `dir` after three agents played 06:00-07:00 on the virtual
/// clock (the simulation imports it).
fn simulated(dir: &Path) {
    let mut opts = server::sim::SimOptions::new(
        beijing(),
        t(FROM),
        t(TO),
        dir.to_owned(),
        tests::agent_bin(),
    );
    opts.screens = SCREENS.iter().map(|s| s.to_string()).collect();
    opts.topics = playlists::wire::Topics::new(&format!("store-copy-{}/v1", std::process::id()));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let outcome = runtime
        .block_on(server::sim::simulate(
            opts,
            tokio_util::sync::CancellationToken::new(),
        ))
        .expect("simulation");
    assert!(outcome.delivered > 0 && outcome.ledger_equals_plan);
}

/// The planned counts the store in `dir` holds: every part with its plan's counts.
fn planned(dir: &Path) -> Vec<(PlannedPart, Option<server::store::PlanCounts>)> {
    let store = server::store::open(dir, OpenMode::Existing).unwrap();
    let ps = store.planned_store().expect("redb keeps planned counts");
    ps.planned_parts(None, t("2000-01-01T00:00:00Z"), t("2100-01-01T00:00:00Z"))
        .unwrap()
        .into_iter()
        .map(|p| {
            let counts = ps.plan_counts(p.plan, i64::MIN, i64::MAX).unwrap();
            (p, counts)
        })
        .collect()
}

/// What the read commands print for the store in `dir`.
fn reads(dir: &Path) -> Vec<String> {
    let d = s(dir);
    let report = |what: &str| {
        ok(&[
            "report",
            what,
            "--data-dir",
            d,
            "--from",
            FROM,
            "--to",
            TO,
            "--format",
            "csv",
        ])
    };
    vec![
        report("plays"),
        report("venues"),
        report("campaigns"),
        ok(&["audit", "verify", "--data-dir", d]),
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
    simulated(&a);
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
    assert!(before[4].contains("user ada added"), "{}", before[4]);
    assert_eq!(before[0].lines().count(), 601, "a header and 600 plays");
    assert!(before[3].contains("audited 3 screens"), "{}", before[3]);
    assert!(before[3].contains("ledger verified"), "{}", before[3]);
    let planned_before = planned(&a);
    assert!(!planned_before.is_empty());

    let db = Db::new("roundtrip");
    let out = ok(&["store", "copy", "--from", s(&a), "--to", &db.url()]);
    assert!(out.contains("copied 162 entities, "), "{out}");
    assert!(out.contains("46 media files"), "{out}");
    assert!(out.contains("600 records)"), "{out}");
    assert!(
        out.contains("not copied: the data directory's files"),
        "{out}"
    );
    let back = ok(&["store", "copy", "--from", &db.url(), "--to", s(&b)]);
    let counts = |out: &str| out.split(" from ").next().unwrap_or_default().to_owned();
    assert_eq!(counts(&back), counts(&out));
    // The server key stays in the data directory: the operator copies it (reports check
    // the documents' signatures with it).
    let key = |dir: &Path| dir.join("server.key");
    std::fs::copy(key(&a), key(&b)).unwrap();

    assert_eq!(reads(&b), before);
    assert_eq!(planned(&b), planned_before);
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
    std::fs::copy(key(&a), key(&c)).unwrap();
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
