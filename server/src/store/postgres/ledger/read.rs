//! Reading the PostgreSQL ledger: `delivered` from the rollups, `plays` through the record
//! references (each read from its signed batch, as in redb) merged with the archived plays
//! of the window (`archive.rs`), `counts`, `batch_sizes` and `batches`.

use std::collections::BTreeMap;

use ::postgres::types::ToSql;
use ::postgres::{Client, IsolationLevel, Transaction};

use playlists::wire::PlayRecord;

use super::{hash32, unsigned, Fail};
use crate::store::ledger::reader::{records_of, stored_envelope, BatchSource, Reader};
use crate::store::ledger::tally::first_hour_from;
use crate::store::ledger::{HashBytes, LedgerCounts, LedgerError, Query, Row};

/// Stored batches read through a transaction of the database shown as `.1`.
pub(super) struct TxBatches<'t, 'c>(pub &'t mut Transaction<'c>, pub &'t str);

impl BatchSource for TxBatches<'_, '_> {
    fn records(
        &mut self,
        (screen, epoch, batch_seq, hash): (&str, &str, u64, &HashBytes),
        buf: &mut Vec<u8>,
    ) -> Result<Option<Vec<PlayRecord>>, LedgerError> {
        let Ok(batch_seq) = i64::try_from(batch_seq) else {
            return Ok(None);
        };
        let row = self
            .0
            .query_opt(
                "SELECT envelope FROM pop_batches
                 WHERE screen = $1 AND epoch = $2 AND batch_seq = $3 AND hash = $4",
                &[&screen, &epoch, &batch_seq, &&hash[..]],
            )
            .map_err(|e| LedgerError::Database {
                database: self.1.to_owned(),
                message: super::super::describe(&e),
            })?;
        Ok(row.and_then(|r| records_of(r.get(0), hash, buf)))
    }
}

/// A read-only transaction that sees one consistent state of the ledger.
fn snapshot(client: &mut Client) -> Result<Transaction<'_>, Fail> {
    Ok(client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?)
}

pub(super) fn delivered(client: &mut Client, q: &Query) -> Result<Vec<Row>, Fail> {
    let dim = i16::from(q.dimension.tag());
    let from = q.from.map_or(i64::MIN, first_hour_from);
    let to = q.to.map_or(i64::MAX, first_hour_from); // exclusive
    let mut sql = "SELECT key, SUM(complete)::BIGINT, SUM(partial)::BIGINT, SUM(failed)::BIGINT
                   FROM pop_rollups WHERE dimension = $1 AND hour >= $2 AND hour < $3"
        .to_owned();
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&dim, &from, &to];
    for (column, filter) in [("venue", &q.venue), ("screen", &q.screen)] {
        match filter {
            Some(id) => {
                params.push(id);
                sql.push_str(&format!(" AND {column} = ${}", params.len()));
            }
            None => sql.push_str(&format!(" AND {column} IS NULL")),
        }
    }
    sql.push_str(" GROUP BY key ORDER BY key");
    let mut rows = Vec::new();
    for row in client.query(&sql, &params)? {
        rows.push(Row {
            key: row.get(0),
            complete: unsigned(row.get(1), "a rollup count")?,
            partial: unsigned(row.get(2), "a rollup count")?,
            failed: unsigned(row.get(3), "a rollup count")?,
        });
    }
    Ok(rows)
}

/// Record references fetched per round trip.
const PAGE: i32 = 1000;

pub(super) fn plays(
    client: &mut Client,
    shown: &str,
    q: &Query,
    f: &mut dyn FnMut(&PlayRecord) -> Result<(), LedgerError>,
) -> Result<u64, Fail> {
    let mut tx = snapshot(client)?;
    let portal = match &q.screen {
        Some(s) => tx.bind(
            "SELECT screen, epoch, seq, batch_seq, hash, idx FROM pop_records
             WHERE screen = $1 ORDER BY screen, epoch, seq",
            &[s],
        )?,
        None => tx.bind(
            "SELECT screen, epoch, seq, batch_seq, hash, idx FROM pop_records
             ORDER BY screen, epoch, seq",
            &[],
        )?,
    };
    // Archived records, merged in order before the live ones that follow them.
    let archived = super::archive::archived_plays(&mut tx, shown, q)?;
    let mut archived = archived.iter().peekable();
    let mut reader = Reader::new(TxBatches(&mut tx, shown));
    let mut n = 0;
    loop {
        let page = reader.source().0.query_portal(&portal, PAGE)?;
        if page.is_empty() {
            break;
        }
        for row in &page {
            let (screen, epoch): (&str, &str) = (row.get(0), row.get(1));
            let seq = unsigned(row.get(2), "a record's seq")?;
            while let Some((_, r)) = archived
                .next_if(|((s, e, q), _)| (s.as_str(), e.as_str(), *q) < (screen, epoch, seq))
            {
                f(r)?;
                n += 1;
            }
            let batch_seq = unsigned(row.get(3), "a record's batch_seq")?;
            let hash = hash32(row.get(4), "a record's batch hash")?;
            let idx = u32::try_from(row.get::<_, i32>(5))
                .map_err(|_| super::corrupt("a record's index is negative"))?;
            let r = reader
                .record(screen, epoch, seq, (batch_seq, &hash, idx))?
                .map_err(|why| {
                    LedgerError::Corrupt(format!("record {screen}/{epoch}/{seq}: {why}"))
                })?;
            let in_window =
                q.from.is_none_or(|t| r.slot_start >= t) && q.to.is_none_or(|t| r.slot_start < t);
            if in_window && q.venue.as_deref().is_none_or(|v| r.venue_id == v) {
                f(r)?;
                n += 1;
            }
        }
    }
    drop(reader);
    for (_, r) in archived {
        f(r)?;
        n += 1;
    }
    tx.commit()?;
    Ok(n)
}

