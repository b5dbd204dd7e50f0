//! The audit of the PostgreSQL ledger: the same checks as redb's (`store/ledger/audit.rs`),
//! chain by chain, reading the `pop_*` rows through [`AuditSource`] in one repeatable-read,
//! read-only transaction (one consistent state, however long it takes). Batches are
//! fetched a page at a time; nothing is repaired.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use ::postgres::{Client, IsolationLevel, Transaction};
use ed25519_dalek::VerifyingKey;

use playlists::wire::PlayRecord;

use super::{hash32, signed, unsigned, Fail};
use crate::store::ledger::audit::{
    audit_chain, no_key, orphan_records, AuditSource, EachBatch, OwnedRef,
};
use crate::store::ledger::reader::records_of;
use crate::store::ledger::{AuditReport, HashBytes, KeysOf, LedgerError};

/// Stored batches fetched per round trip.
const PAGE: i32 = 200;

/// The ledger's rows as one transaction sees them.
struct Snapshot<'t, 'c> {
    tx: RefCell<&'t mut Transaction<'c>>,
    shown: &'t str,
}

impl Snapshot<'_, '_> {
    /// Runs a query, its failure named as the ledger's.
    fn query(
        &self,
        sql: &str,
        params: &[&(dyn ::postgres::types::ToSql + Sync)],
    ) -> Result<Vec<::postgres::Row>, LedgerError> {
        self.tx
            .borrow_mut()
            .query(sql, params)
            .map_err(|e| self.fail(&e))
    }

    fn fail(&self, e: &::postgres::Error) -> LedgerError {
        LedgerError::Database {
            database: self.shown.to_owned(),
            message: super::super::describe(e),
        }
    }
}

/// A [`Fail`] of a stored value, as the ledger error it is.
fn ledger(f: Fail) -> LedgerError {
    match f {
        Fail::Ledger(e) => e,
        Fail::Pg(e) => LedgerError::Corrupt(e.to_string()),
    }
}

fn u(n: i64, what: &str) -> Result<u64, LedgerError> {
    unsigned(n, what).map_err(ledger)
}

fn h(bytes: &[u8], what: &str) -> Result<HashBytes, LedgerError> {
    hash32(bytes, what).map_err(ledger)
}

impl AuditSource for Snapshot<'_, '_> {
    fn anomalies(
        &self,
        screen: &str,
        epoch: &str,
    ) -> Result<HashMap<(u64, HashBytes), String>, LedgerError> {
        let mut notes = HashMap::new();
        for row in self.query(
            "SELECT batch_seq, hash, anomaly FROM pop_batches
             WHERE screen = $1 AND epoch = $2 AND anomaly IS NOT NULL",
            &[&screen, &epoch],
        )? {
            notes.insert(
                (
                    u(row.get(0), "a batch_seq")?,
                    h(row.get(1), "a batch hash")?,
                ),
                row.get(2),
            );
        }
        Ok(notes)
    }

    fn each_batch(
        &self,
        screen: &str,
        epoch: &str,
        f: &mut EachBatch<'_>,
    ) -> Result<(), LedgerError> {
        let portal = self
            .tx
            .borrow_mut()
            .bind(
                "SELECT batch_seq, hash, envelope FROM pop_batches
                 WHERE screen = $1 AND epoch = $2 ORDER BY batch_seq, hash",
                &[&screen, &epoch],
            )
            .map_err(|e| self.fail(&e))?;
        loop {
            let page = self
                .tx
                .borrow_mut()
                .query_portal(&portal, PAGE)
                .map_err(|e| self.fail(&e))?;
            if page.is_empty() {
                return Ok(());
            }
            for row in &page {
                let hash = h(row.get(1), "a batch hash")?;
                f(u(row.get(0), "a batch_seq")?, &hash, row.get(2))?;
            }
        }
    }

    fn has_batch(
        &self,
        screen: &str,
        epoch: &str,
        batch_seq: u64,
        hash: &HashBytes,
    ) -> Result<bool, LedgerError> {
        Ok(!self
            .query(
                "SELECT 1 FROM pop_batches
                 WHERE screen = $1 AND epoch = $2 AND batch_seq = $3 AND hash = $4",
                &[&screen, &epoch, &signed(batch_seq), &&hash[..]],
            )?
            .is_empty())
    }

    fn batch_records(
        &self,
        (screen, epoch, batch_seq, hash): (&str, &str, u64, &HashBytes),
        buf: &mut Vec<u8>,
    ) -> Result<Option<Vec<PlayRecord>>, LedgerError> {
        let rows = self.query(
            "SELECT envelope FROM pop_batches
             WHERE screen = $1 AND epoch = $2 AND batch_seq = $3 AND hash = $4",
            &[&screen, &epoch, &signed(batch_seq), &&hash[..]],
        )?;
        Ok(rows.first().and_then(|r| records_of(r.get(0), hash, buf)))
    }

