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
//! - [`audit`]: re-verifies signatures, the chain and every stored record.
//! - [`archive`]: retention: moves old batches into compressed daily files, and audits them.
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
//! Envelopes are packed (`pack.rs`): compressed, and unpacked to the exact bytes received.
//! Batch hashes are the 32 raw bytes of [`batch_hash`](playlists::wire::pop::batch_hash).
//! A record is stored once, inside its signed batch: `pop_records` says which batch stored it
//! and where it is in that batch's `records` (index from 0), so a record's bytes are always
//! the signed ones and the audit checks the reference instead of a copy. Record seqs start
//! at 1.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use playlists::wire::pop::AckedBatch;
use playlists::wire::PlayRecord;

pub use archive::verify::ArchiveReport;
pub use archive::{ArchiveSummary, ArchivedDay};

mod archive;
mod audit;
mod export;
mod ingest;
mod migrate;
mod pack;
mod rollup;
#[cfg(test)]
pub(crate) mod testkit;
mod view;

/// A batch hash as stored: the raw SHA-256 digest.
pub(crate) type HashBytes = [u8; 32];

/// A stored batch: `(screen, epoch, batch_seq, batch hash)`.
pub(crate) type BatchKey<'a> = (&'a str, &'a str, u64, &'a HashBytes);

pub(crate) const BATCHES: TableDefinition<BatchKey<'static>, &[u8]> =
    TableDefinition::new("pop_epoch_batches");
/// Where a stored record is: `(batch_seq, batch hash, index in the batch's records)`.
pub(crate) type RecordRef<'a> = (u64, &'a HashBytes, u32);

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

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger storage: {0}")]
    Store(#[from] Box<redb::Error>),
    #[error("ledger data is damaged: {0}")]
    Corrupt(String),
    /// Raised by a caller's export callback (writing a report).
    #[error("export: {0}")]
    Io(String),
}

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

/// A proof-of-play message as received.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The screen id in the MQTT topic it arrived on.
    pub topic_screen: String,
    pub raw: Vec<u8>,
}

/// What became of one [`Incoming`] batch. `Stored` and `Duplicate` are to be acknowledged
/// (once `ingest` has returned `Ok`); `Rejected` never is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Durable. `records` were new (records already held were skipped); `gaps` are the
    /// `(first, last)` seq ranges this batch skipped past.
    Stored {
        screen_id: String,
        ack: AckedBatch,
        records: usize,
        gaps: Vec<(u64, u64)>,
    },
    /// This exact batch was already stored: acknowledge again, nothing changed.
    Duplicate {
        screen_id: String,
        ack: AckedBatch,
    },
    Rejected {
        screen_id: String,
        reason: String,
    },
}

impl Outcome {
    pub fn screen_id(&self) -> &str {
        match self {
            Outcome::Stored { screen_id, .. }
            | Outcome::Duplicate { screen_id, .. }
            | Outcome::Rejected { screen_id, .. } => screen_id,
        }
    }
    /// The acknowledgement to send, if any.
    pub fn ack(&self) -> Option<&AckedBatch> {
        match self {
            Outcome::Stored { ack, .. } | Outcome::Duplicate { ack, .. } => Some(ack),
            Outcome::Rejected { .. } => None,
        }
    }
}

/// What `delivered` groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    Venue,
    Screen,
    Campaign,
    Creative,
}

impl Dimension {
    pub const ALL: [Dimension; 4] = [
        Dimension::Venue,
        Dimension::Screen,
        Dimension::Campaign,
        Dimension::Creative,
    ];

    /// The tag stored in rollup keys. Never renumber.
    fn tag(self) -> u8 {
        match self {
            Dimension::Venue => 0,
            Dimension::Screen => 1,
            Dimension::Campaign => 2,
            Dimension::Creative => 3,
        }
    }
}

