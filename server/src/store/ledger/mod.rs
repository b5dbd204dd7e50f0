//! The proof-of-play ledger as the domain sees it: a trait over verified, deduplicated,
//! hash-chained batches with rollups, its value types, and what both backends share: how a
//! batch is opened and checked before it is stored ([`check`]), how its records are read in
//! place ([`view`]), counted into rollup rows ([`tally`]) and packed at rest ([`pack`]).
//! The stores are `redb/ledger/` (embedded) and `postgres/ledger/` (shared by replicas);
//! each owns its tables, transactions and queries, and nothing here does IO.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;

use playlists::wire::pop::AckedBatch;
use playlists::wire::PlayRecord;

pub use archive::verify::ArchiveReport;
pub use archive::{ArchiveSummary, ArchivedDay};

pub(crate) mod archive;
pub(crate) mod audit;
pub(crate) mod check;
pub(crate) mod pack;
pub(crate) mod reader;
pub(crate) mod tally;
#[cfg(test)]
pub(crate) mod testkit;
pub(crate) mod view;

/// A batch hash as stored: the raw SHA-256 digest.
pub(crate) type HashBytes = [u8; 32];

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger storage: {0}")]
    Store(#[from] Box<redb::Error>),
    #[error("ledger data is damaged: {0}")]
    Corrupt(String),
    /// Raised by a caller's export callback (writing a report).
    #[error("export: {0}")]
    Io(String),
    /// A database backend (PostgreSQL) failed; `database` is as shown in messages (user,
    /// host, port and name, never a password).
    #[error("ledger storage in {database}: {message}")]
    Database { database: String, message: String },
    /// The chain's batches up to `batch_seq` were moved to the archive (`ledger archive`),
    /// so the live ledger cannot give every batch back (see [`LedgerStore::batches`]).
    #[error(
        "the {epoch_shown} of screen {screen} was archived up to batch {batch_seq} \
         (`signage ledger archive`): its archived batches are no longer in the ledger, so it \
         cannot be read back batch by batch (nor copied)",
        epoch_shown = epoch_name(epoch)
    )]
    Archived {
        screen: String,
        epoch: String,
        batch_seq: u64,
    },
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
    pub(crate) fn tag(self) -> u8 {
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

/// What [`LedgerStore::batches`] calls with each stored batch: `(screen id, envelope as
/// received)`; an error stops the reading and is returned.
pub type BatchSink<'f> = dyn FnMut(&str, &[u8]) -> Result<(), LedgerError> + 'f;

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

/// A stored batch hash from its hex form.
pub(crate) fn hash_bytes(hex_str: &str) -> Option<HashBytes> {
    hex::decode(hex_str).ok()?.try_into().ok()
}

/// Proof-of-play storage. Every call blocks (a durable commit is an fsync): async callers
/// go through `spawn_blocking`.
pub trait LedgerStore: Send + Sync + std::fmt::Debug {
    /// Verifies and stores `batches` in one durable transaction, rollups included, and says
    /// what became of each (same order). An `Err` means nothing was stored and nothing may
    /// be acknowledged. `key_of(screen_id)` is the screen's registered keys, newest first;
    /// a batch is accepted when one of them verifies it.
    fn ingest(&self, batches: &[Incoming], key_of: KeysOf<'_>)
        -> Result<Vec<Outcome>, LedgerError>;
    /// Plays per key of `q.dimension` from the rollups, sorted by key.
    fn delivered(&self, q: &Query) -> Result<Vec<Row>, LedgerError>;
    /// Calls `f` with every stored record matching `q`, by screen, epoch and seq; returns
    /// how many.
    fn plays(
        &self,
        q: &Query,
        f: &mut dyn FnMut(&PlayRecord) -> Result<(), LedgerError>,
    ) -> Result<u64, LedgerError>;
    /// Re-verifies everything stored against `key_of` (newest first): each batch with the
    /// key that signed it, and says which keys signed each epoch.
    fn audit(&self, key_of: KeysOf<'_>) -> Result<AuditReport, LedgerError>;
    fn counts(&self) -> Result<LedgerCounts, LedgerError>;
    /// Retention: moves the batches of each chain's prefix dated before `before` (UTC day of
    /// a batch's first record) out of the live store into daily compressed files in `dir`,
    /// durably before deleting them; rollups stay. A store without an archive says so.
    fn archive(
        &self,
        _dir: &std::path::Path,
        _before: chrono::NaiveDate,
    ) -> Result<ArchiveSummary, LedgerError> {
        Err(LedgerError::Io(
            "this store does not archive its ledger".to_owned(),
        ))
    }
    /// Re-verifies the archive files in `dir` (signatures, chains, exactly-once) and their
    /// continuity into the live ledger; calls `plays` with each archived record once.
    fn verify_archive(
        &self,
        _dir: &std::path::Path,
        _key_of: KeysOf<'_>,
        _plays: &mut dyn FnMut(&PlayRecord) -> Result<(), LedgerError>,
    ) -> Result<ArchiveReport, LedgerError> {
        Err(LedgerError::Io(
            "this store does not archive its ledger".to_owned(),
        ))
    }
    /// Calls `f` with every stored batch as the exact envelope received, with the screen it
    /// was ingested for; returns how many. Order: screen by screen, each screen's chains by
    /// epoch with its latest epoch last, each chain by batch_seq then hash. Ingesting them in
    /// that order into an empty ledger (with the same keys) stores the same records, rollups
    /// and latest epochs: what `store copy` does. A ledger whose chains were archived in part
    /// refuses with [`LedgerError::Archived`].
    fn batches(&self, f: &mut BatchSink<'_>) -> Result<u64, LedgerError>;
    /// How many of `screen`'s records each stored batch of its latest epoch holds
    /// (batch_seq to count).
    fn batch_sizes(&self, screen: &str) -> Result<BTreeMap<u64, u64>, LedgerError>;
}
