//! Retention in the PostgreSQL ledger, with the redb ledger's semantics and files (the
//! format, the order of a run and the audit's checks are `store/ledger/archive/`): each
//! chain's prefix before the cut-off goes to a daily file, the chain's marker moves in
//! `pop_archived` and the file's span is kept in `pop_archive_files` (`0004_archive.sql`).
//!
//! # Replicas
//!
//! Every replica may run retention at once (the server runs it only on the replica holding
//! the publisher lease, but a lease can change hands mid-run), so each step (one day: pick
//! the batches, write the file, delete them) is one transaction that first takes the
//! archive lock, a transaction-scoped advisory lock in the two-key space (which never meets
//! the chains' one-key locks): archivers take turns, and the next one finds the day done.
//! The file is written, fsynced and renamed while the lock is held and before any row is
//! deleted; then the step takes the advisory lock of every chain it archives (ingest's, in
//! key order, so neither waits on the other in a circle) and deletes the batches, their
//! record references and moves the markers. An ingest of those chains thus sees the
//! batches live or the marker moved, never neither: a re-sent batch is `Duplicate` either
//! way and a record is never stored twice. The archive audit takes the same lock shared,
//! so no step runs between its reading the files and the ledger.
//!
//! A step that loses a race (deadlock, serialisation failure) is retried whole: it writes
//! the same file again (each batch once) and deletes what it wrote.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ::postgres::{Client, IsolationLevel, Transaction};
use chrono::NaiveDate;

use playlists::wire::PlayRecord;

use super::ingest::chain_lock;
use super::{hash32, signed, unsigned, Fail, PgLedger};
use crate::store::ledger::archive::read::ExportKey;
use crate::store::ledger::archive::verify::{ArchiveReport, ArchivedLedger};
use crate::store::ledger::archive::{
    markers, span, write_day, ArchiveSummary, ArchivedDay, Chosen, Marker,
};
use crate::store::ledger::{HashBytes, KeysOf, LedgerError, Query};

/// The archive lock's two keys ("SIGN", "ARCH"), one per database.
const ARCHIVE_LOCK: (i32, i32) = (0x5349_474e, 0x4152_4348);

/// Batches read per round trip while choosing a chain's prefix.
const PAGE: i64 = 256;

/// Archives every batch whose chain prefix lies before `before` into `dir` (created if
/// missing), one file per day, oldest first; one transaction per day.
pub(super) fn archive(
    ledger: &PgLedger,
    dir: &Path,
    before: NaiveDate,
) -> Result<ArchiveSummary, LedgerError> {
    crate::store::ledger::archive::run(dir, || ledger.run(|client| step(client, dir, before)))
}

/// Archives the oldest day left, if any, holding the archive lock throughout.
fn step(client: &mut Client, dir: &Path, before: NaiveDate) -> Result<Option<ArchivedDay>, Fail> {
    let mut tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&ARCHIVE_LOCK.0, &ARCHIVE_LOCK.1],
    )?;
    let Some((day, chosen)) = next_day(&mut tx, before)? else {
        tx.commit()?;
        return Ok(None);
    };
    let done = write_day(dir, day, &chosen, |file| {
        drop_archived(&mut tx, file, &chosen)
    })?;
    tx.commit()?;
    Ok(Some(done))
}

