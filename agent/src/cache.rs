//! The media cache: creatives in sled at `DATA_DIR/cache.sled`, keyed by SHA-256 hex, value
//! the file's bytes; a second tree `meta` keeps (added unix secs, size) per entry so sizes
//! and ages never need a scan of the media. Bytes are checked against their hash when
//! stored and when read; a corrupt entry is dropped. A cache that sled cannot open is
//! moved aside and started empty. Which entries to evict is the pure [`choose_evictions`];
//! downloading is `fetch.rs`'s job. All methods block: call them off the runtime.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use playlists::Sha256;
use sled::Transactional;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("media cache: {0}")]
    Sled(#[from] sled::Error),
    #[error("cannot move the broken cache {path} aside: {source}")]
    MoveAside {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bytes do not match sha256 {expected} (got {got})")]
    Mismatch { expected: String, got: String },
}

/// One cached creative, as eviction sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub sha256: String,
    pub bytes: u64,
    /// Unix seconds when it was stored.
    pub added: u64,
}

/// The entries to drop so that the cache fits `max_bytes`: only entries not in
/// `referenced`, oldest first (ties by hash). Referenced media are never chosen, even if
/// they alone exceed the limit.
pub fn choose_evictions(
    entries: &[Entry],
    referenced: &HashSet<String>,
    max_bytes: u64,
) -> Vec<String> {
    let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
    let mut candidates: Vec<&Entry> = entries
        .iter()
        .filter(|e| !referenced.contains(&e.sha256))
        .collect();
    candidates.sort_by(|a, b| (a.added, &a.sha256).cmp(&(b.added, &b.sha256)));
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

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub bytes: u64,
    pub items: u64,
}

pub struct Cache {
    data: sled::Tree,
    meta: sled::Tree,
    _db: sled::Db,
    max_bytes: u64,
    stats: Mutex<CacheStats>,
    /// Entries whose bytes were verified since they were stored or opened.
    verified: Mutex<HashSet<String>>,
}

fn encode_meta(added: u64, bytes: u64) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&added.to_be_bytes());
    v[8..].copy_from_slice(&bytes.to_be_bytes());
    v
}

fn decode_meta(v: &[u8]) -> Option<(u64, u64)> {
    let added = u64::from_be_bytes(v.get(..8)?.try_into().ok()?);
    let bytes = u64::from_be_bytes(v.get(8..16)?.try_into().ok()?);
    Some((added, bytes))
}

fn transaction_error(e: sled::transaction::TransactionError<()>) -> CacheError {
    match e {
        sled::transaction::TransactionError::Storage(e) => CacheError::Sled(e),
        sled::transaction::TransactionError::Abort(()) => {
            CacheError::Sled(sled::Error::Unsupported("aborted".into()))
        }
    }
}

/// sled's page cache, kept small: a kiosk reads each creative once to verify it and then
/// only checks that it is there (see [`Cache::playable`]).
const SLED_CACHE_BYTES: u64 = 4 << 20;

fn open_sled(path: &Path) -> Result<sled::Db, sled::Error> {
    let config = sled::Config::new()
        .path(path)
        .mode(sled::Mode::LowSpace)
        .cache_capacity(SLED_CACHE_BYTES)
        .flush_every_ms(Some(1_000));
    // sled may panic rather than fail on some corruption; both mean "cannot open".
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open())) {
        Ok(r) => r,
        Err(_) => Err(sled::Error::Unsupported(
            "sled panicked while opening".into(),
        )),
    }
}

