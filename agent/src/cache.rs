//! The media cache: creatives in sled at `DATA_DIR/cache.sled`, keyed by SHA-256, stored in
//! small chunks (see [`CHUNK_BYTES`] for why) with a `meta` tree of (state, added, size)
//! per entry so sizes and ages never need a read of the media. Bytes are checked against
//! their hash when stored (while streaming in) and when read; a corrupt entry is dropped.
//! A cache that sled cannot open is moved aside and started empty. Which entries to evict
//! is the pure [`choose_evictions`]; downloading is `fetch.rs`'s job. All methods block:
//! call them off the runtime.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock, RwLockReadGuard};

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
    #[error("media cache is closed: it could not be reopened")]
    Closed,
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
    dir: PathBuf,
    /// `None` only if reopening (see [`Cache::relieve`]) failed.
    trees: RwLock<Option<Trees>>,
    max_bytes: u64,
    stats: Mutex<CacheStats>,
    /// Entries whose bytes were verified since they were stored or opened.
    verified: Mutex<HashSet<String>>,
    /// Media bytes read or written through sled since it was last opened.
    touched: AtomicU64,
}

/// The open sled database and its two trees.
struct Trees {
    chunks: sled::Tree,
    meta: sled::Tree,
    db: sled::Db,
}

impl Trees {
    fn open(db: sled::Db) -> Result<Trees, CacheError> {
        // A cache of the earlier layout (whole creatives in tree `media`) starts over.
        if db.tree_names().iter().any(|n| n.as_ref() == b"media") {
            tracing::info!("media cache has the old whole-value layout; starting it empty");
            db.drop_tree("media")?;
            db.drop_tree("meta")?;
        }
        Ok(Trees {
            chunks: db.open_tree("chunks")?,
            meta: db.open_tree("meta")?,
            db,
        })
    }
}

/// Read access to the open trees.
struct TreesRef<'a>(RwLockReadGuard<'a, Option<Trees>>);

impl std::ops::Deref for TreesRef<'_> {
    type Target = Trees;
    fn deref(&self) -> &Trees {
        self.0.as_ref().expect("checked when the guard was taken")
    }
}

/// Every this many media bytes through sled, a long read or write reopens it (see
/// [`Cache::relieve`]): sled 0.34
/// only evicts from its page cache when an LRU shard sees 64 accesses, which a kiosk that
/// reads each creative once never causes, so every page read would stay in memory.
pub const RELIEVE_AFTER_BYTES: u64 = 4 << 20;

/// Hands freed heap pages back to the system. glibc keeps freed memory in per-thread arenas
/// and only trims from the top; after sled let go of megabytes of pages, `malloc_trim`
/// releases every free page wherever it sits.
#[allow(unsafe_code)]
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it has no
    // preconditions and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Opens the sled database at `dir/cache.sled`, moving it aside when it cannot be opened.
