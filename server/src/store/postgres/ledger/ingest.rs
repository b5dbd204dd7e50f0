//! Ingest into PostgreSQL: the batches are opened and checked as in redb
//! (`store/ledger/check.rs`, before any transaction), then stored in one transaction that
//! holds the advisory lock of every chain it touches (see the module doc): the envelope
//! (packed), a reference to each new record, the chain head, gaps, the anomaly if the
//! batch breaks its chain, the screen's latest epoch and the rollups. As in redb, a batch
//! or record at or before its chain's archive marker (`archive.rs`) is held in the archive.
//!
//! A call costs a fixed number of statements, not a few per batch: the locks, the stored
//! batches, chain heads and records the call's batches name are read in one query each,
//! the batches are decided in memory in arrival order ([`Calls`]), and what they add is
//! written with one statement per table. A record already held is compared with the
//! incoming one through its stored batch, so what was decided so far is written first
//! ([`Pending::flush`]); re-sent records are rare (an agent that missed an ack).

use std::collections::{BTreeMap, HashMap, HashSet};

use ::postgres::{IsolationLevel, Transaction};
use sha2::Digest;

use playlists::wire::pop::AckedBatch;

use super::read::TxBatches;
use super::{hash32, signed, unsigned, Fail, PgLedger};
use crate::store::ledger::check::{
    archived_before, chain_anomaly, check_all, head_after, open_all, refused, rejected, tally_all,
    Checked, Head,
};
use crate::store::ledger::reader::Reader;
use crate::store::ledger::tally::Tally;
use crate::store::ledger::{HashBytes, Incoming, KeysOf, LedgerError, Outcome};

pub(super) fn ingest(
    ledger: &PgLedger,
    incoming: &[Incoming],
    key_of: KeysOf<'_>,
) -> Result<Vec<Outcome>, LedgerError> {
    let opened = open_all(incoming, key_of);
    let checked = check_all(incoming, &opened);
    let tallies = tally_all(&checked);
    if checked.iter().all(Result::is_err) {
        return Ok(incoming
            .iter()
            .zip(checked)
            .map(|(i, c)| rejected(i, c.err().unwrap_or_default()))
            .collect());
    }
    let chains = Chains::of(&checked);
    ledger.run(|client| {
        // Read committed whatever the server's default: each statement after the locks
        // sees what the chain's previous writer committed.
        let mut tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::ReadCommitted)
            .start()?;
        // In key order (the array is sorted), so two writers never wait for each other
        // in a cycle.
        tx.query(
            "SELECT pg_advisory_xact_lock(k) FROM unnest($1::BIGINT[]) AS t(k)",
            &[&chains.locks],
        )?;
        let mut call = Call {
            shown: &ledger.shown,
            chains: &chains,
            known: Known::read(&mut tx, &chains, &checked)?,
            pending: Pending::default(),
        };
        let mut outcomes = Vec::with_capacity(incoming.len());
        let mut tally = Tally::default();
        for ((i, c), all) in incoming.iter().zip(&checked).zip(&tallies) {
            outcomes.push(match c {
                Ok(c) => call.store(&mut tx, chains.index(c), c, all, &mut tally)?,
                Err(reason) => rejected(i, reason.clone()),
            });
        }
        call.pending.flush(&mut tx, &chains, &call.known)?;
        rollups(&mut tx, tally)?;
        tx.commit()?;
        Ok(outcomes)
    })
}

/// The chains `(screen, epoch)` a call's checked batches belong to, numbered, with their
/// advisory lock keys sorted.
struct Chains<'a> {
    names: Vec<(&'a str, &'a str)>,
    numbers: HashMap<(&'a str, &'a str), usize>,
    locks: Vec<i64>,
}