    fn record(&self, screen: &str, epoch: &str, seq: u64) -> Result<Option<OwnedRef>, LedgerError> {
        let rows = self.query(
            "SELECT batch_seq, hash, idx FROM pop_records
             WHERE screen = $1 AND epoch = $2 AND seq = $3",
            &[&screen, &epoch, &signed(seq)],
        )?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let idx = u32::try_from(row.get::<_, i32>(2))
            .map_err(|_| LedgerError::Corrupt("a record's index is negative".into()))?;
        Ok(Some((
            u(row.get(0), "a record's batch_seq")?,
            h(row.get(1), "a record's batch hash")?,
            idx,
        )))
    }

    fn each_record(
        &self,
        screen: &str,
        epoch: &str,
        f: &mut dyn FnMut(u64, u64, &HashBytes),
    ) -> Result<(), LedgerError> {
        for row in self.query(
            "SELECT seq, batch_seq, hash FROM pop_records
             WHERE screen = $1 AND epoch = $2 ORDER BY seq",
            &[&screen, &epoch],
        )? {
            let hash = h(row.get(2), "a record's batch hash")?;
            f(
                u(row.get(0), "a record's seq")?,
                u(row.get(1), "a record's batch_seq")?,
                &hash,
            );
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
        let rows = self.query(
            "SELECT count(*) FROM pop_records
             WHERE screen = $1 AND epoch = $2 AND seq BETWEEN $3 AND $4",
            &[&screen, &epoch, &signed(from), &signed(to)],
        )?;
        rows.first().map_or(Ok(0), |r| u(r.get(0), "a count"))
    }

    fn head(&self, screen: &str, epoch: &str) -> Result<Option<(u64, HashBytes)>, LedgerError> {
        let rows = self.query(
            "SELECT batch_seq, hash FROM pop_heads WHERE screen = $1 AND epoch = $2",
            &[&screen, &epoch],
        )?;
        rows.first()
            .map(|r| {
                Ok((
                    u(r.get(0), "a chain head's batch_seq")?,
                    h(r.get(1), "a chain head's hash")?,
                ))
            })
            .transpose()
    }

    fn gaps(&self, screen: &str, epoch: &str) -> Result<Vec<(u64, u64)>, LedgerError> {
        self.query(
            "SELECT first_seq, last_seq FROM pop_gaps
             WHERE screen = $1 AND epoch = $2 ORDER BY first_seq",
            &[&screen, &epoch],
        )?
        .iter()
        .map(|r| Ok((u(r.get(0), "a gap's seq")?, u(r.get(1), "a gap's seq")?)))
        .collect()
    }
}

pub(super) fn audit(
    client: &mut Client,
    shown: &str,
    key_of: KeysOf<'_>,
) -> Result<AuditReport, Fail> {
    let mut tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    let mut chains: BTreeMap<(String, String), ()> = BTreeMap::new();
    for row in tx.query(
        "SELECT DISTINCT screen, epoch FROM pop_batches ORDER BY screen, epoch",
        &[],
    )? {
        chains.insert((row.get(0), row.get(1)), ());
    }
    let mut orphans: Vec<(String, String, i64)> = Vec::new();
    for row in tx.query(
        "SELECT screen, epoch, count(*) FROM pop_records GROUP BY screen, epoch
         ORDER BY screen, epoch",
        &[],
    )? {
        let chain: (String, String) = (row.get(0), row.get(1));
        if !chains.contains_key(&chain) {
            orphans.push((chain.0, chain.1, row.get(2)));
        }
    }
    let batches: i64 = tx
        .query_one("SELECT count(*) FROM pop_batches", &[])?
        .get(0);
    let records: i64 = tx
        .query_one("SELECT count(*) FROM pop_records", &[])?
        .get(0);
    let markers = super::archive::all_markers(&mut tx)?;
    let snapshot = Snapshot {
        tx: RefCell::new(&mut tx),
        shown,
    };
    let mut problems = Vec::new();
    let mut summaries = Vec::new();
    let mut keys: Option<(String, Vec<VerifyingKey>)> = None;
    for (screen, epoch) in chains.keys() {
        if keys.as_ref().is_none_or(|(s, _)| s != screen) {
            let ring = key_of(screen);
            if ring.is_empty() {
                problems.push(no_key(screen));
            }
            keys = Some((screen.clone(), ring));
        }
        let ring = keys.as_ref().map(|(_, k)| k.as_slice()).unwrap_or_default();
        summaries.push(audit_chain(
            &snapshot,
            screen,
            epoch,
            ring,
            markers.get(&(screen.clone(), epoch.clone())).copied(),
            &mut problems,
        )?);
    }
    for (screen, epoch, n) in orphans {
        problems.push(orphan_records(&screen, &epoch, unsigned(n, "a count")?));
    }
    let screens: BTreeSet<&str> = chains.keys().map(|(s, _)| s.as_str()).collect();
    let report = AuditReport {
        screens: screens.len() as u64,
        batches: unsigned(batches, "a count")?,
        records: unsigned(records, "a count")?,
        problems,
        chains: summaries,
    };
    tx.commit()?;
    Ok(report)
}
