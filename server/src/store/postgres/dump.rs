//! Export and import of everything but the ledger (see [`crate::store::dump`]): what
//! `signage store copy` reads from and writes to PostgreSQL. The export reads one
//! snapshot of the database; an import writes into an empty database, in one
//! transaction. Media files are copied apart, one by one.

use std::collections::BTreeMap;

use ::postgres::Transaction;

use playlists::Sha256;

use super::catalogue::{insert_entity, kind_of};
use super::{decode, encode, read_snapshot, to_i64, to_u64, PgStore};
use crate::store::dump::Dump;
use crate::store::{EventKind, Snapshot, StoreError};

impl PgStore {
    /// Everything but the ledger, as one snapshot of the database sees it.
    pub fn export(&self) -> Result<Dump, StoreError> {
        read_snapshot(&mut *self.client()?, |tx| {
            let mut dump = Dump {
                head: to_u64(
                    tx.query_one("SELECT head FROM catalogue_head", &[])?.get(0),
                    || "the catalogue head".into(),
                )?,
                ..Dump::default()
            };
            let mut snapshot = Snapshot::default();
            for row in tx.query("SELECT kind, id, body FROM entities", &[])? {
                let (kind, id): (String, String) = (row.get(0), row.get(1));
                let kind = kind_of(&kind).ok_or_else(|| StoreError::Corrupt {
                    what: format!("entity {id:?}"),
                    problem: format!("unknown kind {kind:?}"),
                })?;
                snapshot.put(super::catalogue::entity_of(kind, &id, row.get(2))?);
            }
            dump.entities = snapshot.entities();
            dump.revisions = query(
                tx,
                "SELECT number, body FROM revisions ORDER BY number",
                "revision",
            )?;
            for row in tx.query("SELECT screen_id, body FROM published", &[])? {
                let screen: String = row.get(0);
                let p = decode(|| format!("published document of {screen}"), row.get(1))?;
                dump.published.insert(screen, p);
            }
            dump.documents = query(
                tx,
                "SELECT screen_id || ' v' || version, body FROM documents
                 ORDER BY screen_id, version",
                "document",
            )?;
            for row in tx.query("SELECT screen_id, keys FROM screen_keys", &[])? {
                let screen: String = row.get(0);
                let keys = decode(|| format!("keys of screen {screen}"), row.get(1))?;
                dump.screen_keys.insert(screen, keys);
            }
            dump.broker_logins = tx
                .query("SELECT screen_id, hash FROM broker_logins", &[])?
                .into_iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect();
            dump.users = query(tx, "SELECT name, body FROM users ORDER BY name", "user")?;
            for row in tx.query("SELECT id_sha256, body FROM sessions", &[])? {
                let id: String = row.get(0);
                dump.sessions
                    .insert(id, decode(|| "a session".to_owned(), row.get(1))?);
            }
            dump.meta = tx
                .query("SELECT key, value FROM meta", &[])?
                .into_iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect::<BTreeMap<_, _>>();
            dump.renditions = query(
                tx,
                "SELECT key, body FROM renditions ORDER BY key",
                "rendition",
            )?;
            for row in tx.query("SELECT sha256 FROM media ORDER BY sha256", &[])? {
                let name: String = row.get(0);
                let sha = Sha256::parse(&name).map_err(|e| StoreError::Corrupt {
                    what: format!("media {name:?}"),
                    problem: e.to_string(),
                })?;
                dump.media.push(sha);
            }
            Ok(dump)
        })
    }

    /// Whether the database holds nothing a copy could overwrite (media aside: those are
    /// content-addressed, and a copy stores them first).
    pub fn holds_nothing(&self, media_too: bool) -> Result<bool, StoreError> {
        holds_nothing(&mut self.client()?.transaction()?, media_too)
    }

    /// Writes `dump` (media files aside) into this database, which must hold nothing, in
    /// one transaction.
    pub fn import(&self, dump: &Dump) -> Result<(), StoreError> {
        dump.check()?;
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        // Locked: a server writing meanwhile waits, then finds the copy.
        super::catalogue::lock_head(&mut tx)?;
        if !holds_nothing(&mut tx, false)? {
            return Err(StoreError::Exists {
                entity: "store",
                id: self.shown.clone(),
            });
        }
        write(&mut tx, dump)?;
        tx.commit()?;
        Ok(())
    }
}

