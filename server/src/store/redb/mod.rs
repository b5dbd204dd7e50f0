//! The embedded store: one redb file, `DATA_DIR/signage.redb`, held by one process, with
//! the media beside it in `DATA_DIR/media/` (content-addressed files). The only module
//! that touches redb.
//!
//! | table          | key                      | value                                         |
//! |----------------|--------------------------|-----------------------------------------------|
//! | `venues` …     | entity id                | the entity as JSON (`venues`, `screens`, `creatives`, `campaigns`, `emergencies`) |
//! | `revisions`    | revision number          | the [`Revision`] as JSON                      |
//! | `published`    | screen id                | the latest [`Published`] as JSON              |
//! | `documents`    | (screen id, version)     | the [`IssuedDocument`] as JSON                |
//! | `screen_keys`  | screen id                | JSON list of [`ScreenKey`] (a bare hex key in old stores) |
//! | `broker_logins`| screen id                | broker password hash (`$7$…`, Mosquitto's format) |
//! | `users`        | user name                | the [`User`] as JSON                          |
//! | `user_tokens`  | token SHA-256 (hex)      | user name                                     |
//! | `sessions`     | session id SHA-256 (hex) | the [`Session`] as JSON                       |
//! | `meta`         | key                      | bytes                                         |
//! | `renditions`   | source SHA-256/size/fit  | the [`StoredRendition`](super::StoredRendition) as JSON |
//! | `planned_parts`| (screen id, from µs)     | the [`PlannedPart`](super::PlannedPart) as JSON |
//! | `planned_plans`| plan id                  | the [`PlanCounts`](super::PlanCounts) as JSON |
//! | `pop_*`        | see `ledger/`            |                                               |
//!
//! The change log also holds event entries (logins, refusals) that change no entity; the
//! catalogue's head is therefore kept apart (`meta` key `catalogue_head`: the last entry
//! that is not an event), so that an event never makes a pending commit conflict.
//!
//! Stores written before entities existed kept whole scenario files in `scenarios`: they
//! are migrated into entities (one revision by `migration`) when opened.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};
use serde::de::DeserializeOwned;

use playlists::Sha256;

use super::{
    BrokerLoginStore, CatalogueStore, Commit, DocumentStore, Entity, EntityKind, EventKind,
    IssuedDocument, KeyStore, LedgerStore, MediaStore, MetaStore, OpenMode, Published, Revision,
    ScreenEntity, ScreenKey, Snapshot, Store, StoreError,
};
use crate::store::ChangeRecord;

mod dump;
mod guard;
pub mod ledger;
mod migrate;
mod planned;
mod renditions;
mod users;

const VENUES: TableDefinition<&str, &[u8]> = TableDefinition::new("venues");
const SCREENS: TableDefinition<&str, &[u8]> = TableDefinition::new("screens");
const CREATIVES: TableDefinition<&str, &[u8]> = TableDefinition::new("creatives");
const CAMPAIGNS: TableDefinition<&str, &[u8]> = TableDefinition::new("campaigns");
const EMERGENCIES: TableDefinition<&str, &[u8]> = TableDefinition::new("emergencies");
const REVISIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("revisions");
const PUBLISHED: TableDefinition<&str, &[u8]> = TableDefinition::new("published");
const DOCUMENTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("documents");
const SCREEN_KEYS: TableDefinition<&str, &str> = TableDefinition::new("screen_keys");
const BROKER_LOGINS: TableDefinition<&str, &str> = TableDefinition::new("broker_logins");
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
const USER_TOKENS: TableDefinition<&str, &str> = TableDefinition::new("user_tokens");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
/// The `meta` key of the catalogue's head (u64, big-endian).
const CATALOGUE_HEAD: &str = "catalogue_head";
/// The pre-entity format: whole scenarios by name (read only, for migration).
const SCENARIOS: TableDefinition<&str, &[u8]> = TableDefinition::new("scenarios");

/// The file name inside the data directory.
pub const FILE: &str = "signage.redb";

