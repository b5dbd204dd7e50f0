//! The PostgreSQL store: everything the server stores in one database that several server
//! replicas can share. The only module that touches PostgreSQL. Each component trait of
//! [`crate::store`] is implemented here (`catalogue.rs`, `documents.rs`, `planned.rs`,
//! `users.rs`, `media.rs`), the proof-of-play ledger in `ledger/`, and so
//! [`Store`](super::Store). The local directory holds what stays per machine: the server's
//! key, broker secret and admin token (replicas are given copies of the same files),
//! uploads in progress and the local copy of the media.
//!
//! The traits are synchronous and called from blocking threads, so this uses the
//! synchronous `postgres` client with an `r2d2` pool (health-checked connections, a
//! bounded wait for one when all are busy) rather than an async client behind a runtime.
//!
//! Tables (see `schema/`): each row keeps its value as the serde JSON of its type, exactly
//! as the redb store writes it (JSONB; timestamps inside stay exact to the nanosecond),
//! beside the columns it is found by. The change log and the catalogue's head are
//! serialised through one row, `catalogue_head`, locked `FOR UPDATE` by every writer of
//! the change log: a commit whose base is no longer the head is refused there.
//!
//! Media bytes are in the database (`media`, `media_chunks`), so replicas share them; each
//! store also keeps a local copy under `DIR/media/` because the server reads media as
//! files ([`MediaStore::media_path`](super::MediaStore::media_path)).
//! [`PgStore::local_media`] fetches a file another replica stored.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ::postgres::error::SqlState;
use ::postgres::{Client, NoTls};
use r2d2_postgres::r2d2::{Pool, PooledConnection};
use r2d2_postgres::PostgresConnectionManager;
use serde::de::DeserializeOwned;

use playlists::wire::PlayRecord;

use super::ledger::{ArchiveReport, ArchiveSummary};
use super::{
    AuditReport, Incoming, KeysOf, LedgerCounts, LedgerError, LedgerStore, OpenMode, Outcome,
    Query, Row, Store, StoreError,
};

mod catalogue;
mod documents;
mod dump;
pub mod lease;
mod ledger;
mod media;
mod migrate;
mod planned;
mod users;

#[cfg(test)]
pub(crate) mod testdb;

pub use ledger::PgLedger;
pub use media::CHUNK_SIZE;

/// The connection manager of the store's pool (and of [`PgLedger::new`]'s).
pub type Manager = PostgresConnectionManager<NoTls>;

/// How many connections one store holds at most.
const POOL_SIZE: u32 = 8;
/// How long a call waits for a connection before failing.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The PostgreSQL store of one database, with a local directory for uploads in progress
/// and a copy of the media.
#[derive(Clone)]
pub struct PgStore {
    /// The pool and the ledger on it, shared by every clone.
    conns: Arc<Connections>,
    dir: PathBuf,
    /// The database as shown in messages (no password).
    shown: String,
    /// How to connect: the publisher lease holds a session of its own.
    config: Arc<::postgres::Config>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("database", &self.shown)
            .field("dir", &self.dir)
            .finish()
    }
}

/// Whether `location` names a PostgreSQL database rather than a directory.
pub fn is_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// A PostgreSQL URL as shown in messages and logs: user, host, port and database, never
/// the password (a URL that does not parse is shown as such, not quoted).
pub fn shown_url(url: &str) -> String {
    match ::postgres::Config::from_str(url) {
        Ok(config) => shown(&config),
        Err(_) => "(not a PostgreSQL URL)".to_owned(),
    }
}

