//! The audit of one chain (a screen's epoch), for both backends: proves from the signed
//! batches alone that no stored record was altered, inserted or dropped, and lists what
//! cannot be proven. Each store gives its rows through [`AuditSource`] and walks its own
//! chains (`redb/ledger/audit/`, `postgres/ledger/audit.rs`); the checks are these.
//!
//! For every stored batch of the chain in `batch_seq` order: the envelope must verify with
//! one of the screen's keys (the one that signed it: keys rotate at re-provisioning and
//! each keeps its history, so the past stays provable; which key signed which batches is
//! reported in [`ChainSummary`]); its payload must hash to the hash it is stored under and
//! name this screen, epoch and batch_seq; it must link to a stored predecessor of its epoch
//! (`batch_seq - 1` with hash `prev_hash`, or the genesis hash for the first batch) and have
//! no sibling of the same `batch_seq`; each record it carries must be stored and, where this
//! batch is the one that stored it, referenced at its place in the batch (a record's bytes
//! are only ever the signed ones: a batch whose payload no longer hashes to what it was
//! stored under taints the records it stored). Then every stored record must be accounted
//! for by its batch, the chain head must name a stored batch, and gaps recorded at ingest
//! are reported while seqs are still missing. Chain anomalies noted at ingest annotate the
//! breaks found here; a note whose chain now verifies (a late batch that arrived) is not a
//! problem. Read-only: nothing repaired.
//!
//! A chain whose oldest batches were archived starts from its archive [`Marker`]: the first
//! live batch links to the last archived one, records up to the marker's seq are held in
//! the archive (the archive's audit checks those), and gaps are reported above it only.

use std::collections::HashMap;

use ed25519_dalek::VerifyingKey;

use playlists::wire::pop::{batch_hash, genesis_hash, BATCH_KIND};
use playlists::wire::signed::open_envelope;
use playlists::wire::{PlayRecord, PopBatch};

use super::reader::{envelope, payload_of, BatchSource, Reader};
use super::{
    epoch_name, hash_bytes, AuditProblem, ChainSummary, HashBytes, LedgerError, ProblemKind, Signer,
};

/// A chain's archive marker: the last batch moved out and the highest seq it moved out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Marker {
    pub batch_seq: u64,
    pub hash: HashBytes,
    pub last_seq: u64,
}

/// A stored record's reference, owned: `(batch_seq, batch hash, index in its batch)`.
pub(crate) type OwnedRef = (u64, HashBytes, u32);

/// What [`AuditSource::each_batch`] calls with each stored batch: `(batch_seq, hash,
/// packed envelope)`.
pub(crate) type EachBatch<'f> = dyn FnMut(u64, &HashBytes, &[u8]) -> Result<(), LedgerError> + 'f;

/// One store's rows, as the audit of a chain reads them. Every method answers for one
/// chain `(screen, epoch)`; a store reads them all from one consistent snapshot.
pub(crate) trait AuditSource {
    /// The chain anomalies noted at ingest, by `(batch_seq, hash)`.
    fn anomalies(
        &self,
        screen: &str,
        epoch: &str,
    ) -> Result<HashMap<(u64, HashBytes), String>, LedgerError>;
    /// Calls `f` with each stored batch `(batch_seq, hash, packed envelope)` of the chain, by
    /// batch_seq then hash.
    fn each_batch(
        &self,
        screen: &str,
        epoch: &str,
        f: &mut EachBatch<'_>,
    ) -> Result<(), LedgerError>;
    /// Whether batch `(batch_seq, hash)` of the chain is stored.
    fn has_batch(
        &self,
        screen: &str,
        epoch: &str,
        batch_seq: u64,
        hash: &HashBytes,
    ) -> Result<bool, LedgerError>;
    /// The records of a stored batch, if it is stored and intact (see
    /// [`records_of`](super::reader::records_of)).
    fn batch_records(
        &self,
        key: (&str, &str, u64, &HashBytes),
        buf: &mut Vec<u8>,
    ) -> Result<Option<Vec<PlayRecord>>, LedgerError>;
    /// Where stored record `seq` of the chain is, if it is stored.
    fn record(&self, screen: &str, epoch: &str, seq: u64) -> Result<Option<OwnedRef>, LedgerError>;
    /// Calls `f` with each stored record of the chain as `(seq, batch_seq, hash)`, by seq.
    fn each_record(
        &self,
        screen: &str,
        epoch: &str,
        f: &mut dyn FnMut(u64, u64, &HashBytes),
    ) -> Result<(), LedgerError>;
    /// How many records of the chain are stored with a seq in `from..=to`.
    fn count_records(
        &self,
        screen: &str,
        epoch: &str,
        from: u64,
        to: u64,
    ) -> Result<u64, LedgerError>;
    /// The chain head `(batch_seq, hash)`, if one is recorded.
    fn head(&self, screen: &str, epoch: &str) -> Result<Option<(u64, HashBytes)>, LedgerError>;
    /// The gaps recorded at ingest, `(first, last)` missing seq, by first.
    fn gaps(&self, screen: &str, epoch: &str) -> Result<Vec<(u64, u64)>, LedgerError>;
}