fn backend(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Backend(Box::new(e.into()))
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                backend(e)
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

fn table_of(kind: EntityKind) -> TableDefinition<'static, &'static str, &'static [u8]> {
    match kind {
        EntityKind::Venue => VENUES,
        EntityKind::Screen => SCREENS,
        EntityKind::Creative => CREATIVES,
        EntityKind::Campaign => CAMPAIGNS,
        EntityKind::Emergency => EMERGENCIES,
        EntityKind::User => USERS,
    }
}

fn decode<T: DeserializeOwned>(what: impl Fn() -> String, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        what: what(),
        problem: e.to_string(),
    })
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Our own plain data types: serialising them cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// The redb store of one data directory.
#[derive(Clone)]
pub struct RedbStore {
    db: Arc<Database>,
    dir: PathBuf,
    ledger: Arc<ledger::Ledger>,
    /// The publisher lease among the servers of this process sharing this store.
    publisher: super::lease::LocalLeases,
    /// The last snapshot read, while the head stays.
    snapshots: Arc<super::SnapshotCache>,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore").field("dir", &self.dir).finish()
    }
}

/// Opens a redb file, creating it atomically: a crash during the very first create leaves
/// only a temporary file behind, never a database that cannot be opened.
fn open_redb(path: &Path, dir: &Path, mode: OpenMode) -> Result<Database, StoreError> {
    let open_err = |e: redb::DatabaseError| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Held {
            path: dir.to_owned(),
        },
        other => StoreError::Corrupt {
            what: format!("store file {}", path.display()),
            problem: other.to_string(),
        },
    };
    if path.exists() {
        return Database::open(path).map_err(open_err);
    }
    if mode == OpenMode::Existing {
        return Err(StoreError::Missing {
            path: dir.to_owned(),
        });
    }
    let tmp = path.with_extension("redb.tmp");
    let _ = std::fs::remove_file(&tmp);
    drop(Database::create(&tmp).map_err(open_err)?);
    std::fs::rename(&tmp, path).map_err(|source| StoreError::Io {
        path: path.to_owned(),
        source,
    })?;
    Database::open(path).map_err(open_err)
}

impl RedbStore {
    /// Opens the store in `dir`; with [`OpenMode::Create`] creates it when absent. A
    /// damaged file is [`StoreError::Corrupt`] naming it, never a panic.
    pub fn open(dir: &Path, mode: OpenMode) -> Result<RedbStore, StoreError> {
        let file = dir.join(FILE);
        guard::guard(
            || RedbStore::open_unguarded(dir, mode),
            |problem| StoreError::Corrupt {
                what: format!("store file {}", file.display()),
                problem,
            },
        )
    }

    fn open_unguarded(dir: &Path, mode: OpenMode) -> Result<RedbStore, StoreError> {
        if mode == OpenMode::Existing && !dir.join(FILE).exists() {
            return Err(StoreError::Missing {
                path: dir.to_owned(),
            });
        }
        let io = |source| StoreError::Io {
            path: dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir.join("media")).map_err(io)?;
        std::fs::create_dir_all(dir.join("uploads")).map_err(io)?;
        let db = Arc::new(open_redb(&dir.join(FILE), dir, mode)?);
        let tx = db.begin_write()?;
        for t in [
            VENUES,
            SCREENS,
            CREATIVES,
            CAMPAIGNS,
            EMERGENCIES,
            PUBLISHED,
            USERS,
            META,
            SESSIONS,
            renditions::RENDITIONS,
        ] {
            tx.open_table(t)?;
        }
        tx.open_table(REVISIONS)?;
        tx.open_table(DOCUMENTS)?;
        tx.open_table(SCREEN_KEYS)?;
        tx.open_table(BROKER_LOGINS)?;
        tx.open_table(USER_TOKENS)?;
        tx.open_table(renditions::FINISHES)?;
        // Stores written before event entries: every revision so far counted as the head.
        if tx.open_table(META)?.get(CATALOGUE_HEAD)?.is_none() {
            let last = Self::head(&tx)?;
            Self::set_catalogue_head(&tx, last)?;
        }
        tx.commit()?;
        let ledger = Arc::new(ledger::Ledger::open(db.clone())?);
        let store = RedbStore {
            db,
            dir: dir.to_owned(),
            ledger,
            publisher: super::lease::LocalLeases::default(),
            snapshots: Default::default(),
        };
        migrate::scenarios_to_entities(&store)?;
        Ok(store)
    }

