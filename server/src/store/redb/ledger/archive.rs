//! Retention in the redb ledger: which batches a day's archive file takes, deleting them
//! once the file is durable (one write transaction that also moves each chain's marker in
//! `pop_archived` and records the file's span in `pop_archive_files`), and what the
//! archive audit and the raw export ask of the live ledger. The file format, the order of
//! a run and the audit's checks are shared with PostgreSQL (`store/ledger/archive/`).

use std::collections::BTreeSet;
use std::path::Path;

use chrono::NaiveDate;
use redb::{Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable};

use playlists::wire::PlayRecord;

use super::{
    HashBytes, KeysOf, LedgerError, Query, ANOMALIES, ARCHIVED, ARCHIVE_FILES, BATCHES, HEADS,
    RECORDS,
};
use crate::store::ledger::archive::read::ExportKey;
use crate::store::ledger::archive::verify::{ArchiveReport, ArchivedLedger};
pub(crate) use crate::store::ledger::archive::Marker;
use crate::store::ledger::archive::{markers, span, write_day, ArchiveSummary, Chosen};

/// Archives every batch whose chain prefix lies before `before` into `dir` (created if
/// missing), one file per day, oldest first.
pub(super) fn archive(
    db: &Database,
    dir: &Path,
    before: NaiveDate,
) -> Result<ArchiveSummary, LedgerError> {
    crate::store::ledger::archive::run(dir, || {
        let Some((day, chosen)) = next_day(db, before)? else {
            return Ok(None);
        };
        write_day(dir, day, &chosen, |file| drop_archived(db, file, &chosen)).map(Some)
    })
}

/// The oldest day before `before` with live batches at the start of a chain, and the batches
/// of each chain's prefix up to that day; `None` when there is nothing left to archive.
fn next_day(
    db: &Database,
    before: NaiveDate,
) -> Result<Option<(NaiveDate, Vec<Chosen>)>, LedgerError> {
    let tx = db.begin_read()?;
    let batches = tx.open_table(BATCHES)?;
    let chains: Vec<(String, String)> = tx
        .open_table(HEADS)?
        .iter()?
        .map(|row| row.map(|(k, _)| (k.value().0.to_owned(), k.value().1.to_owned())))
        .collect::<Result<_, _>>()?;
    // Each chain's live batches in order, read lazily: the first one's day decides the day.
    let mut day: Option<NaiveDate> = None;
    for (screen, epoch) in &chains {
        let range = (screen.as_str(), epoch.as_str(), 0, &[0u8; 32])
            ..=(screen.as_str(), epoch.as_str(), u64::MAX, &[0xffu8; 32]);
        if let Some(row) = batches.range(range)?.next() {
            let (k, v) = row?;
            if let Some((d, _)) = Chosen::of(k.value(), v.value()) {
                day = Some(day.map_or(d, |x| x.min(d)));
            }
        }
    }
    let Some(day) = day.filter(|d| *d < before) else {
        return Ok(None);
    };
    let mut chosen = Vec::new();
    for (screen, epoch) in &chains {
        let range = (screen.as_str(), epoch.as_str(), 0, &[0u8; 32])
            ..=(screen.as_str(), epoch.as_str(), u64::MAX, &[0xffu8; 32]);
        for row in batches.range(range)? {
            let (k, v) = row?;
            // A batch that does not read is never archived, nor anything after it.
            match Chosen::of(k.value(), v.value()) {
                Some((d, c)) if d <= day => chosen.push(c),
                _ => break,
            }
        }
    }
    Ok(Some((day, chosen)))
}

