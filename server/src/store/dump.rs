//! What `signage store copy` moves between the redb store and the PostgreSQL one, into an
//! empty store, in this order:
//!
//! 1. the media files, one by one (content-addressed, so a file copied twice is harmless);
//! 2. a [`Dump`] of everything else but the ledger, as plain values (revision numbers, key
//!    histories, password hashes, sessions), exported by one backend and imported by the
//!    other in one transaction;
//! 3. the planned counts (parts and the plans they use), copied as stored in one
//!    transaction, not recomputed;
//! 4. the proof-of-play ledger ([`ledger`]): every signed batch read back as received and
//!    ingested into the target in chunks, verified with the keys step 2 copied.
//!
//! A source whose ledger was archived in part (`ledger archive`) is refused before anything
//! is written. A failure after step 2 leaves a partial copy, which the error says
//! ([`StoreError::PartialCopy`]): empty the target and copy again.
//!
//! A dump is held in memory whole (media excepted): fine for a city's catalogue and
//! documents; the ledger is streamed.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use playlists::Sha256;

use super::{
    Entity, IssuedDocument, PlannedChange, PlannedStore, Published, Revision, ScreenKey, Session,
    StoreError, StoredRendition, User,
};

mod ledger;

/// The non-ledger contents of a store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dump {
    /// The catalogue's head (the last revision that is not an event).
    pub head: u64,
    pub entities: Vec<Entity>,
    /// The whole change log, oldest first.
    pub revisions: Vec<Revision>,
    pub published: BTreeMap<String, Published>,
    /// Every document issued, by screen then version.
    pub documents: Vec<IssuedDocument>,
    pub screen_keys: BTreeMap<String, Vec<ScreenKey>>,
    /// Every broker login, decommissioned screens' included.
    pub broker_logins: BTreeMap<String, String>,
    pub users: Vec<User>,
    /// Sessions by the SHA-256 of their id.
    pub sessions: BTreeMap<String, Session>,
    /// Settings (a backend's own bookkeeping, such as redb's catalogue head, left out).
    pub meta: BTreeMap<String, Vec<u8>>,
    pub renditions: Vec<StoredRendition>,
    /// The media files stored, by hash.
    pub media: Vec<Sha256>,
}

impl Dump {
    /// Checks what an import relies on: the head is a revision that changed the
    /// catalogue (or 0), revisions are numbered 1, 2, 3…, each document's screen and
    /// version are its key's.
    pub fn check(&self) -> Result<(), StoreError> {
        let bad = |problem: String| StoreError::Corrupt {
            what: "the store to copy".into(),
            problem,
        };
        for (i, r) in self.revisions.iter().enumerate() {
            if r.number != i as u64 + 1 {
                return Err(bad(format!(
                    "revision {} follows revision {i} in the change log",
                    r.number
                )));
            }
        }
        let head_ok = self.head == 0
            || self
                .revisions
                .get(self.head as usize - 1)
                .is_some_and(|r| r.event.is_none());
        if !head_ok {
            return Err(bad(format!(
                "its head {} is not a revision that changed the catalogue",
                self.head
            )));
        }
        Ok(())
    }
}

/// What a copy moved, to tell the user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Copied {
    pub entities: usize,
    pub revisions: usize,
    pub documents: usize,
    pub users: usize,
    pub media: usize,
    /// Planned-count parts (one screen's document over a span), with the plans they use.
    pub planned_parts: usize,
    /// Proof-of-play batches re-ingested, and the records they stored.
    pub batches: u64,
    pub records: u64,
}

impl Dump {
    pub fn copied(&self) -> Copied {
        Copied {
            entities: self.entities.len(),
            revisions: self.revisions.len(),
            documents: self.documents.len(),
            users: self.users.len(),
            media: self.media.len(),
            ..Copied::default()
        }
    }
}

/// One end of a copy: a redb store or a PostgreSQL one.
#[derive(Debug)]
pub enum End {
    Redb(super::redb::RedbStore),
    Postgres(super::postgres::PgStore),
}

impl End {
    /// Opens `location` (a directory or a `postgres://` URL); `local_dir` is the
    /// PostgreSQL store's directory for files in transit.
    pub fn open(
        location: &str,
        local_dir: &std::path::Path,
        mode: super::OpenMode,
    ) -> Result<End, StoreError> {
        Ok(if super::postgres::is_url(location) {
            End::Postgres(super::postgres::PgStore::open(location, local_dir, mode)?)
        } else {
            End::Redb(super::redb::RedbStore::open(
                std::path::Path::new(location),
                mode,
            )?)
        })
    }

    pub fn export(&self) -> Result<Dump, StoreError> {
        match self {
            End::Redb(s) => s.export(),
            End::Postgres(s) => s.export(),
        }
    }

