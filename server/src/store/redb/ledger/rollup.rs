//! Rollups: plays per hour (UTC, of `slot_start`) for each venue, screen, campaign and
//! creative, counted by status, so reports never scan raw records.
//!
//! Key: `(dimension tag, venue filter, screen filter, key, hour)` where `hour` is the unix
//! hour and each filter is `None` (any) or `Some(id)`. Every play adds one to the four
//! filter combinations of each of the four dimensions, so `delivered` answers "per campaign
//! at venue V" with one range scan. Ingest tallies in memory first and writes each distinct
//! rollup row once per transaction. Raw records are `ingest`'s; the query is ours.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Bound;

use chrono::{DateTime, Utc};
use redb::{Database, ReadableDatabase, WriteTransaction};

use playlists::wire::PlayStatus;

use super::view::RecordView;
use super::{Dimension, LedgerError, Query, Row, ROLLUPS};

/// `(dimension tag, venue filter, screen filter, key, unix hour)`.
pub(crate) type RollupKey = RowKey<'static>;
type RowKey<'a> = (u8, Option<&'a str>, Option<&'a str>, &'a str, i64);

/// The unix hour of an instant.
fn hour_of(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(3600)
}

/// The first hour whose start is at or after `t`.
fn first_hour_from(t: DateTime<Utc>) -> i64 {
    let s = t.timestamp();
    s.div_euclid(3600) + i64::from(s.rem_euclid(3600) != 0)
}

fn status_index(s: PlayStatus) -> usize {
    match s {
        PlayStatus::Complete => 0,
        PlayStatus::Partial => 1,
        PlayStatus::Failed => 2,
    }
}

/// Counts of plays not yet written, by status: per (venue, screen, campaign, creative,
/// hour) as plays are added one by one, and per rollup row. Ingest tallies each batch into
/// rows while checking it (on several threads) and merges the rows of the batches it stores
/// whole, so the write transaction adds up a few hundred rows per batch, not every play.
#[derive(Debug, Default)]
pub(super) struct Tally<'a> {
    plays: FxMap<PlayKey<'a>, [u64; 3]>,
    rows: FxMap<RowKey<'a>, [u64; 3]>,
}

/// `(venue, screen, campaign, creative, unix hour)`.
type PlayKey<'a> = (&'a str, &'a str, &'a str, &'a str, i64);

fn add_counts(acc: &mut [u64; 3], counts: &[u64; 3]) {
    for (a, n) in acc.iter_mut().zip(counts) {
        *a += n;
    }
}

impl<'a> Tally<'a> {
    /// The rows of all of `records`.
    pub fn of(records: &'a [RecordView<'_>]) -> Tally<'a> {
        let mut t = Tally::default();
        for r in records {
            t.add(r);
        }
        t.expand();
        t
    }

    pub fn add(&mut self, r: &'a RecordView<'_>) {
        let key = (
            &*r.venue_id,
            &*r.screen_id,
            &*r.campaign_id,
            &*r.creative_id,
            hour_of(r.slot_start),
        );
        self.plays.entry(key).or_default()[status_index(r.status)] += 1;
    }

    /// Adds the rows of `other` (its plays must have been expanded).
    pub fn merge(&mut self, other: &Tally<'a>) {
        debug_assert!(other.plays.is_empty());
        for (&key, counts) in &other.rows {
            add_counts(self.rows.entry(key).or_default(), counts);
        }
    }

    /// Moves the plays into the rows: each adds to the four filter combinations of each of
    /// the four dimensions.
    fn expand(&mut self) {
        for ((venue, screen, campaign, creative, hour), counts) in self.plays.drain() {
            for dim in Dimension::ALL {
                let key = match dim {
                    Dimension::Venue => venue,
                    Dimension::Screen => screen,
                    Dimension::Campaign => campaign,
                    Dimension::Creative => creative,
                };
                for v in [None, Some(venue)] {
                    for s in [None, Some(screen)] {
                        let row = self.rows.entry((dim.tag(), v, s, key, hour)).or_default();
                        add_counts(row, &counts);
                    }
                }
            }
        }
    }

    /// Adds the tally to the rollup rows, inside the ingest transaction, in key order.
    pub fn apply(mut self, tx: &WriteTransaction) -> Result<(), LedgerError> {
        self.expand();
        let mut rows: Vec<(RowKey<'_>, [u64; 3])> = self.rows.into_iter().collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut table = tx.open_table(ROLLUPS)?;
        for (key, [c, p, f]) in rows {
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
}

/// A hash map with the Fx hash (rustc's): tallies hash a few short ids per play, and SipHash
/// was a visible share of ingest. The ids come from batches signed by registered screens.
type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

#[derive(Debug, Default, Clone, Copy)]
struct FxHasher {
    hash: u64,
}

impl FxHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }
    fn write_i64(&mut self, n: i64) {
        self.add(n as u64);
    }
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
    fn finish(&self) -> u64 {
        self.hash
    }
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
    use playlists::wire::PlayRecord;

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
