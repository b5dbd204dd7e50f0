//! The catalogue in PostgreSQL: entities (`entities`, one row per kind and id) and the
//! append-only change log (`revisions`), with the head in `catalogue_head`. Every writer
//! of the change log locks the head row first, so revision numbers are dense and a commit
//! computed from an old head is refused inside the transaction that would write it.

use std::sync::Arc;

use ::postgres::Transaction;
use chrono::{DateTime, Utc};

use super::{decode, encode, off_worker, read_snapshot, to_i64, to_u64, PgStore};
use crate::store::{
    CatalogueStore, ChangeRecord, Commit, Entity, EntityKind, EventKind, Revision, Snapshot,
    StoreError,
};

/// The head row, locked until the transaction ends: (catalogue head, last entry).
pub(super) fn lock_head(tx: &mut Transaction<'_>) -> Result<(u64, u64), StoreError> {
    let row = tx.query_one(
        "SELECT head, last FROM catalogue_head WHERE only_row FOR UPDATE",
        &[],
    )?;
    let what = || "the catalogue head".to_owned();
    Ok((to_u64(row.get(0), what)?, to_u64(row.get(1), what)?))
}

/// Appends `revision` (numbered one past the last entry) and moves the heads: every entry
/// but an event moves the catalogue's head. The head row must be locked.
pub(super) fn append_revision(
    tx: &mut Transaction<'_>,
    revision: &Revision,
) -> Result<(), StoreError> {
    let number = to_i64(revision.number, || "a revision number".into())?;
    tx.execute(
        "INSERT INTO revisions (number, at, author, event, body) VALUES ($1, $2, $3, $4, $5)",
        &[
            &number,
            &revision.at,
            &revision.author,
            &revision.event.map(EventKind::as_str),
            &encode(revision),
        ],
    )?;
    if revision.event.is_none() {
        tx.execute(
            "UPDATE catalogue_head SET head = $1, last = $1 WHERE only_row",
            &[&number],
        )?;
    } else {
        tx.execute(
            "UPDATE catalogue_head SET last = $1 WHERE only_row",
            &[&number],
        )?;
    }
    Ok(())
}

pub(super) fn kind_of(s: &str) -> Option<EntityKind> {
    [
        EntityKind::Venue,
        EntityKind::Screen,
        EntityKind::Creative,
        EntityKind::Campaign,
        EntityKind::Emergency,
    ]
    .into_iter()
    .find(|k| k.as_str() == s)
}

/// A stored entity of `kind` and `id` from its JSON.
pub(super) fn entity_of(
    kind: EntityKind,
    id: &str,
    body: super::JsonText<'_>,
) -> Result<Entity, StoreError> {
    let what = || format!("{} {id:?}", kind.as_str());
    let entity = match kind {
        EntityKind::Venue => Entity::Venue(decode(what, body)?),
        EntityKind::Screen => Entity::Screen(decode(what, body)?),
        EntityKind::Creative => Entity::Creative(decode(what, body)?),
        EntityKind::Campaign => Entity::Campaign(decode(what, body)?),
        EntityKind::Emergency => Entity::Emergency(decode(what, body)?),
        EntityKind::User => {
            return Err(StoreError::Corrupt {
                what: what(),
                problem: "a user is not a catalogue entity".into(),
            })
        }
    };
    if entity.id() != id {
        return Err(StoreError::Corrupt {
            what: what(),
            problem: format!("it is stored under another id ({:?})", entity.id()),
        });
    }
    Ok(entity)
}

fn read_head(tx: &mut Transaction<'_>) -> Result<u64, StoreError> {
    let row = tx.query_one("SELECT head FROM catalogue_head WHERE only_row", &[])?;
    to_u64(row.get(0), || "the catalogue head".into())
}

impl PgStore {
    /// Every entity at the current head, read from the database.
    fn read_snapshot(&self) -> Result<Snapshot, StoreError> {
        off_worker(|| {
            read_snapshot(&mut *self.client()?, |tx| {
                let mut snapshot = Snapshot {
                    head: read_head(tx)?,
                    ..Snapshot::default()
                };
                for row in tx.query("SELECT kind, id, body FROM entities", &[])? {
                    let (kind, id): (String, String) = (row.get(0), row.get(1));
                    let Some(kind) = kind_of(&kind) else {
                        return Err(StoreError::Corrupt {
                            what: format!("entity {id:?}"),
                            problem: format!("unknown kind {kind:?}"),
                        });
                    };
                    snapshot.put(entity_of(kind, &id, row.get(2))?);
                }
                Ok(snapshot)
            })
        })
    }
}