    /// The pre-entity scenarios, if any are stored (migration reads them).
    fn old_scenarios(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = match tx.open_table(SCENARIOS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            out.push((k.value().to_owned(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// The number of the last entry of the change log (0: none).
    fn head(tx: &WriteTransaction) -> Result<u64, StoreError> {
        let t = tx.open_table(REVISIONS)?;
        let last = t.last()?.map(|(k, _)| k.value());
        Ok(last.unwrap_or(0))
    }

    /// The last revision that changed the catalogue.
    fn catalogue_head(tx: &WriteTransaction) -> Result<u64, StoreError> {
        let t = tx.open_table(META)?;
        let v = t.get(CATALOGUE_HEAD)?.map(|v| v.value().to_vec());
        match v {
            Some(bytes) => decode_head(&bytes),
            None => Self::head(tx),
        }
    }

    fn set_catalogue_head(tx: &WriteTransaction, head: u64) -> Result<(), StoreError> {
        tx.open_table(META)?
            .insert(CATALOGUE_HEAD, head.to_be_bytes().as_slice())?;
        Ok(())
    }

    fn read_all<T: DeserializeOwned>(
        tx: &redb::ReadTransaction,
        kind: EntityKind,
    ) -> Result<std::collections::BTreeMap<String, T>, StoreError> {
        let t = tx.open_table(table_of(kind))?;
        let mut out = std::collections::BTreeMap::new();
        for row in t.iter()? {
            let (k, v) = row?;
            let id = k.value().to_owned();
            let value = decode(|| format!("{} {id:?}", kind.as_str()), v.value())?;
            out.insert(id, value);
        }
        Ok(out)
    }

    /// Appends an entry to the change log; every entry but an event moves the catalogue's
    /// head (as every revision did before events existed).
    fn append_revision(tx: &WriteTransaction, revision: &Revision) -> Result<(), StoreError> {
        tx.open_table(REVISIONS)?
            .insert(revision.number, encode(revision).as_slice())?;
        if revision.event.is_none() {
            Self::set_catalogue_head(tx, revision.number)?;
        }
        Ok(())
    }
}

impl RedbStore {
    /// Runs a read, a panic of redb's on damaged data becoming [`StoreError::Corrupt`]
    /// naming the file.
    fn guarded<T>(&self, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        guard::guard(f, |problem| StoreError::Corrupt {
            what: format!("store file {}", self.dir.join(FILE).display()),
            problem,
        })
    }
}

impl CatalogueStore for RedbStore {
    fn snapshot(&self) -> Result<Arc<Snapshot>, StoreError> {
        self.snapshots.get(
            || self.head(),
            || self.guarded(|| self.snapshot_unguarded()),
        )
    }

    fn head(&self) -> Result<u64, StoreError> {
        self.guarded(|| Self::read_head(&self.db.begin_read()?))
    }

    fn commit(&self, commit: Commit) -> Result<Option<Revision>, StoreError> {
        self.guarded(|| self.commit_unguarded(commit))
    }

    fn revisions(&self, after: u64, limit: usize) -> Result<Vec<Revision>, StoreError> {
        self.guarded(|| self.revisions_unguarded(after, limit))
    }

    fn record_event(
        &self,
        kind: EventKind,
        author: &str,
        at: DateTime<Utc>,
        comment: &str,
    ) -> Result<Revision, StoreError> {
        self.guarded(|| self.record_event_unguarded(kind, author, at, comment))
    }
}

impl RedbStore {
    /// The catalogue's head as a read transaction sees it.
    fn read_head(tx: &redb::ReadTransaction) -> Result<u64, StoreError> {
        Ok(match tx.open_table(META)?.get(CATALOGUE_HEAD)? {
            Some(v) => decode_head(v.value())?,
            None => tx
                .open_table(REVISIONS)?
                .last()?
                .map(|(k, _)| k.value())
                .unwrap_or(0),
        })
    }

    fn snapshot_unguarded(&self) -> Result<Snapshot, StoreError> {
        let tx = self.db.begin_read()?;
        let head = Self::read_head(&tx)?;
        Ok(Snapshot {
            head,
            venues: Self::read_all(&tx, EntityKind::Venue)?,
            screens: Self::read_all(&tx, EntityKind::Screen)?,
            creatives: Self::read_all(&tx, EntityKind::Creative)?,
            campaigns: Self::read_all(&tx, EntityKind::Campaign)?,
            emergencies: Self::read_all(&tx, EntityKind::Emergency)?,
        })
    }

    fn commit_unguarded(&self, commit: Commit) -> Result<Option<Revision>, StoreError> {
        let tx = self.db.begin_write()?;
        let head = Self::catalogue_head(&tx)?;
        if head != commit.base {
            return Err(StoreError::Conflict {
                expected: commit.base,
                head,
            });
        }
        let mut changes = Vec::new();
        for entity in &commit.entities {
            let kind = entity.kind();
            let id = entity.id();
            let after = entity.to_json();
            let bytes = encode(&after);
            let mut t = tx.open_table(table_of(kind))?;
            let before = t.get(id)?.map(|v| v.value().to_vec());
            if before.as_deref() == Some(bytes.as_slice()) {
                continue;
            }
            let before = match before {
                Some(b) => Some(decode::<serde_json::Value>(
                    || format!("{} {id:?}", kind.as_str()),
                    &b,
                )?),
                None => None,
            };
            t.insert(id, bytes.as_slice())?;
            changes.push(ChangeRecord {
                entity: kind,
                id: id.to_owned(),
                before,
                after: Some(after),
            });
        }
        if changes.is_empty() {
            return Ok(None);
        }
        let revision = Revision {
            number: Self::head(&tx)? + 1,
            author: commit.author,
            at: commit.at,
            comment: commit.comment,
            changes,
            event: None,
        };
        Self::append_revision(&tx, &revision)?;
        tx.commit()?;
        Ok(Some(revision))
    }

    fn revisions_unguarded(&self, after: u64, limit: usize) -> Result<Vec<Revision>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(REVISIONS)?;
        let mut out = Vec::new();
        for row in t.range(after.saturating_add(1)..)?.take(limit) {
            let (k, v) = row?;
            let n = k.value();
            out.push(decode(|| format!("revision {n}"), v.value())?);
        }
        Ok(out)
    }

    fn record_event_unguarded(
        &self,
        kind: EventKind,
        author: &str,
        at: DateTime<Utc>,
        comment: &str,
    ) -> Result<Revision, StoreError> {
        let tx = self.db.begin_write()?;
        let revision = Revision {
            number: Self::head(&tx)? + 1,
            author: author.to_owned(),
            at,
            comment: comment.to_owned(),
            changes: Vec::new(),
            event: Some(kind),
        };
        Self::append_revision(&tx, &revision)?;
        tx.commit()?;
        Ok(revision)
    }
}

fn decode_head(bytes: &[u8]) -> Result<u64, StoreError> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| StoreError::Corrupt {
        what: "the catalogue head".into(),
        problem: format!("{} bytes, not 8", bytes.len()),
    })?;
    Ok(u64::from_be_bytes(arr))
}

impl DocumentStore for RedbStore {
    fn published(&self) -> Result<HashMap<String, Published>, StoreError> {
        self.guarded(|| {
            let tx = self.db.begin_read()?;
            let t = tx.open_table(PUBLISHED)?;
            let mut out = HashMap::new();
            for row in t.iter()? {
                let (k, v) = row?;
                let screen = k.value().to_owned();
                let p = decode(|| format!("published document of {screen}"), v.value())?;
                out.insert(screen, p);
            }
            Ok(out)
        })
    }

    fn record_issued(&self, docs: &[IssuedDocument]) -> Result<(), StoreError> {
        self.guarded(|| {
            if docs.is_empty() {
                return Ok(());
            }
            let tx = self.db.begin_write()?;
            write_issued(&tx, docs)?;
            tx.commit()?;
            Ok(())
        })
    }

    fn planned_store(&self) -> Option<&dyn super::PlannedStore> {
        Some(self)
    }

    fn issued(&self, screen: &str) -> Result<Vec<IssuedDocument>, StoreError> {
        self.guarded(|| {
            let tx = self.db.begin_read()?;
            let t = tx.open_table(DOCUMENTS)?;
            let mut out: Vec<IssuedDocument> = Vec::new();
            for row in t.range((screen, 0)..=(screen, u64::MAX))? {
                let (k, v) = row?;
                let (s, version) = k.value();
                let doc: IssuedDocument = decode(|| format!("document {s} v{version}"), v.value())?;
                if doc.screen_id != screen || s != screen || doc.version != version {
                    return Err(damaged_documents(
                        screen,
                        "a document is filed under another key",
                    ));
                }
                out.push(doc);
            }
            // What `record_issued` wrote together must still agree: the latest document is
            // the one published (damage to a key or a page can hide documents silently).
            let published = tx
                .open_table(PUBLISHED)?
                .get(screen)?
                .map(|v| v.value().to_vec());
            let published: Option<Published> = published
                .map(|b| decode(|| format!("published document of {screen}"), &b))
                .transpose()?;
            super::published_agrees(screen, published.as_ref(), out.last())?;
            Ok(out)
        })
    }
}

/// Keeps `docs` and makes each its screen's latest, inside `tx`.
fn write_issued(tx: &WriteTransaction, docs: &[IssuedDocument]) -> Result<(), StoreError> {
    let mut published = tx.open_table(PUBLISHED)?;
    let mut documents = tx.open_table(DOCUMENTS)?;
    for d in docs {
        let p = Published {
            version: d.version,
            content_hash: d.content_hash.clone(),
            issued_at: Some(d.issued_at),
            expires_at: Some(d.expires_at),
        };
        published.insert(d.screen_id.as_str(), encode(&p).as_slice())?;
        documents.insert((d.screen_id.as_str(), d.version), encode(d).as_slice())?;
    }
    Ok(())
}

fn damaged_documents(screen: &str, problem: &str) -> StoreError {
    StoreError::Corrupt {
        what: format!("the schedule documents of screen {screen}"),
        problem: problem.to_owned(),
    }
}

/// A stored key list; old stores kept one bare hex key per screen.
fn parse_keys(screen: &str, text: &str) -> Result<Vec<ScreenKey>, StoreError> {
    if text.starts_with('[') {
        return decode(|| format!("keys of screen {screen}"), text.as_bytes());
    }
    Ok(vec![ScreenKey {
        public_hex: text.to_owned(),
        valid_from: DateTime::<Utc>::UNIX_EPOCH,
        valid_until: None,
    }])
}

impl KeyStore for RedbStore {
    fn screen_keys(&self) -> Result<HashMap<String, Vec<ScreenKey>>, StoreError> {
        self.guarded(|| {
            let tx = self.db.begin_read()?;
            let t = tx.open_table(SCREEN_KEYS)?;
            let mut out = HashMap::new();
            for row in t.iter()? {
                let (k, v) = row?;
                let screen = k.value().to_owned();
                let keys = parse_keys(&screen, v.value())?;
                out.insert(screen, keys);
            }
            Ok(out)
        })
    }

    fn keys_of(&self, screens: &[&str]) -> Result<HashMap<String, Vec<ScreenKey>>, StoreError> {
        self.guarded(|| {
            let tx = self.db.begin_read()?;
            let t = tx.open_table(SCREEN_KEYS)?;
            let mut out = HashMap::new();
            for &screen in screens {
                if let Some(v) = t.get(screen)? {
                    out.insert(screen.to_owned(), parse_keys(screen, v.value())?);
                }
            }
            Ok(out)
        })
    }

    fn add_screen_key(
        &self,
        screen: &str,
        public_hex: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.guarded(|| {
            let tx = self.db.begin_write()?;
            // Checked in the writing transaction: a screen decommissioned since the
            // config was prepared gets no credentials.
            if !Self::in_service(&tx.open_table(SCREENS)?, screen)? {
                return Err(crate::provision::not_in_service(screen));
            }
            push_key(&tx, screen, public_hex, at)?;
            tx.commit()?;
            Ok(())
        })
    }
}

/// Appends a key to a screen's list, ending the previous one's validity at `at`.
fn push_key(
    tx: &WriteTransaction,
    screen: &str,
    public_hex: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut t = tx.open_table(SCREEN_KEYS)?;
    let mut keys = match t.get(screen)? {
        Some(v) => parse_keys(screen, v.value())?,
        None => Vec::new(),
    };
    if let Some(last) = keys.last_mut() {
        last.valid_until.get_or_insert(at);
    }
    keys.push(ScreenKey {
        public_hex: public_hex.to_owned(),
        valid_from: at,
        valid_until: None,
    });
    let text = serde_json::to_string(&keys).unwrap_or_default();
    t.insert(screen, text.as_str())?;
    Ok(())
}

impl RedbStore {
    /// Whether `screen` is stored and not decommissioned.
    fn in_service(
        screens: &impl ReadableTable<&'static str, &'static [u8]>,
        screen: &str,
    ) -> Result<bool, StoreError> {
        let Some(v) = screens.get(screen)? else {
            return Ok(false);
        };
        let entity: ScreenEntity = decode(|| format!("screen {screen:?}"), v.value())?;
        Ok(entity.decommissioned_at.is_none())
    }
}

impl BrokerLoginStore for RedbStore {
    fn add_screen_credentials(
        &self,
        screen: &str,
        public_hex: &str,
        broker_hash: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.guarded(|| {
            let tx = self.db.begin_write()?;
            // Checked in the writing transaction: a screen decommissioned since the
            // config was prepared gets no credentials.
            if !Self::in_service(&tx.open_table(SCREENS)?, screen)? {
                return Err(crate::provision::not_in_service(screen));
            }
            push_key(&tx, screen, public_hex, at)?;
            tx.open_table(BROKER_LOGINS)?.insert(screen, broker_hash)?;
            tx.commit()?;
            Ok(())
        })
    }

    fn broker_login(&self, screen: &str) -> Result<Option<String>, StoreError> {
        self.guarded(|| {
            let tx = self.db.begin_read()?;
            let Some(hash) = tx
                .open_table(BROKER_LOGINS)?
                .get(screen)?
                .map(|v| v.value().to_owned())
            else {
                return Ok(None);
            };
            let screens = tx.open_table(SCREENS)?;
            Ok(Self::in_service(&screens, screen)?.then_some(hash))
        })
    }

    fn broker_logins(&self) -> Result<BTreeMap<String, String>, StoreError> {
        self.guarded(|| {
            let tx = self.db.begin_read()?;
            let screens = tx.open_table(SCREENS)?;
            let mut out = BTreeMap::new();
            for row in tx.open_table(BROKER_LOGINS)?.iter()? {
                let (k, v) = row?;
                let screen = k.value();
                if Self::in_service(&screens, screen)? {
                    out.insert(screen.to_owned(), v.value().to_owned());
                }
            }
            Ok(out)
        })
    }
}

impl MetaStore for RedbStore {
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.guarded(|| {
            let tx = self.db.begin_read()?;
            let t = tx.open_table(META)?;
            Ok(t.get(key)?.map(|v| v.value().to_vec()))
        })
    }

    fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.guarded(|| {
            let tx = self.db.begin_write()?;
            tx.open_table(META)?.insert(key, value)?;
            tx.commit()?;
            Ok(())
        })
    }
}

