//! The PostgreSQL schema's migrations: numbered SQL files in `schema/`, embedded in the
//! binary, applied in order on open, each in the transaction that records it in
//! `schema_migrations`. Replicas opening at once take turns (the table is locked). A
//! database migrated by a newer server (a version this one does not know) is refused
//! rather than used. Later steps (the ledger, planned counts) add files; a file once
//! released is never edited (its text is checked against what was applied).

use ::postgres::Client;
use sha2::Digest;

use crate::store::StoreError;

/// A migration: its version, name and SQL.
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "foundation",
        sql: include_str!("schema/0001_foundation.sql"),
    },
    Migration {
        version: 2,
        name: "ledger",
        sql: include_str!("schema/0002_ledger.sql"),
    },
    Migration {
        version: 3,
        name: "planned",
        sql: include_str!("schema/0003_planned.sql"),
    },
    Migration {
        version: 4,
        name: "archive",
        sql: include_str!("schema/0004_archive.sql"),
    },
    Migration {
        version: 5,
        name: "rendition finishes",
        sql: include_str!("schema/0005_rendition_finishes.sql"),
    },
];

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)";

fn checksum(sql: &str) -> String {
    hex::encode(sha2::Sha256::digest(sql.as_bytes()))
}

/// Whether the database holds a signage schema.
pub(super) fn has_schema(client: &mut Client) -> Result<bool, StoreError> {
    let row = client.query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])?;
    Ok(row.get(0))
}

/// The versions applied, oldest first.
pub(super) fn applied(client: &mut Client) -> Result<Vec<i32>, StoreError> {
    Ok(client
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Applies the migrations the database lacks, each with its record, in one transaction.
pub(super) fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let mut tx = client.transaction()?;
    tx.batch_execute(CREATE_TABLE)?;
    tx.batch_execute("LOCK TABLE schema_migrations IN EXCLUSIVE MODE")?;
    let done: Vec<(i32, String, String)> = tx
        .query(
            "SELECT version, name, sha256 FROM schema_migrations ORDER BY version",
            &[],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    for (version, name, sum) in &done {
        let Some(known) = MIGRATIONS.iter().find(|m| m.version == *version) else {
            return Err(StoreError::Corrupt {
                what: "the database schema".into(),
                problem: format!(
                    "migration {version} ({name}) was applied by a newer server; \
                     upgrade this one"
                ),
            });
        };
        if *sum != checksum(known.sql) {
            return Err(StoreError::Corrupt {
                what: "the database schema".into(),
                problem: format!(
                    "migration {version} ({name}) was applied from another text than this \
                     server's"
                ),
            });
        }
    }
    for m in MIGRATIONS {
        if done.iter().any(|(v, _, _)| *v == m.version) {
            continue;
        }
        tx.batch_execute(m.sql).map_err(|e| {
            StoreError::Backend(format!("schema migration {} ({}): {e}", m.version, m.name).into())
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, sha256) VALUES ($1, $2, $3)",
            &[&m.version, &m.name, &checksum(m.sql)],
        )?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::postgres::testdb::TestDb;
    use crate::store::OpenMode;

    /// Every version this server applies, in order.
    fn all() -> Vec<i32> {
        MIGRATIONS.iter().map(|m| m.version).collect()
    }

    #[test]
    fn applied_once_and_refused_when_newer_or_edited() {
        let db = TestDb::new();
        let dir = tempfile::tempdir().unwrap();
        let store = db.open(dir.path(), OpenMode::Create);
        assert_eq!(store.schema_versions().unwrap(), all());
        drop(store);
        // A second open applies nothing again.
        let store = db.open(dir.path(), OpenMode::Existing);
        assert_eq!(store.schema_versions().unwrap(), all());

        store.with_client(|c| {
            c.execute(
                "INSERT INTO schema_migrations (version, name, sha256) VALUES (999, 'x', 'y')",
                &[],
            )
            .unwrap()
        });
        let e = db.try_open(dir.path(), OpenMode::Existing).unwrap_err();
        assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
        assert!(e.to_string().contains("applied by a newer server"), "{e}");

        store.with_client(|c| {
            c.batch_execute(
                "DELETE FROM schema_migrations WHERE version = 999;
                 UPDATE schema_migrations SET sha256 = 'edited' WHERE version = 1",
            )
            .unwrap()
        });
        let e = db.try_open(dir.path(), OpenMode::Existing).unwrap_err();
        assert!(e.to_string().contains("from another text"), "{e}");
    }

    #[test]
    fn an_empty_database_is_missing_for_a_read() {
        let db = TestDb::new();
        let dir = tempfile::tempdir().unwrap();
        let e = db.try_open(dir.path(), OpenMode::Existing).unwrap_err();
        assert!(matches!(e, StoreError::Missing { .. }), "{e}");
        // ... and was left untouched.
        let store = db.open(dir.path(), OpenMode::Create);
        assert_eq!(store.schema_versions().unwrap(), all());
    }
}
