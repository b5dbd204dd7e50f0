//! The raw export: every stored play record matching a query, by screen, epoch and seq, for
//! `report plays` and the simulation's play-by-play check. Formatting is the caller's.
//!
//! Records are read from the signed batches that stored them (see `pop_records`), a batch
//! at a time: [`Reader`] keeps the last few batches it parsed. Archived records in the
//! window come from the archive files (`store/ledger/archive/read.rs`), in the same order.

use redb::{Database, ReadOnlyTable, ReadableDatabase, ReadableTable};

use playlists::wire::PlayRecord;

use super::archive::archived_plays;
use super::{BatchKey, HashBytes, LedgerError, Query, BATCHES, RECORDS};
use crate::store::ledger::reader::{self, records_of, BatchSource};

/// Calls `f` with each record whose `slot_start` is in `[q.from, q.to)` and whose venue and
/// screen match `q`'s filters; returns how many. One read transaction: a consistent view.
pub(super) fn plays(
    db: &Database,
    q: &Query,
    f: &mut dyn FnMut(&PlayRecord) -> Result<(), LedgerError>,
) -> Result<u64, LedgerError> {
    let tx = db.begin_read()?;
    let table = tx.open_table(RECORDS)?;
    let batches = tx.open_table(BATCHES)?;
    let mut reader = Reader::new(&batches);
    // Archived records, merged in order before the live ones that follow them.
    let archived = archived_plays(&tx, q)?;
    let mut archived = archived.iter().peekable();
    let rows = match q.screen.as_deref() {
        Some(s) => table.range((s, "", 0)..)?,
        None => table.iter()?,
    };
    let mut n = 0;
    for row in rows {
        let (key, value) = row?;
        let (screen, epoch, seq) = key.value();
        if q.screen.as_deref().is_some_and(|s| s != screen) {
            break;
        }
        while let Some((_, r)) =
            archived.next_if(|((s, e, q), _)| (s.as_str(), e.as_str(), *q) < (screen, epoch, seq))
        {
            f(r)?;
            n += 1;
        }
        let r = reader
            .record(screen, epoch, seq, value.value())?
            .map_err(|why| LedgerError::Corrupt(format!("record {screen}/{epoch}/{seq}: {why}")))?;
        let in_window =
            q.from.is_none_or(|t| r.slot_start >= t) && q.to.is_none_or(|t| r.slot_start < t);
        if in_window && q.venue.as_deref().is_none_or(|v| r.venue_id == v) {
            f(r)?;
            n += 1;
        }
    }
    for (_, r) in archived {
        f(r)?;
        n += 1;
    }
    Ok(n)
}

pub(super) type BatchTable = ReadOnlyTable<BatchKey<'static>, &'static [u8]>;

/// Reads stored records through their references (see [`reader::Reader`]), from this
/// table of batches.
pub(super) type Reader<'t, T = BatchTable> = reader::Reader<&'t T>;

impl<T: ReadableTable<BatchKey<'static>, &'static [u8]>> BatchSource for &T {
    fn records(
        &mut self,
        (screen, epoch, batch_seq, hash): (&str, &str, u64, &HashBytes),
        buf: &mut Vec<u8>,
    ) -> Result<Option<Vec<PlayRecord>>, LedgerError> {
        Ok(match self.get((screen, epoch, batch_seq, hash))? {
            Some(stored) => records_of(stored.value(), hash, buf),
            None => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{at, key_ring, ledger, query, Agent};
    use super::super::{Dimension, Incoming, Query, RECORDS};
    use redb::ReadableTable;

    #[test]
    fn exports_by_screen_then_seq_with_filters() {
        let (_dir, l) = ledger();
        let mut a = Agent::new(1, "s2", "v1");
        let mut b = Agent::new(2, "s1", "v2");
        let ra = vec![
            a.play("c1", "k1", at(9, 0)),
            a.play("c1", "k1", at(10, 0)),
            a.play("c1", "k1", at(11, 0)),
        ];
        let rb = vec![b.play("c1", "k1", at(10, 30))];
        let batches = [
            Incoming {
                topic_screen: "s2".into(),
                raw: a.batch(ra),
            },
            Incoming {
                topic_screen: "s1".into(),
                raw: b.batch(rb),
            },
        ];
        l.ingest(&batches, &key_ring(&[&a, &b])).unwrap();

        let check = |q: Query, expect: &[(&str, u64)]| {
            let mut got = Vec::new();
            let n = l
                .plays(&q, &mut |r| {
                    got.push((r.screen_id.clone(), r.seq));
                    Ok(())
                })
                .unwrap();
            let want: Vec<(String, u64)> = expect.iter().map(|&(s, n)| (s.to_owned(), n)).collect();
            assert_eq!((got, n), (want, expect.len() as u64), "{q:?}");
        };
        check(
            query(Dimension::Screen),
            &[("s1", 1), ("s2", 1), ("s2", 2), ("s2", 3)],
        );
        check(
            Query {
                screen: Some("s2".into()),
                ..query(Dimension::Screen)
            },
            &[("s2", 1), ("s2", 2), ("s2", 3)],
        );
        check(
            Query {
                venue: Some("v2".into()),
                ..query(Dimension::Screen)
            },
            &[("s1", 1)],
        );
        check(
            Query {
                from: Some(at(10, 0)),
                to: Some(at(11, 0)),
                ..query(Dimension::Screen)
            },
            &[("s1", 1), ("s2", 2)],
        );
        check(
            Query {
                screen: Some("s9".into()),
                ..query(Dimension::Screen)
            },
            &[],
        );

        let err = l
            .plays(&query(Dimension::Screen), &mut |_| {
                Err(super::LedgerError::Io("disk full".into()))
            })
            .unwrap_err();
        assert_eq!(err.to_string(), "export: disk full");

        // A damaged reference is an error, not a wrong record.
        let tx = l.db.begin_write().unwrap();
        {
            let mut t = tx.open_table(RECORDS).unwrap();
            let (batch_seq, hash) = {
                let g = t.get(("s2", "", 2)).unwrap().unwrap();
                (g.value().0, *g.value().1)
            };
            t.insert(("s2", "", 2), (batch_seq, &hash, 0)).unwrap();
        }
        tx.commit().unwrap();
        let err = l
            .plays(&query(Dimension::Screen), &mut |_| Ok(()))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "ledger data is damaged: record s2//2: record 0 of batch 1 is seq 1 of screen \"s2\""
        );
    }
}