impl MediaStore for RedbStore {
    fn media_path(&self, sha256: &Sha256) -> PathBuf {
        self.dir.join("media").join(sha256.as_str())
    }

    fn put_media(&self, sha256: &Sha256, data: &[u8]) -> Result<(), StoreError> {
        let path = self.media_path(sha256);
        if path.exists() {
            return Ok(());
        }
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        let tmp = path.with_extension("tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(data).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &path).map_err(io)
    }

    fn adopt_media(&self, sha256: &Sha256, file: &Path) -> Result<(), StoreError> {
        let path = self.media_path(sha256);
        if path.exists() {
            let _ = std::fs::remove_file(file);
            return Ok(());
        }
        std::fs::rename(file, &path).map_err(|source| StoreError::Io { path, source })
    }

    fn upload_dir(&self) -> PathBuf {
        self.dir.join("uploads")
    }
}

impl Store for RedbStore {
    fn ledger(&self) -> Arc<dyn LedgerStore> {
        self.ledger.clone()
    }

    fn dir(&self) -> &Path {
        &self.dir
    }

    fn publisher_lease(&self) -> Box<dyn super::lease::PublisherLease> {
        Box::new(self.publisher.contender())
    }
}

impl RedbStore {
    /// Whether nothing was ever committed (a fresh store).
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        self.guarded(|| {
            let tx = self.db.begin_read()?;
            Ok(tx.open_table(REVISIONS)?.len()? == 0)
        })
    }

