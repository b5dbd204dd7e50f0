//! The media cache: creatives in sled at `DATA_DIR/cache.sled`, keyed by SHA-256, stored in
//! small chunks (see [`CHUNK_BYTES`] for why) with a `meta` tree of (state, added, size)
//! per entry so sizes and ages never need a read of the media. Bytes are checked against
//! their hash when stored (while streaming in) and when read; a corrupt entry is dropped.
//! A cache that sled cannot open is moved aside and started empty. Which entries to evict
//! is the pure [`choose_evictions`]; downloading is `fetch.rs`'s job. All methods block:
//! call them off the runtime.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use playlists::Sha256;
use sha2::Digest;

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

/// Media bytes are stored in chunks of this size, so that a sled leaf (up to 16 entries,
/// read and rewritten whole) stays near 64 KiB, under sled's blob threshold (a quarter of
/// its 512 KiB segment). Whole creatives as values made leaves of megabytes that sled
/// re-reads in full at every start-up, and RSS grew with the cache.
pub const CHUNK_BYTES: usize = 4096;

/// sled's page cache, kept small: a kiosk reads each creative once to verify it and then
/// only checks that it is there (see [`Cache::playable`]).
const SLED_CACHE_BYTES: u64 = 2 << 20;

/// The meta value of an entry: state, unix seconds when stored, size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Meta {
    state: State,
    added: u64,
    bytes: u64,
}

/// An entry is `Pending` while its chunks are written or removed; one found pending at
/// start-up was cut off by a crash and its chunks are removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Complete = 0,
    Pending = 1,
}

impl Meta {
    fn encode(&self) -> [u8; 17] {
        let mut v = [0u8; 17];
        v[0] = self.state as u8;
        v[1..9].copy_from_slice(&self.added.to_be_bytes());
        v[9..].copy_from_slice(&self.bytes.to_be_bytes());
        v
    }

    fn decode(v: &[u8]) -> Option<Meta> {
        let state = match v.first()? {
            0 => State::Complete,
            1 => State::Pending,
            _ => return None,
        };
        let added = u64::from_be_bytes(v.get(1..9)?.try_into().ok()?);
        let bytes = u64::from_be_bytes(v.get(9..17)?.try_into().ok()?);
        (v.len() == 17).then_some(Meta {
            state,
            added,
            bytes,
        })
    }
}

/// The key prefix of a creative's chunks: its hash as 32 raw bytes; `None` for a string
/// that is not a SHA-256 hex digest (such a key is never stored).
fn chunk_prefix(sha256: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(sha256, &mut out).ok()?;
    Some(out)
}

fn chunk_key(prefix: &[u8; 32], index: u32) -> [u8; 36] {
    let mut k = [0u8; 36];
    k[..32].copy_from_slice(prefix);
    k[32..].copy_from_slice(&index.to_be_bytes());
    k
}

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

