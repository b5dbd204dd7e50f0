//! Export and import of everything but the ledger (see [`crate::store::dump`]): what
//! `signage store copy` reads from and writes to a redb store. An import writes into an
//! empty store only, in one transaction.

use std::collections::BTreeMap;

use redb::{ReadableDatabase, ReadableTable};

use playlists::Sha256;

use super::renditions::RENDITIONS;
use super::{
    decode, encode, table_of, RedbStore, BROKER_LOGINS, CATALOGUE_HEAD, DOCUMENTS, META, PUBLISHED,
    REVISIONS, SCREEN_KEYS, SESSIONS, USERS, USER_TOKENS,
};
use crate::store::dump::Dump;
use crate::store::{
    CatalogueStore, DocumentStore, IssuedDocument, KeyStore, StoreError, UserStore,
};

impl RedbStore {
    /// Everything but the ledger. The store is held by this process alone (redb's lock),
    /// so the reads agree with each other.
    pub fn export(&self) -> Result<Dump, StoreError> {
        self.guarded(|| {
            let snapshot = self.snapshot()?;
            let tx = self.db.begin_read()?;
            let mut documents = Vec::new();
            for row in tx.open_table(DOCUMENTS)?.iter()? {
                let (k, v) = row?;
                let (s, version) = k.value();
                let doc: IssuedDocument = decode(|| format!("document {s} v{version}"), v.value())?;
                documents.push(doc);
            }
            let mut broker_logins = BTreeMap::new();
            for row in tx.open_table(BROKER_LOGINS)?.iter()? {
                let (k, v) = row?;
                broker_logins.insert(k.value().to_owned(), v.value().to_owned());
            }
            let mut sessions = BTreeMap::new();
            for row in tx.open_table(SESSIONS)?.iter()? {
                let (k, v) = row?;
                let id = k.value().to_owned();
                sessions.insert(id, decode(|| "a session".to_owned(), v.value())?);
            }
            let mut meta = BTreeMap::new();
            for row in tx.open_table(META)?.iter()? {
                let (k, v) = row?;
                if k.value() != CATALOGUE_HEAD {
                    meta.insert(k.value().to_owned(), v.value().to_vec());
                }
            }
            let mut renditions = Vec::new();
            for row in tx.open_table(RENDITIONS)?.iter()? {
                let (k, v) = row?;
                renditions.push(decode(|| format!("rendition {}", k.value()), v.value())?);
            }
            Ok(Dump {
                head: snapshot.head,
                entities: snapshot.entities(),
                revisions: self.revisions(0, usize::MAX)?,
                published: self.published()?.into_iter().collect(),
                documents,
                screen_keys: self.screen_keys()?.into_iter().collect(),
                broker_logins,
                users: self.users()?,
                sessions,
                meta,
                renditions,
                media: self.media_files()?,
            })
        })
    }

    /// The media files stored, by hash (files of other names, such as a temporary file
    /// left by a crash, are not media).
    fn media_files(&self) -> Result<Vec<Sha256>, StoreError> {
        let dir = self.dir.join("media");
        let io = |source| StoreError::Io {
            path: dir.clone(),
            source,
        };
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            if let Some(sha) = entry
                .file_name()
                .to_str()
                .and_then(|n| Sha256::parse(n).ok())
            {
                out.push(sha);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Whether the store holds nothing a copy could overwrite (media and the ledger
    /// aside).
    pub fn holds_nothing(&self) -> Result<bool, StoreError> {
        Ok(self.is_empty()?
            && self.users()?.is_empty()
            && self.published()?.is_empty()
            && self.screen_keys()?.is_empty())
    }

    /// Writes `dump` (media files aside: they are copied one by one) into this store, which must
    /// be empty, in one transaction.
    pub fn import(&self, dump: &Dump) -> Result<(), StoreError> {
        dump.check()?;
        self.guarded(|| {
            if !self.holds_nothing()? {
                return Err(StoreError::Exists {
                    entity: "store",
                    id: self.dir.display().to_string(),
                });
            }
            let tx = self.db.begin_write()?;
            for e in &dump.entities {
                tx.open_table(table_of(e.kind()))?
                    .insert(e.id(), encode(&e.to_json()).as_slice())?;
            }
            {
                let mut t = tx.open_table(REVISIONS)?;
                for r in &dump.revisions {
                    t.insert(r.number, encode(r).as_slice())?;
                }
            }
            Self::set_catalogue_head(&tx, dump.head)?;
            {
                let mut t = tx.open_table(PUBLISHED)?;
                for (screen, p) in &dump.published {
                    t.insert(screen.as_str(), encode(p).as_slice())?;
                }
                let mut t = tx.open_table(DOCUMENTS)?;
                for d in &dump.documents {
                    t.insert((d.screen_id.as_str(), d.version), encode(d).as_slice())?;
                }
                let mut t = tx.open_table(SCREEN_KEYS)?;
                for (screen, keys) in &dump.screen_keys {
                    let text = serde_json::to_string(keys).unwrap_or_default();
                    t.insert(screen.as_str(), text.as_str())?;
                }
                let mut t = tx.open_table(BROKER_LOGINS)?;
                for (screen, hash) in &dump.broker_logins {
                    t.insert(screen.as_str(), hash.as_str())?;
                }
                let mut users = tx.open_table(USERS)?;
                let mut tokens = tx.open_table(USER_TOKENS)?;
                for u in &dump.users {
                    users.insert(u.name.as_str(), encode(u).as_slice())?;
                    tokens.insert(u.token_sha256.as_str(), u.name.as_str())?;
                }
                let mut t = tx.open_table(SESSIONS)?;
                for (id, s) in &dump.sessions {
                    t.insert(id.as_str(), encode(s).as_slice())?;
                }
                let mut t = tx.open_table(META)?;
                for (k, v) in &dump.meta {
                    t.insert(k.as_str(), v.as_slice())?;
                }
                let mut t = tx.open_table(RENDITIONS)?;
                for r in &dump.renditions {
                    t.insert(r.key().as_str(), encode(r).as_slice())?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }
}
