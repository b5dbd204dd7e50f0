//! Archived records for the raw export, for both backends: the plays of the archive files
//! whose span overlaps a query's window (the ledger keeps each file's span), so `report
//! plays` and the reports' partial edge hours count archived plays as they counted them
//! live.
//!
//! Signatures are the archive audit's; here a batch is only read. A record also still live
//! (an interrupted archiving run) is left to the live ledger, so each is given once. A file
//! the ledger wrote but cannot read is an error naming it: a report that silently skipped
//! it would undercount.

use std::collections::{BTreeMap, BTreeSet};

use playlists::wire::{PlayRecord, PopBatch};

use super::super::reader::payload_of;
use super::super::{LedgerError, Query};
use super::read_file;

/// A record's place in the export's order.
pub(crate) type ExportKey = (String, String, u64);

/// Which of the candidate records given are live.
pub(crate) type LiveOf<'f> =
    dyn FnMut(&[ExportKey]) -> Result<BTreeSet<ExportKey>, LedgerError> + 'f;

/// The archived records matching `q` in `files` (each archive file the ledger wrote, with
/// the span of its plays), those `live` says are not live, in export order (screen, epoch,
/// seq). `live` is asked once, with every candidate.
pub(crate) fn archived_plays(
    files: &[(String, (i64, i64))],
    q: &Query,
    live: &mut LiveOf<'_>,
) -> Result<Vec<(ExportKey, PlayRecord)>, LedgerError> {
    let from = q.from.map_or(i64::MIN, |t| t.timestamp_micros());
    let to = q.to.map_or(i64::MAX, |t| t.timestamp_micros());
    let mut out: BTreeMap<ExportKey, PlayRecord> = BTreeMap::new();
    for (path, (first, last)) in files {
        if *last < from || *first >= to {
            continue;
        }
        let envelopes = read_file(std::path::Path::new(path)).map_err(|why| {
            LedgerError::Corrupt(format!(
                "archive file {path} {why}: the plays it holds are needed for this window"
            ))
        })?;
        for raw in &envelopes {
            let batch = payload_of(raw)
                .and_then(|p| serde_json::from_str::<PopBatch>(&p).ok())
                .ok_or_else(|| {
                    LedgerError::Corrupt(format!("archive file {path}: a batch no longer parses"))
                })?;
            for r in batch.records {
                let t = r.slot_start.timestamp_micros();
                let wanted = (from..to).contains(&t)
                    && q.screen.as_deref().is_none_or(|s| s == r.screen_id)
                    && q.venue.as_deref().is_none_or(|v| v == r.venue_id);
                if !wanted {
                    continue;
                }
                let key = (r.screen_id.clone(), r.epoch.clone(), r.seq);
                out.entry(key).or_insert(r);
            }
        }
    }
    let keys: Vec<ExportKey> = out.keys().cloned().collect();
    let live = if keys.is_empty() {
        Default::default()
    } else {
        live(&keys)?
    };
    Ok(out.into_iter().filter(|(k, _)| !live.contains(k)).collect())
}