    /// Writes `entities` and `revision` as they are (migration only).
    fn write_migrated(&self, entities: &[Entity], revision: &Revision) -> Result<(), StoreError> {
        let tx = self.db.begin_write()?;
        for e in entities {
            tx.open_table(table_of(e.kind()))?
                .insert(e.id(), encode(&e.to_json()).as_slice())?;
        }
        Self::append_revision(&tx, revision)?;
        tx.delete_table(SCENARIOS)?;
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod documents_tests {
    use super::*;

    fn doc(screen: &str, version: u64) -> IssuedDocument {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        IssuedDocument {
            screen_id: screen.into(),
            version,
            issued_at: at,
            expires_at: at,
            in_force_from: at,
            content_hash: format!("hash{version}"),
            signed: format!("body{version}"),
        }
    }

    /// Documents that no longer agree with what was published with them (a damaged key or
    /// page) are an error naming the screen, never a shorter list.
    #[test]
    fn documents_disagreeing_with_the_published_version_are_damage() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path(), OpenMode::Create).unwrap();
        store.record_issued(&[doc("s1", 1)]).unwrap();
        store.record_issued(&[doc("s1", 2), doc("s2", 1)]).unwrap();
        let versions: Vec<u64> = store
            .issued("s1")
            .unwrap()
            .iter()
            .map(|d| d.version)
            .collect();
        assert_eq!(versions, [1, 2]);

        // The latest document lost: version 2 is published but not found.
        let tx = store.db.begin_write().unwrap();
        tx.open_table(DOCUMENTS).unwrap().remove(("s1", 2)).unwrap();
        tx.commit().unwrap();
        let e = store.issued("s1").unwrap_err().to_string();
        assert!(
            e.contains("screen s1") && e.contains("version 2 is published"),
            "{e}"
        );

        // A document filed under another version's key.
        let tx = store.db.begin_write().unwrap();
        tx.open_table(DOCUMENTS)
            .unwrap()
            .insert(("s2", 7), encode(&doc("s2", 1)).as_slice())
            .unwrap();
        tx.commit().unwrap();
        let e = store.issued("s2").unwrap_err().to_string();
        assert!(e.contains("filed under another key"), "{e}");

        // Documents whose published entry is gone.
        store.record_issued(&[doc("s3", 1)]).unwrap();
        let tx = store.db.begin_write().unwrap();
        tx.open_table(PUBLISHED).unwrap().remove("s3").unwrap();
        tx.commit().unwrap();
        let e = store.issued("s3").unwrap_err().to_string();
        assert!(e.contains("none is published"), "{e}");
        assert!(store.issued("nobody").unwrap().is_empty());
    }
}
