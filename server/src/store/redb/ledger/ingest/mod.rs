//! Ingest: checks each incoming proof-of-play batch (size, shape, screen, signature, seqs),
//! then stores the good ones in one durable write transaction: the envelope (packed), a
//! reference to each new record (its batch and its place in it), the screen's chain head,
//! gaps, chain anomalies and the rollups.
//!
//! Checking is pure and happens before the write transaction opens, spread over a few
//! threads when several batches arrive together (verifying and parsing a batch costs about
//! as much as storing it). A batch verifies with any of the screen's keys, newest first, so
//! a batch signed before a re-provisioning still counts.
//!
//! Each `(screen, epoch)` is its own chain. A batch that does not follow its epoch's chain
//! is still stored (its signature proves where it came from) and the anomaly is kept for
//! the audit. A batch carrying a seq its epoch already holds with *other* content is
//! refused and not stored: acknowledging it would tell the agent to delete records the
//! ledger does not hold. Acknowledging is the caller's, after `ingest` returns.

use std::ops::Bound;

use ed25519_dalek::VerifyingKey;
use redb::{Database, ReadableTable, Table, WriteTransaction};

use playlists::wire::pop::{batch_hash, genesis_hash, AckedBatch, BATCH_KIND, MAX_BATCH_RECORDS};
use playlists::wire::signed::open_envelope;
use playlists::wire::{MAX_POP_BYTES, VERSION};

use super::archive::{marker, Marker};
use super::export::Reader;
use super::pack::pack;
use super::rollup::Tally;
use super::view::BatchView;
use super::{
    epoch_name, hash_bytes, BatchKey, HashBytes, Incoming, KeysOf, LedgerError, Outcome, RecordRef,
    ANOMALIES, ARCHIVED, BATCHES, GAPS, HEADS, LATEST, RECORDS,
};

/// Most threads one ingest call checks batches on.
const MAX_CHECK_THREADS: usize = 8;

/// A batch whose envelope opened with the screen's key: the signed payload, its hash and
/// the envelope as it is to be stored.
struct Opened {
    payload: String,
    hash: HashBytes,
    hash_hex: String,
    stored: Vec<u8>,
}

/// A batch that passed every check.
struct Checked<'a> {
    stored: &'a [u8],
    hash: &'a HashBytes,
    hash_hex: &'a str,
    batch: BatchView<'a>,
}

pub(super) fn ingest(
    db: &Database,
    incoming: &[Incoming],
    key_of: KeysOf<'_>,
) -> Result<Vec<Outcome>, LedgerError> {
    let keys: Vec<Vec<VerifyingKey>> = incoming.iter().map(|i| key_of(&i.topic_screen)).collect();
    let opened: Vec<Result<Opened, String>> =
        par_map(incoming.len(), |n| open(&incoming[n], &keys[n]));
    let checked: Vec<Result<Checked<'_>, String>> = par_map(incoming.len(), |n| match &opened[n] {
        Ok(o) => check(&incoming[n], o),
        Err(reason) => Err(reason.clone()),
    });
    // The rollup counts of every record of each batch, used when all of them are stored.
    let tallies: Vec<Tally<'_>> = par_map(incoming.len(), |n| match &checked[n] {
        Ok(c) => Tally::of(&c.batch.records),
        Err(_) => Tally::default(),
    });
    let mut outcomes = Vec::with_capacity(incoming.len());
    if checked.iter().all(Result::is_err) {
        for (i, c) in incoming.iter().zip(checked) {
            outcomes.push(rejected(i, c.err().unwrap_or_default()));
        }
        return Ok(outcomes);
    }
    let tx = db.begin_write()?;
    {
        let mut w = Writer::open(&tx)?;
        let mut tally = Tally::default();
        for ((i, c), all) in incoming.iter().zip(&checked).zip(&tallies) {
            outcomes.push(match c {
                Ok(c) => w.store(c, all, &mut tally)?,
                Err(reason) => rejected(i, reason.clone()),
            });
        }
        tally.apply(&tx)?;
    }
    tx.commit()?;
    Ok(outcomes)
}

