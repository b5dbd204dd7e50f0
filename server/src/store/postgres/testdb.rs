//! A database of its own for one test, on the PostgreSQL at 127.0.0.1:5432 (user
//! `postgres`, trust auth; `SIGNAGE_TEST_PG` overrides the server's URL, without a
//! database name), created with a unique name and dropped when the test ends.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use ::postgres::{Client, NoTls};

use super::PgStore;
use crate::store::{OpenMode, StoreError};

#[derive(Debug)]
pub(crate) struct TestDb {
    server: String,
    name: String,
}

fn server() -> String {
    std::env::var("SIGNAGE_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

fn admin(server: &str) -> Client {
    Client::connect(&format!("{server}/postgres"), NoTls)
        .unwrap_or_else(|e| panic!("PostgreSQL at {server} (needed by this test): {e}"))
}

impl TestDb {
    pub(crate) fn new() -> TestDb {
        static N: AtomicU32 = AtomicU32::new(0);
        let mut random = [0u8; 4];
        getrandom::getrandom(&mut random).expect("random bytes");
        let name = format!(
            "signage_test_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            hex::encode(random)
        );
        let server = server();
        admin(&server)
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create the test database");
        TestDb { server, name }
    }

    pub(crate) fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }

    pub(crate) fn try_open(&self, dir: &Path, mode: OpenMode) -> Result<PgStore, StoreError> {
        PgStore::open(&self.url(), dir, mode)
    }

    pub(crate) fn open(&self, dir: &Path, mode: OpenMode) -> PgStore {
        self.try_open(dir, mode).expect("open the PostgreSQL store")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let dropped = admin(&self.server).batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
        if let Err(e) = dropped {
            eprintln!("test database {} left behind: {e}", self.name);
        }
    }
}
