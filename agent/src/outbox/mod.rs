//! The durable proof-of-play outbox and the agent's persistent state, in one redb file at
//! `DATA_DIR/outbox.redb`. A record is written when its play starts and finished when it
//! ends; it leaves the file only when the server has acknowledged the batch holding it.
//! This module owns the tables and their transactions; the numbers in between live in a
//! pure [`Book`]; when to batch and send is the uploader's decision. All methods block:
//! call them off the runtime.
//!
//! Tables:
//! - `state` (`&str` → bytes): `epoch` (hex, made with the file), `schedule` (the
//!   accepted signed document), `next_seq`, `next_batch_seq` (u64 big-endian),
//!   `chain_head` (hex), `command_ids` (JSON list).
//! - `plays` (seq → one tag byte + `PlayRecord` JSON): tag `P` in progress (the JSON is
//!   then already a valid `partial` record of duration 0, which is what a crash leaves),
//!   `F` finished, `B` in the batch in flight.
//! - `batches` (batch_seq → (first seq, last seq, sealed envelope bytes)).
//!
//! Epochs: every outbox file gets a random 128-bit epoch when it is created, and its
//! seqs and batch chain count within it; a wiped or replaced outbox is a new file, so a
//! new epoch, and the server never confuses its records with the old ones. A file made
//! before epochs existed has none: it keeps the legacy (empty) epoch. A file that cannot be
//! opened or read back is moved aside (`outbox.redb.damaged-<UTC time>`, kept for
//! forensics) and a fresh one is made: the screen keeps playing.

mod book;
mod sparse;
#[cfg(test)]
mod tests;

pub use book::{should_form_batch, Book, InFlight, BATCH_AFTER, BATCH_AT_RECORDS};

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use playlists::wire::pop::{batch_hash, play_id, BATCH_KIND};
use playlists::wire::{
    Keypair, PlayRecord, PlayStatus, PopBatch, SignedEnvelope, MAX_POP_BYTES, VERSION,
};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");
const PLAYS: TableDefinition<u64, &[u8]> = TableDefinition::new("plays");
const BATCHES: TableDefinition<u64, (u64, u64, &[u8])> = TableDefinition::new("batches");

const TAG_IN_PROGRESS: u8 = b'P';
const TAG_FINISHED: u8 = b'F';
const TAG_BATCHED: u8 = b'B';

/// Command nonces remembered.
pub const COMMAND_IDS_KEPT: usize = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox: {0}")]
    Database(#[from] redb::DatabaseError),
    #[error("outbox: {0}")]
    Transaction(#[from] redb::TransactionError),
    #[error("outbox: {0}")]
    Table(#[from] redb::TableError),
    #[error("outbox: {0}")]
    Storage(#[from] redb::StorageError),
    #[error("outbox: {0}")]
    Commit(#[from] redb::CommitError),
    #[error("outbox: {0}")]
    Durability(#[from] redb::SetDurabilityError),
    #[error("outbox: creating {path}: {source}")]
    Create {
        path: String,
        source: std::io::Error,
    },
    #[error("outbox is inconsistent: {0}")]
    Corrupt(String),
    #[error("outbox: moving the damaged {path} aside: {source}")]
    MoveAside {
        path: String,
        source: std::io::Error,
    },
    #[error("outbox: making an epoch: {0}")]
    Epoch(String),
}

impl OutboxError {
    /// Whether this says the file itself is damaged (then it is moved aside), rather than
    /// that it is in use or cannot be made.
    fn is_damage(&self) -> bool {
        !matches!(
            self,
            OutboxError::Database(redb::DatabaseError::DatabaseAlreadyOpen)
                | OutboxError::Create { .. }
                | OutboxError::MoveAside { .. }
                | OutboxError::Epoch(_)
        )
    }
}

/// How commits reach the disk (the CLI's `--durability`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Durability {
    /// Every commit is on disk when it returns.
    #[default]
    Immediate,
    /// Commits are not flushed (redb's non-durable commits); for big simulations.
    Relaxed,
}

/// Closing a play that is in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub seq: u64,
    /// When the screen reported showing it (the web player); `None` keeps the start written.
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub status: PlayStatus,
}

/// A play to write; `play_id` and `seq` are assigned by the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPlay {
    pub record: PlayRecord,
    /// In progress until completed; otherwise final as given (a `failed` play).
    pub in_progress: bool,
}

/// A batch formed and persisted, ready to publish (and to publish again, byte for byte).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBatch {
    pub info: InFlight,
    pub bytes: Vec<u8>,
}

/// What an ack did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    /// The batch and its records were deleted.
    Deleted,
    /// Not the batch in flight (already acked, or a hash mismatch): nothing changed.
    Ignored,
}

