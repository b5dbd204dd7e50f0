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

use redb::{Database, ReadableTable, Table, WriteTransaction};

use playlists::wire::pop::AckedBatch;

use super::archive::{marker, Marker};
use super::export::Reader;
use super::rollup::apply;
use super::{
    BatchKey, HashBytes, Incoming, KeysOf, LedgerError, Outcome, RecordRef, ANOMALIES, ARCHIVED,
    BATCHES, GAPS, HEADS, LATEST, RECORDS,
};
use crate::store::ledger::check::{
    archived_before, chain_anomaly, check_all, head_after, open_all, refused, rejected, tally_all,
    Checked, Head,
};
use crate::store::ledger::tally::Tally;
use crate::store::ledger::view::BatchView;

pub(super) fn ingest(
    db: &Database,
    incoming: &[Incoming],
    key_of: KeysOf<'_>,
) -> Result<Vec<Outcome>, LedgerError> {
    let opened = open_all(incoming, key_of);
    let checked = check_all(incoming, &opened);
    // The rollup counts of every record of each batch, used when all of them are stored.
    let tallies = tally_all(&checked);
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
        apply(tally, &tx)?;
    }
    tx.commit()?;
    Ok(outcomes)
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
            if let Err(reason) = reader.same_as_held(screen, epoch, r, (at.0, &at.1, at.2))? {
                return Ok(Err(reason));
            }
            held.push(true);
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
        if archived_before(archived.as_ref(), b) {
            return Ok(Outcome::Duplicate {
                screen_id: screen.to_owned(),
                ack,
            });
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
            Err(reason) => return Ok(refused(b, reason)),
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
        let now = head_after(head.as_ref(), b, c.hash, last_seq, &gaps);
        self.heads
            .insert(chain, (now.batch_seq, &now.hash, now.last_seq))?;
        self.latest.insert(screen, epoch)?;
        Ok(Outcome::Stored {
            screen_id: screen.to_owned(),
            ack,
            records: stored,
            gaps,
        })
    }
}

/// A record's place in its batch (at most `MAX_BATCH_RECORDS`).
fn index(i: usize) -> u32 {
    u32::try_from(i).expect("a batch holds at most 1,000 records")
}

#[cfg(test)]
mod tests;
