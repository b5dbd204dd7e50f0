//! Rollups: plays per hour (UTC, of `slot_start`) for each venue, screen, campaign and
//! creative, counted by status, so reports never scan raw records.
//!
//! Key: `(dimension tag, venue filter, screen filter, key, hour)` where `hour` is the unix
//! hour and each filter is `None` (any) or `Some(id)`. Every play adds one to the four
//! filter combinations of each of the four dimensions, so `delivered` answers "per campaign
//! at venue V" with one range scan. Ingest tallies in memory first and writes each distinct
//! rollup row once per transaction (the counting is `store/ledger/tally.rs`, shared with
//! PostgreSQL). Raw records are `ingest`'s; the table and the query are ours.

use std::collections::BTreeMap;
use std::ops::Bound;

use redb::{Database, ReadableDatabase, WriteTransaction};

use super::{LedgerError, Query, Row, ROLLUPS};
use crate::store::ledger::tally::{first_hour_from, RowKey, Tally};

/// `(dimension tag, venue filter, screen filter, key, unix hour)`.
pub(crate) type RollupKey = RowKey<'static>;

/// Adds `tally` to the rollup rows, inside the ingest transaction, in key order.
pub(super) fn apply(tally: Tally<'_>, tx: &WriteTransaction) -> Result<(), LedgerError> {
    let mut table = tx.open_table(ROLLUPS)?;
    for (key, [c, p, f]) in tally.into_rows() {
        let updated = match table.get_mut(key)? {
            Some(mut row) => {
                let (c0, p0, f0) = row.value();
                row.insert((c0 + c, p0 + p, f0 + f))?;
                true
            }
            None => false,
        };
        if !updated {
            table.insert(key, (c, p, f))?;
        }
    }
    Ok(())
}

/// Where the next range scan of `delivered` starts.
enum Seek {
    Start,
    /// This key, from this hour.
    At(String, i64),
    /// Past every hour of this key.
    After(String),
}

