//! The audit: proves from the signed batches alone that no stored record was altered,
//! inserted or dropped, and lists what cannot be proven.
//!
//! Per screen and epoch (each epoch is its own chain), for every stored batch in
//! `batch_seq` order: the envelope must verify with one of the screen's keys (the one that
//! signed it: keys rotate at re-provisioning and each keeps its history, so the past stays
//! provable; which key signed which batches is reported in [`ChainSummary`]); its payload
//! must hash to the hash it is stored under and name this screen, epoch and batch_seq; it
//! must link to a stored predecessor of its epoch (`batch_seq - 1` with hash `prev_hash`, or
//! the genesis hash for the first batch) and have no sibling of the same `batch_seq`; each
//! record it carries
//! must be stored and, where this batch is the one that stored it, referenced at its place in
//! the batch (a record's bytes are only ever the signed ones: a batch whose payload no longer
//! hashes to what it was stored under taints the records it stored). Then every stored record
//! must be accounted for by its batch, the chain head must name a stored batch, and gaps recorded
//! at ingest are reported while seqs are still missing. Chain anomalies noted at ingest
//! annotate the breaks found here; a note whose chain now verifies (a late batch that
//! arrived) is not a problem. Read-only: one read transaction, nothing repaired.
//!
//! A chain whose oldest batches were archived starts from its archive marker: the first
//! live batch links to the last archived one, records up to the marker's seq are held in
//! the archive (`archive::verify` checks those), and gaps are reported above it only.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;

