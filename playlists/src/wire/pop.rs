//! Proof of play on the wire: records, hash-chained signed batches, acknowledgements.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::Sha256;

pub const BATCH_KIND: &str = "pop-batch";
pub const ACK_KIND: &str = "pop-ack";
/// Most records in one batch.
pub const MAX_BATCH_RECORDS: usize = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlayStatus {
    Complete,
    Partial,
    Failed,
}

impl PlayStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PlayStatus::Complete => "complete",
            PlayStatus::Partial => "partial",
            PlayStatus::Failed => "failed",
        }
    }
}

/// One play. Field names are fixed by design.md (exports use them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlayRecord {
    pub play_id: String,
    pub screen_id: String,
    /// The outbox epoch that numbered this record (see [`PopBatch::epoch`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub epoch: String,
    pub seq: u64,
    pub venue_id: String,
    pub campaign_id: String,
    pub creative_id: String,
    pub creative_sha256: String,
    pub schedule_version: u64,
    pub slot_start: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub status: PlayStatus,
    pub clock_synced: bool,
    /// SHA-256 of the file played: the rendition its document named for the screen, or
    /// the creative's original when it named none. Absent in records of agents older
    /// than renditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_sha256: Option<String>,
}

/// Records of one screen and epoch, `seq`-ordered, chained to the previous batch of the
/// epoch by hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PopBatch {
    pub v: u32,
    pub screen_id: String,
    /// The agent's outbox epoch: made (random hex) when the outbox is created, so a wiped
    /// or replaced outbox starts a new chain instead of reusing seqs. A record is
    /// identified by `(screen_id, epoch, seq)`. Empty (and then left out of the JSON) for
    /// outboxes made before epochs existed: the legacy epoch.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub epoch: String,
    /// 1 for the epoch's first batch, then +1.
    pub batch_seq: u64,
    /// Hash of the previous batch's payload in this epoch; 64 zeros for the first.
    pub prev_hash: String,
    pub records: Vec<PlayRecord>,
}

/// The hash that chains batches: SHA-256 of the signed payload text.
pub fn batch_hash(payload: &str) -> Sha256 {
    Sha256::of(payload.as_bytes())
}

pub fn genesis_hash() -> String {
    "0".repeat(64)
}

/// A record's `play_id`: unique across screens and epochs.
pub fn play_id(screen_id: &str, epoch: &str, seq: u64) -> String {
    if epoch.is_empty() {
        format!("{screen_id}-{seq}")
    } else {
        format!("{screen_id}-{epoch}-{seq}")
    }
}

/// Acknowledgement of durable batches, signed by the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PopAck {
    pub v: u32,
    pub screen_id: String,
    /// (batch_seq, batch hash) pairs now durable on the server.
    pub batches: Vec<AckedBatch>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckedBatch {
    /// The epoch of the acknowledged batch (empty: the legacy epoch).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub epoch: String,
    pub batch_seq: u64,
    pub hash: String,
}
