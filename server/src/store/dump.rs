//! Everything a store holds but the proof-of-play ledger, as plain values: what
//! `signage store copy` moves between the redb store and the PostgreSQL one. Each backend
//! exports a [`Dump`] and imports one into an empty store, as it is (revision numbers,
//! key histories, password hashes, sessions), in one transaction; media files are copied
//! one by one beside it (content-addressed, so a file copied twice is harmless).
//!
//! A dump is held in memory whole (media excepted): fine for a city's catalogue and
//! documents today, to be streamed table by table when the ledger joins it.

use std::collections::BTreeMap;

use playlists::Sha256;

use super::{
    Entity, IssuedDocument, Published, Revision, ScreenKey, Session, StoreError, StoredRendition,
    User,
};

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
}

impl Dump {
    pub fn copied(&self) -> Copied {
        Copied {
            entities: self.entities.len(),
            revisions: self.revisions.len(),
            documents: self.documents.len(),
            users: self.users.len(),
            media: self.media.len(),
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

    fn import(&self, dump: &Dump) -> Result<(), StoreError> {
        match self {
            End::Redb(s) => s.import(dump),
            End::Postgres(s) => s.import(dump),
        }
    }

    /// Refuses a store that holds anything a copy could overwrite.
    fn ensure_empty(&self) -> Result<(), StoreError> {
        let (empty, id) = match self {
            End::Redb(s) => (
                s.holds_nothing()?,
                super::Store::dir(s).display().to_string(),
            ),
            End::Postgres(s) => (s.holds_nothing(true)?, s.database().to_owned()),
        };
        if empty {
            Ok(())
        } else {
            Err(StoreError::Exists {
                entity: "store",
                id,
            })
        }
    }
}

/// Copies everything but the ledger from `from` into the empty store `to`: the media
/// files first (content-addressed: one copied before a failure is harmless), then the
/// rest in one transaction. Only between the two backends (redb to PostgreSQL and back).
pub fn copy(from: &End, to: &End) -> Result<Copied, StoreError> {
    let dump = from.export()?;
    dump.check()?;
    to.ensure_empty()?;
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
    Ok(dump.copied())
}
