//! The raw export: every stored play record matching a query, by screen then seq, for
//! `report plays` and the simulation's play-by-play check. Formatting is the caller's.

use redb::{Database, ReadableDatabase, ReadableTable};

use playlists::wire::PlayRecord;

use super::{LedgerError, Query, RECORDS};

/// Calls `f` with each record whose `slot_start` is in `[q.from, q.to)` and whose venue and
/// screen match `q`'s filters; returns how many. One read transaction: a consistent view.
pub(super) fn plays(
    db: &Database,
    q: &Query,
    f: &mut dyn FnMut(&PlayRecord) -> Result<(), LedgerError>,
) -> Result<u64, LedgerError> {
    let tx = db.begin_read()?;
    let table = tx.open_table(RECORDS)?;
    let rows = match q.screen.as_deref() {
        Some(s) => table.range((s, 0)..=(s, u64::MAX))?,
        None => table.iter()?,
    };
    let mut n = 0;
    for row in rows {
        let (key, value) = row?;
        let (screen, seq) = key.value();
        let (_, _, json) = value.value();
        let r: PlayRecord = serde_json::from_slice(json).map_err(|e| {
            LedgerError::Corrupt(format!("record {screen}/{seq} does not parse: {e}"))
        })?;
        let in_window =
            q.from.is_none_or(|t| r.slot_start >= t) && q.to.is_none_or(|t| r.slot_start < t);
        if in_window && q.venue.as_deref().is_none_or(|v| r.venue_id == v) {
            f(&r)?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{at, key_ring, ledger, query, Agent};
    use super::super::{Dimension, Incoming, Query};

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
    }
}