/// What opening found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Plays that were in progress at a crash, now `partial`.
    pub partial: Vec<u64>,
    /// The damaged outbox was moved to this path (and why it was judged damaged); the
    /// outbox now open is a fresh one in a new epoch.
    pub moved_aside: Option<(PathBuf, String)>,
}

pub struct Outbox {
    db: Database,
    /// This file's epoch (empty: the legacy epoch).
    epoch: String,
    durability: redb::Durability,
    book: Mutex<Book>,
}

fn read_u64(v: Option<&[u8]>, default: u64) -> u64 {
    v.and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(default)
}

fn encode_play(tag: u8, record: &PlayRecord) -> Vec<u8> {
    let mut v = vec![tag];
    serde_json::to_writer(&mut v, record).expect("records serialise");
    v
}

fn decode_play(seq: u64, v: &[u8]) -> Result<(u8, PlayRecord), OutboxError> {
    let (tag, json) = v
        .split_first()
        .ok_or_else(|| OutboxError::Corrupt(format!("empty play {seq}")))?;
    let record = serde_json::from_slice(json)
        .map_err(|e| OutboxError::Corrupt(format!("play {seq}: {e}")))?;
    Ok((*tag, record))
}

fn envelope_hash(bytes: &[u8]) -> Result<String, OutboxError> {
    let env: SignedEnvelope = serde_json::from_slice(bytes)
        .map_err(|e| OutboxError::Corrupt(format!("stored batch: {e}")))?;
    Ok(batch_hash(&env.payload).to_string())
}

