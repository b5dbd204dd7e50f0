//! Counting plays into rollup rows, for both ledger backends: plays per hour (UTC, of
//! `slot_start`) for each venue, screen, campaign and creative, by status.
//!
//! A row's key is `(dimension tag, venue filter, screen filter, key, hour)` where `hour` is
//! the unix hour and each filter is `None` (any) or `Some(id)`. Every play adds one to the
//! four filter combinations of each of the four dimensions, so "per campaign at venue V"
//! is one range of rows. Ingest tallies in memory first and each store writes each distinct
//! row once per transaction ([`Tally::into_rows`]); the tables and queries are the stores'.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use chrono::{DateTime, Utc};

use playlists::wire::PlayStatus;

use super::view::RecordView;
use super::Dimension;

/// `(dimension tag, venue filter, screen filter, key, unix hour)`.
pub(crate) type RowKey<'a> = (u8, Option<&'a str>, Option<&'a str>, &'a str, i64);

/// The unix hour of an instant.
pub(crate) fn hour_of(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(3600)
}

/// The first hour whose start is at or after `t`.
pub(crate) fn first_hour_from(t: DateTime<Utc>) -> i64 {
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
pub(crate) struct Tally<'a> {
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

    /// Every rollup row the tally adds to, with the counts to add (complete, partial,
    /// failed), in key order: what a store adds to its rollups inside the ingest
    /// transaction, each row once.
    pub fn into_rows(mut self) -> Vec<(RowKey<'a>, [u64; 3])> {
        self.expand();
        let mut rows: Vec<(RowKey<'a>, [u64; 3])> = self.rows.into_iter().collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        rows
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
