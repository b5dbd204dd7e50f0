//! Outbox bookkeeping, pure: where the sequence numbers and the batch chain stand, what a
//! new batch would hold, and when the uploader should form one. The store (`mod.rs`)
//! rebuilds a [`Book`] at open and updates it after every commit.
//!
//! Invariants the store keeps, which make these few numbers enough:
//! - records are numbered 1, 2, 3… and finalised in order; only the newest may be in
//!   progress;
//! - at most one batch exists (the one in flight), and it holds the oldest records still
//!   in the outbox; so batched records are a prefix of the outbox, unbatched a suffix.

use std::time::Duration;

use playlists::wire::pop::genesis_hash;

/// Form a batch once this many records are ready…
pub const BATCH_AT_RECORDS: u64 = 500;
/// …or once the oldest ready record has waited this long (real time).
pub const BATCH_AFTER: Duration = Duration::from_secs(1);

/// The batch in flight: sent or to be sent, not yet acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    pub batch_seq: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Hash of its payload, which the ack must name.
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Book {
    /// The seq the next play gets.
    pub next_seq: u64,
    /// The batch_seq the next batch gets.
    pub next_batch_seq: u64,
    /// Hash of the last batch formed (genesis before the first).
    pub chain_head: String,
    /// The seq of the play in progress, if one is.
    pub in_progress: Option<u64>,
    /// The first seq not in a batch.
    pub first_unbatched: u64,
    /// Records in the outbox (any state).
    pub rows: u64,
    pub in_flight: Option<InFlight>,
}

impl Default for Book {
    fn default() -> Book {
        Book {
            next_seq: 1,
            next_batch_seq: 1,
            chain_head: genesis_hash(),
            in_progress: None,
            first_unbatched: 1,
            rows: 0,
            in_flight: None,
        }
    }
}

impl Book {
    /// Finished records not yet in a batch.
    pub fn ready(&self) -> u64 {
        self.next_seq - self.first_unbatched - u64::from(self.in_progress.is_some())
    }

    /// Finished records not yet acknowledged (the status' `outbox_backlog`).
    pub fn backlog(&self) -> u64 {
        self.rows - u64::from(self.in_progress.is_some())
    }

    /// The last seq written, 0 before the first play.
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// The seq range of the next batch, at most `max` records; `None` while a batch is in
    /// flight or nothing is ready.
    pub fn next_batch(&self, max: u64) -> Option<(u64, u64)> {
        let ready = self.ready();
        if self.in_flight.is_some() || ready == 0 || max == 0 {
            return None;
        }
        Some((
            self.first_unbatched,
            self.first_unbatched + ready.min(max) - 1,
        ))
    }

    /// After a play starts (`in_progress`) or a finished record is written.
    pub fn started(&mut self, seq: u64, in_progress: bool) {
        debug_assert_eq!(seq, self.next_seq);
        self.next_seq = seq + 1;
        self.rows += 1;
        if in_progress {
            self.in_progress = Some(seq);
        }
    }

    pub fn completed(&mut self, seq: u64) {
        if self.in_progress == Some(seq) {
            self.in_progress = None;
        }
    }

    pub fn batched(&mut self, batch: InFlight) {
        self.first_unbatched = batch.last_seq + 1;
        self.next_batch_seq = batch.batch_seq + 1;
        self.chain_head = batch.hash.clone();
        self.in_flight = Some(batch);
    }

    /// Whether an ack for (`batch_seq`, `hash`) names the batch in flight.
    pub fn matches_ack(&self, batch_seq: u64, hash: &str) -> bool {
        self.in_flight
            .as_ref()
            .is_some_and(|b| b.batch_seq == batch_seq && b.hash == hash)
    }

    pub fn acked(&mut self) {
        if let Some(b) = self.in_flight.take() {
            self.rows -= (b.last_seq - b.first_seq + 1).min(self.rows);
        }
    }
}

/// Whether the uploader should form a batch now.
pub fn should_form_batch(ready: u64, oldest_waited: Option<Duration>, in_flight: bool) -> bool {
    !in_flight
        && ready > 0
        && (ready >= BATCH_AT_RECORDS || oldest_waited.is_some_and(|w| w >= BATCH_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ready: u64, waited_ms: Option<u64>, in_flight: bool, expect: bool) {
        let waited = waited_ms.map(Duration::from_millis);
        assert_eq!(
            should_form_batch(ready, waited, in_flight),
            expect,
            "{ready} {waited_ms:?} {in_flight}"
        );
    }

    #[test]
    fn batching_decision() {
        check(0, Some(5_000), false, false);
        check(1, Some(999), false, false);
        check(1, Some(1_000), false, true);
        check(499, None, false, false);
        check(500, None, false, true);
        check(500, Some(9_000), true, false);
    }

    #[test]
    fn bookkeeping() {
        let mut b = Book::default();
        assert_eq!((b.ready(), b.backlog(), b.last_seq()), (0, 0, 0));
        b.started(1, true);
        assert_eq!((b.ready(), b.backlog(), b.next_batch(10)), (0, 0, None));
        b.completed(1);
        b.started(2, true);
        assert_eq!(
            (b.ready(), b.backlog(), b.next_batch(10)),
            (1, 1, Some((1, 1)))
        );
        b.completed(2);
        b.started(3, false);
        b.started(4, true);
        assert_eq!((b.ready(), b.backlog()), (3, 3));
        assert_eq!(b.next_batch(2), Some((1, 2)));
        b.batched(InFlight {
            batch_seq: 1,
            first_seq: 1,
            last_seq: 2,
            hash: "h1".into(),
        });
        assert_eq!((b.ready(), b.backlog(), b.next_batch(10)), (1, 3, None));
        assert!(!b.matches_ack(1, "h2"));
        assert!(!b.matches_ack(2, "h1"));
        assert!(b.matches_ack(1, "h1"));
        b.acked();
        assert_eq!(
            (b.ready(), b.backlog(), b.rows, b.next_batch(10)),
            (1, 1, 2, Some((3, 3)))
        );
        assert_eq!((b.next_batch_seq, b.chain_head.as_str()), (2, "h1"));
    }
}
