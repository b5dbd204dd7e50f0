//! Retention: moves signed batches out of the live ledger into compressed daily archive
//! files, and reads those files back for `audit verify --archive`.
//!
//! A batch's day is the UTC date of its first record's `slot_start`. Archiving takes, per
//! screen and epoch, the *prefix* of its chain (in `batch_seq` order) whose days are before
//! the cut-off, so what stays live is always the chain's tail and links to the last archived
//! batch, which `pop_archived` keeps per chain: `(batch_seq, hash, highest seq archived)`.
//! Rollups are never touched: reports are the same before and after.
//!
//! One day at a time, oldest first: the day's batches (with any older straggler of the same
//! chain prefix) are written to `ledger-YYYY-MM-DD.zst` in the archive directory, merged
//! with the file already there (a crashed run, or a late batch of an archived day), through
//! a temporary file, fsync and rename, and the directory fsynced; only then are the batches,
//! their record references and anomaly notes deleted from the ledger in one transaction that
//! also moves the chain's archive marker. A crash between the two leaves the batches in both
//! places: the next run writes the same file again and deletes them, and the archive audit
//! counts a batch found in both once.
//!
//! # File format
//!
//! One zstd frame holding [`MAGIC`], then per batch the length of its envelope (u32,
//! little-endian) and the envelope exactly as received (signed JSON), sorted by screen,
//! epoch, batch_seq and hash. Everything else (screen, epoch, seqs, the chain) is read from
//! the signed payloads, so nothing in the file is trusted without its signature.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use redb::{Database, ReadableDatabase, ReadableTable};

use playlists::wire::pop::batch_hash;
use playlists::wire::{PopBatch, MAX_POP_BYTES};

use super::export::{envelope, payload_of};
use super::{
    hash_bytes, HashBytes, LedgerError, ANOMALIES, ARCHIVED, ARCHIVE_FILES, BATCHES, HEADS, RECORDS,
};

pub(super) mod read;

pub(super) mod verify;

/// The first bytes of an archive file's content (after decompression).
pub(super) const MAGIC: &[u8] = b"signage-ledger-archive 1\n";

/// zstd level for archive files: written once a day, read rarely, so worth a slow level.
const LEVEL: i32 = 15;

/// The most bytes an archive file may decompress to (a damaged or hostile file cannot make
/// the audit allocate more).
const MAX_FILE_BYTES: u64 = 64 << 30;

/// What one archiving run moved out of the live ledger, per day (file).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ArchiveSummary {
    pub days: Vec<ArchivedDay>,
}

/// One archive file written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedDay {
    pub day: NaiveDate,
    pub file: PathBuf,
    /// Batches moved out of the ledger by this run.
    pub batches: u64,
    /// Records those batches carry.
    pub records: u64,
    /// The file's size after this run.
    pub file_bytes: u64,
}

/// The file of `day` in `dir`.
pub fn file_of(dir: &Path, day: NaiveDate) -> PathBuf {
    dir.join(format!("ledger-{}.zst", day.format("%Y-%m-%d")))
}

/// The day a file name names, if it is an archive file's name.
pub(super) fn day_of_name(name: &str) -> Option<NaiveDate> {
    let day = name.strip_prefix("ledger-")?.strip_suffix(".zst")?;
    NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()
}

/// A live batch chosen for the archive.
pub(super) struct Chosen {
    key: (String, String, u64, HashBytes),
    raw: Vec<u8>,
    seqs: Vec<u64>,
    /// The first and last `slot_start` of its records (microseconds).
    span: (i64, i64),
}

