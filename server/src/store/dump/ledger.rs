//! The proof-of-play ledger's part of `store copy`: every signed batch the source stores,
//! read back as received (`LedgerStore::batches`, each screen's latest epoch last) and
//! ingested into the target in chunks, verified against the target's key rings (the keys
//! the copy has just written). Ingest rebuilds everything else (record references, heads,
//! gaps, rollups) as it does for batches from screens, so the target is a ledger that was
//! sent the same batches, not a table copy. Every batch must come out `Stored`; then the
//! target's counts must equal the source's.
//!
//! Ingest applies no rule of time (nothing is refused for being old or in the future:
//! `store/ledger/check.rs`), so an old ledger copies whole. Chain anomalies noted at ingest
//! are noted again as this order finds them (a batch that once arrived late now arrives in
//! its place); the audit's verdict does not depend on them.

use std::collections::HashMap;

use ed25519_dalek::VerifyingKey;

use crate::store::ledger::reader::payload_of;
use crate::store::ledger::view::BatchView;
use crate::store::ledger::{epoch_name, Incoming, LedgerError, LedgerStore, Outcome};
use crate::store::{Store, StoreError};

/// Most batches ingested in one call (one transaction).
const CHUNK_BATCHES: usize = 500;
/// Most envelope bytes ingested in one call.
const CHUNK_BYTES: usize = 16 << 20;

/// What the callback's error carries when probing stops at the first batch.
const PROBE: &str = "probe: the first batch was read";

/// Refuses a source ledger that cannot give every batch back (an archived prefix), before
/// anything is written.
pub(super) fn ensure_whole(from: &dyn LedgerStore) -> Result<(), StoreError> {
    match from.batches(&mut |_, _| Err(LedgerError::Io(PROBE.to_owned()))) {
        Ok(_) => Ok(()),
        Err(LedgerError::Io(m)) if m == PROBE => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Whether a target ledger holds nothing: no batch, no record, and no chain (a ledger
/// whose every batch was archived still has its chains, and their archive markers).
pub(super) fn holds_nothing(to: &dyn LedgerStore) -> Result<bool, StoreError> {
    let counts = to.counts()?;
    Ok(counts.batches == 0 && counts.records == 0 && counts.chains.is_empty())
}

/// Re-ingests every batch of `from` into `to`'s empty ledger; returns the batches and the
/// records they stored. An error is the problem in words (the target is a partial copy by
/// then: the caller says so).
pub(super) fn copy(from: &dyn LedgerStore, to: &dyn Store) -> Result<(u64, u64), String> {
    let before = from.counts().map_err(|e| e.to_string())?;
    let rings = crate::store::key_rings(to).map_err(|e| e.to_string())?;
    let target = to.ledger();
    let mut sink = Sink {
        target: &*target,
        rings: &rings,
        chunk: Vec::new(),
        bytes: 0,
        records: 0,
        refused: None,
    };
    let read = from.batches(&mut |screen, raw| sink.add(screen, raw));
    let batches = match read.and_then(|n| sink.flush().map(|()| n)) {
        Ok(n) => n,
        Err(e) => return Err(sink.refused.take().unwrap_or_else(|| e.to_string())),
    };
    let after = target.counts().map_err(|e| e.to_string())?;
    if after != before {
        return Err(format!(
            "the copied ledger holds {} batches and {} records where the source holds {} and \
             {}, or its chains differ (did a server write to the source meanwhile?)",
            after.batches, after.records, before.batches, before.records
        ));
    }
    Ok((batches, sink.records))
}

/// Batches waiting to be ingested into the target, and what was stored so far.
struct Sink<'a> {
    target: &'a dyn LedgerStore,
    rings: &'a HashMap<String, Vec<VerifyingKey>>,
    chunk: Vec<Incoming>,
    bytes: usize,
    records: u64,
    /// Why a batch was not stored, naming it (the copy stops there).
    refused: Option<String>,
}

impl Sink<'_> {
    fn add(&mut self, screen: &str, raw: &[u8]) -> Result<(), LedgerError> {
        self.bytes += raw.len();
        self.chunk.push(Incoming {
            topic_screen: screen.to_owned(),
            raw: raw.to_vec(),
        });
        if self.chunk.len() >= CHUNK_BATCHES || self.bytes >= CHUNK_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Ingests the waiting batches; every one must be stored.
    fn flush(&mut self) -> Result<(), LedgerError> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let key_of = |s: &str| self.rings.get(s).cloned().unwrap_or_default();
        let outcomes = self.target.ingest(&self.chunk, &key_of)?;
        for (incoming, outcome) in self.chunk.iter().zip(&outcomes) {
            let why = match outcome {
                Outcome::Stored { records, .. } => {
                    self.records += *records as u64;
                    continue;
                }
                Outcome::Duplicate { .. } => "the target already held it".to_owned(),
                Outcome::Rejected { reason, .. } => format!("refused: {reason}"),
            };
            let problem = format!("{} was not stored in the copy: {why}", name(incoming));
            self.refused = Some(problem.clone());
            return Err(LedgerError::Io(problem));
        }
        if outcomes.len() != self.chunk.len() {
            return Err(LedgerError::Io(format!(
                "ingest answered {} outcomes for {} batches",
                outcomes.len(),
                self.chunk.len()
            )));
        }
        self.chunk.clear();
        self.bytes = 0;
        Ok(())
    }
}

/// A batch named for messages: its batch_seq, screen and epoch, as far as it parses.
fn name(incoming: &Incoming) -> String {
    let payload = payload_of(&incoming.raw);
    let batch = payload
        .as_deref()
        .and_then(|p| serde_json::from_str::<BatchView<'_>>(p).ok());
    match batch {
        Some(b) => format!(
            "batch {} of screen {}'s {}",
            b.batch_seq,
            incoming.topic_screen,
            epoch_name(&b.epoch)
        ),
        None => format!(
            "a batch of screen {} that does not parse",
            incoming.topic_screen
        ),
    }
}