    /// The store itself, as the traits see it.
    fn store(&self) -> &dyn super::Store {
        match self {
            End::Redb(s) => s,
            End::Postgres(s) => s,
        }
    }

    /// Its planned counts.
    fn planned(&self) -> &dyn PlannedStore {
        match self {
            End::Redb(s) => s,
            End::Postgres(s) => s,
        }
    }

    /// The store as shown in messages: its directory or its database (no password).
    fn shown(&self) -> String {
        match self {
            End::Redb(s) => super::Store::dir(s).display().to_string(),
            End::Postgres(s) => s.database().to_owned(),
        }
    }

    fn import(&self, dump: &Dump) -> Result<(), StoreError> {
        match self {
            End::Redb(s) => s.import(dump),
            End::Postgres(s) => s.import(dump),
        }
    }

    /// Refuses a store that holds anything a copy could overwrite (or add to).
    fn ensure_empty(&self) -> Result<(), StoreError> {
        let rest = match self {
            End::Redb(s) => s.holds_nothing()?,
            End::Postgres(s) => s.holds_nothing(true)?,
        };
        let (start, end) = all_time();
        let empty = rest
            && ledger::holds_nothing(&*self.store().ledger())?
            && self.planned().planned_parts(None, start, end)?.is_empty();
        if empty {
            Ok(())
        } else {
            Err(StoreError::Exists {
                entity: "store",
                id: self.shown(),
            })
        }
    }
}

/// Copies everything `from` holds into the empty store `to`, in the order the module
/// says. Only between the two backends (redb to PostgreSQL and back).
pub fn copy(from: &End, to: &End) -> Result<Copied, StoreError> {
    let dump = from.export()?;
    dump.check()?;
    to.ensure_empty()?;
    ledger::ensure_whole(&*from.store().ledger())?;
    match (from, to) {
        (End::Redb(r), End::Postgres(p)) => {
            for sha in &dump.media {
                let path = super::MediaStore::media_path(r, sha);
                let mut file =
                    std::fs::File::open(&path).map_err(|source| StoreError::Io { path, source })?;
                p.put_media_from(sha, &mut file)?;
            }
        }
        (End::Postgres(p), End::Redb(r)) => {
            for sha in &dump.media {
                let file = p.fetch_media(sha, &super::MediaStore::upload_dir(r))?;
                let path = file.into_temp_path();
                super::MediaStore::adopt_media(r, sha, &path)?;
                // Moved into place by now; nothing left to delete.
                let _ = path.keep();
            }
        }
        _ => {
            return Err(StoreError::Backend(
                "a copy goes from a redb store to PostgreSQL or back, not between two stores \
                 of one kind"
                    .into(),
            ))
        }
    }
    to.import(&dump)?;
    let partial = |problem: String| StoreError::PartialCopy {
        target: to.shown(),
        problem,
    };
    let mut copied = dump.copied();
    copied.planned_parts =
        copy_planned(from.planned(), to.planned()).map_err(|e| partial(e.to_string()))?;
    (copied.batches, copied.records) =
        ledger::copy(&*from.store().ledger(), to.store()).map_err(partial)?;
    Ok(copied)
}

/// Every instant a planned part can cover: the years 1 to 9999 (PostgreSQL's timestamps
/// start in 4713 BC; documents are issued in this era).
fn all_time() -> (DateTime<Utc>, DateTime<Utc>) {
    let at = |secs| DateTime::from_timestamp(secs, 0).unwrap_or_default();
    (at(-62_135_596_800), at(253_402_300_799))
}

/// Copies the planned counts as stored: every part, and each plan a part uses (plans no
/// part uses any more are left behind), in one transaction; returns how many parts.
fn copy_planned(from: &dyn PlannedStore, to: &dyn PlannedStore) -> Result<usize, StoreError> {
    let (start, end) = all_time();
    let parts = from.planned_parts(None, start, end)?;
    let mut plans = BTreeMap::new();
    for p in &parts {
        if plans.contains_key(&p.plan) {
            continue;
        }
        let counts = from
            .plan_counts(p.plan, i64::MIN, i64::MAX)?
            .ok_or_else(|| StoreError::Corrupt {
                what: format!("the planned counts of screen {}", p.screen_id),
                problem: format!(
                    "its part from {} counts by plan {:016x}, which is not stored",
                    p.from.to_rfc3339(),
                    p.plan
                ),
            })?;
        plans.insert(p.plan, counts);
    }
    let n = parts.len();
    let change = PlannedChange {
        remove: Vec::new(),
        parts,
        plans: plans.into_iter().collect(),
    };
    to.record_issued_planned(&[], &change)?;
    Ok(n)
}