/// The sled media cache. Two trees: `meta` (SHA-256 hex -> [`Meta`]) says what is cached,
/// `chunks` (raw hash ++ chunk index -> bytes) holds the media. Every creative is written
/// as pending, chunk by chunk, then marked complete; removal marks it pending first. So a
/// crash leaves at worst a pending entry, cleaned at the next start, and the meta tree
/// alone answers sizes, presence and eviction without reading any media.
pub struct Cache {
    chunks: sled::Tree,
    meta: sled::Tree,
    _db: sled::Db,
    max_bytes: u64,
    stats: Mutex<CacheStats>,
    /// Entries whose bytes were verified since they were stored or opened.
    verified: Mutex<HashSet<String>>,
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
        // A cache of the earlier layout (whole creatives in tree `media`) starts over.
        if db.tree_names().iter().any(|n| n.as_ref() == b"media") {
            tracing::info!("media cache has the old whole-value layout; starting it empty");
            db.drop_tree("media")?;
            db.drop_tree("meta")?;
        }
        let chunks = db.open_tree("chunks")?;
        let meta = db.open_tree("meta")?;
        let cache = Cache {
            chunks,
            meta,
            _db: db,
            max_bytes,
            stats: Mutex::new(CacheStats::default()),
            verified: Mutex::new(HashSet::new()),
        };
        cache.reconcile()?;
        Ok((cache, note))
    }

    /// Counts the complete entries from the meta tree and finishes what a crash cut off:
    /// pending (or unreadable) entries lose their chunks and their meta.
    fn reconcile(&self) -> Result<(), CacheError> {
        let mut stats = CacheStats::default();
        let mut unfinished = Vec::new();
        for row in self.meta.iter() {
            let (k, v) = row?;
            match Meta::decode(&v) {
                Some(m) if m.state == State::Complete => {
                    stats.bytes += m.bytes;
                    stats.items += 1;
                }
                _ => unfinished.push(String::from_utf8_lossy(&k).into_owned()),
            }
        }
        *self.lock_stats() = stats;
        for sha in unfinished {
            tracing::info!(sha256 = %sha, "removing a media entry a crash left unfinished");
            self.remove(&sha)?;
        }
        Ok(())
    }

    fn lock_stats(&self) -> std::sync::MutexGuard<'_, CacheStats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_verified(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn meta_of(&self, sha256: &str) -> Result<Option<Meta>, CacheError> {
        Ok(self
            .meta
            .get(sha256.as_bytes())?
            .and_then(|v| Meta::decode(&v)))
    }

    pub fn stats(&self) -> CacheStats {
        *self.lock_stats()
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Whether a complete entry is stored under `sha256` (its bytes are not read).
    pub fn contains(&self, sha256: &str) -> Result<bool, CacheError> {
        Ok(self
            .meta_of(sha256)?
            .is_some_and(|m| m.state == State::Complete))
    }

    /// Starts storing the creative `sha256`; write its bytes, then [`CacheWriter::finish`].
    /// An entry already stored under that hash is replaced.
    pub fn writer(&self, sha256: &str, now_unix: u64) -> Result<CacheWriter<'_>, CacheError> {
        let prefix = chunk_prefix(sha256).ok_or_else(|| CacheError::Mismatch {
            expected: sha256.to_owned(),
            got: "a key that is not a SHA-256 hex digest".into(),
        })?;
        self.remove(sha256)?;
        let pending = Meta {
            state: State::Pending,
            added: now_unix,
            bytes: 0,
        };
        self.meta.insert(sha256.as_bytes(), &pending.encode()[..])?;
        Ok(CacheWriter {
            cache: self,
            sha256: sha256.to_owned(),
            prefix,
            hasher: sha2::Sha256::new(),
            buf: Vec::with_capacity(CHUNK_BYTES),
            next_index: 0,
            len: 0,
            added: now_unix,
            finished: false,
        })
    }

    /// Stores `bytes` under `sha256` after checking that they hash to it.
    pub fn put(&self, sha256: &str, bytes: &[u8], now_unix: u64) -> Result<(), CacheError> {
        if Sha256::of(bytes).as_str() != sha256 {
            return Err(CacheError::Mismatch {
                expected: sha256.to_owned(),
                got: Sha256::of(bytes).to_string(),
            });
        }
        let mut w = self.writer(sha256, now_unix)?;
        w.write(bytes)?;
        w.finish()
    }

    /// Calls `each` with the stored chunks of `sha256` in order, without checking them;
    /// returns the byte count, or `None` when nothing complete is stored.
    fn for_each_chunk(
        &self,
        sha256: &str,
        mut each: impl FnMut(&[u8]) -> bool,
    ) -> Result<Option<u64>, CacheError> {
        let (Some(meta), Some(prefix)) = (self.meta_of(sha256)?, chunk_prefix(sha256)) else {
            return Ok(None);
        };
        if meta.state != State::Complete {
            return Ok(None);
        }
        let mut total = 0u64;
        for (expected, row) in self.chunks.scan_prefix(prefix).enumerate() {
            let (k, v) = row?;
            // A missing chunk breaks the run of indexes: the entry is corrupt.
            if k.get(32..) != Some(&(expected as u32).to_be_bytes()[..]) {
                return Ok(Some(u64::MAX));
            }
            total += v.len() as u64;
            if !each(&v) {
                break;
            }
        }
        Ok(Some(total))
    }

    /// Re-hashes the stored bytes of `sha256`. A corrupt entry is dropped and reads as
    /// absent (`false`).
    pub fn verify(&self, sha256: &str) -> Result<bool, CacheError> {
        let mut hasher = sha2::Sha256::new();
        let Some(total) = self.for_each_chunk(sha256, |chunk| {
            hasher.update(chunk);
            true
        })?
        else {
            return Ok(false);
        };
        let got = hex::encode(hasher.finalize());
        let expected_len = self.meta_of(sha256)?.map(|m| m.bytes);
        if got != sha256 || expected_len != Some(total) {
            tracing::warn!(sha256, got = %got, "corrupt media in cache; dropping it");
            self.remove(sha256)?;
            return Ok(false);
        }
        self.lock_verified().insert(sha256.to_owned());
        Ok(true)
    }

    /// The bytes under `sha256`, verified; a corrupt entry is dropped and reads as absent.
    /// Holds the whole creative in memory: for streaming, see [`Cache::read_verified`].
    pub fn get(&self, sha256: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let mut out = Vec::new();
        let found = self.read_verified(sha256, |chunk| {
            out.extend_from_slice(chunk);
            true
        })?;
        Ok(found.then_some(out))
    }

    /// Streams the bytes of `sha256` to `each` chunk by chunk (stop early by returning
    /// false), after checking them once since start-up or since they were stored. Returns
    /// false when the entry is absent or was corrupt (and so dropped).
    pub fn read_verified(
        &self,
        sha256: &str,
        each: impl FnMut(&[u8]) -> bool,
    ) -> Result<bool, CacheError> {
        if !self.lock_verified().contains(sha256) && !self.verify(sha256)? {
            return Ok(false);
        }
        Ok(self.for_each_chunk(sha256, each)?.is_some())
    }

    /// Whether `sha256` can be played: present, and verified at least once since it was
    /// stored or since the agent started (re-hashing every play would cost more than the
    /// play on a small kiosk).
    pub fn playable(&self, sha256: &str) -> Result<bool, CacheError> {
        if self.lock_verified().contains(sha256) {
            return self.contains(sha256);
        }
        self.verify(sha256)
    }

    /// Drops the entry: marked pending, chunks removed, then the meta removed, so a crash
    /// in between is finished at the next start.
    pub fn remove(&self, sha256: &str) -> Result<(), CacheError> {
        self.lock_verified().remove(sha256);
        let Some(old) = self.meta_of(sha256)? else {
            if self.meta.remove(sha256.as_bytes())?.is_none() {
                return Ok(());
            }
            return self.remove_chunks(sha256);
        };
        let pending = Meta {
            state: State::Pending,
            ..old
        };
        self.meta.insert(sha256.as_bytes(), &pending.encode()[..])?;
        if old.state == State::Complete {
            let mut stats = self.lock_stats();
            stats.bytes -= old.bytes.min(stats.bytes);
            stats.items = stats.items.saturating_sub(1);
        }
        self.remove_chunks(sha256)?;
        self.meta.remove(sha256.as_bytes())?;
        Ok(())
    }

    fn remove_chunks(&self, sha256: &str) -> Result<(), CacheError> {
        let Some(prefix) = chunk_prefix(sha256) else {
            return Ok(());
        };
        for key in self.chunks.scan_prefix(prefix).keys() {
            self.chunks.remove(key?)?;
        }
        Ok(())
    }

    /// Every complete entry, from the meta tree.
    pub fn entries(&self) -> Result<Vec<Entry>, CacheError> {
        let mut out = Vec::new();
        for row in self.meta.iter() {
            let (k, v) = row?;
            if let Some(m) = Meta::decode(&v).filter(|m| m.state == State::Complete) {
                out.push(Entry {
                    sha256: String::from_utf8_lossy(&k).into_owned(),
                    bytes: m.bytes,
                    added: m.added,
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
        self.chunks.flush()?;
        self.meta.flush()?;
        Ok(())
    }
}

/// Writes one creative into the cache chunk by chunk while hashing it, so a download never
/// needs the whole file in memory. Dropped without [`CacheWriter::finish`] (a failed
/// download), it removes what it wrote.
pub struct CacheWriter<'a> {
    cache: &'a Cache,
    sha256: String,
    prefix: [u8; 32],
    hasher: sha2::Sha256,
    buf: Vec<u8>,
    next_index: u32,
    len: u64,
    added: u64,
    finished: bool,
}

impl CacheWriter<'_> {
    pub fn write(&mut self, mut data: &[u8]) -> Result<(), CacheError> {
        self.hasher.update(data);
        self.len += data.len() as u64;
        while !data.is_empty() {
            let take = (CHUNK_BYTES - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == CHUNK_BYTES {
                self.flush_chunk()?;
            }
        }
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn flush_chunk(&mut self) -> Result<(), CacheError> {
        let key = chunk_key(&self.prefix, self.next_index);
        self.cache.chunks.insert(key, &self.buf[..])?;
        self.next_index += 1;
        self.buf.clear();
        Ok(())
    }

    /// Checks the hash of everything written and marks the entry complete; on a mismatch
    /// the entry is removed and the error names both hashes.
    pub fn finish(mut self) -> Result<(), CacheError> {
        let got = hex::encode(std::mem::take(&mut self.hasher).finalize());
        if got != self.sha256 {
            return Err(CacheError::Mismatch {
                expected: self.sha256.clone(),
                got,
            });
        }
        if !self.buf.is_empty() {
            self.flush_chunk()?;
        }
        let meta = Meta {
            state: State::Complete,
            added: self.added,
            bytes: self.len,
        };
        self.cache
            .meta
            .insert(self.sha256.as_bytes(), &meta.encode()[..])?;
        self.finished = true;
        let mut stats = self.cache.lock_stats();
        stats.bytes += self.len;
        stats.items += 1;
        drop(stats);
        self.cache.lock_verified().insert(self.sha256.clone());
        Ok(())
    }
}

impl Drop for CacheWriter<'_> {
    fn drop(&mut self) {
        if !self.finished {
            if let Err(e) = self.cache.remove(&self.sha256) {
                tracing::warn!(sha256 = %self.sha256, error = %e, "cannot remove an unfinished media entry; the next start will");
            }
        }
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
        let prefix = chunk_prefix(&sha).unwrap();
        cache
            .chunks
            .insert(chunk_key(&prefix, 0), b"evil".as_slice())
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

    /// Creatives spanning several chunks stream in, read back whole and verify; a write
    /// that is dropped unfinished or whose hash is wrong leaves nothing behind.
    #[test]
    fn chunked_writes_and_reads() {
        let dir = tempfile::tempdir().unwrap();
        let (cache, _) = Cache::open(dir.path(), u64::MAX, 100).unwrap();
        let big: Vec<u8> = (0..3 * CHUNK_BYTES + 17)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let sha = Sha256::of(&big).to_string();
        let mut w = cache.writer(&sha, 5).unwrap();
        for piece in big.chunks(1000) {
            w.write(piece).unwrap();
        }
        assert_eq!(w.len(), big.len() as u64);
        w.finish().unwrap();
        assert_eq!(cache.get(&sha).unwrap().as_deref(), Some(&big[..]));
        assert_eq!(
            cache
                .chunks
                .scan_prefix(chunk_prefix(&sha).unwrap())
                .count(),
            4
        );
        let mut streamed = Vec::new();
        assert!(cache
            .read_verified(&sha, |c| {
                streamed.push(c.len());
                true
            })
            .unwrap());
        assert_eq!(streamed, [CHUNK_BYTES, CHUNK_BYTES, CHUNK_BYTES, 17]);

        // A wrong hash: refused, nothing left behind.
        let other = Sha256::of(b"other").to_string();
        let mut w = cache.writer(&other, 6).unwrap();
        w.write(&big).unwrap();
        assert!(matches!(w.finish(), Err(CacheError::Mismatch { .. })));
        assert!(!cache.contains(&other).unwrap());
        assert_eq!(
            cache
                .chunks
                .scan_prefix(chunk_prefix(&other).unwrap())
                .count(),
            0
        );

        // A download cut short: dropped unfinished, nothing left behind.
        let mut w = cache.writer(&other, 6).unwrap();
        w.write(&big[..CHUNK_BYTES * 2]).unwrap();
        drop(w);
        assert_eq!(
            cache
                .chunks
                .scan_prefix(chunk_prefix(&other).unwrap())
                .count(),
            0
        );
        assert_eq!(cache.meta.get(other.as_bytes()).unwrap(), None);
        assert_eq!(
            cache.stats(),
            CacheStats {
                bytes: big.len() as u64,
                items: 1
            }
        );
        assert!(matches!(
            cache.writer("not-a-hash", 1),
            Err(CacheError::Mismatch { .. })
        ));
    }

    /// A missing middle chunk or a truncated entry is corruption: dropped on read.
    #[test]
    fn missing_chunk_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let (cache, _) = Cache::open(dir.path(), u64::MAX, 100).unwrap();
        let big = vec![42u8; 3 * CHUNK_BYTES];
        let sha = Sha256::of(&big).to_string();
        cache.put(&sha, &big, 1).unwrap();
        let prefix = chunk_prefix(&sha).unwrap();
        cache.chunks.remove(chunk_key(&prefix, 1)).unwrap();
        cache.verified.lock().unwrap().clear();
        assert!(!cache.playable(&sha).unwrap());
        assert!(!cache.contains(&sha).unwrap());
        assert_eq!(cache.chunks.scan_prefix(prefix).count(), 0);
    }

    /// An entry a crash left pending (chunks half written, or half removed) is cleaned at
    /// the next open and does not count.
    #[test]
    fn pending_entry_is_cleaned_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let big = vec![7u8; 2 * CHUNK_BYTES + 1];
        let sha = Sha256::of(&big).to_string();
        let done = Sha256::of(b"done").to_string();
        {
            let (cache, _) = Cache::open(dir.path(), u64::MAX, 100).unwrap();
            cache.put(&done, b"done", 1).unwrap();
            let mut w = cache.writer(&sha, 2).unwrap();
            w.write(&big[..CHUNK_BYTES + 10]).unwrap();
            cache.flush().unwrap();
            // As if the process died here: the writer's clean-up never runs.
            std::mem::forget(w);
            cache.flush().unwrap();
        }
        let (cache, _) = Cache::open(dir.path(), u64::MAX, 100).unwrap();
        assert_eq!(cache.stats(), CacheStats { bytes: 4, items: 1 });
        assert!(!cache.contains(&sha).unwrap());
        assert_eq!(cache.meta.get(sha.as_bytes()).unwrap(), None);
        assert_eq!(
            cache
                .chunks
                .scan_prefix(chunk_prefix(&sha).unwrap())
                .count(),
            0
        );
        assert_eq!(cache.get(&done).unwrap().as_deref(), Some(&b"done"[..]));
    }

    /// A cache written in the earlier layout (whole creatives in tree `media`) starts empty
    /// rather than claiming entries it cannot read.
    #[test]
    fn old_layout_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = open_sled(&dir.path().join("cache.sled")).unwrap();
            db.open_tree("media").unwrap().insert("x", "y").unwrap();
            db.open_tree("meta")
                .unwrap()
                .insert("x", &[0u8; 16][..])
                .unwrap();
            db.flush().unwrap();
        }
        let (cache, _) = Cache::open(dir.path(), u64::MAX, 100).unwrap();
        assert_eq!(cache.stats(), CacheStats::default());
        assert!(cache.entries().unwrap().is_empty());
    }
}