use ed25519_dalek::VerifyingKey;
use redb::{Database, ReadOnlyTable, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use playlists::wire::pop::{batch_hash, genesis_hash, BATCH_KIND};
use playlists::wire::signed::open_envelope;
use playlists::wire::PopBatch;

use super::archive::{marker, Marker};
use super::export::{envelope, payload_of, BatchTable, Reader};
use super::{
    epoch_name, hash_bytes, AuditProblem, AuditReport, BatchKey, ChainSummary, HashBytes, KeysOf,
    LedgerError, ProblemKind, RecordRef, Signer, ANOMALIES, ARCHIVED, BATCHES, GAPS, HEADS,
    RECORDS,
};

const NO_HASH: HashBytes = [0; 32];
const MAX_HASH: HashBytes = [0xff; 32];

struct Tables {
    batches: BatchTable,
    records: ReadOnlyTable<(&'static str, &'static str, u64), RecordRef<'static>>,
    heads: ReadOnlyTable<(&'static str, &'static str), (u64, &'static HashBytes, u64)>,
    gaps: ReadOnlyTable<(&'static str, &'static str, u64), u64>,
    anomalies: ReadOnlyTable<BatchKey<'static>, &'static str>,
    archived: ReadOnlyTable<(&'static str, &'static str), (u64, &'static HashBytes, u64)>,
}

/// A screen's epoch.
type Chain = (String, String);

pub(super) fn audit(db: &Database, key_of: KeysOf<'_>) -> Result<AuditReport, LedgerError> {
    let tx = db.begin_read()?;
    let t = Tables {
        batches: tx.open_table(BATCHES)?,
        records: tx.open_table(RECORDS)?,
        heads: tx.open_table(HEADS)?,
        gaps: tx.open_table(GAPS)?,
        anomalies: tx.open_table(ANOMALIES)?,
        archived: tx.open_table(ARCHIVED)?,
    };
    let chains = batch_chains(&t)?;
    let mut problems = Vec::new();
    let mut summaries = Vec::new();
    let mut keys: Option<(String, Vec<VerifyingKey>)> = None;
    for (screen, epoch) in &chains {
        if keys.as_ref().is_none_or(|(s, _)| s != screen) {
            let ring = key_of(screen);
            if ring.is_empty() {
                problems.push(AuditProblem {
                    screen_id: screen.clone(),
                    kind: ProblemKind::BadSignature,
                    detail: "the screen has no registered key: its signatures cannot be checked"
                        .into(),
                });
            }
            keys = Some((screen.clone(), ring));
        }
        let ring = keys.as_ref().map(|(_, k)| k.as_slice()).unwrap_or_default();
        let mut s = ScreenAudit {
            t: &t,
            screen,
            epoch,
            keys: ring,
            problems: &mut problems,
            owned: Vec::new(),
            archived: marker(&t.archived, screen, epoch)?,
            reader: Reader::new(&t.batches),
            summary: ChainSummary {
                screen_id: screen.clone(),
                epoch: epoch.clone(),
                batches: 0,
                last_batch_seq: 0,
                records: 0,
                signers: Vec::new(),
            },
        };
        s.run()?;
        summaries.push(s.summary);
    }
    // Records of a chain that has no batch at all.
    for (screen, epoch) in record_chains(&t)?.difference(&chains) {
        let (s, e) = (screen.as_str(), epoch.as_str());
        let n = t.records.range((s, e, 0)..=(s, e, u64::MAX))?.count();
        let detail = if epoch.is_empty() {
            format!("{n} records are stored but no batch of this screen is")
        } else {
            format!(
                "{}: {n} records are stored but no batch of this epoch is",
                epoch_name(epoch)
            )
        };
        problems.push(AuditProblem {
            screen_id: screen.clone(),
            kind: ProblemKind::RecordTampered,
            detail,
        });
    }
    let screens: BTreeSet<&str> = chains.iter().map(|(s, _)| s.as_str()).collect();
    Ok(AuditReport {
        screens: screens.len() as u64,
        batches: t.batches.len()?,
        records: t.records.len()?,
        problems,
        chains: summaries,
    })
}

/// Every (screen, epoch) with a stored batch: one seek per chain.
fn batch_chains(t: &Tables) -> Result<BTreeSet<Chain>, LedgerError> {
    let mut out = BTreeSet::new();
    let own = |k: BatchKey<'_>| (k.0.to_owned(), k.1.to_owned());
    let mut next = t.batches.first()?.map(|(k, _)| own(k.value()));
    while let Some((screen, epoch)) = next {
        let past = (screen.as_str(), epoch.as_str(), u64::MAX, &MAX_HASH);
        next = match t
            .batches
            .range((Bound::Excluded(past), Bound::Unbounded))?
            .next()
        {
            Some(row) => Some(own(row?.0.value())),
            None => None,
        };
        out.insert((screen, epoch));
    }
    Ok(out)
}

/// Every (screen, epoch) with a stored record: one seek per chain.
fn record_chains(t: &Tables) -> Result<BTreeSet<Chain>, LedgerError> {
    let mut out = BTreeSet::new();
    let own = |k: (&str, &str, u64)| (k.0.to_owned(), k.1.to_owned());
    let mut next = t.records.first()?.map(|(k, _)| own(k.value()));
    while let Some((screen, epoch)) = next {
        let past = (screen.as_str(), epoch.as_str(), u64::MAX);
        next = match t
            .records
            .range((Bound::Excluded(past), Bound::Unbounded))?
            .next()
        {
            Some(row) => Some(own(row?.0.value())),
            None => None,
        };
        out.insert((screen, epoch));
    }
    Ok(out)
}

struct ScreenAudit<'a> {
    t: &'a Tables,
    screen: &'a str,
    epoch: &'a str,
    /// The screen's keys, newest first.
    keys: &'a [VerifyingKey],
    problems: &'a mut Vec<AuditProblem>,
    summary: ChainSummary,
    /// Seqs of the stored records that their own batch carries, as found.
    owned: Vec<u64>,
    /// Records held from other batches, to compare with the ones a batch carries.
    reader: Reader<'a>,
    /// Where the archive of this chain ends, if its oldest batches were archived.
    archived: Option<Marker>,
}

impl ScreenAudit<'_> {
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
        let (screen, epoch) = (self.screen, self.epoch);
        let mut notes: HashMap<(u64, HashBytes), String> = HashMap::new();
        for row in self
            .t
            .anomalies
            .range((screen, epoch, 0, &NO_HASH)..=(screen, epoch, u64::MAX, &MAX_HASH))?
        {
            let (k, v) = row?;
            let (_, _, batch_seq, hash) = k.value();
            notes.insert((batch_seq, *hash), v.value().to_owned());
        }
        let mut previous: Option<u64> = None;
        for row in self
            .t
            .batches
            .range((screen, epoch, 0, &NO_HASH)..=(screen, epoch, u64::MAX, &MAX_HASH))?
        {
            let (k, v) = row?;
            let (_, _, batch_seq, hash) = k.value();
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
            self.batch(
                batch_seq,
                hash,
                v.value(),
                notes.remove(&(batch_seq, *hash)),
            )?;
        }
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
            Some(h) => self
                .t
                .batches
                .get((self.screen, self.epoch, prev, &h))?
                .is_some(),
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
            let Some(stored) = self.t.records.get((self.screen, self.epoch, r.seq))? else {
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
            let (from_seq, from_hash, index) = stored.value();
            if from_seq == batch_seq && from_hash == hash {
                own.push(r.seq);
                if index as usize != i {
                    self.problem(ProblemKind::RecordTampered, format!("seq {}: the stored record differs from the one signed in batch {batch_seq}", r.seq));
                }
            } else if let Ok(held) =
                self.reader
                    .record(self.screen, self.epoch, r.seq, stored.value())?
            {
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
        let (screen, epoch) = (self.screen, self.epoch);
        for row in self
            .t
            .records
            .range((screen, epoch, 0)..=(screen, epoch, u64::MAX))?
        {
            let (k, v) = row?;
            let seq = k.value().2;
            while i < owned.len() && owned[i] < seq {
                i += 1;
            }
            if owned.get(i) != Some(&seq) {
                let (batch_seq, hash, _) = v.value();
                found.push((seq, batch_seq, *hash));
            }
        }
        for (seq, batch_seq, hash) in found {
            let detail = if self
                .t
                .batches
                .get((self.screen, self.epoch, batch_seq, &hash))?
                .is_some()
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
        let head = self.t.heads.get((self.screen, self.epoch))?.map(|g| {
            let (batch_seq, hash, _) = g.value();
            (batch_seq, *hash)
        });
        let at_marker = self
            .archived
            .is_some_and(|m| head == Some((m.batch_seq, m.hash)));
        let detail = match head {
            _ if at_marker => return Ok(()),
            None => "no chain head is recorded".to_owned(),
            Some((batch_seq, hash))
                if self
                    .t
                    .batches
                    .get((self.screen, self.epoch, batch_seq, &hash))?
                    .is_none() =>
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
        for row in self
            .t
            .gaps
            .range((screen, epoch, 0)..=(screen, epoch, u64::MAX))?
        {
            let (k, v) = row?;
            let (from, to) = (k.value().2, v.value());
            // Seqs up to the archive marker are the archive's to account for.
            let from = from.max(self.archived.map_or(0, |m| m.last_seq + 1));
            if from > to {
                continue;
            }
            let held = self
                .t
                .records
                .range((screen, epoch, from)..=(screen, epoch, to))?
                .count() as u64;
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

#[cfg(test)]
mod tests;
