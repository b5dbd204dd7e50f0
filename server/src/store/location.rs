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