/// The oldest day before `before` with live batches at the start of a chain, and the batches
/// of each chain's prefix up to that day (as in redb).
fn next_day(
    tx: &mut Transaction<'_>,
    before: NaiveDate,
) -> Result<Option<(NaiveDate, Vec<Chosen>)>, Fail> {
    // Each chain's first live batch: its day decides whether the chain has a prefix to take.
    let mut firsts: Vec<(String, String, NaiveDate)> = Vec::new();
    for row in tx.query(
        "SELECT h.screen, h.epoch, b.batch_seq, b.hash, b.envelope FROM pop_heads h
         CROSS JOIN LATERAL (
             SELECT batch_seq, hash, envelope FROM pop_batches
             WHERE screen = h.screen AND epoch = h.epoch ORDER BY batch_seq, hash LIMIT 1
         ) b ORDER BY h.screen, h.epoch",
        &[],
    )? {
        let (screen, epoch): (String, String) = (row.get(0), row.get(1));
        let batch_seq = unsigned(row.get(2), "a batch's batch_seq")?;
        let hash = hash32(row.get(3), "a batch hash")?;
        // A batch that does not read is never archived, nor anything after it.
        if let Some((d, _)) = Chosen::of((&screen, &epoch, batch_seq, &hash), row.get(4)) {
            firsts.push((screen, epoch, d));
        }
    }
    let Some(day) = firsts.iter().map(|f| f.2).min().filter(|d| *d < before) else {
        return Ok(None);
    };
    let mut chosen = Vec::new();
    for (screen, epoch, _) in firsts.iter().filter(|f| f.2 <= day) {
        let mut after: (i64, Vec<u8>) = (-1, Vec::new());
        'chain: loop {
            let rows = tx.query(
                "SELECT batch_seq, hash, envelope FROM pop_batches
                 WHERE screen = $1 AND epoch = $2 AND (batch_seq, hash) > ($3, $4)
                 ORDER BY batch_seq, hash LIMIT $5",
                &[screen, epoch, &after.0, &after.1, &PAGE],
            )?;
            for row in &rows {
                let batch_seq = unsigned(row.get(0), "a batch's batch_seq")?;
                let hash = hash32(row.get(1), "a batch hash")?;
                match Chosen::of((screen, epoch, batch_seq, &hash), row.get(2)) {
                    Some((d, c)) if d <= day => chosen.push(c),
                    _ => break 'chain,
                }
                after = (signed(batch_seq), hash.to_vec());
            }
            if rows.len() < PAGE as usize {
                break;
            }
        }
    }
    Ok(Some((day, chosen)))
}

/// Deletes `chosen` (now durable in `file`) from the live ledger under the locks of their
/// chains, moves each chain's archive marker and records the file's span.
fn drop_archived(tx: &mut Transaction<'_>, file: &Path, chosen: &[Chosen]) -> Result<(), Fail> {
    let mut locks: Vec<i64> = chosen
        .iter()
        .map(|c| chain_lock(&c.key.0, &c.key.1))
        .collect();
    locks.sort_unstable();
    locks.dedup();
    for key in &locks {
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[key])?;
    }
    if let Some((first, last)) = span(chosen, None) {
        tx.execute(
            "INSERT INTO pop_archive_files (path, first_at, last_at) VALUES ($1, $2, $3)
             ON CONFLICT (path) DO UPDATE
             SET first_at = LEAST(pop_archive_files.first_at, EXCLUDED.first_at),
                 last_at = GREATEST(pop_archive_files.last_at, EXCLUDED.last_at)",
            &[&file.to_string_lossy().as_ref(), &first, &last],
        )?;
    }
    let (mut screens, mut epochs, mut batch_seqs, mut hashes) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut r_screens, mut r_epochs, mut r_seqs, mut r_batch_seqs, mut r_hashes) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for c in chosen {
        let (screen, epoch, batch_seq, hash) = (&c.key.0, &c.key.1, signed(c.key.2), &c.key.3);
        screens.push(screen.as_str());
        epochs.push(epoch.as_str());
        batch_seqs.push(batch_seq);
        hashes.push(&hash[..]);
        for &seq in &c.seqs {
            r_screens.push(screen.as_str());
            r_epochs.push(epoch.as_str());
            r_seqs.push(signed(seq));
            r_batch_seqs.push(batch_seq);
            r_hashes.push(&hash[..]);
        }
    }
    tx.execute(
        "DELETE FROM pop_batches b
         USING unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::BYTEA[]) AS t(s, e, n, h)
         WHERE b.screen = t.s AND b.epoch = t.e AND b.batch_seq = t.n AND b.hash = t.h",
        &[&screens, &epochs, &batch_seqs, &hashes],
    )?;
    // A record goes only where this batch is the one that stored it.
    tx.execute(
        "DELETE FROM pop_records r
         USING unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::BIGINT[], $5::BYTEA[])
             AS t(s, e, q, n, h)
         WHERE r.screen = t.s AND r.epoch = t.e AND r.seq = t.q
           AND r.batch_seq = t.n AND r.hash = t.h",
        &[&r_screens, &r_epochs, &r_seqs, &r_batch_seqs, &r_hashes],
    )?;
    let mut old: BTreeMap<(String, String), Marker> = BTreeMap::new();
    for row in tx.query(
        "SELECT a.screen, a.epoch, a.batch_seq, a.hash, a.last_seq FROM pop_archived a
         JOIN unnest($1::TEXT[], $2::TEXT[]) AS t(s, e) ON a.screen = t.s AND a.epoch = t.e",
        &[&screens, &epochs],
    )? {
        old.insert((row.get(0), row.get(1)), marker_of(&row, 2)?);
    }
    let moved = markers(chosen, |s, e| {
        Ok(old.get(&(s.to_owned(), e.to_owned())).copied())
    })?;
    for ((screen, epoch), m) in moved {
        tx.execute(
            "INSERT INTO pop_archived (screen, epoch, batch_seq, hash, last_seq)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (screen, epoch) DO UPDATE SET batch_seq = EXCLUDED.batch_seq,
                 hash = EXCLUDED.hash, last_seq = EXCLUDED.last_seq",
            &[
                &screen,
                &epoch,
                &signed(m.batch_seq),
                &&m.hash[..],
                &signed(m.last_seq),
            ],
        )?;
    }
    Ok(())
}

