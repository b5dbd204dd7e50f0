//! The proof-of-play ledger: verified, deduplicated, hash-chained batches of play records in
//! the server's redb file, with hourly rollups kept in the same transaction.
//!
//! This module owns the `pop_*` tables and nothing else in the file (the catalogue is
//! `store`'s). It does no IO besides redb and never reads the clock: MQTT, acknowledgements
//! and report formatting are the caller's. Every call blocks (a durable commit is an fsync):
//! async callers go through `spawn_blocking`.
//!
//! - [`ingest`]: checks and stores batches, one durable write transaction per call.
//! - [`rollup`]: per-hour counts per venue, screen, campaign and creative; `delivered`.
//! - [`export`]: the raw records, for `report plays`.
//! - [`batches`]: every stored batch as received, for `store copy`.
//! - [`audit`]: re-verifies signatures, the chain and every stored record.
//! - [`archive`]: retention: moves old batches into compressed daily files (the format, the
//!   choice of batches and the archive audit are shared: `store/ledger/archive/`).
//!
//! # Epochs
//!
//! A record is identified by `(screen, epoch, seq)`: each agent outbox has its own epoch
//! (a wiped or replaced kiosk starts a new one) and each epoch is its own hash chain from
//! batch 1 and the genesis hash. The epoch `""` is the legacy one: batches of agents from
//! before epochs, and every row of a ledger written before them (migrated into it when the
//! ledger opens, see [`migrate`]). A batch that reuses a seq of its epoch with other
//! content is refused (never acknowledged): the server never acknowledges a record it did
//! not store. A batch that breaks its epoch's chain without such a conflict is stored, and
//! the anomaly kept for the audit.
//!
//! # Tables
//!
//! | table                 | key                                         | value                                  |
//! |-----------------------|---------------------------------------------|----------------------------------------|
//! | `pop_epoch_batches`   | (screen, epoch, batch_seq, batch hash)      | the signed envelope as received, packed|
//! | `pop_epoch_records`   | (screen, epoch, seq)                        | (batch_seq, batch hash, index)         |
//! | `pop_epoch_heads`     | (screen, epoch)                             | (batch_seq, batch hash, last seq)      |
//! | `pop_epoch_gaps`      | (screen, epoch, first missing seq)          | last missing seq                       |
//! | `pop_epoch_anomalies` | (screen, epoch, batch_seq, batch hash)      | what was wrong with the chain at ingest|
//! | `pop_latest_epoch`    | screen                                      | the epoch its latest stored batch is in|
//! | `pop_rollups`         | (dimension, venue?, screen?, key, hour)     | (complete, partial, failed)            |
//! | `pop_archived`        | (screen, epoch)                             | (batch_seq, hash, last seq) archived   |
//! | `pop_archive_files`   | archive file path                           | (first, last) slot_start of its plays  |
//!
//! Envelopes are packed (`store/ledger/pack.rs`): compressed, and unpacked to the exact bytes received.
//! Batch hashes are the 32 raw bytes of [`batch_hash`](playlists::wire::pop::batch_hash).
//! A record is stored once, inside its signed batch: `pop_records` says which batch stored it
//! and where it is in that batch's `records` (index from 0), so a record's bytes are always
//! the signed ones and the audit checks the reference instead of a copy. Record seqs start
//! at 1.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use playlists::wire::PlayRecord;

pub use crate::store::ledger::archive::verify::ArchiveReport;
pub use crate::store::ledger::archive::{ArchiveSummary, ArchivedDay};

pub(crate) use crate::store::ledger::HashBytes;
pub use crate::store::ledger::{
    epoch_name, AuditProblem, AuditReport, ChainSummary, Dimension, Incoming, KeysOf, LedgerCounts,
    LedgerError, Outcome, ProblemKind, Query, Row, Signer,
};

mod archive;
mod audit;
mod batches;
mod export;
mod ingest;
mod migrate;
mod rollup;
#[cfg(test)]
pub(crate) mod testkit;

/// A stored batch: `(screen, epoch, batch_seq, batch hash)`.
pub(crate) type BatchKey<'a> = (&'a str, &'a str, u64, &'a HashBytes);

pub(crate) const BATCHES: TableDefinition<BatchKey<'static>, &[u8]> =
    TableDefinition::new("pop_epoch_batches");
/// Where a stored record is: `(batch_seq, batch hash, index in the batch's records)`.
pub(crate) use crate::store::ledger::reader::RecordRef;

