//! Ledgers written before epochs kept their rows keyed by screen alone (`pop_batches`,
//! `pop_records`, `pop_heads`, `pop_gaps`, `pop_anomalies`). Opening such a ledger copies
//! every row into the epoch tables under the legacy epoch `""` (the one whose batches carry
//! no `epoch` field, which is what those agents sent) and drops the old tables, inside the
//! caller's write transaction: a crash leaves the old layout, which migrates at the next
//! open. Envelopes are copied byte for byte, so signatures and hashes are untouched;
//! rollups never had the screen's chain in their keys and stay as they are.

use redb::{ReadableTable, TableDefinition, TableHandle, WriteTransaction};

use super::{HashBytes, LedgerError, RecordRef, ANOMALIES, BATCHES, GAPS, HEADS, LATEST, RECORDS};

/// The epoch rows of a ledger from before epochs are moved into.
pub(crate) const LEGACY: &str = "";

pub(super) const OLD_BATCHES: TableDefinition<(&str, u64, &HashBytes), &[u8]> =
    TableDefinition::new("pop_batches");
pub(super) const OLD_RECORDS: TableDefinition<(&str, u64), RecordRef<'static>> =
    TableDefinition::new("pop_records");
pub(super) const OLD_HEADS: TableDefinition<&str, (u64, &HashBytes, u64)> =
    TableDefinition::new("pop_heads");
pub(super) const OLD_GAPS: TableDefinition<(&str, u64), u64> = TableDefinition::new("pop_gaps");
pub(super) const OLD_ANOMALIES: TableDefinition<(&str, u64, &HashBytes), &str> =
    TableDefinition::new("pop_anomalies");

/// Moves the rows of the old tables, if there are any, into the legacy epoch.
pub(super) fn to_epochs(tx: &WriteTransaction) -> Result<(), LedgerError> {
    let old: Vec<String> = tx
        .list_tables()?
        .map(|t| t.name().to_owned())
        .filter(|n| {
            [
                OLD_BATCHES.name(),
                OLD_RECORDS.name(),
                OLD_HEADS.name(),
                OLD_GAPS.name(),
                OLD_ANOMALIES.name(),
            ]
            .contains(&n.as_str())
        })
        .collect();
    if old.is_empty() {
        return Ok(());
    }
    let mut moved = 0u64;
    if old.iter().any(|n| n == OLD_BATCHES.name()) {
        let from = tx.open_table(OLD_BATCHES)?;
        let mut to = tx.open_table(BATCHES)?;
        for row in from.iter()? {
            let (k, v) = row?;
            let (screen, batch_seq, hash) = k.value();
            to.insert((screen, LEGACY, batch_seq, hash), v.value())?;
        }
    }
    if old.iter().any(|n| n == OLD_RECORDS.name()) {
        let from = tx.open_table(OLD_RECORDS)?;
        let mut to = tx.open_table(RECORDS)?;
        for row in from.iter()? {
            let (k, v) = row?;
            let (screen, seq) = k.value();
            to.insert((screen, LEGACY, seq), v.value())?;
            moved += 1;
        }
    }
    if old.iter().any(|n| n == OLD_HEADS.name()) {
        let from = tx.open_table(OLD_HEADS)?;
        let mut to = tx.open_table(HEADS)?;
        let mut latest = tx.open_table(LATEST)?;
        for row in from.iter()? {
            let (k, v) = row?;
            to.insert((k.value(), LEGACY), v.value())?;
            if latest.get(k.value())?.is_none() {
                latest.insert(k.value(), LEGACY)?;
            }
        }
    }
    if old.iter().any(|n| n == OLD_GAPS.name()) {
        let from = tx.open_table(OLD_GAPS)?;
        let mut to = tx.open_table(GAPS)?;
        for row in from.iter()? {
            let (k, v) = row?;
            let (screen, first) = k.value();
            to.insert((screen, LEGACY, first), v.value())?;
        }
    }
    if old.iter().any(|n| n == OLD_ANOMALIES.name()) {
        let from = tx.open_table(OLD_ANOMALIES)?;
        let mut to = tx.open_table(ANOMALIES)?;
        for row in from.iter()? {
            let (k, v) = row?;
            let (screen, batch_seq, hash) = k.value();
            to.insert((screen, LEGACY, batch_seq, hash), v.value())?;
        }
    }
    tx.delete_table(OLD_BATCHES)?;
    tx.delete_table(OLD_RECORDS)?;
    tx.delete_table(OLD_HEADS)?;
    tx.delete_table(OLD_GAPS)?;
    tx.delete_table(OLD_ANOMALIES)?;
    tracing::info!(
        records = moved,
        "proof-of-play ledger migrated to epochs: its rows are in the legacy epoch"
    );
    Ok(())
}

#[cfg(test)]
#[path = "migrate_tests.rs"]
mod tests;