/// The marker in columns `at..at + 3` (batch_seq, hash, last_seq) of `row`.
fn marker_of(row: &::postgres::Row, at: usize) -> Result<Marker, Fail> {
    Ok(Marker {
        batch_seq: unsigned(row.get(at), "an archive marker's batch_seq")?,
        hash: hash32(row.get(at + 1), "an archive marker's hash")?,
        last_seq: unsigned(row.get(at + 2), "an archive marker's last seq")?,
    })
}

/// The archive marker of chain `(screen, epoch)`, if any of its batches were archived.
pub(super) fn marker(
    tx: &mut Transaction<'_>,
    screen: &str,
    epoch: &str,
) -> Result<Option<Marker>, Fail> {
    tx.query_opt(
        "SELECT batch_seq, hash, last_seq FROM pop_archived WHERE screen = $1 AND epoch = $2",
        &[&screen, &epoch],
    )?
    .map(|row| marker_of(&row, 0))
    .transpose()
}

/// Every chain's archive marker.
pub(super) fn all_markers(
    tx: &mut Transaction<'_>,
) -> Result<BTreeMap<(String, String), Marker>, Fail> {
    let mut out = BTreeMap::new();
    for row in tx.query(
        "SELECT screen, epoch, batch_seq, hash, last_seq FROM pop_archived",
        &[],
    )? {
        out.insert((row.get(0), row.get(1)), marker_of(&row, 2)?);
    }
    Ok(out)
}

/// The live ledger as the archive audit reads it, through one transaction.
struct Live<'t, 'c> {
    tx: RefCell<&'t mut Transaction<'c>>,
    shown: &'t str,
}

impl Live<'_, '_> {
    fn named(&self, f: Fail) -> LedgerError {
        match f {
            Fail::Ledger(e) => e,
            Fail::Pg(e) => LedgerError::Database {
                database: self.shown.to_owned(),
                message: super::super::describe(&e),
            },
        }
    }
}