pub(crate) const RECORDS: TableDefinition<(&str, &str, u64), RecordRef<'static>> =
    TableDefinition::new("pop_epoch_records");
pub(crate) const HEADS: TableDefinition<(&str, &str), (u64, &HashBytes, u64)> =
    TableDefinition::new("pop_epoch_heads");
pub(crate) const GAPS: TableDefinition<(&str, &str, u64), u64> =
    TableDefinition::new("pop_epoch_gaps");
pub(crate) const ANOMALIES: TableDefinition<BatchKey<'static>, &str> =
    TableDefinition::new("pop_epoch_anomalies");
pub(crate) const LATEST: TableDefinition<&str, &str> = TableDefinition::new("pop_latest_epoch");
/// Per chain, the last batch moved to the archive: `(batch_seq, hash, highest seq archived)`.
/// The live chain continues from it; records at or below that seq are held in the archive.
pub(crate) const ARCHIVED: TableDefinition<(&str, &str), (u64, &HashBytes, u64)> =
    TableDefinition::new("pop_archived");
/// Each archive file written (its path) and the span of its records' `slot_start`
/// (microseconds since the epoch, first and last), so the raw export reads only the files
/// a window needs.
pub(crate) const ARCHIVE_FILES: TableDefinition<&str, (i64, i64)> =
    TableDefinition::new("pop_archive_files");
pub(crate) const ROLLUPS: TableDefinition<rollup::RollupKey, (u64, u64, u64)> =
    TableDefinition::new("pop_rollups");

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for LedgerError {
            fn from(e: $t) -> Self {
                LedgerError::Store(Box::new(redb::Error::from(e)))
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::CursorError
);

/// The ledger. Cheap to clone: it shares the server's one redb [`Database`].
#[derive(Clone)]
pub struct Ledger {
    db: Arc<Database>,
}

impl fmt::Debug for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ledger")
    }
}

/// Runs a ledger call, a panic of redb's on damaged data becoming [`LedgerError::Corrupt`].
fn guarded<T>(f: impl FnOnce() -> Result<T, LedgerError>) -> Result<T, LedgerError> {
    super::guard::guard(f, LedgerError::Corrupt)
}

impl super::super::LedgerStore for Ledger {
    fn ingest(
        &self,
        batches: &[Incoming],
        key_of: KeysOf<'_>,
    ) -> Result<Vec<Outcome>, LedgerError> {
        guarded(|| Ledger::ingest(self, batches, key_of))
    }
    fn delivered(&self, q: &Query) -> Result<Vec<Row>, LedgerError> {
        guarded(|| Ledger::delivered(self, q))
    }
    fn plays(
        &self,
        q: &Query,
        f: &mut dyn FnMut(&PlayRecord) -> Result<(), LedgerError>,
    ) -> Result<u64, LedgerError> {
        guarded(|| Ledger::plays(self, q, f))
    }
    fn audit(&self, key_of: KeysOf<'_>) -> Result<AuditReport, LedgerError> {
        guarded(|| Ledger::audit(self, key_of))
    }
    fn counts(&self) -> Result<LedgerCounts, LedgerError> {
        guarded(|| Ledger::counts(self))
    }
    fn archive(
        &self,
        dir: &std::path::Path,
        before: chrono::NaiveDate,
    ) -> Result<ArchiveSummary, LedgerError> {
        guarded(|| Ledger::archive(self, dir, before))
    }
    fn verify_archive(
        &self,
        dir: &std::path::Path,
        key_of: KeysOf<'_>,
        plays: &mut dyn FnMut(&PlayRecord) -> Result<(), LedgerError>,
    ) -> Result<ArchiveReport, LedgerError> {
        guarded(|| Ledger::verify_archive(self, dir, key_of, plays))
    }
    fn batches(&self, f: &mut crate::store::ledger::BatchSink<'_>) -> Result<u64, LedgerError> {
        guarded(|| batches::batches(self, f))
    }
    fn batch_sizes(&self, screen: &str) -> Result<BTreeMap<u64, u64>, LedgerError> {
        guarded(|| {
            let tx = self.db.begin_read()?;
            let Some(epoch) = tx
                .open_table(LATEST)?
                .get(screen)?
                .map(|g| g.value().to_owned())
            else {
                return Ok(BTreeMap::new());
            };
            let table = tx.open_table(RECORDS)?;
            let mut per = BTreeMap::new();
            for row in
                table.range((screen, epoch.as_str(), 0u64)..=(screen, epoch.as_str(), u64::MAX))?
            {
                let (_, v) = row?;
                *per.entry(v.value().0).or_insert(0) += 1;
            }
            Ok(per)
        })
    }
}

