//! Every stored batch read back as the envelope received (`LedgerStore::batches`), for
//! `store copy`: one read transaction, screen by screen in key order, each screen's latest
//! epoch last (so ingesting them again leaves the same latest epoch), each chain by
//! batch_seq then hash. Unpacking is shared (`store/ledger/reader.rs`); a ledger with an
//! archive marker is refused, since the archived prefix of its chains is not here.

use std::collections::BTreeMap;

use redb::{ReadOnlyTable, ReadableDatabase, ReadableTable};

use super::{BatchKey, Ledger, LedgerError, ARCHIVED, BATCHES, LATEST};
use crate::store::ledger::reader::stored_envelope;
use crate::store::ledger::BatchSink as Each;

type BatchTable = ReadOnlyTable<BatchKey<'static>, &'static [u8]>;

pub(super) fn batches(ledger: &Ledger, f: &mut Each<'_>) -> Result<u64, LedgerError> {
    let tx = ledger.db.begin_read()?;
    if let Some(row) = tx.open_table(ARCHIVED)?.iter()?.next() {
        let (key, marker) = row?;
        let (screen, epoch) = key.value();
        return Err(LedgerError::Archived {
            screen: screen.to_owned(),
            epoch: epoch.to_owned(),
            batch_seq: marker.value().0,
        });
    }
    let mut latest = BTreeMap::new();
    for row in tx.open_table(LATEST)?.iter()? {
        let (screen, epoch) = row?;
        latest.insert(screen.value().to_owned(), epoch.value().to_owned());
    }
    let table = tx.open_table(BATCHES)?;
    let mut n = 0;
    // A screen's latest epoch, given once the screen's other batches are.
    let mut deferred: Option<(String, String)> = None;
    for row in table.iter()? {
        let (key, stored) = row?;
        let (screen, epoch, batch_seq, _) = key.value();
        if deferred.as_ref().is_some_and(|(s, _)| s != screen) {
            if let Some((s, e)) = deferred.take() {
                n += chain(&table, &s, &e, f)?;
            }
        }
        if latest.get(screen).is_some_and(|l| l == epoch) {
            deferred.get_or_insert_with(|| (screen.to_owned(), epoch.to_owned()));
            continue;
        }
        f(
            screen,
            &stored_envelope(stored.value(), screen, epoch, batch_seq)?,
        )?;
        n += 1;
    }
    if let Some((s, e)) = deferred {
        n += chain(&table, &s, &e, f)?;
    }
    Ok(n)
}

/// Gives every batch of chain `(screen, epoch)`; returns how many.
fn chain(
    table: &BatchTable,
    screen: &str,
    epoch: &str,
    f: &mut Each<'_>,
) -> Result<u64, LedgerError> {
    let (low, high) = ([0u8; 32], [u8::MAX; 32]);
    let mut n = 0;
    for row in table.range((screen, epoch, 0, &low)..=(screen, epoch, u64::MAX, &high))? {
        let (key, stored) = row?;
        let batch_seq = key.value().2;
        f(
            screen,
            &stored_envelope(stored.value(), screen, epoch, batch_seq)?,
        )?;
        n += 1;
    }
    Ok(n)
}
