//! The server's store for one test, on the backend `SIGNAGE_TEST_STORE` names: unset (or
//! `redb`), the embedded store in the test's data directory; `postgres`, a fresh database
//! of its own on the PostgreSQL at 127.0.0.1:5432 (user `postgres`, trust auth;
//! `SIGNAGE_TEST_PG` overrides the server's URL, without a database name), dropped when
//! the [`TestStore`] is. Tests that run `signage` as a process pass [`TestStore::args`]
//! wherever they pass `--data-dir`, so the process opens the same store.

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
        TestStore {
            db: Some(Database { server, name }),
        }
    }

    /// The database's URL, when the store is PostgreSQL.
    pub fn url(&self) -> Option<String> {
        self.db
            .as_ref()
            .map(|db| format!("{}/{}", db.server, db.name))
    }

    /// What `signage` takes beside `--data-dir` to open this store: `--store URL`, or
    /// nothing for the data directory's own.
    pub fn args(&self) -> Vec<String> {
        self.url()
            .map(|url| vec!["--store".to_owned(), url])
            .unwrap_or_default()
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
