//! Ingest into PostgreSQL: the batches are opened and checked as in redb
//! (`store/ledger/check.rs`, before any transaction), then stored in one transaction that
//! holds the advisory lock of every chain it touches (see the module doc): the envelope
//! (packed), a reference to each new record, the chain head, gaps, the anomaly if the
//! batch breaks its chain, the screen's latest epoch and the rollups. As in redb, a batch
//! or record at or before its chain's archive marker (`archive.rs`) is held in the archive.

use std::collections::HashMap;

use ::postgres::{IsolationLevel, Transaction};
use sha2::Digest;

use playlists::wire::pop::AckedBatch;

use super::read::TxBatches;
use super::{hash32, signed, unsigned, Fail, PgLedger};
use crate::store::ledger::check::{
    archived_before, chain_anomaly, check_all, moves_head, open_all, rejected, tally_all, Checked,
    Head,
};
use crate::store::ledger::reader::Reader;
use crate::store::ledger::tally::Tally;
use crate::store::ledger::{epoch_name, Incoming, KeysOf, LedgerError, Outcome};

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
    let mut locks: Vec<i64> = checked
        .iter()
        .flatten()
        .map(|c| chain_lock(&c.batch.screen_id, &c.batch.epoch))
        .collect();
    locks.sort_unstable();
    locks.dedup();
    ledger.run(|client| {
        // Read committed whatever the server's default: each statement after the locks
        // sees what the chain's previous writer committed.
        let mut tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::ReadCommitted)
            .start()?;
        for key in &locks {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[key])?;
        }
        let mut outcomes = Vec::with_capacity(incoming.len());
        let mut tally = Tally::default();
        for ((i, c), all) in incoming.iter().zip(&checked).zip(&tallies) {
            outcomes.push(match c {
                Ok(c) => store(&mut tx, &ledger.shown, c, all, &mut tally)?,
                Err(reason) => rejected(i, reason.clone()),
            });
        }
        rollups(&mut tx, tally)?;
        tx.commit()?;
        Ok(outcomes)
    })
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

fn head(tx: &mut Transaction<'_>, screen: &str, epoch: &str) -> Result<Option<Head>, Fail> {
    let row = tx.query_opt(
        "SELECT batch_seq, hash, last_seq FROM pop_heads WHERE screen = $1 AND epoch = $2",
        &[&screen, &epoch],
    )?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(Head {
        batch_seq: unsigned(row.get(0), "a chain head's batch_seq")?,
        hash: hash32(row.get(1), "a chain head's hash")?,
        last_seq: unsigned(row.get(2), "a chain head's last seq")?,
    }))
}

/// Which records of `c` are already held, the same: `Err` names the first one held with
/// other content (or that cannot be read back). A seq at or below `archived` (the highest
/// seq moved to the archive) without a live reference is held in the archive.
fn held(
    tx: &mut Transaction<'_>,
    shown: &str,
    c: &Checked<'_>,
    archived: u64,
) -> Result<Result<Vec<bool>, String>, Fail> {
    let b = &c.batch;
    let (screen, epoch): (&str, &str) = (&b.screen_id, &b.epoch);
    let seqs: Vec<i64> = b.records.iter().map(|r| signed(r.seq)).collect();
    let mut at: HashMap<u64, (u64, [u8; 32], u32)> = HashMap::new();
    for row in tx.query(
        "SELECT seq, batch_seq, hash, idx FROM pop_records
         WHERE screen = $1 AND epoch = $2 AND seq = ANY($3)",
        &[&screen, &epoch, &seqs],
    )? {
        let seq = unsigned(row.get(0), "a record's seq")?;
        let batch_seq = unsigned(row.get(1), "a record's batch_seq")?;
        let hash = hash32(row.get(2), "a record's batch hash")?;
        let idx: i32 = row.get(3);
        let idx = u32::try_from(idx).map_err(|_| super::corrupt("a record's index is negative"))?;
        at.insert(seq, (batch_seq, hash, idx));
    }
    let mut reader = Reader::new(TxBatches(tx, shown));
    let mut held = Vec::with_capacity(b.records.len());
    for r in &b.records {
        let Some(&(batch_seq, hash, idx)) = at.get(&r.seq) else {
            held.push(r.seq <= archived);
            continue;
        };
        let conflict = match reader.record(screen, epoch, r.seq, (batch_seq, &hash, idx))? {
            Ok(stored) if r.same_as(stored) => {
                held.push(true);
                continue;
            }
            Ok(_) => "already held with other content".to_owned(),
            Err(why) => format!("held but unreadable ({why})"),
        };
        return Ok(Err(format!(
            "seq {} of {} is {conflict}, from batch {batch_seq}: a batch that conflicts with stored records is not stored",
            r.seq,
            epoch_name(epoch),
        )));
    }
    Ok(Ok(held))
}

