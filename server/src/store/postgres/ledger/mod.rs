//! The proof-of-play ledger in PostgreSQL, shared by every `signage serve` replica of one
//! database, with the redb ledger's semantics (see `redb/ledger/mod.rs`): per `(screen,
//! epoch)` hash chains, `Stored`/`Duplicate`/`Rejected`, chain anomalies kept for the
//! audit, gaps, a seq reused with other content refused, the latest epoch per screen, and
//! hourly rollups written in the ingest transaction. What is backend-neutral (opening and
//! checking a batch, counting rollup rows, packing envelopes, reading records by reference)
//! is `store/ledger/`; this module owns the `pop_*` tables of `schema/0002_ledger.sql`,
//! their transactions and queries.
//!
//! - [`ingest`]: one transaction per call, exactly once across replicas.
//! - [`read`]: `delivered`, `plays`, `counts`, `batch_sizes`, `batches` (for `store copy`).
//! - [`audit`]: the redb ledger's audit, run screen by screen on a copy of its rows.
//! - [`archive`]: retention, as in redb and into the same files: chain prefixes older than
//!   the cut-off move to daily archive files, safely with archivers on several replicas.
//!
//! # Records are kept by reference
//!
//! As in redb, a record is stored once, inside its signed batch (`pop_batches.envelope`,
//! packed); `pop_records` holds `(batch_seq, hash, index)` into it. So a record's bytes are
//! only ever the signed ones (a changed byte breaks the batch's hash, which the export and
//! the audit check), one-record batches (what agents send) cost one packed envelope rather
//! than the envelope and a copy, and the audit is the same proof on both backends.
//!
//! # Exactly once across replicas
//!
//! Two replicas may ingest the same batch at the same moment (MQTT redelivers, agents
//! resend). Each ingest transaction first takes a transaction-scoped advisory lock per
//! chain it touches (a 64-bit key derived from the screen and epoch, taken in key order so
//! two calls never wait on each other in a circle), so the check for a stored batch and the
//! write that follows are never interleaved with another writer of that chain: the second
//! finds the batch stored and answers `Duplicate` (the transaction is read committed, so
//! each statement after the locks sees what the previous writer committed). A transaction
//! that fails for a lost race anyway (a deadlock on rollup rows, a serialisation failure)
//! is retried whole; the caller never sees it. An advisory lock needs no row to exist
//! beforehand, so a new chain is serialised like an old one.
//!
//! At rest, one-record batches (what agents send) take about 634 bytes per record, tables
//! and indexes together (`tests::bytes_per_record_at_rest`): 453 in `pop_batches` (the
//! packed envelope and its key), 162 in `pop_records`.
//!
//! # Retention across replicas
//!
//! `archive` and `verify_archive` are redb's (`store/ledger/archive/`: the same files, the
//! same per-chain markers in `pop_archived`, file spans in `pop_archive_files`, schema
//! `0004_archive.sql`). Each day archived is one transaction holding a database-wide
//! archive lock (so two replicas archiving at once take turns, and the second finds the
//! day done), its file written and fsynced before the rows go; the deletion takes the
//! chains' ingest locks, so an ingest sees a batch live or its marker moved, never neither
//! (see `archive.rs`). The archive directory must be the same directory for every replica
//! that archives or reads plays (a shared filesystem, or one machine running retention):
//! the ledger records each file's absolute path.
//!
//! Sequence numbers and batch numbers above `i64::MAX` (PostgreSQL's BIGINT) are refused at
//! ingest by the shared check, on both backends (`ledger::check::MAX_NUMBER`).

use std::collections::BTreeMap;
use std::fmt;

use ::postgres::error::SqlState;
use playlists::wire::PlayRecord;
use r2d2_postgres::r2d2::{Pool, PooledConnection};

use super::Manager;
use crate::store::ledger::{
    ArchiveReport, ArchiveSummary, AuditReport, Incoming, KeysOf, LedgerCounts, LedgerError,
    LedgerStore, Outcome, Query, Row,
};

mod archive;
mod audit;
mod ingest;
mod read;
#[cfg(test)]
mod tests;

/// Most attempts at a transaction that lost a race (deadlock, serialisation failure).
const ATTEMPTS: u32 = 8;

/// The ledger in one PostgreSQL database. Cheap to clone: it shares the store's pool.
#[derive(Clone)]
pub struct PgLedger {
    pool: Pool<Manager>,
    /// The database as shown in messages (no password).
    shown: String,
}

impl fmt::Debug for PgLedger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgLedger")
            .field("database", &self.shown)
            .finish()
    }
}

/// Why a ledger call failed inside, before it is named for the caller.
#[derive(Debug)]
enum Fail {
    Pg(::postgres::Error),
    Ledger(LedgerError),
}

impl From<::postgres::Error> for Fail {
    fn from(e: ::postgres::Error) -> Self {
        Fail::Pg(e)
    }
}

impl From<LedgerError> for Fail {
    fn from(e: LedgerError) -> Self {
        Fail::Ledger(e)
    }
}

