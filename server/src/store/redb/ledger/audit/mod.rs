//! The audit of the redb ledger: walks every chain (screen, epoch) with a stored batch in
//! one read transaction and audits each with the shared checks of `store/ledger/audit.rs`
//! (which say what is proven and how), reading its rows through [`AuditSource`]; then
//! reports the records of chains that have no batch at all. Read-only: nothing repaired.
//!
//! A chain whose oldest batches were archived starts from its archive marker (`archive`):
//! records up to the marker's seq are held in the archive, which `archive::verify` checks.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;

use ed25519_dalek::VerifyingKey;
use redb::{Database, ReadOnlyTable, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use playlists::wire::PlayRecord;

use super::archive::marker;
use super::export::BatchTable;
use super::{
    AuditReport, BatchKey, HashBytes, KeysOf, LedgerError, RecordRef, ANOMALIES, ARCHIVED, BATCHES,
    GAPS, HEADS, RECORDS,
};
use crate::store::ledger::audit::{
    audit_chain, no_key, orphan_records, AuditSource, EachBatch, OwnedRef,
};
use crate::store::ledger::reader::BatchSource;

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
                problems.push(no_key(screen));
            }
            keys = Some((screen.clone(), ring));
        }
        let ring = keys.as_ref().map(|(_, k)| k.as_slice()).unwrap_or_default();
        let archived = marker(&t.archived, screen, epoch)?;
        summaries.push(audit_chain(
            &t,
            screen,
            epoch,
            ring,
            archived,
            &mut problems,
        )?);
    }
    // Records of a chain that has no batch at all.
    for (screen, epoch) in record_chains(&t)?.difference(&chains) {
        let (s, e) = (screen.as_str(), epoch.as_str());
        let n = t.records.range((s, e, 0)..=(s, e, u64::MAX))?.count() as u64;
        problems.push(orphan_records(s, e, n));
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

impl AuditSource for Tables {
    fn anomalies(
        &self,
        screen: &str,
        epoch: &str,
    ) -> Result<HashMap<(u64, HashBytes), String>, LedgerError> {
        let mut notes = HashMap::new();
        for row in self
            .anomalies
            .range((screen, epoch, 0, &NO_HASH)..=(screen, epoch, u64::MAX, &MAX_HASH))?
        {
            let (k, v) = row?;
            let (_, _, batch_seq, hash) = k.value();
            notes.insert((batch_seq, *hash), v.value().to_owned());
        }
        Ok(notes)
    }

    fn each_batch(
        &self,
        screen: &str,
        epoch: &str,
        f: &mut EachBatch<'_>,
    ) -> Result<(), LedgerError> {
        for row in self
            .batches
            .range((screen, epoch, 0, &NO_HASH)..=(screen, epoch, u64::MAX, &MAX_HASH))?
        {
            let (k, v) = row?;
            let (_, _, batch_seq, hash) = k.value();
            f(batch_seq, hash, v.value())?;
        }
        Ok(())
    }

    fn has_batch(
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

    fn batch_records(
        &self,
        key: (&str, &str, u64, &HashBytes),
        buf: &mut Vec<u8>,
    ) -> Result<Option<Vec<PlayRecord>>, LedgerError> {
        (&self.batches).records(key, buf)
    }

    fn record(&self, screen: &str, epoch: &str, seq: u64) -> Result<Option<OwnedRef>, LedgerError> {
        Ok(self.records.get((screen, epoch, seq))?.map(|g| {
            let (batch_seq, hash, index) = g.value();
            (batch_seq, *hash, index)
        }))
    }

    fn each_record(
        &self,
        screen: &str,
        epoch: &str,
        f: &mut dyn FnMut(u64, u64, &HashBytes),
    ) -> Result<(), LedgerError> {
        for row in self
            .records
            .range((screen, epoch, 0)..=(screen, epoch, u64::MAX))?
        {
            let (k, v) = row?;
            let (batch_seq, hash, _) = v.value();
            f(k.value().2, batch_seq, hash);
        }
        Ok(())
    }

    fn count_records(
        &self,
        screen: &str,
        epoch: &str,
        from: u64,
        to: u64,
    ) -> Result<u64, LedgerError> {
        Ok(self
            .records
            .range((screen, epoch, from)..=(screen, epoch, to))?
            .count() as u64)
    }

    fn head(&self, screen: &str, epoch: &str) -> Result<Option<(u64, HashBytes)>, LedgerError> {
        Ok(self.heads.get((screen, epoch))?.map(|g| {
            let (batch_seq, hash, _) = g.value();
            (batch_seq, *hash)
        }))
    }

    fn gaps(&self, screen: &str, epoch: &str) -> Result<Vec<(u64, u64)>, LedgerError> {
        let mut out = Vec::new();
        for row in self
            .gaps
            .range((screen, epoch, 0)..=(screen, epoch, u64::MAX))?
        {
            let (k, v) = row?;
            out.push((k.value().2, v.value()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
