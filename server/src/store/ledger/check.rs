//! What both ledger backends do to an incoming proof-of-play batch before it touches
//! storage: size, key and signature ([`open`]: the first of the screen's keys, newest
//! first, that verifies it), then shape, screen, epoch and seqs ([`check`]); and how a
//! batch relates to its epoch's chain head ([`chain_anomaly`], [`moves_head`]). Pure: the
//! stores decide, inside their transactions, what is a duplicate, a conflict or new.

use ed25519_dalek::VerifyingKey;

use playlists::wire::pop::{batch_hash, genesis_hash, BATCH_KIND, MAX_BATCH_RECORDS};
use playlists::wire::signed::open_envelope;
use playlists::wire::{MAX_POP_BYTES, VERSION};

use super::pack::pack;
use super::tally::Tally;
use super::view::BatchView;
use super::{epoch_name, hash_bytes, HashBytes, Incoming, KeysOf, Outcome};

/// Most threads one ingest call checks batches on.
const MAX_CHECK_THREADS: usize = 8;

/// A batch whose envelope opened with the screen's key: the signed payload, its hash and
/// the envelope as it is to be stored.
pub(crate) struct Opened {
    pub payload: String,
    pub hash: HashBytes,
    pub hash_hex: String,
    pub stored: Vec<u8>,
}

/// A batch that passed every check.
pub(crate) struct Checked<'a> {
    pub stored: &'a [u8],
    pub hash: &'a HashBytes,
    pub hash_hex: &'a str,
    pub batch: BatchView<'a>,
}

/// Each of `incoming` opened with its screen's keys (see [`open`]), on a few threads.
pub(crate) fn open_all(incoming: &[Incoming], key_of: KeysOf<'_>) -> Vec<Result<Opened, String>> {
    let keys: Vec<Vec<VerifyingKey>> = incoming.iter().map(|i| key_of(&i.topic_screen)).collect();
    par_map(incoming.len(), |n| open(&incoming[n], &keys[n]))
}

/// Each of `incoming` that opened, checked (see [`check`]); the reason of those that fail.
pub(crate) fn check_all<'a>(
    incoming: &[Incoming],
    opened: &'a [Result<Opened, String>],
) -> Vec<Result<Checked<'a>, String>> {
    par_map(incoming.len(), |n| match &opened[n] {
        Ok(o) => check(&incoming[n], o),
        Err(reason) => Err(reason.clone()),
    })
}

