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
    #[error("media cache {path} is locked by another user (another agent on this data dir?)")]
    Locked { path: PathBuf },
    #[error("media cache is closed: it could not be reopened")]
    Closed,
    #[error("bytes do not match sha256 {expected} (got {got})")]
    Mismatch { expected: String, got: String },
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
/// start-up was cut off by a crash and its chunks are removed. A `Partial` entry is a
/// download in progress or cut off (see [`Cache::resume`]): its run of whole chunks from
/// index 0 is a prefix of the creative, kept across cuts and restarts so the download
/// resumes from there; the whole hash is checked when it completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Complete = 0,
    Pending = 1,
    Partial = 2,
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
            2 => State::Partial,
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
    /// `Some` when many agents in one process share this cache (see `shared.rs`).
    shared: Option<shared::Turns>,
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
/// [`Cache::relieve`]): sled 0.34 only evicts from its page cache when an LRU shard sees 64
/// accesses, which a kiosk that reads each creative once never causes, so every page read
/// would stay in memory.
pub const RELIEVE_AFTER_BYTES: u64 = 4 << 20;

/// How long to wait for sled's lock on the cache: after [`Cache::relieve`] drops the old
/// handles, sled's background threads let go of the file lock a moment later.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether sled failed only because another handle still holds its file lock.
fn lock_busy(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

/// Opens the sled database at `dir/cache.sled`, moving it aside when it cannot be opened.
/// A held lock is not damage: it is waited for, and if it stays held the cache is left
/// alone and the error says so.
fn open_db(dir: &Path, now_unix: i64) -> Result<(sled::Db, Option<String>), CacheError> {
    open_db_waiting(dir, now_unix, LOCK_WAIT)
}

fn open_db_waiting(
    dir: &Path,
    now_unix: i64,
    lock_wait: std::time::Duration,
) -> Result<(sled::Db, Option<String>), CacheError> {
    let path = dir.join("cache.sled");
    let deadline = std::time::Instant::now() + lock_wait;
    let opened = loop {
        match open_sled(&path) {
            Err(e) if lock_busy(&e) => {
                if std::time::Instant::now() >= deadline {
                    return Err(CacheError::Locked { path });
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => break other,
        }
    };
    match opened {
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
            shared: None,
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
        if self.shared.is_some() {
            return Ok(false);
        }
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
        crate::memory::trim_heap();
        tracing::debug!("media cache reopened to release memory");
        Ok(true)
    }

    /// Counts the complete entries from the meta tree and finishes what a crash cut off:
    /// pending (or unreadable) entries lose their chunks and their meta; partial downloads
    /// are kept to resume.
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
                Some(m) if m.state == State::Partial => {}
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

    /// The hashes of partial downloads (see [`State::Partial`]).
    pub fn partials(&self) -> Result<Vec<String>, CacheError> {
        let mut out = Vec::new();
        for row in self.t()?.meta.iter() {
            let (k, v) = row?;
            if Meta::decode(&v).is_some_and(|m| m.state == State::Partial) {
                out.push(String::from_utf8_lossy(&k).into_owned());
            }
        }
        Ok(out)
    }

    /// Evicts until the cache fits its limit, sparing `needed` (see [`choose_evictions`]).
    /// Partial downloads of creatives no longer `referenced` are dropped too. Returns the
    /// evicted hashes (complete entries only).
    pub fn evict_to_fit(
        &self,
        needed: &HashSet<String>,
        referenced: &HashSet<String>,
    ) -> Result<Vec<String>, CacheError> {
        if self.shared.is_some() {
            return Ok(Vec::new());
        }
        for sha in self.partials()? {
            if !referenced.contains(&sha) {
                self.remove(&sha)?;
            }
        }
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
        if self.shared.is_some() {
            return Ok(Vec::new());
        }
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

mod evict;
mod shared;
mod writer;

pub use evict::{choose_evictions, choose_purge, Entry};
pub use writer::CacheWriter;

#[cfg(test)]
mod tests;