/// Stored batches read through an [`AuditSource`].
struct Batches<'a, S: ?Sized>(&'a S);

impl<S: AuditSource + ?Sized> BatchSource for Batches<'_, S> {
    fn records(
        &mut self,
        key: (&str, &str, u64, &HashBytes),
        buf: &mut Vec<u8>,
    ) -> Result<Option<Vec<PlayRecord>>, LedgerError> {
        self.0.batch_records(key, buf)
    }
}

/// Audits chain `(screen, epoch)` of `source` with `keys` (the screen's, newest first),
/// adding what it finds to `problems`; `archived` is the chain's archive marker, if any.
pub(crate) fn audit_chain<S: AuditSource + ?Sized>(
    source: &S,
    screen: &str,
    epoch: &str,
    keys: &[VerifyingKey],
    archived: Option<Marker>,
    problems: &mut Vec<AuditProblem>,
) -> Result<ChainSummary, LedgerError> {
    let mut s = ChainAudit {
        source,
        screen,
        epoch,
        keys,
        problems,
        owned: Vec::new(),
        archived,
        reader: Reader::new(Batches(source)),
        summary: ChainSummary {
            screen_id: screen.to_owned(),
            epoch: epoch.to_owned(),
            batches: 0,
            last_batch_seq: 0,
            records: 0,
            signers: Vec::new(),
        },
    };
    s.run()?;
    Ok(s.summary)
}

/// The problem of a screen whose records are stored without any batch of their epoch.
pub(crate) fn orphan_records(screen: &str, epoch: &str, n: u64) -> AuditProblem {
    let detail = if epoch.is_empty() {
        format!("{n} records are stored but no batch of this screen is")
    } else {
        format!(
            "{}: {n} records are stored but no batch of this epoch is",
            epoch_name(epoch)
        )
    };
    AuditProblem {
        screen_id: screen.to_owned(),
        kind: ProblemKind::RecordTampered,
        detail,
    }
}

/// The problem of a screen with no registered key.
pub(crate) fn no_key(screen: &str) -> AuditProblem {
    AuditProblem {
        screen_id: screen.to_owned(),
        kind: ProblemKind::BadSignature,
        detail: "the screen has no registered key: its signatures cannot be checked".into(),
    }
}

struct ChainAudit<'a, S: ?Sized> {
    source: &'a S,
    screen: &'a str,
    epoch: &'a str,
    /// The screen's keys, newest first.
    keys: &'a [VerifyingKey],
    problems: &'a mut Vec<AuditProblem>,
    summary: ChainSummary,
    /// Seqs of the stored records that their own batch carries, as found.
    owned: Vec<u64>,
    /// Records held from other batches, to compare with the ones a batch carries.
    reader: Reader<Batches<'a, S>>,
    /// Where the archive of this chain ends, if its oldest batches were archived.
    archived: Option<Marker>,
}