impl CatalogueStore for PgStore {
    fn snapshot(&self) -> Result<Arc<Snapshot>, StoreError> {
        self.conns
            .snapshots
            .get(|| self.head(), || self.read_snapshot())
    }

    fn head(&self) -> Result<u64, StoreError> {
        off_worker(|| {
            let row = self
                .client()?
                .query_one("SELECT head FROM catalogue_head WHERE only_row", &[])?;
            to_u64(row.get(0), || "the catalogue head".into())
        })
    }

    fn commit(&self, commit: Commit) -> Result<Option<Revision>, StoreError> {
        off_worker(|| {
            let mut client = self.client()?;
            let mut tx = client.transaction()?;
            let (head, last) = lock_head(&mut tx)?;
            if head != commit.base {
                return Err(StoreError::Conflict {
                    expected: commit.base,
                    head,
                });
            }
            let mut changes = Vec::new();
            for entity in &commit.entities {
                if let Some(change) = put_entity(&mut tx, entity)? {
                    changes.push(change);
                }
            }
            if changes.is_empty() {
                return Ok(None);
            }
            let revision = Revision {
                number: last + 1,
                author: commit.author,
                at: commit.at,
                comment: commit.comment,
                changes,
                event: None,
            };
            append_revision(&mut tx, &revision)?;
            tx.commit()?;
            Ok(Some(revision))
        })
    }

    fn revisions(&self, after: u64, limit: usize) -> Result<Vec<Revision>, StoreError> {
        off_worker(|| {
            // Above every number PostgreSQL keeps: nothing follows.
            let Ok(after) = i64::try_from(after) else {
                return Ok(Vec::new());
            };
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = self.client()?.query(
                "SELECT number, body FROM revisions WHERE number > $1 ORDER BY number LIMIT $2",
                &[&after, &limit],
            )?;
            rows.into_iter()
                .map(|row| {
                    let n: i64 = row.get(0);
                    let revision: Revision = decode(|| format!("revision {n}"), row.get(1))?;
                    if i64::try_from(revision.number) != Ok(n) {
                        return Err(StoreError::Corrupt {
                            what: format!("revision {n}"),
                            problem: format!("it says it is revision {}", revision.number),
                        });
                    }
                    Ok(revision)
                })
                .collect()
        })
    }

    fn record_event(
        &self,
        kind: EventKind,
        author: &str,
        at: DateTime<Utc>,
        comment: &str,
    ) -> Result<Revision, StoreError> {
        off_worker(|| {
            let mut client = self.client()?;
            let mut tx = client.transaction()?;
            let (_, last) = lock_head(&mut tx)?;
            let revision = Revision {
                number: last + 1,
                author: author.to_owned(),
                at,
                comment: comment.to_owned(),
                changes: Vec::new(),
                event: Some(kind),
            };
            append_revision(&mut tx, &revision)?;
            tx.commit()?;
            Ok(revision)
        })
    }
}

/// Writes `entity` unless it is stored as it is; the change it made, if any.
fn put_entity(
    tx: &mut Transaction<'_>,
    entity: &Entity,
) -> Result<Option<ChangeRecord>, StoreError> {
    let kind = entity.kind();
    let id = entity.id();
    if kind_of(kind.as_str()).is_none() {
        return Err(StoreError::Backend(
            format!("a {} is not a catalogue entity", kind.as_str()).into(),
        ));
    }
    let after = entity.to_json();
    let before: Option<serde_json::Value> = tx
        .query_opt(
            "SELECT body FROM entities WHERE kind = $1 AND id = $2",
            &[&kind.as_str(), &id],
        )?
        .map(|row| row.get(0));
    if before.as_ref() == Some(&after) {
        return Ok(None);
    }
    insert_entity(tx, entity)?;
    Ok(Some(ChangeRecord {
        entity: kind,
        id: id.to_owned(),
        before,
        after: Some(after),
    }))
}

/// Writes `entity` as it is (insert or replace).
pub(super) fn insert_entity(tx: &mut Transaction<'_>, entity: &Entity) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO entities (kind, id, body) VALUES ($1, $2, $3)
         ON CONFLICT (kind, id) DO UPDATE SET body = EXCLUDED.body",
        &[&entity.kind().as_str(), &entity.id(), &entity.to_json()],
    )?;
    Ok(())
}
