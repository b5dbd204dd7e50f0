//! Ingest: checks each incoming proof-of-play batch (size, shape, screen, signature, seqs),
//! then stores the good ones in one durable write transaction: the raw envelope, each new
//! record, the screen's chain head, gaps, chain anomalies and the rollups.
//!
//! Checking is pure and happens before the write transaction opens. A batch that does not
//! follow the screen's chain is still stored (its signature proves where it came from) and
//! the anomaly is kept for the audit: an agent must never wedge on a batch we refuse to ack.
//! Acknowledging is the caller's, after `ingest` returns.

use redb::{Database, ReadableTable, Table, WriteTransaction};

use playlists::wire::pop::{batch_hash, genesis_hash, AckedBatch, BATCH_KIND, MAX_BATCH_RECORDS};
use playlists::wire::signed::open_envelope;
use playlists::wire::{PopBatch, MAX_POP_BYTES, VERSION};

use super::rollup::Tally;
use super::{
    hash_bytes, HashBytes, Incoming, LedgerError, Outcome, ANOMALIES, BATCHES, GAPS, HEADS, RECORDS,
};

/// A batch that passed every check.
struct Checked<'a> {
    raw: &'a [u8],
    hash: HashBytes,
    hash_hex: String,
    batch: PopBatch,
}

pub(super) fn ingest(
    db: &Database,
    incoming: &[Incoming],
    key_of: &dyn Fn(&str) -> Option<ed25519_dalek::VerifyingKey>,
) -> Result<Vec<Outcome>, LedgerError> {
    let checked: Vec<Result<Checked<'_>, String>> =
        incoming.iter().map(|i| check(i, key_of)).collect();
    let mut outcomes = Vec::with_capacity(incoming.len());
    if checked.iter().all(Result::is_err) {
        for (i, c) in incoming.iter().zip(checked) {
            outcomes.push(rejected(i, c.err().unwrap_or_default()));
        }
        return Ok(outcomes);
    }
    let tx = db.begin_write()?;
    {
        let mut w = Writer::open(&tx)?;
        let mut tally = Tally::default();
        for (i, c) in incoming.iter().zip(&checked) {
            outcomes.push(match c {
                Ok(c) => w.store(c, &mut tally)?,
                Err(reason) => rejected(i, reason.clone()),
            });
        }
        tally.apply(&tx)?;
    }
    tx.commit()?;
    Ok(outcomes)
}

fn rejected(i: &Incoming, reason: String) -> Outcome {
    Outcome::Rejected {
        screen_id: i.topic_screen.clone(),
        reason,
    }
}

/// Everything that can be checked without the database. The error is the reason, in words.
fn check<'a>(
    i: &'a Incoming,
    key_of: &dyn Fn(&str) -> Option<ed25519_dalek::VerifyingKey>,
) -> Result<Checked<'a>, String> {
    if i.raw.len() > MAX_POP_BYTES {
        return Err(format!(
            "batch of {} bytes exceeds the {MAX_POP_BYTES}-byte limit",
            i.raw.len()
        ));
    }
    let key =
        key_of(&i.topic_screen).ok_or_else(|| format!("unknown screen {:?}", i.topic_screen))?;
    let env = open_envelope(&i.raw, BATCH_KIND, &key, MAX_POP_BYTES).map_err(|e| e.to_string())?;
    let batch: PopBatch = serde_json::from_str(&env.payload)
        .map_err(|e| format!("malformed pop-batch payload: {e}"))?;
    if batch.v != VERSION {
        return Err(format!("unsupported pop-batch version {}", batch.v));
    }
    if batch.screen_id != i.topic_screen {
        return Err(format!(
            "batch of screen {:?} arrived on the topic of screen {:?}",
            batch.screen_id, i.topic_screen
        ));
    }
    if batch.records.is_empty() {
        return Err("empty batch".to_owned());
    }
    if batch.records.len() > MAX_BATCH_RECORDS {
        return Err(format!(
            "batch of {} records exceeds the {MAX_BATCH_RECORDS}-record limit",
            batch.records.len()
        ));
    }
    let mut prev: Option<u64> = None;
    for r in &batch.records {
        if r.screen_id != batch.screen_id {
            return Err(format!(
                "record seq {} belongs to screen {:?}, not {:?}",
                r.seq, r.screen_id, batch.screen_id
            ));
        }
        if let Some(p) = prev.filter(|p| r.seq <= *p) {
            return Err(format!(
                "record seqs must strictly increase: {} follows {p}",
                r.seq
            ));
        }
        prev = Some(r.seq);
    }
    let hash_hex = batch_hash(&env.payload).to_string();
    let hash = hash_bytes(&hash_hex).expect("a SHA-256 is 64 hex digits");
    Ok(Checked {
        raw: &i.raw,
        hash,
        hash_hex,
        batch,
    })
}

