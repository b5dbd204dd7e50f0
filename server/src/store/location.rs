//! Opening a store by where it is: a directory (the embedded redb store) or a
//! `postgres://` URL (the PostgreSQL store, which several servers can share).

use std::path::Path;
use std::sync::Arc;

use super::{open, postgres, OpenMode, SharedStore, StoreError};

/// Opens the store at `location`: a `postgres://` (or `postgresql://`) URL, with
/// `local_dir` for what stays on this machine (the server's key and tokens, uploads in
/// progress, the local copy of the media); otherwise the directory of an embedded redb
/// store, which holds those files itself (`local_dir` is not used).
pub fn open_url(
    location: &str,
    local_dir: &Path,
    mode: OpenMode,
) -> Result<SharedStore, StoreError> {
    if postgres::is_url(location) {
        return Ok(Arc::new(postgres::PgStore::open(
            location, local_dir, mode,
        )?));
    }
    open(Path::new(location), mode)
}

/// Opens the server's store: the database at `store` when given (a `postgres://` URL, with
/// `data_dir` as its local directory), otherwise the redb store in `data_dir`.
pub fn open_in(
    data_dir: &Path,
    store: Option<&str>,
    mode: OpenMode,
) -> Result<SharedStore, StoreError> {
    match store {
        Some(url) if postgres::is_url(url) => open_url(url, data_dir, mode),
        Some(other) => Err(StoreError::Backend(
            format!(
                "store {other:?} is not a postgres:// URL (leave it out for the embedded \
                 store in the data directory)"
            )
            .into(),
        )),
        None => open(data_dir, mode),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::postgres::testdb::TestDb;

    #[test]
    fn a_url_opens_postgresql_and_a_path_redb() {
        let (data, local) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let redb = open_url(
            data.path().to_str().unwrap(),
            local.path(),
            OpenMode::Create,
        )
        .unwrap();
        assert!(format!("{redb:?}").starts_with("RedbStore"), "{redb:?}");
        assert_eq!(redb.dir(), data.path());
        assert!(data.path().join(crate::store::redb::FILE).exists());

        let db = TestDb::new();
        for url in [db.url(), db.url().replace("postgres://", "postgresql://")] {
            let store = open_url(&url, local.path(), OpenMode::Create).unwrap();
            assert!(format!("{store:?}").starts_with("PgStore"), "{store:?}");
            assert_eq!(store.head().unwrap(), 0);
            assert_eq!(store.dir(), local.path());
            assert!(store.planned_store().is_some());
        }
        let missing = open_url("/nonexistent/store", local.path(), OpenMode::Existing);
        assert!(
            matches!(missing, Err(StoreError::Missing { .. })),
            "{missing:?}"
        );
    }

    #[test]
    fn the_server_store_is_the_data_dir_or_a_database() {
        let local = tempfile::tempdir().unwrap();
        let db = TestDb::new();
        let pg = open_in(local.path(), Some(&db.url()), OpenMode::Create).unwrap();
        assert!(format!("{pg:?}").starts_with("PgStore"), "{pg:?}");
        assert!(!local.path().join(crate::store::redb::FILE).exists());
        let redb = open_in(local.path(), None, OpenMode::Create).unwrap();
        assert!(format!("{redb:?}").starts_with("RedbStore"), "{redb:?}");
        let e = open_in(local.path(), Some("/var/lib/x"), OpenMode::Create).unwrap_err();
        assert!(e.to_string().contains("not a postgres:// URL"), "{e}");
    }
}