/// Deletes `chosen` (now durable in `file`) from the live ledger and moves each chain's
/// archive marker, in one transaction.
fn drop_archived(db: &Database, file: &Path, chosen: &[Chosen]) -> Result<(), LedgerError> {
    let tx = db.begin_write()?;
    {
        let path = file.to_string_lossy();
        let mut files = tx.open_table(ARCHIVE_FILES)?;
        let old = files.get(&*path)?.map(|g| g.value());
        if let Some(span) = span(chosen, old) {
            files.insert(&*path, span)?;
        }
        drop(files);
        let mut batches = tx.open_table(BATCHES)?;
        let mut records = tx.open_table(RECORDS)?;
        let mut anomalies = tx.open_table(ANOMALIES)?;
        let mut archived = tx.open_table(ARCHIVED)?;
        for c in chosen {
            let (screen, epoch, batch_seq, hash) = (&*c.key.0, &*c.key.1, c.key.2, &c.key.3);
            batches.remove((screen, epoch, batch_seq, hash))?;
            anomalies.remove((screen, epoch, batch_seq, hash))?;
            for &seq in &c.seqs {
                let ours = records
                    .get((screen, epoch, seq))?
                    .is_some_and(|g| g.value().0 == batch_seq && g.value().1 == hash);
                if ours {
                    records.remove((screen, epoch, seq))?;
                }
            }
        }
        let moved = markers(chosen, |screen, epoch| marker(&archived, screen, epoch))?;
        for ((screen, epoch), m) in moved {
            archived.insert(
                (screen.as_str(), epoch.as_str()),
                (m.batch_seq, &m.hash, m.last_seq),
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// The archive marker of `(screen, epoch)` in `table`, if any of its batches were archived.
pub(super) fn marker(
    table: &impl ReadableTable<(&'static str, &'static str), (u64, &'static HashBytes, u64)>,
    screen: &str,
    epoch: &str,
) -> Result<Option<Marker>, LedgerError> {
    Ok(table.get((screen, epoch))?.map(|g| {
        let (batch_seq, hash, last_seq) = g.value();
        Marker {
            batch_seq,
            hash: *hash,
            last_seq,
        }
    }))
}

/// The live ledger as the archive audit reads it: one read transaction.
struct Live {
    batches: ReadOnlyTable<super::BatchKey<'static>, &'static [u8]>,
    archived: ReadOnlyTable<(&'static str, &'static str), (u64, &'static HashBytes, u64)>,
}

impl ArchivedLedger for Live {
    fn marker(&self, screen: &str, epoch: &str) -> Result<Option<Marker>, LedgerError> {
        marker(&self.archived, screen, epoch)
    }

    fn is_live(
        &self,
        screen: &str,
        epoch: &str,
        batch_seq: u64,
        hash: &HashBytes,
    ) -> Result<bool, LedgerError> {
        Ok(self
            .batches
            .get((screen, epoch, batch_seq, hash))?
            .is_some())
    }

    fn archived_chains(&self) -> Result<Vec<(String, String, u64)>, LedgerError> {
        let mut out = Vec::new();
        for row in self.archived.iter()? {
            let (k, v) = row?;
            let (screen, epoch) = k.value();
            out.push((screen.to_owned(), epoch.to_owned(), v.value().0));
        }
        Ok(out)
    }
}

/// The archive audit of the files in `dir` against this ledger (see
/// `store/ledger/archive/verify.rs`).
pub(super) fn verify_archive(
    db: &Database,
    dir: &Path,
    key_of: KeysOf<'_>,
    plays: &mut dyn FnMut(&PlayRecord) -> Result<(), LedgerError>,
) -> Result<ArchiveReport, LedgerError> {
    let tx = db.begin_read()?;
    let live = Live {
        batches: tx.open_table(BATCHES)?,
        archived: tx.open_table(ARCHIVED)?,
    };
    crate::store::ledger::archive::verify::verify_archive(&live, dir, key_of, plays)
}

/// The archived records matching `q` that are not live, in export order.
pub(super) fn archived_plays(
    tx: &ReadTransaction,
    q: &Query,
) -> Result<Vec<(ExportKey, PlayRecord)>, LedgerError> {
    let mut files = Vec::new();
    for row in tx.open_table(ARCHIVE_FILES)?.iter()? {
        let (path, span) = row?;
        files.push((path.value().to_owned(), span.value()));
    }
    let records = tx.open_table(RECORDS)?;
    crate::store::ledger::archive::read::archived_plays(&files, q, &mut |keys| {
        let mut live = BTreeSet::new();
        for k in keys {
            if records.get((k.0.as_str(), k.1.as_str(), k.2))?.is_some() {
                live.insert(k.clone());
            }
        }
        Ok(live)
    })
}