/// A screen's chain head: its latest batch and the highest seq held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Head {
    pub batch_seq: u64,
    pub hash: HashBytes,
    /// No record with a higher seq is stored (0 before the first record).
    pub last_seq: u64,
}

/// Why `batch` does not extend `head`, if it does not.
fn chain_anomaly(head: Option<&Head>, batch: &PopBatch) -> Option<String> {
    let (want_seq, want_prev) = match head {
        None => (1, genesis_hash()),
        Some(h) => (h.batch_seq + 1, hex::encode(h.hash)),
    };
    if batch.batch_seq != want_seq {
        Some(format!(
            "batch {} arrived where batch {want_seq} was expected",
            batch.batch_seq
        ))
    } else if batch.prev_hash != want_prev {
        Some(format!(
            "batch {} names previous hash {} but the previous batch hashes to {want_prev}",
            batch.batch_seq, batch.prev_hash
        ))
    } else {
        None
    }
}

/// Whether `batch` becomes the head: it is further along, or it starts a new chain (an
/// agent that lost its state starts again from batch 1).
fn moves_head(head: Option<&Head>, batch: &PopBatch) -> bool {
    head.is_none_or(|h| {
        batch.batch_seq > h.batch_seq || (batch.batch_seq == 1 && batch.prev_hash == genesis_hash())
    })
}

/// The ledger tables of one write transaction.
struct Writer<'tx> {
    batches: Table<'tx, (&'static str, u64, &'static HashBytes), &'static [u8]>,
    records: Table<'tx, (&'static str, u64), (u64, &'static HashBytes, &'static [u8])>,
    heads: Table<'tx, &'static str, (u64, &'static HashBytes, u64)>,
    gaps: Table<'tx, (&'static str, u64), u64>,
    anomalies: Table<'tx, (&'static str, u64, &'static HashBytes), &'static str>,
}