pub(super) fn delivered(db: &Database, q: &Query) -> Result<Vec<Row>, LedgerError> {
    let tx = db.begin_read()?;
    let table = tx.open_table(ROLLUPS)?;
    let (tag, venue, screen) = (q.dimension.tag(), q.venue.as_deref(), q.screen.as_deref());
    let from = q.from.map_or(i64::MIN, first_hour_from);
    let to = q.to.map_or(i64::MAX, first_hour_from); // exclusive
    let mut sums: BTreeMap<String, [u64; 3]> = BTreeMap::new();
    let mut seek = Seek::Start;
    // A skip scan: one range per key, jumping over hours outside [from, to).
    loop {
        let lower = match &seek {
            Seek::Start => Bound::Included((tag, venue, screen, "", i64::MIN)),
            Seek::At(key, hour) => Bound::Included((tag, venue, screen, key.as_str(), *hour)),
            Seek::After(key) => Bound::Excluded((tag, venue, screen, key.as_str(), i64::MAX)),
        };
        let mut next = None;
        for row in table.range((lower, Bound::Unbounded))? {
            let (k, v) = row?;
            let (t, kv, ks, key, hour) = k.value();
            if (t, kv, ks) != (tag, venue, screen) {
                break;
            }
            if hour < from {
                next = Some(Seek::At(key.to_owned(), from));
                break;
            }
            if hour >= to {
                next = Some(Seek::After(key.to_owned()));
                break;
            }
            let (c, p, f) = v.value();
            let sum = sums.entry(key.to_owned()).or_default();
            *sum = [sum[0] + c, sum[1] + p, sum[2] + f];
        }
        match next {
            Some(s) => seek = s,
            None => break,
        }
    }
    Ok(sums
        .into_iter()
        .map(|(key, [complete, partial, failed])| Row {
            key,
            complete,
            partial,
            failed,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{at, key_ring, ledger, query, Agent};
    use super::super::{Dimension, Incoming, Ledger, Query, Row};
    use super::*;
    use crate::store::ledger::tally::hour_of;
    use playlists::wire::{PlayRecord, PlayStatus};

    /// Rows of `q` as `(key, complete, partial, failed)`.
    fn check(l: &Ledger, q: Query, expect: &[(&str, u64, u64, u64)]) {
        let got = l.delivered(&q).unwrap();
        let want: Vec<Row> = expect
            .iter()
            .map(|&(k, c, p, f)| Row {
                key: k.into(),
                complete: c,
                partial: p,
                failed: f,
            })
            .collect();
        assert_eq!(got, want, "query {q:?}");
    }

    /// Two venues; v1 has screens s1 and s2, v2 has s3. Campaign c1 runs everywhere, c2 at v1.
    fn fleet() -> (tempfile::TempDir, Ledger) {
        let (dir, l) = ledger();
        let mut s1 = Agent::new(1, "s1", "v1");
        let mut s2 = Agent::new(2, "s2", "v1");
        let mut s3 = Agent::new(3, "s3", "v2");
        let mut b1 = vec![
            s1.play("c1", "k1", at(9, 0)),
            s1.play("c2", "k2", at(9, 30)),
            s1.play("c1", "k1", at(10, 0)),
        ];
        b1.push(PlayRecord {
            status: PlayStatus::Partial,
            ..s1.play("c1", "k3", at(10, 59))
        });
        let b2 = vec![
            s2.play("c2", "k2", at(10, 15)),
            PlayRecord {
                status: PlayStatus::Failed,
                ..s2.play("c1", "k1", at(11, 0))
            },
        ];
        let b3 = vec![
            s3.play("c1", "k1", at(10, 5)),
            s3.play("c1", "k1", at(12, 0)),
        ];
        let incoming = [
            ("s1", s1.batch(b1)),
            ("s2", s2.batch(b2)),
            ("s3", s3.batch(b3)),
        ]
        .map(|(s, raw)| Incoming {
            topic_screen: s.into(),
            raw,
        });
        l.ingest(&incoming, &key_ring(&[&s1, &s2, &s3])).unwrap();
        (dir, l)
    }

    fn q(
        dimension: Dimension,
        from: Option<(u32, u32)>,
        to: Option<(u32, u32)>,
        venue: Option<&str>,
        screen: Option<&str>,
    ) -> Query {
        let t = |hm: Option<(u32, u32)>| hm.map(|(h, m)| at(h, m));
        Query {
            from: t(from),
            to: t(to),
            dimension,
            venue: venue.map(str::to_owned),
            screen: screen.map(str::to_owned),
        }
    }

    #[test]
    fn per_dimension_over_all_time() {
        let (_dir, l) = fleet();
        check(
            &l,
            query(Dimension::Venue),
            &[("v1", 4, 1, 1), ("v2", 2, 0, 0)],
        );
        check(
            &l,
            query(Dimension::Screen),
            &[("s1", 3, 1, 0), ("s2", 1, 0, 1), ("s3", 2, 0, 0)],
        );
        check(
            &l,
            query(Dimension::Campaign),
            &[("c1", 4, 1, 1), ("c2", 2, 0, 0)],
        );
        check(
            &l,
            query(Dimension::Creative),
            &[("k1", 4, 0, 1), ("k2", 2, 0, 0), ("k3", 0, 1, 0)],
        );
    }

    #[test]
    fn filtered_by_venue_and_screen() {
        let (_dir, l) = fleet();
        check(
            &l,
            q(Dimension::Campaign, None, None, Some("v1"), None),
            &[("c1", 2, 1, 1), ("c2", 2, 0, 0)],
        );
        check(
            &l,
            q(Dimension::Campaign, None, None, Some("v2"), None),
            &[("c1", 2, 0, 0)],
        );
        check(
            &l,
            q(Dimension::Screen, None, None, Some("v1"), None),
            &[("s1", 3, 1, 0), ("s2", 1, 0, 1)],
        );
        check(
            &l,
            q(Dimension::Creative, None, None, None, Some("s2")),
            &[("k1", 0, 0, 1), ("k2", 1, 0, 0)],
        );
        check(
            &l,
            q(Dimension::Venue, None, None, None, Some("s3")),
            &[("v2", 2, 0, 0)],
        );
        check(
            &l,
            q(Dimension::Campaign, None, None, Some("v1"), Some("s1")),
            &[("c1", 2, 1, 0), ("c2", 1, 0, 0)],
        );
        check(
            &l,
            q(Dimension::Campaign, None, None, Some("v2"), Some("s1")),
            &[],
        );
        check(
            &l,
            q(Dimension::Venue, None, None, Some("nowhere"), None),
            &[],
        );
    }

    #[test]
    fn from_and_to_select_whole_hours() {
        let (_dir, l) = fleet();
        // [10:00, 11:00): the 10 o'clock hour only.
        check(
            &l,
            q(
                Dimension::Campaign,
                Some((10, 0)),
                Some((11, 0)),
                None,
                None,
            ),
            &[("c1", 2, 1, 0), ("c2", 1, 0, 0)],
        );
        check(
            &l,
            q(
                Dimension::Venue,
                Some((10, 0)),
                Some((11, 0)),
                Some("v1"),
                None,
            ),
            &[("v1", 2, 1, 0)],
        );
        // From 11:00 on; up to (not including) 10:00.
        check(
            &l,
            q(Dimension::Venue, Some((11, 0)), None, None, None),
            &[("v1", 0, 0, 1), ("v2", 1, 0, 0)],
        );
        check(
            &l,
            q(Dimension::Campaign, None, Some((10, 0)), None, None),
            &[("c1", 1, 0, 0), ("c2", 1, 0, 0)],
        );
        // Hours whose start lies in [09:30, 10:30): just 10 o'clock.
        check(
            &l,
            q(
                Dimension::Screen,
                Some((9, 30)),
                Some((10, 30)),
                Some("v1"),
                None,
            ),
            &[("s1", 1, 1, 0), ("s2", 1, 0, 0)],
        );
        // An empty window.
        check(
            &l,
            q(Dimension::Venue, Some((13, 0)), Some((14, 0)), None, None),
            &[],
        );
    }

    #[test]
    fn rollups_add_up_across_ingest_calls() {
        let (_dir, l) = ledger();
        let mut a = Agent::new(1, "s1", "v1");
        for _ in 0..3 {
            let recs = a.plays(2, "c1", "k1");
            let raw = a.batch(recs);
            l.ingest(
                &[Incoming {
                    topic_screen: "s1".into(),
                    raw,
                }],
                &key_ring(&[&a]),
            )
            .unwrap();
        }
        check(&l, query(Dimension::Venue), &[("v1", 6, 0, 0)]);
    }

    #[test]
    fn hours() {
        assert_eq!(hour_of(at(10, 59)), hour_of(at(10, 0)));
        assert_eq!(first_hour_from(at(10, 0)), hour_of(at(10, 0)));
        assert_eq!(first_hour_from(at(10, 1)), hour_of(at(11, 0)));
    }
}