/// Archives every batch whose chain prefix lies before `before` into `dir` (created if
/// missing), one file per day, oldest first.
pub(super) fn archive(
    db: &Database,
    dir: &Path,
    before: NaiveDate,
) -> Result<ArchiveSummary, LedgerError> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut summary = ArchiveSummary::default();
    while let Some((day, chosen)) = next_day(db, before)? {
        let file = file_of(dir, day);
        let file_bytes = write_file(&file, chosen.iter().map(|c| c.raw.as_slice()))?;
        drop_archived(db, &file, &chosen)?;
        summary.days.push(ArchivedDay {
            day,
            file,
            batches: chosen.len() as u64,
            records: chosen.iter().map(|c| c.seqs.len() as u64).sum(),
            file_bytes,
        });
    }
    Ok(summary)
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
            let (_, v) = row?;
            if let Some((d, _, _, _)) = read(v.value()) {
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
            let Some((d, raw, seqs, span)) = read(v.value()) else {
                break;
            };
            if d > day {
                break;
            }
            let (s, e, batch_seq, hash) = k.value();
            chosen.push(Chosen {
                key: (s.to_owned(), e.to_owned(), batch_seq, *hash),
                raw,
                seqs,
                span,
            });
        }
    }
    Ok(Some((day, chosen)))
}

/// A batch read for the archive: its day, envelope, record seqs and `slot_start` span.
type ReadBatch = (NaiveDate, Vec<u8>, Vec<u64>, (i64, i64));

/// A stored batch as the archive needs it, if it unpacks and parses.
fn read(stored: &[u8]) -> Option<ReadBatch> {
    let raw = envelope(stored)?.into_owned();
    let batch: PopBatch = serde_json::from_str(&payload_of(&raw)?).ok()?;
    let day = batch.records.first()?.slot_start.date_naive();
    let seqs = batch.records.iter().map(|r| r.seq).collect();
    let times = batch
        .records
        .iter()
        .map(|r| r.slot_start.timestamp_micros());
    let span = (times.clone().min()?, times.max()?);
    Some((day, raw, seqs, span))
}

/// Writes `file` holding `envelopes` and whatever it already held (each batch once),
/// atomically and durably; returns its size.
pub(super) fn write_file<'a>(
    file: &Path,
    envelopes: impl Iterator<Item = &'a [u8]>,
) -> Result<u64, LedgerError> {
    // Sorted and unique by (screen, epoch, batch_seq, hash) from the payload, or by the bytes
    // themselves for an envelope whose payload does not parse.
    let mut all: BTreeMap<(String, String, u64, String), Vec<u8>> = BTreeMap::new();
    let mut add = |raw: &[u8]| {
        all.insert(sort_key(raw), raw.to_vec());
    };
    if file.exists() {
        let old = read_file(file).map_err(|why| {
            LedgerError::Corrupt(format!(
                "archive file {} is damaged ({why}); not overwriting it",
                file.display()
            ))
        })?;
        old.iter().for_each(|raw| add(raw));
    }
    envelopes.for_each(&mut add);
    let mut content = MAGIC.to_vec();
    for raw in all.values() {
        let len = u32::try_from(raw.len())
            .map_err(|_| LedgerError::Corrupt("an envelope over 4 GiB".into()))?;
        content.extend_from_slice(&len.to_le_bytes());
        content.extend_from_slice(raw);
    }
    let packed = zstd::bulk::compress(&content, LEVEL).map_err(|e| io(file, e))?;
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| io(dir, e))?;
    tmp.write_all(&packed).map_err(|e| io(file, e))?;
    tmp.as_file().sync_all().map_err(|e| io(file, e))?;
    tmp.persist(file).map_err(|e| io(file, e.error))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))?;
    Ok(packed.len() as u64)
}

fn sort_key(raw: &[u8]) -> (String, String, u64, String) {
    match payload_of(raw).and_then(|p| {
        let b: PopBatch = serde_json::from_str(&p).ok()?;
        Some((
            b.screen_id,
            b.epoch,
            b.batch_seq,
            batch_hash(&p).to_string(),
        ))
    }) {
        Some(k) => k,
        None => (String::new(), String::new(), 0, hex::encode(raw)),
    }
}

