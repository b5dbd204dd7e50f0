//! THROW-AWAY stub of the PostgreSQL proof-of-play ledger, so that [`PgStore`](super::PgStore)
//! can be a [`Store`](crate::store::Store) while the real ledger is written elsewhere (helper
//! A's `postgres/ledger/` replaces this file whole). Every call fails, naming why.

use std::collections::BTreeMap;

use playlists::wire::PlayRecord;
use r2d2_postgres::r2d2::Pool;

use super::Manager;
use crate::store::{
    AuditReport, Incoming, KeysOf, LedgerCounts, LedgerError, LedgerStore, Outcome, Query, Row,
};

/// The proof-of-play ledger in PostgreSQL (not built yet).
#[derive(Clone)]
pub struct PgLedger {
    _pool: Pool<Manager>,
    shown: String,
}

impl std::fmt::Debug for PgLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLedger")
            .field("database", &self.shown)
            .finish()
    }
}

impl PgLedger {
    /// The ledger in the database of `pool`, shown as `shown` in messages.
    pub fn new(pool: Pool<Manager>, shown: String) -> PgLedger {
        PgLedger { _pool: pool, shown }
    }
}

fn not_yet() -> LedgerError {
    LedgerError::Io("the PostgreSQL ledger is not built yet".into())
}

impl LedgerStore for PgLedger {
    fn ingest(&self, _: &[Incoming], _: KeysOf<'_>) -> Result<Vec<Outcome>, LedgerError> {
        Err(not_yet())
    }

    fn delivered(&self, _: &Query) -> Result<Vec<Row>, LedgerError> {
        Err(not_yet())
    }

    fn plays(
        &self,
        _: &Query,
        _: &mut dyn FnMut(&PlayRecord) -> Result<(), LedgerError>,
    ) -> Result<u64, LedgerError> {
        Err(not_yet())
    }

    fn audit(&self, _: KeysOf<'_>) -> Result<AuditReport, LedgerError> {
        Err(not_yet())
    }

    fn counts(&self) -> Result<LedgerCounts, LedgerError> {
        Err(not_yet())
    }

    fn batch_sizes(&self, _: &str) -> Result<BTreeMap<u64, u64>, LedgerError> {
        Err(not_yet())
    }
}