impl<'a> Chains<'a> {
    fn of(checked: &'a [Result<Checked<'_>, String>]) -> Chains<'a> {
        let mut chains = Chains {
            names: Vec::new(),
            numbers: HashMap::new(),
            locks: Vec::new(),
        };
        for c in checked.iter().flatten() {
            let name = (&*c.batch.screen_id, &*c.batch.epoch);
            if !chains.numbers.contains_key(&name) {
                chains.numbers.insert(name, chains.names.len());
                chains.names.push(name);
                chains.locks.push(chain_lock(name.0, name.1));
            }
        }
        chains.locks.sort_unstable();
        chains.locks.dedup();
        chains
    }

    fn index(&self, c: &Checked<'_>) -> usize {
        self.numbers[&(&*c.batch.screen_id, &*c.batch.epoch)]
    }

    /// The number of a chain read back from the database, if the call names it.
    fn number(&self, screen: &str, epoch: &str) -> Option<usize> {
        self.numbers.get(&(screen, epoch)).copied()
    }

    /// Screens and epochs of the chains, as query arrays.
    fn columns(&self) -> (Vec<&'a str>, Vec<&'a str>) {
        self.names.iter().copied().unzip()
    }
}

/// The advisory lock key of chain `(screen, epoch)`: the first 8 bytes of a SHA-256 of
/// both (a collision only makes two chains wait for each other).
pub(super) fn chain_lock(screen: &str, epoch: &str) -> i64 {
    let mut h = sha2::Sha256::new();
    h.update(b"signage pop chain\0");
    h.update(screen.as_bytes());
    h.update([0]);
    h.update(epoch.as_bytes());
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    i64::from_be_bytes(first)
}

/// Where a held record is: `(batch_seq, batch hash, index in the batch)`.
type Place = (u64, HashBytes, u32);

/// What the ledger holds of the call's chains, as of the locks, kept up to date with the
/// call's own decisions.
struct Known {
    /// `(chain, batch_seq, hash)` of stored batches the call names.
    batches: HashSet<(usize, u64, HashBytes)>,
    /// Each chain's head.
    heads: Vec<Option<Head>>,
    /// `(chain, seq)` of held records the call names.
    records: HashMap<(usize, u64), Place>,
}

impl Known {
    fn read(
        tx: &mut Transaction<'_>,
        chains: &Chains<'_>,
        checked: &[Result<Checked<'_>, String>],
    ) -> Result<Known, Fail> {
        let mut known = Known {
            batches: HashSet::new(),
            heads: vec![None; chains.names.len()],
            records: HashMap::new(),
        };
        let (screens, epochs) = chains.columns();
        for row in tx.query(
            "SELECT h.screen, h.epoch, h.batch_seq, h.hash, h.last_seq
             FROM unnest($1::TEXT[], $2::TEXT[]) AS t(screen, epoch)
             JOIN pop_heads h ON h.screen = t.screen AND h.epoch = t.epoch",
            &[&screens, &epochs],
        )? {
            let Some(at) = chains.number(row.get(0), row.get(1)) else {
                continue;
            };
            known.heads[at] = Some(Head {
                batch_seq: unsigned(row.get(2), "a chain head's batch_seq")?,
                hash: hash32(row.get(3), "a chain head's hash")?,
                last_seq: unsigned(row.get(4), "a chain head's last seq")?,
            });
        }
        let (mut screens, mut epochs, mut numbers) = (Vec::new(), Vec::new(), Vec::new());
        for c in checked.iter().flatten() {
            screens.push(&*c.batch.screen_id);
            epochs.push(&*c.batch.epoch);
            numbers.push(signed(c.batch.batch_seq));
        }
        for row in tx.query(
            "SELECT DISTINCT b.screen, b.epoch, b.batch_seq, b.hash
             FROM unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[]) AS t(screen, epoch, batch_seq)
             JOIN pop_batches b
               ON b.screen = t.screen AND b.epoch = t.epoch AND b.batch_seq = t.batch_seq",
            &[&screens, &epochs, &numbers],
        )? {
            let Some(at) = chains.number(row.get(0), row.get(1)) else {
                continue;
            };
            let batch_seq = unsigned(row.get(2), "a batch's batch_seq")?;
            known
                .batches
                .insert((at, batch_seq, hash32(row.get(3), "a batch's hash")?));
        }
        let (mut screens, mut epochs, mut seqs) = (Vec::new(), Vec::new(), Vec::new());
        for c in checked.iter().flatten() {
            for r in &c.batch.records {
                screens.push(&*c.batch.screen_id);
                epochs.push(&*c.batch.epoch);
                seqs.push(signed(r.seq));
            }
        }
        for row in tx.query(
            "SELECT DISTINCT r.screen, r.epoch, r.seq, r.batch_seq, r.hash, r.idx
             FROM unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[]) AS t(screen, epoch, seq)
             JOIN pop_records r ON r.screen = t.screen AND r.epoch = t.epoch AND r.seq = t.seq",
            &[&screens, &epochs, &seqs],
        )? {
            let Some(at) = chains.number(row.get(0), row.get(1)) else {
                continue;
            };
            let seq = unsigned(row.get(2), "a record's seq")?;
            let batch_seq = unsigned(row.get(3), "a record's batch_seq")?;
            let hash = hash32(row.get(4), "a record's batch hash")?;
            let idx: i32 = row.get(5);
            let idx =
                u32::try_from(idx).map_err(|_| super::corrupt("a record's index is negative"))?;
            known.records.insert((at, seq), (batch_seq, hash, idx));
        }
        Ok(known)
    }
}