/// The rollup counts of every record of each checked batch (empty for the others), used
/// when all of a batch's records are stored.
pub(crate) fn tally_all<'a>(checked: &'a [Result<Checked<'_>, String>]) -> Vec<Tally<'a>> {
    par_map(checked.len(), |n| match &checked[n] {
        Ok(c) => Tally::of(&c.batch.records),
        Err(_) => Tally::default(),
    })
}

/// `f(0..n)`, in order, on up to [`MAX_CHECK_THREADS`] threads.
fn par_map<R: Send>(n: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |p| p.get())
        .min(MAX_CHECK_THREADS)
        .min(n);
    if threads <= 1 {
        return (0..n).map(f).collect();
    }
    let per = n.div_ceil(threads);
    let threads = n.div_ceil(per);
    let f = &f;
    std::thread::scope(|s| {
        let others: Vec<std::thread::ScopedJoinHandle<'_, Vec<R>>> = (1..threads)
            .map(|t| s.spawn(move || (t * per..n.min((t + 1) * per)).map(f).collect()))
            .collect();
        let mut out: Vec<R> = (0..per).map(f).collect();
        for h in others {
            out.extend(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
        out
    })
}

/// Batch `b` refused for conflicting with stored records (`reason`): logged, neither stored
/// nor acknowledged.
pub(crate) fn refused(b: &BatchView<'_>, reason: String) -> Outcome {
    tracing::warn!(
        screen = &*b.screen_id,
        epoch = &*b.epoch,
        batch_seq = b.batch_seq,
        reason,
        "proof-of-play batch refused: not stored, not acknowledged"
    );
    Outcome::Rejected {
        screen_id: b.screen_id.to_string(),
        reason,
    }
}

pub(crate) fn rejected(i: &Incoming, reason: String) -> Outcome {
    Outcome::Rejected {
        screen_id: i.topic_screen.clone(),
        reason,
    }
}

/// Size, key and signature: the first of `keys` (newest first) that verifies it. The error
/// is the reason, in words (the current key's).
fn open(i: &Incoming, keys: &[VerifyingKey]) -> Result<Opened, String> {
    if i.raw.len() > MAX_POP_BYTES {
        return Err(format!(
            "batch of {} bytes exceeds the {MAX_POP_BYTES}-byte limit",
            i.raw.len()
        ));
    }
    let (current, older) = keys
        .split_first()
        .ok_or_else(|| format!("unknown screen {:?}", i.topic_screen))?;
    let env = match open_envelope(&i.raw, BATCH_KIND, current, MAX_POP_BYTES) {
        Ok(env) => env,
        Err(e) => older
            .iter()
            .find_map(|k| open_envelope(&i.raw, BATCH_KIND, k, MAX_POP_BYTES).ok())
            .ok_or_else(|| e.to_string())?,
    };
    let hash_hex = batch_hash(&env.payload).to_string();
    let hash = hash_bytes(&hash_hex).expect("a SHA-256 is 64 hex digits");
    Ok(Opened {
        payload: env.payload,
        hash,
        hash_hex,
        stored: pack(&i.raw),
    })
}

/// Everything else that can be checked without the database.
/// The highest batch or record number stored (PostgreSQL's BIGINT; an agent counts from 1).
pub(crate) const MAX_NUMBER: u64 = i64::MAX as u64;

fn check<'a>(i: &Incoming, o: &'a Opened) -> Result<Checked<'a>, String> {
    let batch: BatchView<'_> = serde_json::from_str(&o.payload)
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
    // Both backends store what PostgreSQL's BIGINT holds, so a ledger copies either way.
    let max = MAX_NUMBER;
    if batch.batch_seq > max || batch.records.iter().any(|r| r.seq > max) {
        return Err(format!(
            "batch or record numbers above {max} are not stored"
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
        if r.epoch != batch.epoch {
            return Err(format!(
                "record seq {} is of {}, not of the batch's {}",
                r.seq,
                epoch_name(&r.epoch),
                epoch_name(&batch.epoch)
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
    Ok(Checked {
        stored: &o.stored,
        hash: &o.hash,
        hash_hex: &o.hash_hex,
        batch,
    })
}

/// An epoch's chain head: its latest batch and the highest seq held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    pub batch_seq: u64,
    pub hash: HashBytes,
    /// No record with a higher seq is stored (0 before the first record).
    pub last_seq: u64,
}

/// Why batch `batch_seq` naming `prev_hash` does not extend `head`, if it does not.
pub(crate) fn chain_anomaly(
    head: Option<&Head>,
    batch_seq: u64,
    prev_hash: &str,
) -> Option<String> {
    let (want_seq, want_prev) = match head {
        None => (1, genesis_hash()),
        Some(h) => (h.batch_seq + 1, hex::encode(h.hash)),
    };
    if batch_seq != want_seq {
        Some(format!(
            "batch {batch_seq} arrived where batch {want_seq} was expected"
        ))
    } else if prev_hash != want_prev {
        Some(format!(
            "batch {batch_seq} names previous hash {prev_hash} but the previous batch hashes to {want_prev}"
        ))
    } else {
        None
    }
}

/// The chain's head once batch `b` (hashing to `hash`) is stored on `head`, with
/// `last_seq` the highest seq then held; logs the seqs the batch skipped (`gaps`).
pub(crate) fn head_after(
    head: Option<&Head>,
    b: &BatchView<'_>,
    hash: &HashBytes,
    last_seq: u64,
    gaps: &[(u64, u64)],
) -> Head {
    if !gaps.is_empty() {
        tracing::warn!(
            screen = &*b.screen_id,
            epoch = &*b.epoch,
            batch_seq = b.batch_seq,
            ?gaps,
            "proof-of-play seqs skipped"
        );
    }
    let (batch_seq, hash) = match head {
        Some(h) if !moves_head(Some(h), b.batch_seq) => (h.batch_seq, h.hash),
        _ => (b.batch_seq, *hash),
    };
    Head {
        batch_seq,
        hash,
        last_seq,
    }
}

/// Whether batch `batch_seq` becomes its epoch's head: it is further along.
pub(crate) fn moves_head(head: Option<&Head>, batch_seq: u64) -> bool {
    head.is_none_or(|h| batch_seq > h.batch_seq)
}

/// Whether batch `b` is from before its chain's archive point (`archived`, the chain's
/// marker) with every record archived: it was stored before and the archive holds it, so
/// it is acknowledged again (a duplicate) and not stored.
pub(crate) fn archived_before(archived: Option<&super::audit::Marker>, b: &BatchView<'_>) -> bool {
    let Some(m) = archived else { return false };
    let before = b.batch_seq <= m.batch_seq && b.records.iter().all(|r| r.seq <= m.last_seq);
    if before {
        tracing::info!(
            screen = &*b.screen_id,
            epoch = &*b.epoch,
            batch_seq = b.batch_seq,
            "proof-of-play batch from before the archive point: acknowledged, not stored"
        );
    }
    before
}
