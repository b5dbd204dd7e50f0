//! The server's store for one test, on the backend `SIGNAGE_TEST_STORE` names: unset (or
//! `redb`), the embedded store in the test's data directory; `postgres`, a fresh database
//! of its own on the PostgreSQL at 127.0.0.1:5432 (user `postgres`, trust auth;
//! `SIGNAGE_TEST_PG` overrides the server's URL, without a database name), dropped when
//! the [`TestStore`] is. Tests that run `signage` as a process pass [`TestStore::args`]
//! wherever they pass `--data-dir` (or build the command line with [`TestStore::with`]),
//! `signage serve` included, so every process opens the same store.

use std::path::Path;

use server::store::{OpenMode, SharedStore};

/// The variable that picks the backend of the end-to-end tests.
pub const BACKEND_VAR: &str = "SIGNAGE_TEST_STORE";

/// Whether this run's tests keep the server's state in PostgreSQL.
pub fn on_postgres() -> bool {
    match std::env::var(BACKEND_VAR) {
        Ok(v) if v == "postgres" => true,
        Ok(v) if v.is_empty() || v == "redb" => false,
        Ok(v) => panic!("{BACKEND_VAR}={v:?}: say \"postgres\" or \"redb\" (or leave it unset)"),
        Err(_) => false,
    }
}

/// One test's store: a database of its own on PostgreSQL, or the data directory's.
#[derive(Debug)]
pub struct TestStore {
    db: Option<Database>,
}

#[derive(Debug)]
struct Database {
    server: String,
    name: String,
    /// `server/name`.
    url: String,
}

fn pg_server() -> String {
    std::env::var("SIGNAGE_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

fn admin(server: &str) -> postgres::Client {
    postgres::Client::connect(&format!("{server}/postgres"), postgres::NoTls)
        .unwrap_or_else(|e| panic!("PostgreSQL at {server} ({BACKEND_VAR}=postgres): {e}"))
}

impl TestStore {
    /// The store `SIGNAGE_TEST_STORE` asks for (a fresh database for `postgres`).
    pub fn new() -> TestStore {
        if !on_postgres() {
            return TestStore { db: None };
        }
        TestStore::postgres()
    }

    /// A fresh database of its own, whatever `SIGNAGE_TEST_STORE` says (the replica tests).
    pub fn postgres() -> TestStore {
        let mut random = [0u8; 6];
        getrandom::getrandom(&mut random).expect("random bytes");
        let name = format!(
            "signage_e2e_{}_{}",
            std::process::id(),
            random
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let server = pg_server();
        // (On a thread of its own: async tests make their store too.)
        off_runtime(|| admin(&server).batch_execute(&format!("CREATE DATABASE {name}")))
            .expect("create the test's database");
        let url = format!("{server}/{name}");
        TestStore {
            db: Some(Database { server, name, url }),
        }
    }

    /// The database's URL, when the store is PostgreSQL.
    pub fn url(&self) -> Option<String> {
        self.db.as_ref().map(|db| db.url.clone())
    }

    /// What `signage` takes beside `--data-dir` to open this store: `--store URL`, or
    /// nothing for the data directory's own.
    pub fn args(&self) -> Vec<String> {
        self.url()
            .map(|url| vec!["--store".to_owned(), url])
            .unwrap_or_default()
    }

    /// `args` followed by [`args`](Self::args): a `signage` command line that opens this
    /// store beside the `--data-dir` it names.
    pub fn with<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = args.to_vec();
        if let Some(db) = &self.db {
            all.extend(["--store", db.url.as_str()]);
        }
        all
    }

    /// The hashes of the media files the database holds, sorted (`None` on redb, whose
    /// media are the data directory's files): what a test that says "nothing stored"
    /// checks besides the local copies.
    pub fn stored_media(&self) -> Option<Vec<String>> {
        let db = self.db.as_ref()?;
        let rows = off_runtime(|| {
            postgres::Client::connect(&db.url, postgres::NoTls)
                .and_then(|mut c| c.query("SELECT sha256 FROM media ORDER BY sha256", &[]))
        })
        .expect("list the database's media");
        Some(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Whether the database has any table (`None` on redb): a read must not make the
    /// schema in an empty database.
    pub fn has_tables(&self) -> Option<bool> {
        let db = self.db.as_ref()?;
        let row = off_runtime(|| {
            postgres::Client::connect(&db.url, postgres::NoTls).and_then(|mut c| {
                c.query_one(
                    "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
                    &[],
                )
            })
        })
        .expect("list the database's tables");
        Some(row.get::<_, i64>(0) > 0)
    }

    /// Opens the store with `data` as its data directory.
    pub fn open(&self, data: &Path, mode: OpenMode) -> SharedStore {
        let url = self.url();
        off_runtime(|| server::store::open_in(data, url.as_deref(), mode))
            .expect("open the test's store")
    }
}

impl Default for TestStore {
    fn default() -> Self {
        TestStore::new()
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        let Some(db) = &self.db else { return };
        let dropped = off_runtime(|| {
            admin(&db.server)
                .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db.name))
        });
        if let Err(e) = dropped {
            eprintln!("test database {} left behind: {e}", db.name);
        }
    }
}

/// Runs `f` on a thread of its own and returns what it returns: store calls made from a
/// test's async code (PostgreSQL's synchronous client may not block a runtime's thread).
pub fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}