/// A batch to store.
struct NewBatch<'a> {
    chain: usize,
    batch_seq: u64,
    hash: HashBytes,
    /// The envelope, packed.
    stored: &'a [u8],
    anomaly: Option<String>,
}

/// What the call decided to write and has not written yet.
#[derive(Default)]
struct Pending<'a> {
    batches: Vec<NewBatch<'a>>,
    /// `(chain, seq, batch_seq, hash, index)`.
    records: Vec<(usize, u64, u64, HashBytes, u32)>,
    /// `(chain, first seq)` to the last seq of the gap.
    gaps: BTreeMap<(usize, u64), u64>,
    /// Chains whose head moved or was first set.
    heads: Vec<usize>,
    /// Each screen's latest epoch, as of the last batch stored.
    latest: BTreeMap<&'a str, &'a str>,
}

impl Pending<'_> {
    /// Writes what is pending, one statement per table, and forgets it.
    fn flush(
        &mut self,
        tx: &mut Transaction<'_>,
        chains: &Chains<'_>,
        known: &Known,
    ) -> Result<(), Fail> {
        let name = |at: usize| chains.names[at];
        if !self.batches.is_empty() {
            let mut cols = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            let mut anomalies = Vec::new();
            for b in &self.batches {
                cols.0.push(name(b.chain).0);
                cols.1.push(name(b.chain).1);
                cols.2.push(signed(b.batch_seq));
                cols.3.push(&b.hash[..]);
                cols.4.push(b.stored);
                anomalies.push(b.anomaly.as_deref());
            }
            tx.execute(
                "INSERT INTO pop_batches (screen, epoch, batch_seq, hash, envelope, anomaly)
                 SELECT * FROM unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::BYTEA[],
                                      $5::BYTEA[], $6::TEXT[])",
                &[&cols.0, &cols.1, &cols.2, &cols.3, &cols.4, &anomalies],
            )?;
        }
        if !self.records.is_empty() {
            let mut cols = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            let (mut hashes, mut indexes) = (Vec::new(), Vec::new());
            for (at, seq, batch_seq, hash, idx) in &self.records {
                cols.0.push(name(*at).0);
                cols.1.push(name(*at).1);
                cols.2.push(signed(*seq));
                cols.3.push(signed(*batch_seq));
                hashes.push(&hash[..]);
                // A batch holds at most MAX_BATCH_RECORDS (1,000) records.
                indexes.push(i32::try_from(*idx).unwrap_or(i32::MAX));
            }
            tx.execute(
                "INSERT INTO pop_records (screen, epoch, seq, batch_seq, hash, idx)
                 SELECT * FROM unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::BIGINT[],
                                      $5::BYTEA[], $6::INTEGER[])",
                &[&cols.0, &cols.1, &cols.2, &cols.3, &hashes, &indexes],
            )?;
        }
        if !self.gaps.is_empty() {
            let mut cols = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (&(at, first), &last) in &self.gaps {
                cols.0.push(name(at).0);
                cols.1.push(name(at).1);
                cols.2.push(signed(first));
                cols.3.push(signed(last));
            }
            tx.execute(
                "INSERT INTO pop_gaps (screen, epoch, first_seq, last_seq)
                 SELECT * FROM unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::BIGINT[])
                 ON CONFLICT (screen, epoch, first_seq) DO UPDATE SET last_seq = EXCLUDED.last_seq",
                &[&cols.0, &cols.1, &cols.2, &cols.3],
            )?;
        }
        self.heads.sort_unstable();
        self.heads.dedup();
        let mut cols = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for &at in &self.heads {
            let Some(h) = &known.heads[at] else { continue };
            cols.0.push(name(at).0);
            cols.1.push(name(at).1);
            cols.2.push(signed(h.batch_seq));
            cols.3.push(&h.hash[..]);
            cols.4.push(signed(h.last_seq));
        }
        if !cols.0.is_empty() {
            tx.execute(
                "INSERT INTO pop_heads (screen, epoch, batch_seq, hash, last_seq)
                 SELECT * FROM unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::BYTEA[],
                                      $5::BIGINT[])
                 ON CONFLICT (screen, epoch) DO UPDATE
                 SET batch_seq = EXCLUDED.batch_seq, hash = EXCLUDED.hash,
                     last_seq = EXCLUDED.last_seq",
                &[&cols.0, &cols.1, &cols.2, &cols.3, &cols.4],
            )?;
        }
        if !self.latest.is_empty() {
            let (screens, epochs): (Vec<&str>, Vec<&str>) =
                self.latest.iter().map(|(s, e)| (*s, *e)).unzip();
            tx.execute(
                "INSERT INTO pop_latest_epoch (screen, epoch)
                 SELECT * FROM unnest($1::TEXT[], $2::TEXT[])
                 ON CONFLICT (screen) DO UPDATE SET epoch = EXCLUDED.epoch",
                &[&screens, &epochs],
            )?;
        }
        *self = Pending::default();
        Ok(())
    }
}