impl Cache {
    /// Opens `dir/cache.sled`. If sled cannot open it, renames it to
    /// `cache.sled.broken-<now_unix>`, starts empty and returns a note saying so.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        now_unix: i64,
    ) -> Result<(Cache, Option<String>), CacheError> {
        let path = dir.join("cache.sled");
        let (db, note) = match open_sled(&path) {
            Ok(db) => (db, None),
            Err(e) => {
                let aside = dir.join(format!("cache.sled.broken-{now_unix}"));
                tracing::warn!(error = %e, path = %path.display(), aside = %aside.display(), "media cache cannot be opened; moving it aside and starting empty");
                std::fs::rename(&path, &aside).map_err(|source| CacheError::MoveAside {
                    path: path.clone(),
                    source,
                })?;
                let note = format!(
                    "media cache could not be opened ({e}); moved aside to {}",
                    aside.display()
                );
                (open_sled(&path)?, Some(note))
            }
        };
        let data = db.open_tree("media")?;
        let meta = db.open_tree("meta")?;
        let cache = Cache {
            data,
            meta,
            _db: db,
            max_bytes,
            stats: Mutex::new(CacheStats::default()),
            verified: Mutex::new(HashSet::new()),
        };
        cache.reconcile()?;
        Ok((cache, note))
    }

    /// Counts the entries from the meta tree alone. `put` and `remove` change both trees
    /// in one transaction, so they agree; reading the media tree here would pull every
    /// creative through memory (sled keeps values inline in leaves of up to 16 entries,
    /// and the allocator keeps what it touched), tens of MB on a full kiosk.
    fn reconcile(&self) -> Result<(), CacheError> {
        let mut stats = CacheStats::default();
        for row in self.meta.iter() {
            let (k, v) = row?;
            match decode_meta(&v) {
                Some((_, bytes)) => {
                    stats.bytes += bytes;
                    stats.items += 1;
                }
                None => {
                    self.remove(&String::from_utf8_lossy(&k))?;
                }
            }
        }
        *self.stats.lock().unwrap_or_else(|e| e.into_inner()) = stats;
        Ok(())
    }

    pub fn stats(&self) -> CacheStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    pub fn contains(&self, sha256: &str) -> Result<bool, CacheError> {
        Ok(self.meta.contains_key(sha256.as_bytes())?)
    }

    /// Stores `bytes` under `sha256` after checking that they hash to it.
    pub fn put(&self, sha256: &str, bytes: &[u8], now_unix: u64) -> Result<(), CacheError> {
        let got = Sha256::of(bytes);
        if got.as_str() != sha256 {
            return Err(CacheError::Mismatch {
                expected: sha256.to_owned(),
                got: got.to_string(),
            });
        }
        let meta = encode_meta(now_unix, bytes.len() as u64);
        let previous = (&self.data, &self.meta)
            .transaction(|(d, m)| {
                d.insert(sha256.as_bytes(), bytes)?;
                Ok(m.insert(sha256.as_bytes(), &meta[..])?)
            })
            .map_err(transaction_error)?;
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, old)) = previous.as_deref().and_then(decode_meta) {
            stats.bytes -= old.min(stats.bytes);
            stats.items = stats.items.saturating_sub(1);
        }
        stats.bytes += bytes.len() as u64;
        stats.items += 1;
        drop(stats);
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sha256.to_owned());
        Ok(())
    }

    /// The bytes under `sha256`, verified; a corrupt entry is dropped and reads as absent.
    pub fn get(&self, sha256: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let Some(bytes) = self.data.get(sha256.as_bytes())? else {
            return Ok(None);
        };
        let got = Sha256::of(&bytes);
        if got.as_str() != sha256 {
            tracing::warn!(sha256, got = %got, "corrupt media in cache; dropping it");
            self.remove(sha256)?;
            return Ok(None);
        }
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sha256.to_owned());
        Ok(Some(bytes.to_vec()))
    }

    /// Whether `sha256` can be played: present, and verified at least once since it was
    /// stored or since the agent started (re-hashing every play would cost more than the
    /// play on a small kiosk).
    pub fn playable(&self, sha256: &str) -> Result<bool, CacheError> {
        let verified = self
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(sha256);
        if verified {
            return self.contains(sha256);
        }
        Ok(self.get(sha256)?.is_some())
    }

    pub fn remove(&self, sha256: &str) -> Result<(), CacheError> {
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(sha256);
        let old = (&self.data, &self.meta)
            .transaction(|(d, m)| {
                d.remove(sha256.as_bytes())?;
                Ok(m.remove(sha256.as_bytes())?)
            })
            .map_err(transaction_error)?;
        if let Some((_, bytes)) = old.as_deref().and_then(decode_meta) {
            let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
            stats.bytes -= bytes.min(stats.bytes);
            stats.items = stats.items.saturating_sub(1);
        }
        Ok(())
    }

    pub fn entries(&self) -> Result<Vec<Entry>, CacheError> {
        let mut out = Vec::new();
        for row in self.meta.iter() {
            let (k, v) = row?;
            if let Some((added, bytes)) = decode_meta(&v) {
                out.push(Entry {
                    sha256: String::from_utf8_lossy(&k).into_owned(),
                    bytes,
                    added,
                });
            }
        }
        Ok(out)
    }

    /// Evicts unreferenced media until the cache fits its limit, or (with `purge`) every
    /// unreferenced entry. Returns the evicted hashes.
    pub fn evict(
        &self,
        referenced: &HashSet<String>,
        purge: bool,
    ) -> Result<Vec<String>, CacheError> {
        let entries = self.entries()?;
        let chosen = if purge {
            choose_purge(&entries, referenced)
        } else {
            choose_evictions(&entries, referenced, self.max_bytes)
        };
        for sha in &chosen {
            self.remove(sha)?;
        }
        Ok(chosen)
    }

    pub fn flush(&self) -> Result<(), CacheError> {
        self.data.flush()?;
        self.meta.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sha: &str, bytes: u64, added: u64) -> Entry {
        Entry {
            sha256: sha.into(),
            bytes,
            added,
        }
    }

    fn check(entries: &[Entry], referenced: &[&str], max: u64, expect: &[&str]) {
        let referenced: HashSet<String> = referenced.iter().map(|s| s.to_string()).collect();
        assert_eq!(choose_evictions(entries, &referenced, max), expect);
    }

    #[test]
    fn eviction_choice() {
        let es = [
            entry("a", 10, 3),
            entry("b", 10, 1),
            entry("c", 10, 2),
            entry("d", 10, 1),
        ];
        check(&es, &[], 40, &[]);
        check(&es, &[], 35, &["b"]);
        check(&es, &[], 15, &["b", "d", "c"]);
        check(&es, &["b"], 15, &["d", "c", "a"]);
        // Referenced media stay even over the limit.
        check(&es, &["a", "b", "c", "d"], 0, &[]);
        check(&es, &["a", "b"], 0, &["d", "c"]);
        let referenced: HashSet<String> = ["a".to_string()].into();
        assert_eq!(choose_purge(&es, &referenced), ["b", "c", "d"]);
    }

    #[test]
    fn put_get_verify_and_evict() {
        let dir = tempfile::tempdir().unwrap();
        let (cache, note) = Cache::open(dir.path(), 5, 100).unwrap();
        assert_eq!(note, None);
        let (a, b) = (b"abc".as_slice(), b"defg".as_slice());
        let (sa, sb) = (Sha256::of(a).to_string(), Sha256::of(b).to_string());
        assert!(matches!(
            cache.put(&sa, b, 1),
            Err(CacheError::Mismatch { .. })
        ));
        cache.put(&sa, a, 1).unwrap();
        cache.put(&sb, b, 2).unwrap();
        assert_eq!(cache.get(&sa).unwrap().as_deref(), Some(a));
        assert!(cache.playable(&sb).unwrap());
        assert_eq!(cache.stats(), CacheStats { bytes: 7, items: 2 });
        let referenced: HashSet<String> = [sb.clone()].into();
        assert_eq!(cache.evict(&referenced, false).unwrap(), vec![sa.clone()]);
        assert_eq!(cache.stats(), CacheStats { bytes: 4, items: 1 });
        assert!(!cache.contains(&sa).unwrap());
        cache.put(&sa, a, 3).unwrap();
        assert_eq!(cache.evict(&referenced, true).unwrap(), vec![sa.clone()]);
        drop(cache);
        // Reopened: the stats come back from the meta tree.
        let (cache, _) = Cache::open(dir.path(), 5, 100).unwrap();
        assert_eq!(cache.stats(), CacheStats { bytes: 4, items: 1 });
        assert!(cache.playable(&sb).unwrap());
    }

    #[test]
    fn corrupt_entry_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (cache, _) = Cache::open(dir.path(), 1 << 20, 100).unwrap();
        let sha = Sha256::of(b"good").to_string();
        cache.put(&sha, b"good", 1).unwrap();
        // Corrupt it behind the cache's back.
        cache
            .data
            .insert(sha.as_bytes(), b"evil".as_slice())
            .unwrap();
        cache.verified.lock().unwrap().clear();
        assert!(!cache.playable(&sha).unwrap());
        assert_eq!(cache.get(&sha).unwrap(), None);
        assert!(!cache.contains(&sha).unwrap());
        assert_eq!(cache.stats(), CacheStats::default());
    }

    #[test]
    fn broken_cache_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.sled");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("conf"), b"\xff\xfenot a sled config at all").unwrap();
        std::fs::write(path.join("db"), b"garbage").unwrap();
        let (cache, note) = Cache::open(dir.path(), 1 << 20, 1_700_000_000).unwrap();
        let note = note.expect("a note about the broken cache");
        assert!(note.contains("cache.sled.broken-1700000000"), "{note}");
        assert!(dir
            .path()
            .join("cache.sled.broken-1700000000")
            .join("db")
            .exists());
        assert_eq!(cache.stats(), CacheStats::default());
        let sha = Sha256::of(b"x").to_string();
        cache.put(&sha, b"x", 1).unwrap();
        assert!(cache.contains(&sha).unwrap());
    }
}