impl<S: AuditSource + ?Sized> ChainAudit<'_, S> {
    /// A problem of this chain (details of a non-legacy epoch name it).
    fn problem(&mut self, kind: ProblemKind, detail: String) {
        let detail = if self.epoch.is_empty() {
            detail
        } else {
            format!("{}: {detail}", epoch_name(self.epoch))
        };
        self.problems.push(AuditProblem {
            screen_id: self.screen.to_owned(),
            kind,
            detail,
        });
    }

    /// Notes that `key` signed batch `batch_seq`.
    fn signed_by(&mut self, key: VerifyingKey, batch_seq: u64) {
        match self.summary.signers.last_mut() {
            Some(run) if run.key == key => run.last_batch = batch_seq,
            _ => self.summary.signers.push(Signer {
                key,
                first_batch: batch_seq,
                last_batch: batch_seq,
            }),
        }
    }

    fn run(&mut self) -> Result<(), LedgerError> {
        let (source, screen, epoch) = (self.source, self.screen, self.epoch);
        let mut notes = source.anomalies(screen, epoch)?;
        let mut previous: Option<u64> = None;
        source.each_batch(screen, epoch, &mut |batch_seq, hash, stored| {
            self.summary.batches += 1;
            self.summary.last_batch_seq = batch_seq;
            if previous == Some(batch_seq) {
                self.problem(
                    ProblemKind::ChainBreak,
                    format!(
                        "batch {batch_seq} is stored in more than one version (the chain forks)"
                    ),
                );
            }
            previous = Some(batch_seq);
            self.batch(batch_seq, hash, stored, notes.remove(&(batch_seq, *hash)))
        })?;
        self.unaccounted_records()?;
        self.head()?;
        self.gaps()
    }

    /// Checks one stored batch: signature, hash, link, and the records it carries.
    fn batch(
        &mut self,
        batch_seq: u64,
        hash: &HashBytes,
        stored: &[u8],
        note: Option<String>,
    ) -> Result<(), LedgerError> {
        let Some(raw) = envelope(stored) else {
            self.problem(
                ProblemKind::ChainBreak,
                format!("batch {batch_seq}: the stored envelope is damaged (it no longer unpacks)"),
            );
            return Ok(());
        };
        let raw = &*raw;
        // The key that signed it: the first of the screen's keys, newest first, to verify it.
        let mut first_error = None;
        let mut signed = None;
        for k in self.keys {
            match open_envelope(raw, BATCH_KIND, k, usize::MAX) {
                Ok(env) => {
                    signed = Some((*k, env.payload));
                    break;
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let payload = match (signed, first_error) {
            (Some((key, payload)), _) => {
                self.signed_by(key, batch_seq);
                Some(payload)
            }
            (None, Some(e)) => {
                let detail = if self.keys.len() > 1 {
                    format!(
                        "batch {batch_seq}: none of the screen's {} keys verifies it: {e}",
                        self.keys.len()
                    )
                } else {
                    format!("batch {batch_seq}: {e}")
                };
                self.problem(ProblemKind::BadSignature, detail);
                payload_of(raw)
            }
            (None, None) => payload_of(raw),
        };
        let Some((payload, batch)) =
            payload.and_then(|p| serde_json::from_str::<PopBatch>(&p).ok().map(|b| (p, b)))
        else {
            self.problem(
                ProblemKind::ChainBreak,
                format!("batch {batch_seq}: the stored envelope no longer parses"),
            );
            return Ok(());
        };
        let mut broken = Vec::new();
        let computed = batch_hash(&payload).to_string();
        let changed = computed != hex::encode(hash);
        if changed {
            broken.push(format!(
                "its payload hashes to {computed}, not to the {} it is stored under",
                hex::encode(hash)
            ));
        }
        if batch.screen_id != self.screen
            || batch.batch_seq != batch_seq
            || batch.epoch != self.epoch
        {
            broken.push(format!(
                "its payload is batch {} of screen {:?}, {}",
                batch.batch_seq,
                batch.screen_id,
                epoch_name(&batch.epoch)
            ));
        }
        if let Some(why) = self.link(&batch)? {
            broken.push(why);
        }
        if !broken.is_empty() {
            let note = note
                .map(|n| format!(" (at ingest: {n})"))
                .unwrap_or_default();
            self.problem(
                ProblemKind::ChainBreak,
                format!("batch {batch_seq}: {}{note}", broken.join("; ")),
            );
        }
        self.carried_records(batch_seq, hash, &batch, changed)
    }

    /// Why `batch` does not link to a stored predecessor, if it does not.
    fn link(&self, batch: &PopBatch) -> Result<Option<String>, LedgerError> {
        if batch.batch_seq <= 1 {
            let ok = batch.batch_seq == 1 && batch.prev_hash == genesis_hash();
            return Ok((!ok).then(|| {
                format!(
                    "batch {} does not start from the genesis hash",
                    batch.batch_seq
                )
            }));
        }
        let prev = batch.batch_seq - 1;
        let stored = match hash_bytes(&batch.prev_hash) {
            Some(h)
                if self
                    .archived
                    .is_some_and(|m| m.batch_seq == prev && m.hash == h) =>
            {
                true
            }
            Some(h) => self.source.has_batch(self.screen, self.epoch, prev, &h)?,
            None => false,
        };
        Ok((!stored).then(|| {
            format!(
                "its predecessor, batch {prev} with hash {}, is not stored",
                batch.prev_hash
            )
        }))
    }

    /// Each record `batch` carries must be stored; the ones it stored must point at their
    /// place in it, and are not proven if its payload `changed` since it was stored.
    fn carried_records(
        &mut self,
        batch_seq: u64,
        hash: &HashBytes,
        batch: &PopBatch,
        changed: bool,
    ) -> Result<(), LedgerError> {
        let mut conflicts: Vec<u64> = Vec::new();
        let mut own: Vec<u64> = Vec::new();
        self.summary.records += batch.records.len() as u64;
        for (i, r) in batch.records.iter().enumerate() {
            let Some(stored) = self.source.record(self.screen, self.epoch, r.seq)? else {
                if self.archived.is_some_and(|m| r.seq <= m.last_seq) {
                    // Stored by an archived batch: the archive audit checks it.
                    continue;
                }
                self.problem(
                    ProblemKind::MissingRecord,
                    format!("seq {} of batch {batch_seq} is not stored", r.seq),
                );
                continue;
            };
            let (from_seq, from_hash, index) = stored;
            if from_seq == batch_seq && from_hash == *hash {
                own.push(r.seq);
                if index as usize != i {
                    self.problem(ProblemKind::RecordTampered, format!("seq {}: the stored record differs from the one signed in batch {batch_seq}", r.seq));
                }
            } else if let Ok(held) = self.reader.record(
                self.screen,
                self.epoch,
                r.seq,
                (from_seq, &from_hash, index),
            )? {
                if held != r {
                    conflicts.push(r.seq);
                }
            }
            // A reference that does not resolve is reported with the records no batch carries.
        }
        if changed && !own.is_empty() {
            let (first, last, n) = (own[0], own[own.len() - 1], own.len());
            self.problem(
                ProblemKind::RecordTampered,
                format!("seqs {first}..={last} ({n} records) stored from batch {batch_seq} are not proven: the batch changed after they were stored"),
            );
        }
        self.owned.extend(own);
        if let (Some(first), n) = (conflicts.first(), conflicts.len()) {
            let detail = format!("batch {batch_seq} reused {n} seq(s) already held with other content, from seq {first}; the first records were kept");
            self.problem(ProblemKind::SeqConflict, detail);
        }
        Ok(())
    }

    /// Stored records that the batch they name does not carry were inserted or moved.
    fn unaccounted_records(&mut self) -> Result<(), LedgerError> {
        let mut owned = std::mem::take(&mut self.owned);
        owned.sort_unstable();
        let mut i = 0;
        let mut found = Vec::new();
        self.source
            .each_record(self.screen, self.epoch, &mut |seq, batch_seq, hash| {
                while i < owned.len() && owned[i] < seq {
                    i += 1;
                }
                if owned.get(i) != Some(&seq) {
                    found.push((seq, batch_seq, *hash));
                }
            })?;
        for (seq, batch_seq, hash) in found {
            let detail = if self
                .source
                .has_batch(self.screen, self.epoch, batch_seq, &hash)?
            {
                format!(
                    "seq {seq} is stored as coming from batch {batch_seq}, which does not carry it"
                )
            } else {
                format!(
                    "seq {seq} is stored as coming from batch {batch_seq} with hash {}, which is not stored",
                    hex::encode(hash)
                )
            };
            self.problem(ProblemKind::RecordTampered, detail);
        }
        Ok(())
    }

    /// The head must name a stored batch, or the newest batches could vanish unnoticed.
    fn head(&mut self) -> Result<(), LedgerError> {
        let head = self.source.head(self.screen, self.epoch)?;
        let at_marker = self
            .archived
            .is_some_and(|m| head == Some((m.batch_seq, m.hash)));
        let detail = match head {
            _ if at_marker => return Ok(()),
            None => "no chain head is recorded".to_owned(),
            Some((batch_seq, hash))
                if !self
                    .source
                    .has_batch(self.screen, self.epoch, batch_seq, &hash)? =>
            {
                format!(
                    "the chain head, batch {batch_seq} with hash {}, is not stored",
                    hex::encode(hash)
                )
            }
            Some(_) => return Ok(()),
        };
        self.problem(ProblemKind::ChainBreak, detail);
        Ok(())
    }

    /// Gaps recorded at ingest whose seqs are still (partly) missing.
    fn gaps(&mut self) -> Result<(), LedgerError> {
        let mut found = Vec::new();
        let (screen, epoch) = (self.screen, self.epoch);
        for (from, to) in self.source.gaps(screen, epoch)? {
            // Seqs up to the archive marker are the archive's to account for.
            let from = from.max(self.archived.map_or(0, |m| m.last_seq + 1));
            if from > to {
                continue;
            }
            let held = self.source.count_records(screen, epoch, from, to)?;
            let len = to.saturating_sub(from) + 1;
            let missing = len.saturating_sub(held);
            if missing > 0 {
                found.push(format!(
                    "seqs {from}..={to} were skipped: {missing} of {len} still missing"
                ));
            }
        }
        for detail in found {
            self.problem(ProblemKind::Gap, detail);
        }
        Ok(())
    }
}