impl Ledger {
    /// Opens the ledger in the server's database, creating its tables, and moves a ledger
    /// written before epochs into the legacy epoch (one write transaction: all or nothing).
    pub fn open(db: Arc<Database>) -> Result<Ledger, LedgerError> {
        let tx = db.begin_write()?;
        tx.open_table(BATCHES)?;
        tx.open_table(RECORDS)?;
        tx.open_table(HEADS)?;
        tx.open_table(GAPS)?;
        tx.open_table(ANOMALIES)?;
        tx.open_table(LATEST)?;
        tx.open_table(ROLLUPS)?;
        tx.open_table(ARCHIVED)?;
        tx.open_table(ARCHIVE_FILES)?;
        migrate::to_epochs(&tx)?;
        tx.commit()?;
        Ok(Ledger { db })
    }

    /// Verifies and stores `batches` in one durable write transaction, rollups included, and
    /// says what became of each (same order). An `Err` means nothing was stored and nothing
    /// may be acknowledged. `key_of(screen_id)` is the screen's registered keys.
    pub fn ingest(
        &self,
        batches: &[Incoming],
        key_of: KeysOf<'_>,
    ) -> Result<Vec<Outcome>, LedgerError> {
        ingest::ingest(&self.db, batches, key_of)
    }

    /// Plays per key of `q.dimension`, from the rollups (hour granularity, see [`Query`]),
    /// sorted by key.
    pub fn delivered(&self, q: &Query) -> Result<Vec<Row>, LedgerError> {
        rollup::delivered(&self.db, q)
    }

    /// Calls `f` with every stored record matching `q`, by screen then seq; returns how many.
    pub fn plays(
        &self,
        q: &Query,
        f: &mut dyn FnMut(&PlayRecord) -> Result<(), LedgerError>,
    ) -> Result<u64, LedgerError> {
        export::plays(&self.db, q, f)
    }

    /// Re-verifies everything stored against `key_of`, each screen's keys newest first.
    pub fn audit(&self, key_of: KeysOf<'_>) -> Result<AuditReport, LedgerError> {
        audit::audit(&self.db, key_of)
    }

    /// Moves every batch whose chain prefix lies before `before` (the UTC day of its first
    /// record) into daily files in `dir`; rollups stay. See [`archive`].
    pub fn archive(
        &self,
        dir: &std::path::Path,
        before: chrono::NaiveDate,
    ) -> Result<ArchiveSummary, LedgerError> {
        archive::archive(&self.db, dir, before)
    }

    /// Re-verifies the archive files in `dir` and their chains' continuity into the ledger.
    /// Calls `plays` with each archived record once.
    pub fn verify_archive(
        &self,
        dir: &std::path::Path,
        key_of: KeysOf<'_>,
        plays: &mut dyn FnMut(&PlayRecord) -> Result<(), LedgerError>,
    ) -> Result<ArchiveReport, LedgerError> {
        archive::verify_archive(&self.db, dir, key_of, plays)
    }

    pub fn counts(&self) -> Result<LedgerCounts, LedgerError> {
        let tx = self.db.begin_read()?;
        let mut counts = LedgerCounts {
            records: tx.open_table(RECORDS)?.len()?,
            batches: tx.open_table(BATCHES)?.len()?,
            ..LedgerCounts::default()
        };
        for row in tx.open_table(HEADS)?.iter()? {
            let (key, head) = row?;
            let (screen, epoch) = key.value();
            let (batch_seq, _, last_seq) = head.value();
            counts
                .chains
                .insert((screen.to_owned(), epoch.to_owned()), (batch_seq, last_seq));
        }
        for row in tx.open_table(LATEST)?.iter()? {
            let (screen, epoch) = row?;
            let (screen, epoch) = (screen.value().to_owned(), epoch.value().to_owned());
            if let Some(&(batch_seq, last_seq)) =
                counts.chains.get(&(screen.clone(), epoch.clone()))
            {
                counts.last_seq.insert(screen.clone(), last_seq);
                counts.last_batch_seq.insert(screen.clone(), batch_seq);
            }
            counts.epoch.insert(screen, epoch);
        }
        Ok(counts)
    }
}
