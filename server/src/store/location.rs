//! Opening a store by where it is: a directory (the embedded redb store) or a
//! `postgres://` URL (the PostgreSQL store, which holds everything but the ledger yet).

use std::path::Path;
use std::sync::Arc;

use super::{open, postgres, OpenMode, SharedStore, StoreError};

/// A store opened by [`open_url`]. The PostgreSQL store holds everything but the ledger
/// (issue 12: the ledger and planned counts follow), so it is not a [`Store`](super::Store) yet and
/// `serve` cannot run on it.
#[derive(Debug)]
pub enum OpenedStore {
    Redb(SharedStore),
    Postgres(Arc<postgres::PgStore>),
}

/// Opens the store at `location`: a `postgres://` (or `postgresql://`) URL, with
/// `local_dir` for uploads in progress and the local copy of the media; otherwise the
/// directory of an embedded redb store (`local_dir` is not used).
pub fn open_url(
    location: &str,
    local_dir: &Path,
    mode: OpenMode,
) -> Result<OpenedStore, StoreError> {
    if postgres::is_url(location) {
        let store = postgres::PgStore::open(location, local_dir, mode)?;
        return Ok(OpenedStore::Postgres(Arc::new(store)));
    }
    Ok(OpenedStore::Redb(open(Path::new(location), mode)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::postgres::testdb::TestDb;
    use crate::store::CatalogueStore;

    #[test]
    fn a_url_opens_postgresql_and_a_path_redb() {
        let (data, local) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let redb = open_url(
            data.path().to_str().unwrap(),
            local.path(),
            OpenMode::Create,
        );
        assert!(matches!(redb, Ok(OpenedStore::Redb(_))), "{redb:?}");
        assert!(data.path().join(crate::store::redb::FILE).exists());

        let db = TestDb::new();
        for url in [db.url(), db.url().replace("postgres://", "postgresql://")] {
            match open_url(&url, local.path(), OpenMode::Create).unwrap() {
                OpenedStore::Postgres(store) => assert_eq!(store.head().unwrap(), 0),
                other => panic!("{other:?}"),
            }
        }
        let missing = open_url("/nonexistent/store", local.path(), OpenMode::Existing);
        assert!(
            matches!(missing, Err(StoreError::Missing { .. })),
            "{missing:?}"
        );
    }
}