impl<'tx> Writer<'tx> {
    fn open(tx: &'tx WriteTransaction) -> Result<Writer<'tx>, LedgerError> {
        Ok(Writer {
            batches: tx.open_table(BATCHES)?,
            records: tx.open_table(RECORDS)?,
            heads: tx.open_table(HEADS)?,
            gaps: tx.open_table(GAPS)?,
            anomalies: tx.open_table(ANOMALIES)?,
        })
    }

    fn head(&self, screen: &str) -> Result<Option<Head>, LedgerError> {
        Ok(self.heads.get(screen)?.map(|g| {
            let (batch_seq, hash, last_seq) = g.value();
            Head {
                batch_seq,
                hash: *hash,
                last_seq,
            }
        }))
    }

    fn store<'a>(
        &mut self,
        c: &'a Checked<'_>,
        tally: &mut Tally<'a>,
    ) -> Result<Outcome, LedgerError> {
        let b = &c.batch;
        let screen = b.screen_id.as_str();
        let ack = AckedBatch {
            batch_seq: b.batch_seq,
            hash: c.hash_hex.clone(),
        };
        let batch_key = (screen, b.batch_seq, &c.hash);
        if self.batches.get(batch_key)?.is_some() {
            return Ok(Outcome::Duplicate {
                screen_id: screen.to_owned(),
                ack,
            });
        }
        let head = self.head(screen)?;
        if let Some(detail) = chain_anomaly(head.as_ref(), b) {
            tracing::warn!(
                screen,
                batch_seq = b.batch_seq,
                detail,
                "proof-of-play chain anomaly; stored anyway"
            );
            self.anomalies.insert(batch_key, detail.as_str())?;
        }
        self.batches.insert(batch_key, c.raw)?;

        let mut last_seq = head.map_or(0, |h| h.last_seq);
        let mut stored = 0;
        let mut gaps = Vec::new();
        for r in &b.records {
            let fresh = r.seq > last_seq;
            // Only a seq at or below the head can already be held.
            if !fresh && self.records.get((screen, r.seq))?.is_some() {
                continue;
            }
            if fresh {
                if r.seq > last_seq + 1 {
                    gaps.push((last_seq + 1, r.seq - 1));
                    self.gaps.insert((screen, last_seq + 1), r.seq - 1)?;
                }
                last_seq = r.seq;
            }
            let json = serde_json::to_vec(r).expect("a play record serialises");
            self.records
                .insert((screen, r.seq), (b.batch_seq, &c.hash, json.as_slice()))?;
            tally.add(r);
            stored += 1;
        }
        if !gaps.is_empty() {
            tracing::warn!(
                screen,
                batch_seq = b.batch_seq,
                ?gaps,
                "proof-of-play seqs skipped"
            );
        }
        let (batch_seq, hash) = match head {
            Some(h) if !moves_head(Some(&h), b) => (h.batch_seq, h.hash),
            _ => (b.batch_seq, c.hash),
        };
        self.heads.insert(screen, (batch_seq, &hash, last_seq))?;
        Ok(Outcome::Stored {
            screen_id: screen.to_owned(),
            ack,
            records: stored,
            gaps,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{key_ring, ledger, Agent};
    use super::super::{Incoming, Outcome, ANOMALIES, GAPS};
    use playlists::wire::pop::{PopBatch, BATCH_KIND};
    use playlists::wire::{Keypair, PlayStatus, MAX_POP_BYTES};
    use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

    fn incoming(screen: &str, raw: &[u8]) -> Incoming {
        Incoming {
            topic_screen: screen.to_owned(),
            raw: raw.to_vec(),
        }
    }

    /// Ingests one message from `a`'s topic and expects a rejection containing `reason`.
    fn check_rejected(a: &Agent, raw: &[u8], reason: &str) {
        let (_dir, l) = ledger();
        let out = l
            .ingest(&[incoming(&a.screen, raw)], &key_ring(&[a]))
            .unwrap();
        match &out[..] {
            [Outcome::Rejected {
                screen_id,
                reason: got,
            }] => {
                assert_eq!(screen_id, &a.screen);
                assert!(got.contains(reason), "reason {got:?} lacks {reason:?}");
            }
            other => panic!("expected a rejection for {reason:?}, got {other:?}"),
        }
        assert_eq!(l.counts().unwrap().records, 0);
    }

    #[test]
    fn stores_then_reacks_a_duplicate() {
        let (_dir, l) = ledger();
        let mut a = Agent::new(1, "s1", "v1");
        let recs = a.plays(3, "c1", "k1");
        let raw = a.batch(recs);
        let keys = key_ring(&[&a]);
        let first = l.ingest(&[incoming("s1", &raw)], &keys).unwrap();
        let Outcome::Stored {
            screen_id,
            ack,
            records,
            gaps,
        } = &first[0]
        else {
            panic!("{first:?}")
        };
        assert_eq!(
            (screen_id.as_str(), ack.batch_seq, *records, gaps.len()),
            ("s1", 1, 3, 0)
        );
        let again = l
            .ingest(&[incoming("s1", &raw), incoming("s1", &raw)], &keys)
            .unwrap();
        assert_eq!(
            again,
            vec![
                Outcome::Duplicate {
                    screen_id: "s1".into(),
                    ack: ack.clone()
                };
                2
            ]
        );
        let counts = l.counts().unwrap();
        assert_eq!(
            (counts.records, counts.batches, counts.last_seq["s1"]),
            (3, 1, 3)
        );
    }

    #[test]
    fn same_batch_twice_in_one_call_counts_once() {
        let (_dir, l) = ledger();
        let mut a = Agent::new(1, "s1", "v1");
        let recs = a.plays(2, "c1", "k1");
        let raw = a.batch(recs);
        let out = l
            .ingest(
                &[incoming("s1", &raw), incoming("s1", &raw)],
                &key_ring(&[&a]),
            )
            .unwrap();
        assert!(matches!(out[0], Outcome::Stored { records: 2, .. }));
        assert!(matches!(out[1], Outcome::Duplicate { .. }));
        assert_eq!(l.counts().unwrap().records, 2);
        let rows = l
            .delivered(&super::super::testkit::query(
                super::super::Dimension::Screen,
            ))
            .unwrap();
        assert_eq!(rows[0].complete, 2);
    }

    #[test]
    fn overlapping_seqs_are_skipped() {
        let (_dir, l) = ledger();
        let mut a = Agent::new(1, "s1", "v1");
        let recs = a.plays(3, "c1", "k1"); // seqs 1..=3
        let first = a.batch(recs.clone());
        let mut overlap = recs[1..].to_vec(); // seqs 2, 3 again, then 4
        overlap.extend(a.plays(1, "c1", "k1"));
        let second = a.batch(overlap);
        let out = l
            .ingest(
                &[incoming("s1", &first), incoming("s1", &second)],
                &key_ring(&[&a]),
            )
            .unwrap();
        assert!(
            matches!(out[1], Outcome::Stored { records: 1, .. }),
            "{out:?}"
        );
        let counts = l.counts().unwrap();
        assert_eq!(
            (counts.records, counts.batches, counts.last_seq["s1"]),
            (4, 2, 4)
        );
        assert!(l.audit(&key_ring(&[&a])).unwrap().problems.is_empty());
    }

    #[test]
    fn rejections() {
        let mut a = Agent::new(1, "s1", "v1");
        let recs = a.plays(2, "c1", "k1");
        let good = a.batch_unchained(recs.clone());

        // Signed with another screen's key.
        let forger = Agent::new(2, "s1", "v1");
        check_rejected(&a, &forger.seal(&a.payload(recs.clone())), "bad signature");
        // Screen s2 signs a batch claiming to be s1, on its own topic.
        let mut s2 = Agent::new(2, "s2", "v1");
        let (_dir, l) = ledger();
        let out = l
            .ingest(
                &[incoming("s2", &s2.seal(&a.payload(recs.clone())))],
                &key_ring(&[&a, &s2]),
            )
            .unwrap();
        assert!(
            matches!(&out[0], Outcome::Rejected { reason, .. } if reason.contains("arrived on the topic of screen \"s2\"")),
            "{out:?}"
        );
        // A record of another screen inside s2's own batch.
        let own = s2.plays(1, "c1", "k1");
        let mut p = s2.payload(own);
        p.records.push(recs[1].clone());
        let out = l
            .ingest(&[incoming("s2", &s2.seal(&p))], &key_ring(&[&s2]))
            .unwrap();
        assert!(
            matches!(&out[0], Outcome::Rejected { reason, .. } if reason.contains("belongs to screen \"s1\"")),
            "{out:?}"
        );

        check_rejected(
            &a,
            &vec![b' '; MAX_POP_BYTES + 1],
            "exceeds the 1048576-byte limit",
        );
        check_rejected(&a, b"{not json", "malformed");
        let (_dir, l) = ledger();
        let out = l
            .ingest(&[incoming("s9", &good)], &key_ring(&[&a]))
            .unwrap();
        assert!(
            matches!(&out[0], Outcome::Rejected { reason, .. } if reason == "unknown screen \"s9\""),
            "{out:?}"
        );

        check_rejected(&a, &a.seal(&a.payload(vec![])), "empty batch");
        let mut many = Agent::new(1, "s1", "v1");
        let too_many = many.plays(1001, "c1", "k1");
        check_rejected(
            &a,
            &a.seal(&a.payload(too_many)),
            "1001 records exceeds the 1000-record limit",
        );
        check_rejected(
            &a,
            &a.seal(&a.payload(vec![recs[1].clone(), recs[0].clone()])),
            "strictly increase: 1 follows 2",
        );
        check_rejected(
            &a,
            &a.seal(&PopBatch {
                v: 2,
                ..a.payload(recs.clone())
            }),
            "unsupported pop-batch version 2",
        );
        let other_kind = Keypair::from_secret([1; 32]).seal("pop-ack", &a.payload(recs));
        check_rejected(&a, &other_kind, "expected a pop-batch message");
        assert_eq!(BATCH_KIND, "pop-batch");
    }

    #[test]
    fn gaps_are_recorded() {
        let (_dir, l) = ledger();
        let mut a = Agent::new(1, "s1", "v1");
        let first = a.plays(2, "c1", "k1"); // 1, 2
        let _lost = a.plays(3, "c1", "k1"); // 3..=5 never sent
        let mut next = a.plays(1, "c1", "k1"); // 6
        let _lost = a.plays(1, "c1", "k1"); // 7
        next.extend(a.plays(1, "c1", "k1")); // 8
        let raws = [a.batch(first), a.batch(next)];
        let out = l
            .ingest(
                &[incoming("s1", &raws[0]), incoming("s1", &raws[1])],
                &key_ring(&[&a]),
            )
            .unwrap();
        assert!(
            matches!(&out[1], Outcome::Stored { gaps, records: 2, .. } if gaps == &[(3, 5), (7, 7)]),
            "{out:?}"
        );
        let tx = l.db.begin_read().unwrap();
        assert_eq!(tx.open_table(GAPS).unwrap().len().unwrap(), 2);
        assert_eq!(tx.open_table(ANOMALIES).unwrap().len().unwrap(), 0);
    }

    #[test]
    fn out_of_chain_batches_are_stored_and_noted() {
        let (_dir, l) = ledger();
        let mut a = Agent::new(1, "s1", "v1");
        let b1 = a.plays(1, "c1", "k1");
        let b1 = a.batch(b1);
        let b2 = a.plays(1, "c1", "k1");
        let _b2 = a.batch(b2); // never arrives
        let b3 = a.plays(1, "c1", "k1");
        let b3 = a.batch(b3);
        let out = l
            .ingest(
                &[incoming("s1", &b1), incoming("s1", &b3)],
                &key_ring(&[&a]),
            )
            .unwrap();
        assert!(
            out.iter().all(|o| matches!(o, Outcome::Stored { .. })),
            "{out:?}"
        );
        let tx = l.db.begin_read().unwrap();
        let anomalies = tx.open_table(ANOMALIES).unwrap();
        let (_, detail) = anomalies.first().unwrap().unwrap();
        assert_eq!(detail.value(), "batch 3 arrived where batch 2 was expected");
        assert_eq!(l.counts().unwrap().last_batch_seq["s1"], 3);
    }

    #[test]
    fn statuses_reach_the_rollups() {
        let (_dir, l) = ledger();
        let mut a = Agent::new(1, "s1", "v1");
        let mut recs = a.plays(3, "c1", "k1");
        recs[1].status = PlayStatus::Partial;
        recs[2].status = PlayStatus::Failed;
        let raw = a.batch(recs);
        l.ingest(&[incoming("s1", &raw)], &key_ring(&[&a])).unwrap();
        let rows = l
            .delivered(&super::super::testkit::query(
                super::super::Dimension::Campaign,
            ))
            .unwrap();
        assert_eq!(
            (rows[0].complete, rows[0].partial, rows[0].failed),
            (1, 1, 1)
        );
    }
}