/// Stored batches fetched per round trip by [`batches`].
const BATCH_PAGE: i32 = 256;

/// Calls `f` with every stored batch as received, in the order `LedgerStore::batches`
/// promises (each screen's latest epoch last), from one consistent snapshot; a ledger with
/// an archive marker is refused, since the archived prefix of its chains is not here.
pub(super) fn batches(
    client: &mut Client,
    f: &mut crate::store::ledger::BatchSink<'_>,
) -> Result<u64, Fail> {
    let mut tx = snapshot(client)?;
    if let Some(row) = tx.query_opt(
        "SELECT screen, epoch, batch_seq FROM pop_archived ORDER BY screen, epoch LIMIT 1",
        &[],
    )? {
        return Err(Fail::Ledger(LedgerError::Archived {
            screen: row.get(0),
            epoch: row.get(1),
            batch_seq: unsigned(row.get(2), "an archive marker's batch_seq")?,
        }));
    }
    let portal = tx.bind(
        "SELECT b.screen, b.epoch, b.batch_seq, b.envelope FROM pop_batches b
         LEFT JOIN pop_latest_epoch l ON l.screen = b.screen AND l.epoch = b.epoch
         ORDER BY b.screen, l.epoch IS NOT NULL, b.epoch, b.batch_seq, b.hash",
        &[],
    )?;
    let mut n = 0;
    loop {
        let page = tx.query_portal(&portal, BATCH_PAGE)?;
        if page.is_empty() {
            break;
        }
        for row in &page {
            let (screen, epoch): (&str, &str) = (row.get(0), row.get(1));
            let batch_seq = unsigned(row.get(2), "a batch's batch_seq")?;
            f(
                screen,
                &stored_envelope(row.get(3), screen, epoch, batch_seq)?,
            )?;
            n += 1;
        }
    }
    tx.commit()?;
    Ok(n)
}

pub(super) fn counts(client: &mut Client) -> Result<LedgerCounts, Fail> {
    let mut tx = snapshot(client)?;
    let records: i64 = tx
        .query_one("SELECT count(*) FROM pop_records", &[])?
        .get(0);
    let batches: i64 = tx
        .query_one("SELECT count(*) FROM pop_batches", &[])?
        .get(0);
    let mut counts = LedgerCounts {
        records: unsigned(records, "a count")?,
        batches: unsigned(batches, "a count")?,
        ..LedgerCounts::default()
    };
    for row in tx.query(
        "SELECT screen, epoch, batch_seq, last_seq FROM pop_heads",
        &[],
    )? {
        counts.chains.insert(
            (row.get(0), row.get(1)),
            (
                unsigned(row.get(2), "a chain head's batch_seq")?,
                unsigned(row.get(3), "a chain head's last seq")?,
            ),
        );
    }
    for row in tx.query("SELECT screen, epoch FROM pop_latest_epoch", &[])? {
        let (screen, epoch): (String, String) = (row.get(0), row.get(1));
        if let Some(&(batch_seq, last_seq)) = counts.chains.get(&(screen.clone(), epoch.clone())) {
            counts.last_seq.insert(screen.clone(), last_seq);
            counts.last_batch_seq.insert(screen.clone(), batch_seq);
        }
        counts.epoch.insert(screen, epoch);
    }
    tx.commit()?;
    Ok(counts)
}

pub(super) fn batch_sizes(client: &mut Client, screen: &str) -> Result<BTreeMap<u64, u64>, Fail> {
    let mut per = BTreeMap::new();
    for row in client.query(
        "SELECT r.batch_seq, count(*) FROM pop_records r
         JOIN pop_latest_epoch l ON l.screen = r.screen AND l.epoch = r.epoch
         WHERE r.screen = $1 GROUP BY r.batch_seq",
        &[&screen],
    )? {
        per.insert(
            unsigned(row.get(0), "a record's batch_seq")?,
            unsigned(row.get(1), "a count")?,
        );
    }
    Ok(per)
}
