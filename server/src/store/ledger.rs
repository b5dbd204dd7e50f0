//! The proof-of-play ledger as the domain sees it: a trait over verified, deduplicated,
//! hash-chained batches with rollups, and its value types. The redb implementation is
//! `redb/ledger/`.

use std::collections::BTreeMap;

use playlists::wire::PlayRecord;

pub use super::redb::ledger::{
    epoch_name, ArchiveReport, ArchiveSummary, ArchivedDay, AuditProblem, AuditReport,
    ChainSummary, Dimension, Incoming, KeysOf, LedgerCounts, LedgerError, Outcome, ProblemKind,
    Query, Row, Signer,
};

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
    /// How many of `screen`'s records each stored batch of its latest epoch holds
    /// (batch_seq to count).
    fn batch_sizes(&self, screen: &str) -> Result<BTreeMap<u64, u64>, LedgerError>;
}