/// A report query. `dimension` only matters to `delivered`; `plays` ignores it.
///
/// Time: `plays` keeps records whose `slot_start` is in `[from, to)` exactly. `delivered`
/// reads hourly rollups, so it has hour granularity: it counts the hours (UTC, of
/// `slot_start`) whose start lies in `[from, to)`. Whole-hour bounds give exact answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub dimension: Dimension,
    pub venue: Option<String>,
    pub screen: Option<String>,
}

/// Plays delivered for one key of the queried dimension (a venue id, a screen id…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub key: String,
    pub complete: u64,
    pub partial: u64,
    pub failed: u64,
}

/// What `audit` found. No problems means every signature, link and record checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    pub screens: u64,
    pub batches: u64,
    pub records: u64,
    pub problems: Vec<AuditProblem>,
    /// Every chain audited: one per screen and epoch, by screen then epoch.
    pub chains: Vec<ChainSummary>,
}

/// One screen's epoch as the audit found it, with the keys that signed its batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSummary {
    pub screen_id: String,
    /// Empty: the legacy epoch.
    pub epoch: String,
    pub batches: u64,
    /// The highest batch_seq stored.
    pub last_batch_seq: u64,
    /// Records its batches carry.
    pub records: u64,
    /// The screen's keys (index into the list given to `audit`, newest first) that signed
    /// its batches, each with the first and last batch_seq it signed, in batch order.
    pub signers: Vec<Signer>,
}

/// A run of batches signed by one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signer {
    pub key: VerifyingKey,
    pub first_batch: u64,
    pub last_batch: u64,
}

/// How an epoch is named in messages.
pub fn epoch_name(epoch: &str) -> String {
    if epoch.is_empty() {
        "legacy epoch".to_owned()
    } else {
        format!("epoch {epoch}")
    }
}

/// A screen's registered keys, newest (current) first: what `ingest` and `audit` verify
/// batches with. A batch is accepted when one of them verifies it, so batches signed
/// before a re-provisioning (by the kiosk that was replaced, or sent late) still count.
pub type KeysOf<'a> = &'a dyn Fn(&str) -> Vec<VerifyingKey>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditProblem {
    pub screen_id: String,
    pub kind: ProblemKind,
    pub detail: String,
}

impl fmt::Display for AuditProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.kind, self.screen_id, self.detail)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    /// A stored batch verifies with none of the screen's keys (or it has none).
    BadSignature,
    /// A batch does not follow the one before it, or its stored hash does not match.
    ChainBreak,
    /// A stored record differs from the record in its signed batch, or no batch carries it.
    RecordTampered,
    /// Seqs the screen skipped and that are still missing.
    Gap,
    /// A record inside a stored batch is not in the ledger.
    MissingRecord,
    /// Seqs of one epoch held with different content in two batches (the first was kept).
    SeqConflict,
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProblemKind::BadSignature => "bad-signature",
            ProblemKind::ChainBreak => "chain-break",
            ProblemKind::RecordTampered => "record-tampered",
            ProblemKind::Gap => "gap",
            ProblemKind::MissingRecord => "missing-record",
            ProblemKind::SeqConflict => "seq-conflict",
        })
    }
}

/// Sizes and, per screen, where its latest epoch (the one its latest batch was in) stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LedgerCounts {
    pub records: u64,
    pub batches: u64,
    /// The highest seq held in each screen's latest epoch.
    pub last_seq: BTreeMap<String, u64>,
    /// The head batch_seq of each screen's latest epoch.
    pub last_batch_seq: BTreeMap<String, u64>,
    /// Each screen's latest epoch.
    pub epoch: BTreeMap<String, String>,
    /// Every (screen, epoch) chain: (head batch_seq, highest seq).
    pub chains: BTreeMap<(String, String), (u64, u64)>,
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
        archive::verify::verify_archive(&self.db, dir, key_of, plays)
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

/// A stored batch hash from its hex form.
pub(crate) fn hash_bytes(hex_str: &str) -> Option<HashBytes> {
    hex::decode(hex_str).ok()?.try_into().ok()
}