/// One call's decisions: what it knows of its chains and what it has yet to write.
struct Call<'c, 'a> {
    shown: &'c str,
    chains: &'c Chains<'a>,
    known: Known,
    pending: Pending<'a>,
}

impl<'a> Call<'_, 'a> {
    /// Which records of `c` (of chain `at`) are already held, the same: `Err` names the
    /// first one held with other content (or that cannot be read back). A seq at or below
    /// `archived` (the highest seq moved to the archive) without a live reference is held
    /// in the archive.
    fn held(
        &mut self,
        tx: &mut Transaction<'_>,
        at: usize,
        c: &Checked<'_>,
        archived: u64,
    ) -> Result<Result<Vec<bool>, String>, Fail> {
        let b = &c.batch;
        let places: Vec<Option<Place>> = b
            .records
            .iter()
            .map(|r| self.known.records.get(&(at, r.seq)).copied())
            .collect();
        if places.iter().all(Option::is_none) {
            return Ok(Ok(b.records.iter().map(|r| r.seq <= archived).collect()));
        }
        // The stored batches are read through the transaction: write what is decided.
        self.pending.flush(tx, self.chains, &self.known)?;
        let mut reader = Reader::new(TxBatches(tx, self.shown));
        let mut held = Vec::with_capacity(b.records.len());
        for (r, place) in b.records.iter().zip(places) {
            let Some((batch_seq, hash, idx)) = place else {
                held.push(r.seq <= archived);
                continue;
            };
            let at = (batch_seq, &hash, idx);
            if let Err(reason) = reader.same_as_held(&b.screen_id, &b.epoch, r, at)? {
                return Ok(Err(reason));
            }
            held.push(true);
        }
        Ok(Ok(held))
    }

    /// Decides `c` (of chain `at`), adding what it stores to what is pending and known
    /// and to `tally`; `all` counts all its records.
    fn store(
        &mut self,
        tx: &mut Transaction<'_>,
        at: usize,
        c: &'a Checked<'_>,
        all: &Tally<'a>,
        tally: &mut Tally<'a>,
    ) -> Result<Outcome, Fail> {
        let b = &c.batch;
        let screen: &'a str = &b.screen_id;
        let epoch: &'a str = &b.epoch;
        let ack = AckedBatch {
            epoch: epoch.to_owned(),
            batch_seq: b.batch_seq,
            hash: c.hash_hex.to_owned(),
        };
        if self.known.batches.contains(&(at, b.batch_seq, *c.hash)) {
            return Ok(Outcome::Duplicate {
                screen_id: screen.to_owned(),
                ack,
            });
        }
        let head = self.known.heads[at];
        // A chain's archive marker is at or below its head (batch and seq): only a batch that
        // does not go past the head can be archived already or carry archived records, so the
        // usual next batch costs no look-up. Markers move only under the chain's lock, which
        // this call holds.
        let behind = head.is_some_and(|h| {
            b.batch_seq <= h.batch_seq || b.records.first().is_some_and(|r| r.seq <= h.last_seq)
        });
        let archived = if behind {
            super::archive::marker(tx, screen, epoch)?
        } else {
            None
        };
        if archived_before(archived.as_ref(), b) {
            return Ok(Outcome::Duplicate {
                screen_id: screen.to_owned(),
                ack,
            });
        }
        let held = match self.held(tx, at, c, archived.map_or(0, |m| m.last_seq))? {
            Ok(held) => held,
            Err(reason) => return Ok(refused(b, reason)),
        };
        let anomaly = chain_anomaly(head.as_ref(), b.batch_seq, &b.prev_hash);
        if let Some(detail) = &anomaly {
            tracing::warn!(
                screen,
                epoch,
                batch_seq = b.batch_seq,
                detail,
                "proof-of-play chain anomaly within an epoch; stored, noted for the audit"
            );
        }
        self.known.batches.insert((at, b.batch_seq, *c.hash));
        self.pending.batches.push(NewBatch {
            chain: at,
            batch_seq: b.batch_seq,
            hash: *c.hash,
            stored: c.stored,
            anomaly,
        });

        let mut last_seq = head.map_or(0, |h| h.last_seq);
        let mut gaps = Vec::new();
        let mut stored = 0;
        for (i, r) in b.records.iter().enumerate() {
            if held[i] {
                continue;
            }
            if r.seq > last_seq {
                if r.seq > last_seq + 1 {
                    gaps.push((last_seq + 1, r.seq - 1));
                }
                last_seq = r.seq;
            }
            let idx = u32::try_from(i).unwrap_or(u32::MAX);
            self.known
                .records
                .insert((at, r.seq), (b.batch_seq, *c.hash, idx));
            self.pending
                .records
                .push((at, r.seq, b.batch_seq, *c.hash, idx));
            stored += 1;
        }
        if stored == b.records.len() {
            tally.merge(all);
        } else {
            for (r, _) in b.records.iter().zip(&held).filter(|(_, h)| !**h) {
                tally.add(r);
            }
        }
        for &(first, last) in &gaps {
            self.pending.gaps.insert((at, first), last);
        }
        self.known.heads[at] = Some(head_after(head.as_ref(), b, c.hash, last_seq, &gaps));
        self.pending.heads.push(at);
        self.pending.latest.insert(screen, epoch);
        Ok(Outcome::Stored {
            screen_id: screen.to_owned(),
            ack,
            records: stored,
            gaps,
        })
    }
}
/// Adds `tally` to the rollup rows, in key order, one statement.
fn rollups(tx: &mut Transaction<'_>, tally: Tally<'_>) -> Result<(), Fail> {
    let rows = tally.into_rows();
    if rows.is_empty() {
        return Ok(());
    }
    let mut dims: Vec<i16> = Vec::with_capacity(rows.len());
    let mut venues: Vec<Option<&str>> = Vec::with_capacity(rows.len());
    let mut screens: Vec<Option<&str>> = Vec::with_capacity(rows.len());
    let mut keys: Vec<&str> = Vec::with_capacity(rows.len());
    let mut hours: Vec<i64> = Vec::with_capacity(rows.len());
    let mut counts: [Vec<i64>; 3] = Default::default();
    for ((dim, venue, screen, key, hour), c) in &rows {
        dims.push(i16::from(*dim));
        venues.push(*venue);
        screens.push(*screen);
        keys.push(key);
        hours.push(*hour);
        for (to, n) in counts.iter_mut().zip(c) {
            to.push(signed(*n));
        }
    }
    tx.execute(
        "INSERT INTO pop_rollups (dimension, venue, screen, key, hour, complete, partial, failed)
         SELECT * FROM unnest($1::SMALLINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[],
                              $6::BIGINT[], $7::BIGINT[], $8::BIGINT[])
         ON CONFLICT (dimension, venue, screen, key, hour) DO UPDATE
         SET complete = pop_rollups.complete + EXCLUDED.complete,
             partial = pop_rollups.partial + EXCLUDED.partial,
             failed = pop_rollups.failed + EXCLUDED.failed",
        &[
            &dims, &venues, &screens, &keys, &hours, &counts[0], &counts[1], &counts[2],
        ],
    )?;
    Ok(())
}