fn holds_nothing(tx: &mut Transaction<'_>, media_too: bool) -> Result<bool, StoreError> {
    let row = tx.query_one(
        "SELECT (SELECT last FROM catalogue_head) = 0
            AND NOT EXISTS (SELECT FROM entities) AND NOT EXISTS (SELECT FROM users)
            AND NOT EXISTS (SELECT FROM published) AND NOT EXISTS (SELECT FROM documents)
            AND NOT EXISTS (SELECT FROM screen_keys) AND NOT EXISTS (SELECT FROM broker_logins)
            AND NOT EXISTS (SELECT FROM sessions) AND NOT EXISTS (SELECT FROM meta)
            AND NOT EXISTS (SELECT FROM renditions)
            AND ($1 = FALSE OR NOT EXISTS (SELECT FROM media))",
        &[&media_too],
    )?;
    Ok(row.get(0))
}

/// Rows of (what, JSON body) decoded, each named by its first column when damaged.
fn query<T: serde::de::DeserializeOwned>(
    tx: &mut Transaction<'_>,
    sql: &str,
    what: &str,
) -> Result<Vec<T>, StoreError> {
    tx.query(sql, &[])?
        .into_iter()
        .map(|row| {
            let name: String = match row.try_get::<_, String>(0) {
                Ok(s) => s,
                Err(_) => row.get::<_, i64>(0).to_string(),
            };
            decode(|| format!("{what} {name}"), row.get(1))
        })
        .collect()
}

fn write(tx: &mut Transaction<'_>, dump: &Dump) -> Result<(), StoreError> {
    for e in &dump.entities {
        insert_entity(tx, e)?;
    }
    for r in &dump.revisions {
        tx.execute(
            "INSERT INTO revisions (number, at, author, event, body) VALUES ($1, $2, $3, $4, $5)",
            &[
                &to_i64(r.number, || "a revision number".into())?,
                &r.at,
                &r.author,
                &r.event.map(EventKind::as_str),
                &encode(r),
            ],
        )?;
    }
    let last = dump.revisions.last().map_or(0, |r| r.number);
    tx.execute(
        "UPDATE catalogue_head SET head = $1, last = $2",
        &[
            &to_i64(dump.head, || "the catalogue head".into())?,
            &to_i64(last, || "a revision number".into())?,
        ],
    )?;
    for (screen, p) in &dump.published {
        tx.execute(
            "INSERT INTO published (screen_id, body) VALUES ($1, $2)",
            &[screen, &encode(p)],
        )?;
    }
    for d in &dump.documents {
        tx.execute(
            "INSERT INTO documents (screen_id, version, in_force_from, body)
             VALUES ($1, $2, $3, $4)",
            &[
                &d.screen_id,
                &to_i64(d.version, || {
                    format!("the version of {}'s document", d.screen_id)
                })?,
                &d.in_force_from,
                &encode(d),
            ],
        )?;
    }
    for (screen, keys) in &dump.screen_keys {
        tx.execute(
            "INSERT INTO screen_keys (screen_id, keys) VALUES ($1, $2)",
            &[screen, &encode(keys)],
        )?;
    }
    for (screen, hash) in &dump.broker_logins {
        tx.execute(
            "INSERT INTO broker_logins (screen_id, hash) VALUES ($1, $2)",
            &[screen, hash],
        )?;
    }
    for u in &dump.users {
        tx.execute(
            "INSERT INTO users (name, token_sha256, body) VALUES ($1, $2, $3)",
            &[&u.name, &u.token_sha256, &encode(u)],
        )?;
    }
    for (id, s) in &dump.sessions {
        tx.execute(
            "INSERT INTO sessions (id_sha256, user_name, last_seen, body) VALUES ($1, $2, $3, $4)",
            &[id, &s.user, &s.last_seen, &encode(s)],
        )?;
    }
    for (k, v) in &dump.meta {
        tx.execute("INSERT INTO meta (key, value) VALUES ($1, $2)", &[k, v])?;
    }
    for r in &dump.renditions {
        tx.execute(
            "INSERT INTO renditions (key, source, body) VALUES ($1, $2, $3)",
            &[&r.key(), &r.source, &encode(r)],
        )?;
    }
    Ok(())
}