/// `url` as shown in messages: user, host, port and database, never the password.
fn shown(config: &::postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(::postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(::postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`) and brings its
    /// schema up to date; `dir` holds uploads in progress and the local copy of the media.
    /// With [`OpenMode::Existing`], a database without the schema is
    /// [`StoreError::Missing`] and is left untouched.
    pub fn open(url: &str, dir: &Path, mode: OpenMode) -> Result<PgStore, StoreError> {
        let config = ::postgres::Config::from_str(url).map_err(|e| {
            StoreError::Backend(
                format!(
                    "{url:?} is not a PostgreSQL URL (postgres://user@host:port/database): {e}"
                )
                .into(),
            )
        })?;
        let shown = shown(&config);
        // One connection first: its error names the problem (a refused connection, an
        // unknown database, a password) at once, where the pool would wait and generalise.
        drop(config.connect(NoTls).map_err(|e| {
            StoreError::Backend(format!("cannot connect to {shown}: {}", describe(&e)).into())
        })?);
        let pool = Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(1))
            .connection_timeout(CONNECT_TIMEOUT)
            .build(PostgresConnectionManager::new(config.clone(), NoTls))
            .map_err(|e| StoreError::Backend(format!("cannot connect to {shown}: {e}").into()))?;
        let io = |source| StoreError::Io {
            path: dir.to_owned(),
            source,
        };
        let store = PgStore {
            conns: Arc::new(Connections {
                ledger: Some(PgLedger::new(pool.clone(), shown.clone())),
                pool: Some(pool),
                snapshots: Default::default(),
                copying: KeyedLocks::default(),
                copies: Default::default(),
            }),
            dir: dir.to_owned(),
            shown,
            config: Arc::new(config),
        };
        {
            let mut client = store.client()?;
            if mode == OpenMode::Existing && !migrate::has_schema(&mut client)? {
                return Err(StoreError::Missing {
                    path: PathBuf::from(&store.shown),
                });
            }
            migrate::migrate(&mut client)?;
        }
        std::fs::create_dir_all(dir.join("media")).map_err(io)?;
        std::fs::create_dir_all(dir.join("uploads")).map_err(io)?;
        Ok(store)
    }

    /// The database as shown in messages (no password).
    pub fn database(&self) -> &str {
        &self.shown
    }

    /// A connection from the pool.
    fn client(&self) -> Result<PooledConnection<Manager>, StoreError> {
        let Some(pool) = &self.conns.pool else {
            return Err(StoreError::Backend(
                format!("{} is closed", self.shown).into(),
            ));
        };
        pool.get().map_err(|e| {
            StoreError::Backend(format!("no connection to {}: {e}", self.shown).into())
        })
    }

    /// The schema versions applied, oldest first.
    pub fn schema_versions(&self) -> Result<Vec<i32>, StoreError> {
        migrate::applied(&mut *self.client()?)
    }

    /// Runs `f` on a raw connection (tests damage stored data with it).
    #[cfg(test)]
    pub(crate) fn with_client<T>(&self, f: impl FnOnce(&mut Client) -> T) -> T {
        f(&mut self.client().expect("a connection"))
    }
}

/// A store's connections and the ledger that uses them, closed when the last clone of the
/// store (or of its ledger) goes. The synchronous client closes a connection by blocking on
/// a runtime of its own, which a thread driving an async runtime may not do: there they
/// are closed on a thread of their own.
struct Connections {
    pool: Option<Pool<Manager>>,
    ledger: Option<PgLedger>,
    /// The last snapshot read, while the head stays.
    snapshots: super::SnapshotCache,
    /// A lock per media file being copied from the database (one copy at a time).
    copying: KeyedLocks,
    /// Local copies made from the database.
    copies: std::sync::atomic::AtomicU64,
}

/// A lock per key, kept while someone holds or waits for it.
#[derive(Debug, Default)]
struct KeyedLocks(std::sync::Mutex<HashMap<String, std::sync::Weak<std::sync::Mutex<()>>>>);

impl KeyedLocks {
    /// The lock of `key` (the same one for every caller while any of them holds it).
    fn one(&self, key: &str) -> Arc<std::sync::Mutex<()>> {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lock) = all.get(key).and_then(std::sync::Weak::upgrade) {
            return lock;
        }
        // Forget the keys nobody holds any more before adding one.
        all.retain(|_, w| w.strong_count() > 0);
        let lock = Arc::new(std::sync::Mutex::new(()));
        all.insert(key.to_owned(), Arc::downgrade(&lock));
        lock
    }
}

impl Drop for Connections {
    fn drop(&mut self) {
        let (pool, ledger) = (self.pool.take(), self.ledger.take());
        if tokio::runtime::Handle::try_current().is_ok() {
            let _ = std::thread::spawn(move || drop((ledger, pool))).join();
        }
    }
}

/// The ledger as [`Store::ledger`] hands it out: it keeps the store's connections open.
struct SharedLedger(Arc<Connections>);

impl std::fmt::Debug for SharedLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0.ledger {
            Some(l) => l.fmt(f),
            None => f.write_str("PgLedger (closed)"),
        }
    }
}

impl SharedLedger {
    fn get(&self) -> Result<&PgLedger, LedgerError> {
        self.0
            .ledger
            .as_ref()
            .ok_or_else(|| LedgerError::Io("the PostgreSQL ledger is closed".into()))
    }
}

impl LedgerStore for SharedLedger {
    fn ingest(
        &self,
        batches: &[Incoming],
        key_of: KeysOf<'_>,
    ) -> Result<Vec<Outcome>, LedgerError> {
        off_worker(|| self.get()?.ingest(batches, key_of))
    }

    fn delivered(&self, q: &Query) -> Result<Vec<Row>, LedgerError> {
        off_worker(|| self.get()?.delivered(q))
    }

    fn plays(
        &self,
        q: &Query,
        f: &mut dyn FnMut(&PlayRecord) -> Result<(), LedgerError>,
    ) -> Result<u64, LedgerError> {
        off_worker(|| self.get()?.plays(q, f))
    }

    fn audit(&self, key_of: KeysOf<'_>) -> Result<AuditReport, LedgerError> {
        off_worker(|| self.get()?.audit(key_of))
    }

    fn counts(&self) -> Result<LedgerCounts, LedgerError> {
        off_worker(|| self.get()?.counts())
    }

    fn archive(
        &self,
        dir: &Path,
        before: chrono::NaiveDate,
    ) -> Result<ArchiveSummary, LedgerError> {
        off_worker(|| self.get()?.archive(dir, before))
    }

    fn verify_archive(
        &self,
        dir: &Path,
        key_of: KeysOf<'_>,
        plays: &mut dyn FnMut(&PlayRecord) -> Result<(), LedgerError>,
    ) -> Result<ArchiveReport, LedgerError> {
        off_worker(|| self.get()?.verify_archive(dir, key_of, plays))
    }

    fn batches(&self, f: &mut crate::store::ledger::BatchSink<'_>) -> Result<u64, LedgerError> {
        off_worker(|| self.get()?.batches(f))
    }

    fn batch_sizes(&self, screen: &str) -> Result<BTreeMap<u64, u64>, LedgerError> {
        off_worker(|| self.get()?.batch_sizes(screen))
    }
}

impl Store for PgStore {
    fn ledger(&self) -> Arc<dyn LedgerStore> {
        Arc::new(SharedLedger(self.conns.clone()))
    }

    /// The local directory: the server's key and tokens, uploads in progress and the
    /// local copy of the media.
    fn dir(&self) -> &Path {
        &self.dir
    }

    /// A PostgreSQL advisory lock on a session of its own: replicas of one database take
    /// turns publishing, and a dead holder's session lets go.
    fn publisher_lease(&self) -> Box<dyn super::lease::PublisherLease> {
        Box::new(lease::PgLease::new(&self.config))
    }
}

/// Runs `f`, which blocks on PostgreSQL, where blocking is allowed. The synchronous client
/// runs a runtime of its own and panics on a worker thread of another: the server's async
/// code calls the store directly (an HTTP extractor reading a user, say), which redb
/// allows. On a worker of a multi-threaded runtime `f` runs in `block_in_place` (the worker
/// hands its tasks to another thread and leaves the runtime meanwhile); elsewhere (a plain
/// thread, a blocking-pool thread) it just runs.
pub(crate) fn off_worker<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

impl From<::postgres::Error> for StoreError {
    fn from(e: ::postgres::Error) -> Self {
        StoreError::Backend(describe(&e).into())
    }
}

/// What PostgreSQL said, in full: the server's message and code, or the client's error
/// with its causes (`postgres::Error` alone says only "db error").
fn describe(e: &::postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            text.push_str(&format!(": {detail}"));
        }
        return text;
    }
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

/// Whether `e` is a unique-key violation (a row that already exists).
fn is_unique_violation(e: &::postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// A stored JSON value as `T`; one that does not fit is [`StoreError::Corrupt`] naming it.
/// Parsed straight from the column's text (not through a `serde_json::Value` first: half
/// the cost of reading a city's catalogue or planned counts).
fn decode<T: DeserializeOwned>(
    what: impl Fn() -> String,
    value: JsonText<'_>,
) -> Result<T, StoreError> {
    serde_json::from_slice(value.0).map_err(|e| StoreError::Corrupt {
        what: what(),
        problem: e.to_string(),
    })
}

/// A `JSONB` (or `JSON`) column's text, borrowed from its row.
pub(super) struct JsonText<'a>(&'a [u8]);

impl<'a> ::postgres::types::FromSql<'a> for JsonText<'a> {
    fn from_sql(
        ty: &::postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        if *ty == ::postgres::types::Type::JSON {
            return Ok(JsonText(raw));
        }
        // JSONB's binary form: a format version (1), then the text.
        match raw.split_first() {
            Some((1, text)) => Ok(JsonText(text)),
            _ => Err("unsupported JSONB format version".into()),
        }
    }

    fn accepts(ty: &::postgres::types::Type) -> bool {
        matches!(
            *ty,
            ::postgres::types::Type::JSON | ::postgres::types::Type::JSONB
        )
    }
}

fn encode<T: serde::Serialize>(value: &T) -> serde_json::Value {
    // Our own plain data types: serialising them cannot fail.
    serde_json::to_value(value).unwrap_or_default()
}

/// A count or number for a BIGINT column; PostgreSQL has no unsigned 64-bit integer.
fn to_i64(n: u64, what: impl Fn() -> String) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| {
        StoreError::Backend(
            format!("{} is {n}, above what PostgreSQL keeps (2^63-1)", what()).into(),
        )
    })
}

/// A stored BIGINT that must not be negative.
fn to_u64(n: i64, what: impl Fn() -> String) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt {
        what: what(),
        problem: format!("{n} is negative"),
    })
}

/// Runs `f` in a transaction that sees one snapshot of the database (reads that must
/// agree with each other).
fn read_snapshot<T>(
    client: &mut Client,
    f: impl FnOnce(&mut ::postgres::Transaction<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut tx = client
        .build_transaction()
        .isolation_level(::postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    let out = f(&mut tx)?;
    tx.commit()?;
    Ok(out)
}

#[cfg(test)]
mod tests;