/// Stores `c`, adding the records it stored to `tally`; `all` counts all of them.
fn store<'a>(
    tx: &mut Transaction<'_>,
    shown: &str,
    c: &'a Checked<'_>,
    all: &Tally<'a>,
    tally: &mut Tally<'a>,
) -> Result<Outcome, Fail> {
    let b = &c.batch;
    let screen: &str = &b.screen_id;
    let epoch: &str = &b.epoch;
    let batch_seq = signed(b.batch_seq);
    let hash: &[u8] = c.hash;
    let ack = AckedBatch {
        epoch: epoch.to_owned(),
        batch_seq: b.batch_seq,
        hash: c.hash_hex.to_owned(),
    };
    let stored = tx.query_opt(
        "SELECT 1 FROM pop_batches WHERE screen = $1 AND epoch = $2 AND batch_seq = $3 AND hash = $4",
        &[&screen, &epoch, &batch_seq, &hash],
    )?;
    if stored.is_some() {
        return Ok(Outcome::Duplicate {
            screen_id: screen.to_owned(),
            ack,
        });
    }
    let head = head(tx, screen, epoch)?;
    // A chain's archive marker is at or below its head (batch and seq): only a batch that
    // does not go past the head can be archived already or carry archived records, so the
    // usual next batch costs no look-up.
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
    let held = match held(tx, shown, c, archived.map_or(0, |m| m.last_seq))? {
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
    tx.execute(
        "INSERT INTO pop_batches (screen, epoch, batch_seq, hash, envelope, anomaly)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[&screen, &epoch, &batch_seq, &hash, &c.stored, &anomaly],
    )?;

    let mut last_seq = head.map_or(0, |h| h.last_seq);
    let mut gaps = Vec::new();
    let (mut seqs, mut indexes): (Vec<i64>, Vec<i32>) = (Vec::new(), Vec::new());
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
        seqs.push(signed(r.seq));
        // A batch holds at most MAX_BATCH_RECORDS (1,000) records.
        indexes.push(i32::try_from(i).unwrap_or(i32::MAX));
    }
    if seqs.len() == b.records.len() {
        tally.merge(all);
    } else {
        for (r, _) in b.records.iter().zip(&held).filter(|(_, h)| !**h) {
            tally.add(r);
        }
    }
    tx.execute(
        "INSERT INTO pop_records (screen, epoch, seq, batch_seq, hash, idx)
         SELECT $1, $2, s, $3, $4, i FROM unnest($5::BIGINT[], $6::INTEGER[]) AS t(s, i)",
        &[&screen, &epoch, &batch_seq, &hash, &seqs, &indexes],
    )?;
    for &(first, last) in &gaps {
        tx.execute(
            "INSERT INTO pop_gaps (screen, epoch, first_seq, last_seq) VALUES ($1, $2, $3, $4)
             ON CONFLICT (screen, epoch, first_seq) DO UPDATE SET last_seq = EXCLUDED.last_seq",
            &[&screen, &epoch, &signed(first), &signed(last)],
        )?;
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
    let (head_seq, head_hash) = match head {
        Some(h) if !moves_head(Some(&h), b.batch_seq) => (h.batch_seq, h.hash),
        _ => (b.batch_seq, *c.hash),
    };
    tx.execute(
        "INSERT INTO pop_heads (screen, epoch, batch_seq, hash, last_seq) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (screen, epoch) DO UPDATE
         SET batch_seq = EXCLUDED.batch_seq, hash = EXCLUDED.hash, last_seq = EXCLUDED.last_seq",
        &[&screen, &epoch, &signed(head_seq), &&head_hash[..], &signed(last_seq)],
    )?;
    tx.execute(
        "INSERT INTO pop_latest_epoch (screen, epoch) VALUES ($1, $2)
         ON CONFLICT (screen) DO UPDATE SET epoch = EXCLUDED.epoch",
        &[&screen, &epoch],
    )?;
    Ok(Outcome::Stored {
        screen_id: screen.to_owned(),
        ack,
        records: seqs.len(),
        gaps,
    })
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
