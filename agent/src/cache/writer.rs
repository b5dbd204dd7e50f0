//! Storing one creative: chunk by chunk while hashing, marked complete only when the hash
//! matches. A resumable writer ([`Cache::resume`]) keeps what it wrote when it is dropped
//! unfinished, as a partial entry whose whole chunks a later download continues from.

use std::sync::atomic::Ordering;

use sha2::Digest;

use super::{chunk_key, chunk_prefix, Cache, CacheError, Meta, State, TreesRef, CHUNK_BYTES};

impl Cache {
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
            keep: false,
        })
    }

    /// How many bytes of `sha256` a partial entry holds: its run of whole chunks from index
    /// 0 (what [`Cache::resume`] continues from); 0 for any other entry or none. Reads
    /// the chunks' keys and sizes, hashes nothing.
    pub fn held(&self, sha256: &str) -> Result<u64, CacheError> {
        let partial = self.meta_of(sha256)?.filter(|m| m.state == State::Partial);
        let (Some(_), Some(prefix)) = (partial, chunk_prefix(sha256)) else {
            return Ok(0);
        };
        let mut whole: u32 = 0;
        for row in self.t()?.chunks.scan_prefix(prefix) {
            let (k, v) = row?;
            if k.get(32..) != Some(&whole.to_be_bytes()[..]) || v.len() != CHUNK_BYTES {
                break;
            }
            whole += 1;
        }
        Ok(u64::from(whole) * CHUNK_BYTES as u64)
    }

    /// A resumable writer for the creative `sha256`: continues a partial entry from its run
    /// of whole chunks (re-hashed here, chunk by chunk; whatever follows a gap or a short
    /// chunk is removed), or starts one. [`CacheWriter::len`] says how many bytes it holds:
    /// the offset to download from. Dropped unfinished it keeps what it wrote, so a cut
    /// download loses at most one chunk; a hash mismatch at [`CacheWriter::finish`] or
    /// [`CacheWriter::discard`] removes it. A complete entry under that hash is replaced.
    pub fn resume(&self, sha256: &str, now_unix: u64) -> Result<CacheWriter<'_>, CacheError> {
        let partial = self.meta_of(sha256)?.filter(|m| m.state == State::Partial);
        let Some(meta) = partial else {
            let mut w = self.writer(sha256, now_unix)?;
            w.keep = true;
            w.mark(State::Partial)?;
            return Ok(w);
        };
        let prefix = chunk_prefix(sha256).ok_or_else(|| CacheError::Mismatch {
            expected: sha256.to_owned(),
            got: "a key that is not a SHA-256 hex digest".into(),
        })?;
        let trees = self.t()?;
        let mut hasher = sha2::Sha256::new();
        let mut whole: u32 = 0;
        let mut stale = Vec::new();
        for row in trees.chunks.scan_prefix(prefix) {
            let (k, v) = row?;
            let in_run = stale.is_empty()
                && k.get(32..) == Some(&whole.to_be_bytes()[..])
                && v.len() == CHUNK_BYTES;
            if in_run {
                hasher.update(&v);
                self.touched.fetch_add(v.len() as u64, Ordering::Relaxed);
                whole += 1;
            } else {
                stale.push(k);
            }
        }
        for k in stale {
            trees.chunks.remove(k)?;
        }
        Ok(CacheWriter {
            trees,
            cache: self,
            sha256: sha256.to_owned(),
            prefix,
            hasher,
            buf: Vec::with_capacity(CHUNK_BYTES),
            next_index: whole,
            len: u64::from(whole) * CHUNK_BYTES as u64,
            added: meta.added,
            finished: false,
            keep: true,
        })
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
    /// Dropped unfinished, keep the whole chunks as a partial entry (a resumable writer).
    keep: bool,
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

    /// Forgets everything written and starts again from byte 0 (the server sent the whole
    /// file where a range was asked for).
    pub fn restart(&mut self) -> Result<(), CacheError> {
        self.cache.remove_chunks(&self.sha256)?;
        self.hasher = sha2::Sha256::new();
        self.buf.clear();
        self.next_index = 0;
        self.len = 0;
        Ok(())
    }

    /// Drops the entry and what was written (the bytes are known to be wrong).
    pub fn discard(mut self) {
        self.keep = false;
    }

    fn mark(&self, state: State) -> Result<(), CacheError> {
        let meta = Meta {
            state,
            added: self.added,
            bytes: self.len,
        };
        self.trees
            .meta
            .insert(self.sha256.as_bytes(), &meta.encode()[..])?;
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
            self.keep = false;
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
        if !self.finished && self.keep {
            // The whole chunks stay; the tail in `buf` is fetched again.
            if let Err(e) = self.mark(State::Partial) {
                tracing::warn!(sha256 = %self.sha256, error = %e, "cannot keep a cut download");
            }
            return;
        }
        if !self.finished {
            if let Err(e) = self.cache.remove(&self.sha256) {
                tracing::warn!(sha256 = %self.sha256, error = %e, "cannot remove an unfinished media entry; the next start will");
            }
        }
    }
}