impl ArchivedLedger for Live<'_, '_> {
    fn marker(&self, screen: &str, epoch: &str) -> Result<Option<Marker>, LedgerError> {
        marker(&mut self.tx.borrow_mut(), screen, epoch).map_err(|f| self.named(f))
    }

    fn is_live(
        &self,
        screen: &str,
        epoch: &str,
        batch_seq: u64,
        hash: &HashBytes,
    ) -> Result<bool, LedgerError> {
        let row = self
            .tx
            .borrow_mut()
            .query_opt(
                "SELECT 1 FROM pop_batches
                 WHERE screen = $1 AND epoch = $2 AND batch_seq = $3 AND hash = $4",
                &[&screen, &epoch, &signed(batch_seq), &&hash[..]],
            )
            .map_err(|e| self.named(Fail::Pg(e)))?;
        Ok(row.is_some())
    }

    fn archived_chains(&self) -> Result<Vec<(String, String, u64)>, LedgerError> {
        let markers = all_markers(&mut self.tx.borrow_mut()).map_err(|f| self.named(f))?;
        Ok(markers
            .into_iter()
            .map(|((s, e), m)| (s, e, m.batch_seq))
            .collect())
    }
}

/// The archive audit of the files in `dir` against this ledger (see
/// `store/ledger/archive/verify.rs`), holding the archive lock shared: no archiving step
/// changes the files or the markers meanwhile. Each statement reads what is committed
/// (ingest may go on: it never touches what was archived).
pub(super) fn verify_archive(
    ledger: &PgLedger,
    dir: &Path,
    key_of: KeysOf<'_>,
    plays: &mut dyn FnMut(&PlayRecord) -> Result<(), LedgerError>,
) -> Result<ArchiveReport, LedgerError> {
    let mut client = ledger.client()?;
    let named = |e: ::postgres::Error| ledger.error(super::super::describe(&e));
    let mut tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .read_only(true)
        .start()
        .map_err(named)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock_shared($1, $2)",
        &[&ARCHIVE_LOCK.0, &ARCHIVE_LOCK.1],
    )
    .map_err(named)?;
    let live = Live {
        tx: RefCell::new(&mut tx),
        shown: &ledger.shown,
    };
    let report = crate::store::ledger::archive::verify::verify_archive(&live, dir, key_of, plays)?;
    tx.commit().map_err(named)?;
    Ok(report)
}

/// The archived records matching `q` that `tx` does not hold live, in export order.
pub(super) fn archived_plays(
    tx: &mut Transaction<'_>,
    shown: &str,
    q: &Query,
) -> Result<Vec<(ExportKey, PlayRecord)>, Fail> {
    let mut files = Vec::new();
    for row in tx.query(
        "SELECT path, first_at, last_at FROM pop_archive_files ORDER BY path",
        &[],
    )? {
        files.push((row.get::<_, String>(0), (row.get(1), row.get(2))));
    }
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let named = |e: ::postgres::Error| LedgerError::Database {
        database: shown.to_owned(),
        message: super::super::describe(&e),
    };
    let plays = crate::store::ledger::archive::read::archived_plays(&files, q, &mut |keys| {
        // One query per chain: the candidates' seqs it still holds live.
        let mut per: BTreeMap<(&str, &str), Vec<i64>> = BTreeMap::new();
        for (s, e, seq) in keys {
            per.entry((s, e)).or_default().push(signed(*seq));
        }
        let mut live = BTreeSet::new();
        for ((screen, epoch), seqs) in per {
            for row in tx
                .query(
                    "SELECT seq FROM pop_records WHERE screen = $1 AND epoch = $2 AND seq = ANY($3)",
                    &[&screen, &epoch, &seqs],
                )
                .map_err(named)?
            {
                let seq: i64 = row.get(0);
                live.insert((
                    screen.to_owned(),
                    epoch.to_owned(),
                    u64::try_from(seq).unwrap_or_default(),
                ));
            }
        }
        Ok(live)
    })?;
    Ok(plays)
}