/// Damaged data: a stored value out of its range.
fn corrupt(what: impl fmt::Display) -> Fail {
    Fail::Ledger(LedgerError::Corrupt(what.to_string()))
}

/// A stored BIGINT that must not be negative.
fn unsigned(n: i64, what: &str) -> Result<u64, Fail> {
    u64::try_from(n).map_err(|_| corrupt(format!("{what} is negative ({n})")))
}

/// A stored hash that must be 32 bytes.
fn hash32(bytes: &[u8], what: &str) -> Result<crate::store::ledger::HashBytes, Fail> {
    bytes
        .try_into()
        .map_err(|_| corrupt(format!("{what} is {} bytes, not 32", bytes.len())))
}

/// A seq or batch number as stored (callers have refused those above `i64::MAX`).
fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl PgLedger {
    /// The ledger in the database of `pool` (its schema migrated by [`super::PgStore`]);
    /// `shown` names that database in messages and must hold no password.
    pub fn new(pool: Pool<Manager>, shown: String) -> PgLedger {
        PgLedger { pool, shown }
    }

    fn error(&self, message: String) -> LedgerError {
        LedgerError::Database {
            database: self.shown.clone(),
            message,
        }
    }

    fn client(&self) -> Result<PooledConnection<Manager>, LedgerError> {
        self.pool
            .get()
            .map_err(|e| self.error(format!("no connection: {e}")))
    }

    /// Runs `f` on a connection, again (up to [`ATTEMPTS`] times) when it lost a race to
    /// another transaction; names any other failure.
    fn run<T>(
        &self,
        mut f: impl FnMut(&mut ::postgres::Client) -> Result<T, Fail>,
    ) -> Result<T, LedgerError> {
        let mut client = self.client()?;
        let mut attempt = 1;
        loop {
            match f(&mut client) {
                Ok(v) => return Ok(v),
                Err(Fail::Ledger(e)) => return Err(e),
                Err(Fail::Pg(e)) => {
                    let lost_race = e.code().is_some_and(|c| {
                        *c == SqlState::T_R_SERIALIZATION_FAILURE
                            || *c == SqlState::T_R_DEADLOCK_DETECTED
                    });
                    if lost_race && attempt < ATTEMPTS {
                        tracing::debug!(attempt, error = %e, "ledger transaction lost a race; retried");
                        attempt += 1;
                        continue;
                    }
                    return Err(self.error(super::describe(&e)));
                }
            }
        }
    }
}

impl LedgerStore for PgLedger {
    fn ingest(
        &self,
        batches: &[Incoming],
        key_of: KeysOf<'_>,
    ) -> Result<Vec<Outcome>, LedgerError> {
        ingest::ingest(self, batches, key_of)
    }
    fn delivered(&self, q: &Query) -> Result<Vec<Row>, LedgerError> {
        self.run(|c| read::delivered(c, q))
    }
    fn plays(
        &self,
        q: &Query,
        f: &mut dyn FnMut(&PlayRecord) -> Result<(), LedgerError>,
    ) -> Result<u64, LedgerError> {
        // Not retried: `f` may have seen records already.
        let mut client = self.client()?;
        match read::plays(&mut client, &self.shown, q, f) {
            Ok(n) => Ok(n),
            Err(Fail::Ledger(e)) => Err(e),
            Err(Fail::Pg(e)) => Err(self.error(super::describe(&e))),
        }
    }
    fn audit(&self, key_of: KeysOf<'_>) -> Result<AuditReport, LedgerError> {
        self.run(|c| audit::audit(c, &self.shown, key_of))
    }
    fn counts(&self) -> Result<LedgerCounts, LedgerError> {
        self.run(read::counts)
    }
    fn archive(
        &self,
        dir: &std::path::Path,
        before: chrono::NaiveDate,
    ) -> Result<ArchiveSummary, LedgerError> {
        archive::archive(self, dir, before)
    }
    fn verify_archive(
        &self,
        dir: &std::path::Path,
        key_of: KeysOf<'_>,
        plays: &mut dyn FnMut(&PlayRecord) -> Result<(), LedgerError>,
    ) -> Result<ArchiveReport, LedgerError> {
        // Not retried: `plays` may have seen records already.
        archive::verify_archive(self, dir, key_of, plays)
    }
    fn batches(&self, f: &mut crate::store::ledger::BatchSink<'_>) -> Result<u64, LedgerError> {
        // Not retried: `f` may have seen batches already.
        let mut client = self.client()?;
        match read::batches(&mut client, f) {
            Ok(n) => Ok(n),
            Err(Fail::Ledger(e)) => Err(e),
            Err(Fail::Pg(e)) => Err(self.error(super::describe(&e))),
        }
    }
    fn batch_sizes(&self, screen: &str) -> Result<BTreeMap<u64, u64>, LedgerError> {
        self.run(|c| read::batch_sizes(c, screen))
    }
}

#[cfg(test)]
impl super::PgStore {
    /// The ledger in this store's database, on its pool.
    pub(crate) fn test_ledger(&self) -> PgLedger {
        self.conns.ledger.clone().expect("the store is open")
    }
}