/// `f(0..n)`, in order, on up to [`MAX_CHECK_THREADS`] threads.
fn par_map<R: Send>(n: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |p| p.get())
        .min(MAX_CHECK_THREADS)
        .min(n);
    if threads <= 1 {
        return (0..n).map(f).collect();
    }
    let per = n.div_ceil(threads);
    let threads = n.div_ceil(per);
    let f = &f;
    std::thread::scope(|s| {
        let others: Vec<std::thread::ScopedJoinHandle<'_, Vec<R>>> = (1..threads)
            .map(|t| s.spawn(move || (t * per..n.min((t + 1) * per)).map(f).collect()))
            .collect();
        let mut out: Vec<R> = (0..per).map(f).collect();
        for h in others {
            out.extend(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
        out
    })
}

fn rejected(i: &Incoming, reason: String) -> Outcome {
    Outcome::Rejected {
        screen_id: i.topic_screen.clone(),
        reason,
    }
}

/// Size, key and signature: the first of `keys` (newest first) that verifies it. The error
/// is the reason, in words (the current key's).
fn open(i: &Incoming, keys: &[VerifyingKey]) -> Result<Opened, String> {
    if i.raw.len() > MAX_POP_BYTES {
        return Err(format!(
            "batch of {} bytes exceeds the {MAX_POP_BYTES}-byte limit",
            i.raw.len()
        ));
    }
    let (current, older) = keys
        .split_first()
        .ok_or_else(|| format!("unknown screen {:?}", i.topic_screen))?;
    let env = match open_envelope(&i.raw, BATCH_KIND, current, MAX_POP_BYTES) {
        Ok(env) => env,
        Err(e) => older
            .iter()
            .find_map(|k| open_envelope(&i.raw, BATCH_KIND, k, MAX_POP_BYTES).ok())
            .ok_or_else(|| e.to_string())?,
    };
    let hash_hex = batch_hash(&env.payload).to_string();
    let hash = hash_bytes(&hash_hex).expect("a SHA-256 is 64 hex digits");
    Ok(Opened {
        payload: env.payload,
        hash,
        hash_hex,
        stored: pack(&i.raw),
    })
}

/// Everything else that can be checked without the database.
fn check<'a>(i: &Incoming, o: &'a Opened) -> Result<Checked<'a>, String> {
    let batch: BatchView<'_> = serde_json::from_str(&o.payload)
        .map_err(|e| format!("malformed pop-batch payload: {e}"))?;
    if batch.v != VERSION {
        return Err(format!("unsupported pop-batch version {}", batch.v));
    }
    if batch.screen_id != i.topic_screen {
        return Err(format!(
            "batch of screen {:?} arrived on the topic of screen {:?}",
            batch.screen_id, i.topic_screen
        ));
    }
    if batch.records.is_empty() {
        return Err("empty batch".to_owned());
    }
    if batch.records.len() > MAX_BATCH_RECORDS {
        return Err(format!(
            "batch of {} records exceeds the {MAX_BATCH_RECORDS}-record limit",
            batch.records.len()
        ));
    }
    let mut prev: Option<u64> = None;
    for r in &batch.records {
        if r.screen_id != batch.screen_id {
            return Err(format!(
                "record seq {} belongs to screen {:?}, not {:?}",
                r.seq, r.screen_id, batch.screen_id
            ));
        }
        if r.epoch != batch.epoch {
            return Err(format!(
                "record seq {} is of {}, not of the batch's {}",
                r.seq,
                epoch_name(&r.epoch),
                epoch_name(&batch.epoch)
            ));
        }
        if let Some(p) = prev.filter(|p| r.seq <= *p) {
            return Err(format!(
                "record seqs must strictly increase: {} follows {p}",
                r.seq
            ));
        }
        prev = Some(r.seq);
    }
    Ok(Checked {
        stored: &o.stored,
        hash: &o.hash,
        hash_hex: &o.hash_hex,
        batch,
    })
}

/// An epoch's chain head: its latest batch and the highest seq held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Head {
    pub batch_seq: u64,
    pub hash: HashBytes,
    /// No record with a higher seq is stored (0 before the first record).
    pub last_seq: u64,
}

/// Why batch `batch_seq` naming `prev_hash` does not extend `head`, if it does not.
fn chain_anomaly(head: Option<&Head>, batch_seq: u64, prev_hash: &str) -> Option<String> {
    let (want_seq, want_prev) = match head {
        None => (1, genesis_hash()),
        Some(h) => (h.batch_seq + 1, hex::encode(h.hash)),
    };
    if batch_seq != want_seq {
        Some(format!(
            "batch {batch_seq} arrived where batch {want_seq} was expected"
        ))
    } else if prev_hash != want_prev {
        Some(format!(
            "batch {batch_seq} names previous hash {prev_hash} but the previous batch hashes to {want_prev}"
        ))
    } else {
        None
    }
}