impl Outbox {
    /// Opens `dir/outbox.redb`, creating it atomically (temp name, then rename) in a new
    /// epoch when absent, and turns any play left in progress by a crash into a final
    /// `partial` record. A damaged file (it does not open, or its contents do not read
    /// back) is renamed aside and a fresh outbox made in its place; [`Recovery`] says so.
    pub fn open(dir: &Path, durability: Durability) -> Result<(Outbox, Recovery), OutboxError> {
        let path = dir.join("outbox.redb");
        let err = match open_at(dir, &path, durability) {
            Ok(opened) => return Ok(opened),
            Err(e) if e.is_damage() => e,
            Err(e) => return Err(e),
        };
        let aside = dir.join(format!(
            "outbox.redb.damaged-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ")
        ));
        std::fs::rename(&path, &aside).map_err(|source| OutboxError::MoveAside {
            path: path.display().to_string(),
            source,
        })?;
        tracing::error!(
            error = %err,
            moved_to = %aside.display(),
            "the outbox is damaged: moved aside for forensics; starting a fresh outbox in a new epoch"
        );
        let (outbox, mut recovery) = open_at(dir, &path, durability)?;
        recovery.moved_aside = Some((aside, err.to_string()));
        Ok((outbox, recovery))
    }

    /// A fresh outbox in memory (only the pages written: `sparse.rs`), in a new epoch, for
    /// a host of many agents whose process cannot spare a file descriptor per agent (the
    /// fleet simulator's fd-light mode: see [`crate::fleet::Outboxes`]). Its records live
    /// as long as the process: a lone agent never uses it, because proof of play must
    /// outlive a crash.
    pub fn in_memory(durability: Durability) -> Result<(Outbox, Recovery), OutboxError> {
        let db = redb::Builder::new().create_with_backend(sparse::SparseMemory::default())?;
        init_tables(&db)?;
        Outbox::recovered(db, durability)
    }

    /// The outbox on an open database, recovered (interrupted plays and batches).
    fn recovered(db: Database, durability: Durability) -> Result<(Outbox, Recovery), OutboxError> {
        let mut outbox = Outbox {
            db,
            epoch: String::new(),
            durability: redb_durability(durability),
            book: Mutex::new(Book::default()),
        };
        let recovery = outbox.recover()?;
        Ok((outbox, recovery))
    }

    /// This outbox's epoch (empty: the legacy epoch of a file made before epochs).
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    fn lock(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn begin(&self) -> Result<redb::WriteTransaction, OutboxError> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(self.durability)?;
        Ok(tx)
    }

    fn recover(&mut self) -> Result<Recovery, OutboxError> {
        let mut book = self.book.lock().unwrap_or_else(|e| e.into_inner());
        let mut recovery = Recovery::default();
        let mut new_epoch_needed = false;
        let tx = self.db.begin_write()?;
        {
            let state = tx.open_table(STATE)?;
            let mut plays = tx.open_table(PLAYS)?;
            let batches = tx.open_table(BATCHES)?;
            let epoch = state.get("epoch")?.map(|g| g.value().to_vec());
            let numbered = state.get("next_seq")?.is_some();
            match epoch {
                Some(epoch) => {
                    self.epoch = String::from_utf8(epoch)
                        .map_err(|_| OutboxError::Corrupt("the epoch is not text".into()))?;
                }
                // Made before epochs and used: the legacy epoch. Never used (or a file
                // that came back empty): a new epoch, written below.
                None if numbered || plays.len()? > 0 => {}
                None => new_epoch_needed = true,
            }
            let mut b = Book {
                next_seq: read_u64(state.get("next_seq")?.as_ref().map(|g| g.value()), 1),
                next_batch_seq: read_u64(
                    state.get("next_batch_seq")?.as_ref().map(|g| g.value()),
                    1,
                ),
                ..Book::default()
            };
            if let Some(head) = state.get("chain_head")? {
                b.chain_head = String::from_utf8_lossy(head.value()).into_owned();
            }
            b.rows = plays.len()?;
            if let Some((k, v)) = batches.first()? {
                let (first_seq, last_seq, bytes) = v.value();
                b.in_flight = Some(InFlight {
                    batch_seq: k.value(),
                    first_seq,
                    last_seq,
                    hash: envelope_hash(bytes)?,
                });
            }
            b.first_unbatched = match (&b.in_flight, plays.first()?) {
                (Some(f), _) => f.last_seq + 1,
                (None, Some((k, _))) => k.value(),
                (None, None) => b.next_seq,
            };
            let mut stuck = Vec::new();
            for row in plays.range(b.first_unbatched..)? {
                let (k, v) = row?;
                if v.value().first() == Some(&TAG_IN_PROGRESS) {
                    stuck.push((k.value(), v.value().to_vec()));
                }
            }
            for (seq, mut v) in stuck {
                // The stored JSON of a play in progress is already its `partial` form.
                v[0] = TAG_FINISHED;
                plays.insert(seq, v.as_slice())?;
                recovery.partial.push(seq);
            }
            if let Some((k, _)) = plays.last()? {
                if k.value() >= b.next_seq {
                    return Err(OutboxError::Corrupt(format!(
                        "play {} at or after next_seq {}",
                        k.value(),
                        b.next_seq
                    )));
                }
            }
            *book = b;
        }
        if new_epoch_needed {
            self.epoch = new_epoch()?;
            tx.open_table(STATE)?
                .insert("epoch", self.epoch.as_bytes())?;
        }
        tx.commit()?;
        Ok(recovery)
    }

    /// A copy of the bookkeeping.
    pub fn book(&self) -> Book {
        self.lock().clone()
    }

    pub fn load_schedule(&self) -> Result<Option<Vec<u8>>, OutboxError> {
        let tx = self.db.begin_read()?;
        let state = tx.open_table(STATE)?;
        Ok(state.get("schedule")?.map(|g| g.value().to_vec()))
    }

    /// Persists the accepted schedule's raw bytes (always durably).
    pub fn store_schedule(&self, raw: &[u8]) -> Result<(), OutboxError> {
        let tx = self.db.begin_write()?;
        tx.open_table(STATE)?.insert("schedule", raw)?;
        tx.commit()?;
        Ok(())
    }

    /// The active emergency overlays (JSON, `emergency::Overlays`), if any were stored.
    pub fn load_emergencies(&self) -> Result<Option<Vec<u8>>, OutboxError> {
        let tx = self.db.begin_read()?;
        let state = tx.open_table(STATE)?;
        Ok(state.get("emergencies")?.map(|g| g.value().to_vec()))
    }

    /// Persists the active emergency overlays (always durably: they must survive SIGKILL).
    pub fn store_emergencies(&self, raw: &[u8]) -> Result<(), OutboxError> {
        let tx = self.db.begin_write()?;
        tx.open_table(STATE)?.insert("emergencies", raw)?;
        tx.commit()?;
        Ok(())
    }

    /// One slot boundary in one transaction: completes the play in progress and/or writes
    /// the next one. Returns the seq given to `start`.
    pub fn boundary(
        &self,
        complete: Option<&Completion>,
        start: Option<NewPlay>,
    ) -> Result<Option<u64>, OutboxError> {
        let mut book = self.lock();
        let tx = self.begin()?;
        let mut started = None;
        {
            let mut plays = tx.open_table(PLAYS)?;
            if let Some(c) = complete {
                let raw = plays.get(c.seq)?.map(|g| g.value().to_vec());
                let raw = raw.ok_or_else(|| {
                    OutboxError::Corrupt(format!("completing unknown play {}", c.seq))
                })?;
                let (tag, mut record) = decode_play(c.seq, &raw)?;
                if tag != TAG_IN_PROGRESS {
                    return Err(OutboxError::Corrupt(format!(
                        "play {} is not in progress",
                        c.seq
                    )));
                }
                if let Some(started_at) = c.started_at {
                    record.started_at = started_at;
                }
                record.ended_at = c.ended_at;
                record.duration_ms = c.duration_ms;
                record.status = c.status;
                plays.insert(c.seq, encode_play(TAG_FINISHED, &record).as_slice())?;
            }
            if let Some(mut new) = start {
                let seq = book.next_seq;
                new.record.seq = seq;
                new.record.epoch = self.epoch.clone();
                new.record.play_id = play_id(&new.record.screen_id, &self.epoch, seq);
                let tag = if new.in_progress {
                    // What a crash leaves: a partial play that ended as it began.
                    new.record.ended_at = new.record.started_at;
                    new.record.duration_ms = 0;
                    new.record.status = PlayStatus::Partial;
                    TAG_IN_PROGRESS
                } else {
                    TAG_FINISHED
                };
                plays.insert(seq, encode_play(tag, &new.record).as_slice())?;
                tx.open_table(STATE)?
                    .insert("next_seq", (seq + 1).to_be_bytes().as_slice())?;
                started = Some((seq, new.in_progress));
            }
        }
        tx.commit()?;
        if let Some(c) = complete {
            book.completed(c.seq);
        }
        if let Some((seq, in_progress)) = started {
            book.started(seq, in_progress);
        }
        Ok(started.map(|(seq, _)| seq))
    }

    /// Forms the next batch of at most `max` finished records, chained to the previous one
    /// and sealed with the screen key, and persists it together with marking its records.
    /// `None` while a batch is in flight or nothing is ready.
    pub fn form_batch(
        &self,
        screen_id: &str,
        key: &Keypair,
        max: usize,
    ) -> Result<Option<StoredBatch>, OutboxError> {
        let mut book = self.lock();
        let Some((first, mut last)) = book.next_batch(max as u64) else {
            return Ok(None);
        };
        let records = self.read_range(first, last)?;
        let mut count = records.len();
        let (payload, bytes) = loop {
            let batch = PopBatch {
                v: VERSION,
                screen_id: screen_id.to_owned(),
                epoch: self.epoch.clone(),
                batch_seq: book.next_batch_seq,
                prev_hash: book.chain_head.clone(),
                records: records[..count].to_vec(),
            };
            let payload = serde_json::to_string(&batch).expect("batches serialise");
            let bytes = serde_json::to_vec(&key.sign(BATCH_KIND, payload.clone()))
                .expect("envelopes serialise");
            if bytes.len() <= MAX_POP_BYTES || count == 1 {
                break (payload, bytes);
            }
            count = count.div_ceil(2);
        };
        last = first + count as u64 - 1;
        let info = InFlight {
            batch_seq: book.next_batch_seq,
            first_seq: first,
            last_seq: last,
            hash: batch_hash(&payload).to_string(),
        };
        let tx = self.begin()?;
        {
            let mut plays = tx.open_table(PLAYS)?;
            for seq in first..=last {
                let mut v = plays
                    .get(seq)?
                    .map(|g| g.value().to_vec())
                    .ok_or_else(|| OutboxError::Corrupt(format!("play {seq} vanished")))?;
                v[0] = TAG_BATCHED;
                plays.insert(seq, v.as_slice())?;
            }
            tx.open_table(BATCHES)?
                .insert(info.batch_seq, (first, last, bytes.as_slice()))?;
            let mut state = tx.open_table(STATE)?;
            state.insert("chain_head", info.hash.as_bytes())?;
            state.insert(
                "next_batch_seq",
                (info.batch_seq + 1).to_be_bytes().as_slice(),
            )?;
        }
        tx.commit()?;
        book.batched(info.clone());
        Ok(Some(StoredBatch { info, bytes }))
    }

    /// Finished records `first..=last`, which must all be present and finished.
    fn read_range(&self, first: u64, last: u64) -> Result<Vec<PlayRecord>, OutboxError> {
        let tx = self.db.begin_read()?;
        let plays = tx.open_table(PLAYS)?;
        let mut out = Vec::with_capacity((last - first + 1) as usize);
        for row in plays.range(first..=last)? {
            let (k, v) = row?;
            let (tag, record) = decode_play(k.value(), v.value())?;
            if tag != TAG_FINISHED || k.value() != first + out.len() as u64 {
                return Err(OutboxError::Corrupt(format!(
                    "play {} is not a finished record in sequence",
                    k.value()
                )));
            }
            out.push(record);
        }
        if out.len() as u64 != last - first + 1 {
            return Err(OutboxError::Corrupt(format!(
                "plays {first}..={last} are not all present"
            )));
        }
        Ok(out)
    }

    /// The batch in flight with its exact bytes, to (re)send.
    pub fn in_flight(&self) -> Result<Option<StoredBatch>, OutboxError> {
        let Some(info) = self.lock().in_flight.clone() else {
            return Ok(None);
        };
        let tx = self.db.begin_read()?;
        let batches = tx.open_table(BATCHES)?;
        let bytes = batches.get(info.batch_seq)?.map(|g| g.value().2.to_vec());
        let bytes = bytes
            .ok_or_else(|| OutboxError::Corrupt(format!("batch {} vanished", info.batch_seq)))?;
        Ok(Some(StoredBatch { info, bytes }))
    }

    /// Applies an acknowledgement of (`epoch`, `batch_seq`, `hash`), already verified as
    /// the server's: deletes the batch and its records if it is the one in flight.
    pub fn ack(&self, epoch: &str, batch_seq: u64, hash: &str) -> Result<AckOutcome, OutboxError> {
        let mut book = self.lock();
        if epoch != self.epoch || !book.matches_ack(batch_seq, hash) {
            return Ok(AckOutcome::Ignored);
        }
        let Some(info) = book.in_flight.clone() else {
            return Ok(AckOutcome::Ignored);
        };
        let tx = self.begin()?;
        {
            tx.open_table(BATCHES)?.remove(info.batch_seq)?;
            let mut plays = tx.open_table(PLAYS)?;
            for seq in info.first_seq..=info.last_seq {
                plays.remove(seq)?;
            }
        }
        tx.commit()?;
        book.acked();
        Ok(AckOutcome::Deleted)
    }

    /// Records a command nonce; `false` if it was seen before (the command must be ignored).
    pub fn remember_command(&self, id: &str) -> Result<bool, OutboxError> {
        let tx = self.db.begin_write()?;
        let fresh = {
            let mut state = tx.open_table(STATE)?;
            let mut ids: Vec<String> = match state.get("command_ids")? {
                Some(g) => serde_json::from_slice(g.value()).unwrap_or_default(),
                None => Vec::new(),
            };
            let fresh = !ids.iter().any(|x| x == id);
            if fresh {
                ids.push(id.to_owned());
                let excess = ids.len().saturating_sub(COMMAND_IDS_KEPT);
                ids.drain(..excess);
                state.insert(
                    "command_ids",
                    serde_json::to_vec(&ids)
                        .expect("strings serialise")
                        .as_slice(),
                )?;
            }
            fresh
        };
        tx.commit()?;
        Ok(fresh)
    }

    /// Makes every earlier commit durable (for `--durability relaxed`, at shutdown).
    pub fn flush(&self) -> Result<(), OutboxError> {
        let tx = self.db.begin_write()?;
        tx.commit()?;
        Ok(())
    }

    /// Every record with its state tag, for tests and diagnostics.
    pub fn dump(&self) -> Result<Vec<(char, PlayRecord)>, OutboxError> {
        let tx = self.db.begin_read()?;
        let plays = tx.open_table(PLAYS)?;
        let mut out = Vec::new();
        for row in plays.range(0u64..)? {
            let (k, v) = row?;
            let (tag, record) = decode_play(k.value(), v.value())?;
            out.push((tag as char, record));
        }
        Ok(out)
    }
}