/// The envelopes an archive file holds, or what is wrong with it.
pub(super) fn read_file(file: &Path) -> Result<Vec<Vec<u8>>, String> {
    let f = std::fs::File::open(file).map_err(|e| format!("cannot be read: {e}"))?;
    let mut content = Vec::new();
    let decoder = zstd::stream::read::Decoder::new(f).map_err(|e| format!("not zstd: {e}"))?;
    std::io::Read::read_to_end(
        &mut std::io::Read::take(decoder, MAX_FILE_BYTES),
        &mut content,
    )
    .map_err(|e| format!("does not decompress: {e}"))?;
    let mut rest = content
        .strip_prefix(MAGIC)
        .ok_or("is not a signage ledger archive (wrong header)")?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (len, body) = rest
            .split_first_chunk::<4>()
            .ok_or("ends inside a length")?;
        let len = u32::from_le_bytes(*len) as usize;
        if len > MAX_POP_BYTES {
            return Err(format!(
                "batch {} claims {len} bytes, over the {MAX_POP_BYTES}-byte limit",
                out.len() + 1
            ));
        }
        let raw = body
            .get(..len)
            .ok_or_else(|| format!("ends inside batch {}", out.len() + 1))?;
        out.push(raw.to_vec());
        rest = &body[len..];
    }
    Ok(out)
}

/// Deletes `chosen` (now durable in their file) from the live ledger and moves each chain's
/// archive marker, in one transaction.
pub(super) fn drop_archived(
    db: &Database,
    file: &Path,
    chosen: &[Chosen],
) -> Result<(), LedgerError> {
    let tx = db.begin_write()?;
    {
        let path = std::path::absolute(file).map_err(|e| io(file, e))?;
        let path = path.to_string_lossy();
        let mut files = tx.open_table(ARCHIVE_FILES)?;
        let old = files.get(&*path)?.map(|g| g.value());
        let span = chosen
            .iter()
            .map(|c| c.span)
            .chain(old)
            .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)));
        if let Some(span) = span {
            files.insert(&*path, span)?;
        }
        drop(files);
        let mut batches = tx.open_table(BATCHES)?;
        let mut records = tx.open_table(RECORDS)?;
        let mut anomalies = tx.open_table(ANOMALIES)?;
        let mut archived = tx.open_table(ARCHIVED)?;
        let mut markers: BTreeMap<(&str, &str), (u64, HashBytes, u64)> = BTreeMap::new();
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
            let top = c.seqs.iter().copied().max().unwrap_or(0);
            let m = markers.entry((screen, epoch)).or_insert((0, [0; 32], 0));
            if batch_seq >= m.0 {
                (m.0, m.1) = (batch_seq, *hash);
            }
            m.2 = m.2.max(top);
        }
        for ((screen, epoch), (batch_seq, hash, top)) in markers {
            let before = archived.get((screen, epoch))?.map(|g| g.value().2);
            let top = top.max(before.unwrap_or(0));
            archived.insert((screen, epoch), (batch_seq, &hash, top))?;
        }
    }
    tx.commit()?;
    Ok(())
}

pub(crate) use crate::store::ledger::audit::Marker;

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

/// The archive files in `dir`, oldest first.
pub(super) fn files_in(dir: &Path) -> Result<Vec<PathBuf>, LedgerError> {
    let entries = std::fs::read_dir(dir).map_err(|e| io(dir, e))?;
    let mut out = BTreeSet::new();
    for entry in entries {
        let entry = entry.map_err(|e| io(dir, e))?;
        if entry.file_name().to_str().and_then(day_of_name).is_some() {
            out.insert(entry.path());
        }
    }
    Ok(out.into_iter().collect())
}

/// The hash of a hex batch hash, as stored.
pub(super) fn stored_hash(hex_str: &str) -> HashBytes {
    hash_bytes(hex_str).unwrap_or([0; 32])
}

fn io(path: &Path, e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Io(format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests;
