//! Media bytes, settings and the renditions index in PostgreSQL. A media file is a row
//! in `media` (its size) and its chunks of [`CHUNK_SIZE`] bytes in `media_chunks`, all
//! written in one transaction, so a file is there whole or not at all and every replica
//! sees it. Each store keeps a local copy under `DIR/media/` (the server reads media as
//! files); [`PgStore::local_media`] fetches one another replica stored, checking its hash.

use std::io::{Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use sha2::Digest;

use playlists::Sha256;

use super::{decode, encode, off_worker, to_i64, to_u64, PgStore};
use crate::store::{MediaStore, MetaStore, RenditionStore, StoreError, StoredRendition};

/// The size of a stored chunk of media (the last one of a file may be shorter).
pub const CHUNK_SIZE: usize = 1 << 20;

impl MetaStore for PgStore {
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        off_worker(|| {
            Ok(self
                .client()?
                .query_opt("SELECT value FROM meta WHERE key = $1", &[&key])?
                .map(|row| row.get(0)))
        })
    }

    fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        off_worker(|| {
            self.client()?.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&key, &value],
            )?;
            Ok(())
        })
    }
}

impl PgStore {
    /// Stores the bytes `read` yields under `sha256` in one transaction, unless stored
    /// (the local copy is not made: [`PgStore::local_media`] fetches it when needed).
    pub fn put_media_from(&self, sha256: &Sha256, read: &mut dyn Read) -> Result<(), StoreError> {
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        // A concurrent writer of the same file holds this row until it commits; then
        // this one finds it stored.
        let fresh = tx.execute(
            "INSERT INTO media (sha256, bytes, chunk_size) VALUES ($1, 0, $2)
             ON CONFLICT (sha256) DO NOTHING",
            &[&sha256.as_str(), &(CHUNK_SIZE as i32)],
        )?;
        if fresh == 0 {
            return Ok(());
        }
        let mut total = 0u64;
        let mut buf = vec![0u8; CHUNK_SIZE];
        for n in 0i32.. {
            let len = fill(read, &mut buf).map_err(|source| StoreError::Io {
                path: self.media_path(sha256),
                source,
            })?;
            if len == 0 && n > 0 {
                break;
            }
            tx.execute(
                "INSERT INTO media_chunks (sha256, n, data) VALUES ($1, $2, $3)",
                &[&sha256.as_str(), &n, &&buf[..len]],
            )?;
            total += len as u64;
            if len < CHUNK_SIZE {
                break;
            }
        }
        tx.execute(
            "UPDATE media SET bytes = $2 WHERE sha256 = $1",
            &[
                &sha256.as_str(),
                &to_i64(total, || "a media file's size".into())?,
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The size of the media file `sha256` in the database, if stored.
    pub fn media_len(&self, sha256: &Sha256) -> Result<Option<u64>, StoreError> {
        self.client()?
            .query_opt(
                "SELECT bytes FROM media WHERE sha256 = $1",
                &[&sha256.as_str()],
            )?
            .map(|row| to_u64(row.get(0), || format!("the size of media {sha256}")))
            .transpose()
    }

    /// Calls `f` with the bytes of `range` of media `sha256`, chunk by chunk (at most one
    /// chunk in memory); returns how many bytes it passed. A range past the end stops
    /// at the end; an unknown file is [`StoreError::NotFound`].
    pub fn read_media(
        &self,
        sha256: &Sha256,
        range: Range<u64>,
        f: &mut dyn FnMut(&[u8]) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        let mut client = self.client()?;
        let row = client
            .query_opt(
                "SELECT bytes, chunk_size FROM media WHERE sha256 = $1",
                &[&sha256.as_str()],
            )?
            .ok_or_else(|| StoreError::NotFound {
                entity: "media",
                id: sha256.to_string(),
            })?;
        let what = || format!("media {sha256}");
        let len = to_u64(row.get(0), what)?;
        let chunk = to_u64(i64::from(row.get::<_, i32>(1)), what)?;
        let (start, end) = (range.start.min(len), range.end.min(len));
        let mut passed = 0u64;
        let mut at = start;
        while at < end {
            let n = at / chunk;
            let data: Vec<u8> = client
                .query_opt(
                    "SELECT data FROM media_chunks WHERE sha256 = $1 AND n = $2",
                    &[&sha256.as_str(), &i32::try_from(n).unwrap_or(i32::MAX)],
                )?
                .map(|row| row.get(0))
                .ok_or_else(|| StoreError::Corrupt {
                    what: what(),
                    problem: format!("chunk {n} is missing"),
                })?;
            let from = at - n * chunk;
            let expected = chunk.min(len - n * chunk);
            if data.len() as u64 != expected {
                return Err(StoreError::Corrupt {
                    what: what(),
                    problem: format!("chunk {n} has {} bytes, not {expected}", data.len()),
                });
            }
            let to = (end - n * chunk).min(expected);
            // Both bounds are within the chunk (checked above).
            let part = &data[from as usize..to as usize];
            f(part)?;
            passed += part.len() as u64;
            at += part.len() as u64;
        }
        Ok(passed)
    }

    /// The local copy of media `sha256`, fetched from the database when this store does
    /// not have it yet (another replica stored it). Its hash is checked before it is put
    /// in place: damaged bytes are [`StoreError::Corrupt`] and leave no file.
    ///
    /// One copy at a time per file: when a new creative is published, every screen served
    /// by this replica asks for it at once, and each request waits for the one copy
    /// (holding one database connection) instead of reading the file again.
    pub fn local_media(&self, sha256: &Sha256) -> Result<PathBuf, StoreError> {
        let path = self.media_path(sha256);
        if path.exists() {
            return Ok(path);
        }
        let copying = self.conns.copying.one(sha256.as_str());
        let _this_file = copying.lock().unwrap_or_else(|p| p.into_inner());
        if path.exists() {
            return Ok(path);
        }
        self.conns
            .copies
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self.fetch_media(sha256, &self.upload_dir())?;
        tmp.persist(&path).map_err(|e| StoreError::Io {
            path: path.clone(),
            source: e.error,
        })?;
        Ok(path)
    }

    /// How many local copies this store (and its clones) made from the database.
    pub fn media_copies(&self) -> u64 {
        self.conns.copies.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Media `sha256` from the database in a temporary file in `dir`, its hash checked
    /// and its bytes synced to disk (a damaged file is [`StoreError::Corrupt`] and leaves
    /// nothing behind).
    pub fn fetch_media(
        &self,
        sha256: &Sha256,
        dir: &Path,
    ) -> Result<tempfile::NamedTempFile, StoreError> {
        let io = |source| StoreError::Io {
            path: dir.to_owned(),
            source,
        };
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        let mut hasher = sha2::Sha256::new();
        self.read_media(sha256, 0..u64::MAX, &mut |part| {
            hasher.update(part);
            tmp.write_all(part).map_err(io)
        })?;
        let got = hex::encode(hasher.finalize());
        if got != sha256.as_str() {
            return Err(StoreError::Corrupt {
                what: format!("media {sha256}"),
                problem: format!("its bytes hash to {got}"),
            });
        }
        tmp.as_file().sync_all().map_err(io)?;
        Ok(tmp)
    }
}

/// Reads until `buf` is full or the input ends; how many bytes were read.
fn fill(read: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut len = 0;
    while len < buf.len() {
        match read.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(len)
}

/// Writes `data` to `path` whole (temporary file, fsync, rename).
fn write_local(path: &Path, dir: &Path, data: &[u8]) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_owned(),
        source,
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    tmp.write_all(data).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

impl MediaStore for PgStore {
    /// The local copy (see [`PgStore::local_media`] for a file another replica stored).
    fn media_path(&self, sha256: &Sha256) -> PathBuf {
        self.dir.join("media").join(sha256.as_str())
    }

    fn put_media(&self, sha256: &Sha256, data: &[u8]) -> Result<(), StoreError> {
        off_worker(|| {
            self.put_media_from(sha256, &mut &data[..])?;
            let path = self.media_path(sha256);
            if path.exists() {
                return Ok(());
            }
            write_local(&path, &self.upload_dir(), data)
        })
    }

    fn adopt_media(&self, sha256: &Sha256, file: &Path) -> Result<(), StoreError> {
        off_worker(|| {
            let io = |source| StoreError::Io {
                path: file.to_owned(),
                source,
            };
            let mut f = std::fs::File::open(file).map_err(io)?;
            self.put_media_from(sha256, &mut f)?;
            let path = self.media_path(sha256);
            if path.exists() {
                let _ = std::fs::remove_file(file);
                return Ok(());
            }
            std::fs::rename(file, &path).map_err(|source| StoreError::Io { path, source })
        })
    }

    fn upload_dir(&self) -> PathBuf {
        self.dir.join("uploads")
    }

    fn local_copy(&self, sha256: &Sha256) -> Result<PathBuf, StoreError> {
        off_worker(|| self.local_media(sha256))
    }

    fn has_media(&self, sha256: &Sha256) -> Result<bool, StoreError> {
        off_worker(|| Ok(self.media_path(sha256).exists() || self.media_len(sha256)?.is_some()))
    }
}

impl RenditionStore for PgStore {
    fn rendition(&self, key: &str) -> Result<Option<StoredRendition>, StoreError> {
        off_worker(|| {
            self.client()?
                .query_opt("SELECT body FROM renditions WHERE key = $1", &[&key])?
                .map(|row| decode(|| format!("rendition {key}"), row.get(0)))
                .transpose()
        })
    }

    fn put_rendition(&self, rendition: &StoredRendition) -> Result<(), StoreError> {
        off_worker(|| {
            self.client()?.execute(
                "INSERT INTO renditions (key, source, body) VALUES ($1, $2, $3)
                 ON CONFLICT (key) DO UPDATE SET source = EXCLUDED.source, body = EXCLUDED.body",
                &[&rendition.key(), &rendition.source, &encode(rendition)],
            )?;
            Ok(())
        })
    }

    fn put_finished_rendition(&self, rendition: &StoredRendition) -> Result<u64, StoreError> {
        off_worker(|| {
            let key = rendition.key();
            let mut client = self.client()?;
            let mut tx = client.transaction()?;
            tx.execute(
                "INSERT INTO renditions (key, source, body) VALUES ($1, $2, $3)
                 ON CONFLICT (key) DO UPDATE SET source = EXCLUDED.source, body = EXCLUDED.body",
                &[&key, &rendition.source, &encode(rendition)],
            )?;
            // Held until commit: the next finisher numbers after this one, and commits after.
            tx.batch_execute("LOCK TABLE rendition_finishes IN EXCLUSIVE MODE")?;
            let n: i64 = tx
                .query_one(
                    "INSERT INTO rendition_finishes (n, key)
                     SELECT COALESCE(MAX(n), 0) + 1, $1 FROM rendition_finishes
                     RETURNING n",
                    &[&key],
                )?
                .get(0);
            tx.commit()?;
            to_u64(n, || format!("the finish number of rendition {key}"))
        })
    }

    fn finished_renditions(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, StoredRendition)>, StoreError> {
        off_worker(|| {
            let rows = self.client()?.query(
                "SELECT f.n, r.key, r.body FROM rendition_finishes f
                 JOIN renditions r ON r.key = f.key
                 WHERE f.n > $1 ORDER BY f.n LIMIT $2",
                &[
                    &to_i64(after, || "a finish number".into())?,
                    &i64::try_from(limit).unwrap_or(i64::MAX),
                ],
            )?;
            rows.into_iter()
                .map(|row| {
                    let key: String = row.get(1);
                    let n = to_u64(row.get(0), || format!("the finish number of {key}"))?;
                    Ok((n, decode(|| format!("rendition {key}"), row.get(2))?))
                })
                .collect()
        })
    }

    fn last_finished_rendition(&self) -> Result<u64, StoreError> {
        off_worker(|| {
            let n: i64 = self
                .client()?
                .query_one("SELECT COALESCE(MAX(n), 0) FROM rendition_finishes", &[])?
                .get(0);
            to_u64(n, || "the last rendition finish number".into())
        })
    }

    fn renditions_of(&self, source: &str) -> Result<Vec<StoredRendition>, StoreError> {
        off_worker(|| {
            let rows = self.client()?.query(
                "SELECT key, body FROM renditions WHERE source = $1 ORDER BY key",
                &[&source],
            )?;
            rows.into_iter()
                .map(|row| {
                    let key: String = row.get(0);
                    decode(|| format!("rendition {key}"), row.get(1))
                })
                .collect()
        })
    }
}