/// [`Outbox::open`] without the repair: a panic inside redb on a damaged file is an error.
fn open_at(
    dir: &Path,
    path: &Path,
    durability: Durability,
) -> Result<(Outbox, Recovery), OutboxError> {
    let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if !path.exists() {
            create_atomically(dir, path)?;
        }
        Outbox::recovered(Database::open(path)?, durability)
    }));
    attempt.unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("a panic");
        Err(OutboxError::Corrupt(format!(
            "reading the file failed: {what}"
        )))
    })
}

/// redb's durability for ours.
fn redb_durability(durability: Durability) -> redb::Durability {
    match durability {
        Durability::Immediate => redb::Durability::Immediate,
        Durability::Relaxed => redb::Durability::None,
    }
}

/// Makes the three tables of an empty outbox and writes a new epoch.
fn init_tables(db: &Database) -> Result<(), OutboxError> {
    let tx = db.begin_write()?;
    tx.open_table(STATE)?
        .insert("epoch", new_epoch()?.as_bytes())?;
    tx.open_table(PLAYS)?;
    tx.open_table(BATCHES)?;
    tx.commit()?;
    Ok(())
}

/// A new random epoch: 128 bits, hex.
fn new_epoch() -> Result<String, OutboxError> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|e| OutboxError::Epoch(e.to_string()))?;
    Ok(hex::encode(bytes))
}

/// Creates an empty outbox with its tables and a new epoch at a temporary name, then renames
/// it into place, so a crash never leaves a half-made `outbox.redb`.
fn create_atomically(dir: &Path, path: &Path) -> Result<(), OutboxError> {
    let io = |source| OutboxError::Create {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = dir.join(format!(".outbox.redb.tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    {
        let db = Database::create(&tmp)?;
        init_tables(&db)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