/// Whether batch `batch_seq` becomes its epoch's head: it is further along.
fn moves_head(head: Option<&Head>, batch_seq: u64) -> bool {
    head.is_none_or(|h| batch_seq > h.batch_seq)
}

/// The ledger tables of one write transaction.
struct Writer<'tx> {
    batches: Table<'tx, BatchKey<'static>, &'static [u8]>,
    records: Table<'tx, (&'static str, &'static str, u64), RecordRef<'static>>,
    heads: Table<'tx, (&'static str, &'static str), (u64, &'static HashBytes, u64)>,
    gaps: Table<'tx, (&'static str, &'static str, u64), u64>,
    anomalies: Table<'tx, BatchKey<'static>, &'static str>,
    latest: Table<'tx, &'static str, &'static str>,
    archived: Table<'tx, (&'static str, &'static str), (u64, &'static HashBytes, u64)>,
}

impl<'tx> Writer<'tx> {
    fn open(tx: &'tx WriteTransaction) -> Result<Writer<'tx>, LedgerError> {
        Ok(Writer {
            batches: tx.open_table(BATCHES)?,
            records: tx.open_table(RECORDS)?,
            heads: tx.open_table(HEADS)?,
            gaps: tx.open_table(GAPS)?,
            anomalies: tx.open_table(ANOMALIES)?,
            latest: tx.open_table(LATEST)?,
            archived: tx.open_table(ARCHIVED)?,
        })
    }

    fn head(&self, screen: &str, epoch: &str) -> Result<Option<Head>, LedgerError> {
        Ok(self.heads.get((screen, epoch))?.map(|g| {
            let (batch_seq, hash, last_seq) = g.value();
            Head {
                batch_seq,
                hash: *hash,
                last_seq,
            }
        }))
    }

    /// Notes the seqs between `last_seq` and `seq`, if any, as a gap.
    fn skipped(
        &mut self,
        chain: (&str, &str),
        gaps: &mut Vec<(u64, u64)>,
        last_seq: u64,
        seq: u64,
    ) -> Result<(), LedgerError> {
        if seq > last_seq + 1 {
            gaps.push((last_seq + 1, seq - 1));
            self.gaps
                .insert((chain.0, chain.1, last_seq + 1), seq - 1)?;
        }
        Ok(())
    }

    /// Which of the first `n` records of `b` are already held, the same: `Err` names the
    /// first one held with other content (or that cannot be read back). A seq at or below
    /// `archived` (the highest seq moved to the archive) without a live reference is held in
    /// the archive.
    fn held(
        &self,
        b: &BatchView<'_>,
        n: usize,
        archived: u64,
    ) -> Result<Result<Vec<bool>, String>, LedgerError> {
        let (screen, epoch): (&str, &str) = (&b.screen_id, &b.epoch);
        let mut reader = Reader::new(&self.batches);
        let mut held = Vec::with_capacity(n);
        for r in &b.records[..n] {
            let at = match self.records.get((screen, epoch, r.seq))? {
                Some(g) => {
                    let (batch_seq, hash, index) = g.value();
                    (batch_seq, *hash, index)
                }
                None => {
                    held.push(r.seq <= archived);
                    continue;
                }
            };
            let conflict = match reader.record(screen, epoch, r.seq, (at.0, &at.1, at.2))? {
                Ok(stored) if r.same_as(stored) => {
                    held.push(true);
                    continue;
                }
                Ok(_) => "already held with other content".to_owned(),
                Err(why) => format!("held but unreadable ({why})"),
            };
            return Ok(Err(format!(
                "seq {} of {} is {conflict}, from batch {}: a batch that conflicts with stored records is not stored",
                r.seq,
                epoch_name(epoch),
                at.0
            )));
        }
        Ok(Ok(held))
    }

    /// Stores `c`, adding the records it stored to `tally`; `all` counts all of them.
    fn store<'a>(
        &mut self,
        c: &'a Checked<'_>,
        all: &Tally<'a>,
        tally: &mut Tally<'a>,
    ) -> Result<Outcome, LedgerError> {
        let b = &c.batch;
        let screen: &str = &b.screen_id;
        let epoch: &str = &b.epoch;
        let chain = (screen, epoch);
        let ack = AckedBatch {
            epoch: epoch.to_owned(),
            batch_seq: b.batch_seq,
            hash: c.hash_hex.to_owned(),
        };
        let batch_key = (screen, epoch, b.batch_seq, c.hash);
        if self.batches.get(batch_key)?.is_some() {
            return Ok(Outcome::Duplicate {
                screen_id: screen.to_owned(),
                ack,
            });
        }
        let archived: Option<Marker> = marker(&self.archived, screen, epoch)?;
        if let Some(m) = archived {
            // A batch from before the archive point whose records are all archived: it was
            // stored before (the archive holds it), so it is acknowledged again.
            if b.batch_seq <= m.batch_seq && b.records.iter().all(|r| r.seq <= m.last_seq) {
                tracing::info!(
                    screen,
                    epoch,
                    batch_seq = b.batch_seq,
                    "proof-of-play batch from before the archive point: acknowledged, not stored"
                );
                return Ok(Outcome::Duplicate {
                    screen_id: screen.to_owned(),
                    ack,
                });
            }
        }
        let head = self.head(screen, epoch)?;
        let mut last_seq = head.map_or(0, |h| h.last_seq);
        // Only a seq at or below the head can already be held; the rest are appended past
        // the epoch's last record through one cursor, unless something is stored there
        // (which the head says cannot be: then every record is looked up).
        let past_head = (Bound::Excluded((screen, epoch, last_seq)), Bound::Unbounded);
        let beyond = match self.records.range::<(&str, &str, u64)>(past_head)?.next() {
            Some(row) => {
                let (k, _) = row?;
                let (s, e, _) = k.value();
                s == screen && e == epoch
            }
            None => false,
        };
        let fresh_from = if beyond {
            b.records.len()
        } else {
            b.records.partition_point(|r| r.seq <= last_seq)
        };
        let held = match self.held(b, fresh_from, archived.map_or(0, |m| m.last_seq))? {
            Ok(held) => held,
            Err(reason) => {
                tracing::warn!(
                    screen,
                    epoch,
                    batch_seq = b.batch_seq,
                    reason,
                    "proof-of-play batch refused: not stored, not acknowledged"
                );
                return Ok(Outcome::Rejected {
                    screen_id: screen.to_owned(),
                    reason,
                });
            }
        };
        if let Some(detail) = chain_anomaly(head.as_ref(), b.batch_seq, &b.prev_hash) {
            tracing::warn!(
                screen,
                epoch,
                batch_seq = b.batch_seq,
                detail,
                "proof-of-play chain anomaly within an epoch; stored, noted for the audit"
            );
            self.anomalies.insert(batch_key, detail.as_str())?;
        }
        self.batches.insert(batch_key, c.stored)?;

        let mut stored = 0;
        let mut gaps = Vec::new();
        for (i, r) in b.records.iter().enumerate().take(fresh_from) {
            if held[i] {
                continue;
            }
            if r.seq > last_seq {
                self.skipped(chain, &mut gaps, last_seq, r.seq)?;
                last_seq = r.seq;
            }
            self.records
                .insert((screen, epoch, r.seq), (b.batch_seq, c.hash, index(i)))?;
            tally.add(r);
            stored += 1;
        }
        if fresh_from < b.records.len() {
            let mut cursor = self
                .records
                .lower_bound_mut(Bound::Excluded((screen, epoch, last_seq)))?;
            for (i, r) in b.records.iter().enumerate().skip(fresh_from) {
                if r.seq > last_seq + 1 {
                    gaps.push((last_seq + 1, r.seq - 1));
                    self.gaps.insert((screen, epoch, last_seq + 1), r.seq - 1)?;
                }
                last_seq = r.seq;
                cursor.insert_before((screen, epoch, r.seq), (b.batch_seq, c.hash, index(i)))?;
                if fresh_from > 0 {
                    tally.add(r);
                }
                stored += 1;
            }
            cursor.close()?;
        }
        if fresh_from == 0 {
            tally.merge(all);
        }
        if !gaps.is_empty() {
            tracing::warn!(
                screen,
                epoch,
                batch_seq = b.batch_seq,
                ?gaps,
                "proof-of-play seqs skipped"
            );
        }
        let (batch_seq, hash) = match head {
            Some(h) if !moves_head(Some(&h), b.batch_seq) => (h.batch_seq, h.hash),
            _ => (b.batch_seq, *c.hash),
        };
        self.heads.insert(chain, (batch_seq, &hash, last_seq))?;
        self.latest.insert(screen, epoch)?;
        Ok(Outcome::Stored {
            screen_id: screen.to_owned(),
            ack,
            records: stored,
            gaps,
        })
    }
}

/// A record's place in its batch (at most [`MAX_BATCH_RECORDS`]).
fn index(i: usize) -> u32 {
    u32::try_from(i).expect("a batch holds at most 1,000 records")
}

#[cfg(test)]
mod tests;
