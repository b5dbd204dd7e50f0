//! Retention, what both ledger backends share: the archive file format, choosing the
//! batches of a day, writing a day's file durably, reading files back for the raw export
//! ([`read`]) and the archive audit ([`verify`]). Each store owns its tables and
//! transactions (`redb/ledger/archive/`, `postgres/ledger/archive.rs`): which chains it
//! holds, the archive markers, deleting what was archived.
//!
//! A batch's day is the UTC date of its first record's `slot_start`. Archiving takes, per
//! screen and epoch, the *prefix* of its chain (in `batch_seq` order) whose days are before
//! the cut-off, so what stays live is always the chain's tail and links to the last archived
//! batch, which the store keeps per chain as its [`Marker`]: `(batch_seq, hash, highest seq
//! archived)`. Rollups are never touched: reports are the same before and after.
//!
//! One day at a time, oldest first: the day's batches (with any older straggler of the same
//! chain prefix) are written to `ledger-YYYY-MM-DD.zst` in the archive directory, merged
//! with the file already there (a crashed run, or a late batch of an archived day), through
//! a temporary file, fsync and rename, and the directory fsynced ([`write_day`]); only then
//! are the batches, their record references and anomaly notes deleted from the ledger in
//! one transaction that also moves the chain's archive marker and records the file's span.
//! A crash between the two leaves the batches in both places: the next run writes the same
//! file again and deletes them, and the archive audit counts a batch found in both once.
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

use playlists::wire::pop::batch_hash;
use playlists::wire::{PopBatch, MAX_POP_BYTES};

use super::reader::{envelope, payload_of};
use super::{hash_bytes, HashBytes, LedgerError};

pub(crate) use super::audit::Marker;

pub(crate) mod read;
pub(crate) mod verify;

/// The first bytes of an archive file's content (after decompression).
pub(crate) const MAGIC: &[u8] = b"signage-ledger-archive 1\n";

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
fn day_of_name(name: &str) -> Option<NaiveDate> {
    let day = name.strip_prefix("ledger-")?.strip_suffix(".zst")?;
    NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()
}

/// A live batch chosen for the archive.
pub(crate) struct Chosen {
    /// `(screen, epoch, batch_seq, hash)`.
    pub key: (String, String, u64, HashBytes),
    /// The envelope as received.
    pub raw: Vec<u8>,
    pub seqs: Vec<u64>,
    /// The first and last `slot_start` of its records (microseconds).
    pub span: (i64, i64),
}

impl Chosen {
    /// Stored batch `key` (its packed envelope `stored`) as the archive takes it, with its
    /// day; `None` when it does not unpack or parse (such a batch is never archived, nor
    /// anything after it in its chain).
    pub(crate) fn of(
        key: (&str, &str, u64, &HashBytes),
        stored: &[u8],
    ) -> Option<(NaiveDate, Chosen)> {
        let raw = envelope(stored)?.into_owned();
        let batch: PopBatch = serde_json::from_str(&payload_of(&raw)?).ok()?;
        let day = batch.records.first()?.slot_start.date_naive();
        let seqs = batch.records.iter().map(|r| r.seq).collect();
        let times = batch
            .records
            .iter()
            .map(|r| r.slot_start.timestamp_micros());
        let span = (times.clone().min()?, times.max()?);
        let (screen, epoch, batch_seq, hash) = key;
        Some((
            day,
            Chosen {
                key: (screen.to_owned(), epoch.to_owned(), batch_seq, *hash),
                raw,
                seqs,
                span,
            },
        ))
    }
}

/// The new archive marker of each chain `chosen` touches: its last batch archived and the
/// highest seq archived, `at_least` the chain's marker before (`last_seq` never goes down).
pub(crate) fn markers(
    chosen: &[Chosen],
    mut before: impl FnMut(&str, &str) -> Result<Option<Marker>, LedgerError>,
) -> Result<BTreeMap<(String, String), Marker>, LedgerError> {
    let mut out: BTreeMap<(String, String), Marker> = BTreeMap::new();
    for c in chosen {
        let (screen, epoch, batch_seq, hash) = &c.key;
        let top = c.seqs.iter().copied().max().unwrap_or(0);
        let m = out
            .entry((screen.clone(), epoch.clone()))
            .or_insert(Marker {
                batch_seq: 0,
                hash: [0; 32],
                last_seq: 0,
            });
        if *batch_seq >= m.batch_seq {
            (m.batch_seq, m.hash) = (*batch_seq, *hash);
        }
        m.last_seq = m.last_seq.max(top);
    }
    for ((screen, epoch), m) in &mut out {
        if let Some(old) = before(screen, epoch)? {
            m.last_seq = m.last_seq.max(old.last_seq);
        }
    }
    Ok(out)
}

/// The span of `chosen`'s plays joined with a file's span before (`old`).
pub(crate) fn span(chosen: &[Chosen], old: Option<(i64, i64)>) -> Option<(i64, i64)> {
    chosen
        .iter()
        .map(|c| c.span)
        .chain(old)
        .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))
}

/// An archiving run into `dir` (created if missing): `step` archives the oldest day left,
/// if any (with [`write_day`]), and is called until none is left.
pub(crate) fn run(
    dir: &Path,
    mut step: impl FnMut() -> Result<Option<ArchivedDay>, LedgerError>,
) -> Result<ArchiveSummary, LedgerError> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut summary = ArchiveSummary::default();
    while let Some(day) = step()? {
        summary.days.push(day);
    }
    Ok(summary)
}

/// Writes `chosen` into the file of `day` in `dir` (durably, merged with what it held), then
/// calls `drop_archived` with the file's absolute path to delete them from the ledger; what
/// was done. Nothing is deleted when the file could not be written.
pub(crate) fn write_day<E: From<LedgerError>>(
    dir: &Path,
    day: NaiveDate,
    chosen: &[Chosen],
    drop_archived: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<ArchivedDay, E> {
    let file = file_of(dir, day);
    let file_bytes = write_file(&file, chosen.iter().map(|c| c.raw.as_slice()))?;
    let absolute = std::path::absolute(&file).map_err(|e| io(&file, e))?;
    drop_archived(&absolute)?;
    Ok(ArchivedDay {
        day,
        file,
        batches: chosen.len() as u64,
        records: chosen.iter().map(|c| c.seqs.len() as u64).sum(),
        file_bytes,
    })
}

/// Writes `file` holding `envelopes` and whatever it already held (each batch once),
/// atomically and durably; returns its size.
pub(crate) fn write_file<'a>(
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
pub(crate) fn read_file(file: &Path) -> Result<Vec<Vec<u8>>, String> {
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

/// The archive files in `dir`, oldest first.
pub(crate) fn files_in(dir: &Path) -> Result<Vec<PathBuf>, LedgerError> {
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
pub(crate) fn stored_hash(hex_str: &str) -> HashBytes {
    hash_bytes(hex_str).unwrap_or([0; 32])
}

/// An IO failure on `path`, named.
pub(crate) fn io(path: &Path, e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Io(format!("{}: {e}", path.display()))
}