fn open_db(dir: &Path, now_unix: i64) -> Result<(sled::Db, Option<String>), CacheError> {
    let path = dir.join("cache.sled");
    match open_sled(&path) {
        Ok(db) => Ok((db, None)),
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
            Ok((open_sled(&path)?, Some(note)))
        }
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
        let (db, note) = open_db(dir, now_unix)?;
        let cache = Cache {
            dir: dir.to_owned(),
            trees: RwLock::new(Some(Trees::open(db)?)),
            max_bytes,
            stats: Mutex::new(CacheStats::default()),
            verified: Mutex::new(HashSet::new()),
            touched: AtomicU64::new(0),
        };
        cache.reconcile()?;
        Ok((cache, note))
    }

    fn t(&self) -> Result<TreesRef<'_>, CacheError> {
        let guard = self.trees.read().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            return Err(CacheError::Closed);
        }
        Ok(TreesRef(guard))
    }

    /// Gives back the memory sled holds for media read or written since it was opened, by
    /// flushing and reopening it, once at least `after_bytes` (at least one) went through
    /// and nobody is using it (it never waits). Returns whether it reopened. Call it with
    /// [`RELIEVE_AFTER_BYTES`] during a burst of reads or writes, and with 1 after it.
    pub fn relieve(&self, after_bytes: u64) -> Result<bool, CacheError> {
        if self.touched.load(Ordering::Relaxed) < after_bytes.max(1) {
            return Ok(false);
        }
        let Ok(mut slot) = self.trees.try_write() else {
            return Ok(false);
        };
        if let Some(old) = slot.take() {
            let flushed = old.db.flush();
            // sled locks its files: the old handles must be gone before it opens again.
            drop(old);
            flushed?;
        }
        let (db, note) = open_db(&self.dir, chrono::Utc::now().timestamp())?;
        if let Some(note) = note {
            tracing::warn!(%note, "media cache reopened empty");
            self.lock_verified().clear();
            *self.lock_stats() = CacheStats::default();
        }
        *slot = Some(Trees::open(db)?);
        self.touched.store(0, Ordering::Relaxed);
        drop(slot);
        trim_heap();
        tracing::debug!("media cache reopened to release memory");
        Ok(true)
    }

    /// Counts the complete entries from the meta tree and finishes what a crash cut off:
    /// pending (or unreadable) entries lose their chunks and their meta.
    fn reconcile(&self) -> Result<(), CacheError> {
        let mut stats = CacheStats::default();
        let mut unfinished = Vec::new();
        for row in self.t()?.meta.iter() {
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
            .t()?
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
        self.t()?
            .meta
            .insert(sha256.as_bytes(), &pending.encode()[..])?;
        Ok(CacheWriter {
            trees: self.t()?,
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
        for (expected, row) in self.t()?.chunks.scan_prefix(prefix).enumerate() {
            let (k, v) = row?;
            // A missing chunk breaks the run of indexes: the entry is corrupt.
            if k.get(32..) != Some(&(expected as u32).to_be_bytes()[..]) {
                return Ok(Some(u64::MAX));
            }
            total += v.len() as u64;
            self.touched.fetch_add(v.len() as u64, Ordering::Relaxed);
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
            if self.t()?.meta.remove(sha256.as_bytes())?.is_none() {
                return Ok(());
            }
            return self.remove_chunks(sha256);
        };
        let pending = Meta {
            state: State::Pending,
            ..old
        };
        self.t()?
            .meta
            .insert(sha256.as_bytes(), &pending.encode()[..])?;
        if old.state == State::Complete {
            let mut stats = self.lock_stats();
            stats.bytes -= old.bytes.min(stats.bytes);
            stats.items = stats.items.saturating_sub(1);
        }
        self.remove_chunks(sha256)?;
        self.t()?.meta.remove(sha256.as_bytes())?;
        Ok(())
    }

    fn remove_chunks(&self, sha256: &str) -> Result<(), CacheError> {
        let Some(prefix) = chunk_prefix(sha256) else {
            return Ok(());
        };
        for key in self.t()?.chunks.scan_prefix(prefix).keys() {
            self.t()?.chunks.remove(key?)?;
        }
        Ok(())
    }

    /// Every complete entry, from the meta tree.
    pub fn entries(&self) -> Result<Vec<Entry>, CacheError> {
        let mut out = Vec::new();
        for row in self.t()?.meta.iter() {
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

    /// Evicts until the cache fits its limit, sparing `needed` (see [`choose_evictions`]).
    /// Returns the evicted hashes.
    pub fn evict_to_fit(
        &self,
        needed: &HashSet<String>,
        referenced: &HashSet<String>,
    ) -> Result<Vec<String>, CacheError> {
        let chosen = choose_evictions(&self.entries()?, needed, referenced, self.max_bytes);
        self.remove_all(&chosen)?;
        Ok(chosen)
    }

    /// Evicts every entry not in `referenced` (the `purge` command), or with `purge` false
    /// just enough to fit the limit, sparing all of `referenced`. Returns the evicted hashes.
    pub fn evict(
        &self,
        referenced: &HashSet<String>,
        purge: bool,
    ) -> Result<Vec<String>, CacheError> {
        if !purge {
            return self.evict_to_fit(referenced, referenced);
        }
        let chosen = choose_purge(&self.entries()?, referenced);
        self.remove_all(&chosen)?;
        Ok(chosen)
    }

    fn remove_all(&self, shas: &[String]) -> Result<(), CacheError> {
        for sha in shas {
            self.remove(sha)?;
        }
        Ok(())
    }

    pub fn flush(&self) -> Result<(), CacheError> {
        self.t()?.chunks.flush()?;
        self.t()?.meta.flush()?;
        Ok(())
    }
}

/// Writes one creative into the cache chunk by chunk while hashing it, so a download never
/// needs the whole file in memory. Dropped without [`CacheWriter::finish`] (a failed
/// download), it removes what it wrote.
pub struct CacheWriter<'a> {
    cache: &'a Cache,
    /// Held while writing, so that [`Cache::relieve`] never reopens under a writer.
    trees: TreesRef<'a>,
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
        self.trees.chunks.insert(key, &self.buf[..])?;
        self.cache
            .touched
            .fetch_add(self.buf.len() as u64, Ordering::Relaxed);
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
        self.trees
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

    fn set(shas: &[&str]) -> HashSet<String> {
        shas.iter().map(|s| s.to_string()).collect()
    }

    fn check(entries: &[Entry], needed: &[&str], max: u64, expect: &[&str]) {
        let all = set(&["a", "b", "c", "d"]);
        assert_eq!(choose_evictions(entries, &set(needed), &all, max), expect);
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
        // Media the horizon needs stay even over the limit.
        check(&es, &["a", "b", "c", "d"], 0, &[]);
        check(&es, &["a", "b"], 0, &["d", "c"]);
        // Media gone from the schedule go before older ones still in it.
        let got = choose_evictions(&es, &set(&[]), &set(&["b", "d"]), 15);
        assert_eq!(got, ["c", "a", "b"]);
        assert_eq!(choose_purge(&es, &set(&["a"])), ["b", "c", "d"]);
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
            .t()
            .unwrap()
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
                .t()
                .unwrap()
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
                .t()
                .unwrap()
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
                .t()
                .unwrap()
                .chunks
                .scan_prefix(chunk_prefix(&other).unwrap())
                .count(),
            0
        );
        assert_eq!(cache.t().unwrap().meta.get(other.as_bytes()).unwrap(), None);
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
        cache
            .t()
            .unwrap()
            .chunks
            .remove(chunk_key(&prefix, 1))
            .unwrap();
        cache.verified.lock().unwrap().clear();
        assert!(!cache.playable(&sha).unwrap());
        assert!(!cache.contains(&sha).unwrap());
        assert_eq!(cache.t().unwrap().chunks.scan_prefix(prefix).count(), 0);
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
        assert_eq!(cache.t().unwrap().meta.get(sha.as_bytes()).unwrap(), None);
        assert_eq!(
            cache
                .t()
                .unwrap()
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

    /// After more than [`RELIEVE_AFTER_BYTES`] went through, relieve reopens sled and
    /// everything is still there; under a writer, or below the threshold, it does nothing.
    #[test]
    fn relieve_reopens_without_losing_anything() {
        let dir = tempfile::tempdir().unwrap();
        let (cache, _) = Cache::open(dir.path(), u64::MAX, 100).unwrap();
        let small = Sha256::of(b"small").to_string();
        cache.put(&small, b"small", 1).unwrap();
        assert!(!cache.relieve(RELIEVE_AFTER_BYTES).unwrap());
        let big: Vec<u8> = (0..RELIEVE_AFTER_BYTES + 1)
            .map(|i| (i % 253) as u8)
            .collect();
        let sha = Sha256::of(&big).to_string();
        let writer = cache.writer(&sha, 2).unwrap();
        cache.touched.store(RELIEVE_AFTER_BYTES, Ordering::Relaxed);
        assert!(!cache.relieve(1).unwrap(), "never under a writer");
        drop(writer);
        cache.put(&sha, &big, 2).unwrap();
        assert!(cache.relieve(RELIEVE_AFTER_BYTES).unwrap());
        assert!(!cache.relieve(1).unwrap(), "nothing went through since");
        assert_eq!(cache.touched.load(Ordering::Relaxed), 0);
        assert_eq!(cache.get(&sha).unwrap().as_deref(), Some(&big[..]));
        assert_eq!(cache.get(&small).unwrap().as_deref(), Some(&b"small"[..]));
        assert_eq!(cache.stats().items, 2);
        assert!(cache.relieve(1).unwrap(), "the reads went through sled");
    }
}
