//! Which cached creatives to drop: pure choices over the meta entries.

use std::collections::HashSet;

/// One cached creative, as eviction sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub sha256: String,
    pub bytes: u64,
    /// Unix seconds when it was stored.
    pub added: u64,
}

/// The entries to drop so that the cache fits `max_bytes`: never one in `needed` (planned
/// within the prefetch horizon), even if those alone exceed the limit; first those not in
/// `referenced` (gone from the schedule), then the rest, oldest first (ties by hash).
pub fn choose_evictions(
    entries: &[Entry],
    needed: &HashSet<String>,
    referenced: &HashSet<String>,
    max_bytes: u64,
) -> Vec<String> {
    let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
    let mut candidates: Vec<&Entry> = entries
        .iter()
        .filter(|e| !needed.contains(&e.sha256))
        .collect();
    candidates.sort_by_key(|e| (referenced.contains(&e.sha256), e.added, &e.sha256));
    let mut out = Vec::new();
    for e in candidates {
        if total <= max_bytes {
            break;
        }
        total -= e.bytes;
        out.push(e.sha256.clone());
    }
    out
}

/// Every entry not in `referenced` (the `purge` command).
pub fn choose_purge(entries: &[Entry], referenced: &HashSet<String>) -> Vec<String> {
    entries
        .iter()
        .filter(|e| !referenced.contains(&e.sha256))
        .map(|e| e.sha256.clone())
        .collect()
}
