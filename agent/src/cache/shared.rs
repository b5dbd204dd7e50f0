//! One cache shared by many agents in one process (the fleet simulator, `fleet.rs`).
//!
//! The cache is content-addressed (SHA-256 keys, bytes checked when stored and read), so
//! what one agent stored is exactly what another would have downloaded: sharing the
//! entries is safe. Three things are not, and a shared cache changes them:
//! - two agents writing the same creative at once would clobber each other's chunks (a
//!   writer starts by removing the entry): downloads take a per-creative turn
//!   ([`Cache::download_turn`]), and the one that waited finds the creative stored;
//! - eviction and the `purge` command choose by one agent's schedule, and would drop what
//!   other agents need: on a shared cache they evict nothing (its owner sizes it);
//! - [`Cache::relieve`] reopens sled under every agent's feet: it does nothing here.
//!
//! A lone agent's cache is never shared and behaves as before.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::{Cache, CacheError};

/// Per-creative download turns.
#[derive(Default)]
pub(super) struct Turns(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

/// Held while one agent downloads one creative into a shared cache.
#[derive(Debug)]
pub struct DownloadTurn {
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Cache {
    /// Opens `dir/cache.sled` as a cache shared by many agents (see the module notes).
    pub fn open_shared(
        dir: &Path,
        max_bytes: u64,
        now_unix: i64,
    ) -> Result<(Cache, Option<String>), CacheError> {
        let (mut cache, note) = Cache::open(dir, max_bytes, now_unix)?;
        cache.shared = Some(Turns::default());
        Ok((cache, note))
    }

    /// Whether many agents share this cache.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// On a shared cache, waits for this agent's turn to download `sha256` (another agent
    /// may be storing it); `None` at once on an agent's own cache.
    pub async fn download_turn(&self, sha256: &str) -> Option<DownloadTurn> {
        let turns = self.shared.as_ref()?;
        let lock = {
            let mut map = turns.0.lock().unwrap_or_else(|e| e.into_inner());
            // Forget turns nobody holds or waits for, so the map stays small.
            map.retain(|_, l| Arc::strong_count(l) > 1);
            map.entry(sha256.to_owned()).or_default().clone()
        };
        Some(DownloadTurn {
            _guard: lock.lock_owned().await,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_turn_waits_for_the_agent_downloading_the_same_creative() {
        let dir = tempfile::tempdir().unwrap();
        let (own, _) = Cache::open(dir.path(), 1 << 20, 0).unwrap();
        assert!(
            own.download_turn("a").await.is_none(),
            "a lone cache has no turns"
        );
        drop(own);
        let (cache, _) = Cache::open_shared(dir.path(), 1 << 20, 0).unwrap();
        let cache = Arc::new(cache);
        let first = cache.download_turn("a").await.expect("a turn");
        // Another creative is not held up.
        let other = cache.download_turn("b").await.expect("a turn");
        drop(other);
        let c = cache.clone();
        let second = tokio::spawn(async move { c.download_turn("a").await.is_some() });
        tokio::task::yield_now().await;
        assert!(!second.is_finished(), "the second turn must wait");
        drop(first);
        assert!(second.await.unwrap());
    }

    #[test]
    fn a_shared_cache_evicts_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (cache, _) = Cache::open_shared(dir.path(), 10, 0).unwrap();
        let bytes = vec![7u8; 100];
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        cache.put(&sha, &bytes, 1).unwrap();
        let none = std::collections::HashSet::new();
        assert!(cache.evict(&none, true).unwrap().is_empty());
        assert!(cache.evict(&none, false).unwrap().is_empty());
        assert!(
            cache.contains(&sha).unwrap(),
            "another agent's creative stays"
        );
    }
}
