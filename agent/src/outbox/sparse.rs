//! A redb storage backend in memory that holds only the pages written: redb's own
//! `InMemoryBackend` is one `Vec` as long as the database file would be (about a
//! megabyte for a fresh outbox, zeros included), which at 11,000 agents in one process is
//! 11 GB of zeros. Here unwritten ranges read as zeros and cost nothing.

use std::collections::HashMap;
use std::io;
use std::sync::{Mutex, MutexGuard};

/// Granularity of the stored pieces (redb's page size).
const PIECE: u64 = 4096;

/// A sparse in-memory store for one redb database.
#[derive(Default)]
pub struct SparseMemory {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    len: u64,
    /// Pieces written, by index (`offset / PIECE`), each `PIECE` bytes.
    pieces: HashMap<u64, Box<[u8]>>,
}

impl std::fmt::Debug for SparseMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("SparseMemory")
            .field("len", &inner.len)
            .field("pieces", &inner.pieces.len())
            .finish()
    }
}

impl SparseMemory {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes held (pieces written).
    #[cfg(test)]
    fn held_bytes(&self) -> u64 {
        self.lock().pieces.len() as u64 * PIECE
    }
}

/// The error of an access beyond the end.
fn beyond(offset: u64, n: usize, len: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{n} bytes at {offset} are beyond the end of the in-memory outbox ({len} bytes)"),
    )
}

/// Splits `offset..offset + n` into (piece index, start within the piece, position in the
/// caller's buffer, length).
fn spans(offset: u64, n: usize) -> impl Iterator<Item = (u64, usize, usize, usize)> {
    let end = offset + n as u64;
    let mut at = offset;
    std::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let index = at / PIECE;
        let within = (at % PIECE) as usize;
        let take = (PIECE - at % PIECE).min(end - at) as usize;
        let span = (index, within, (at - offset) as usize, take);
        at += take as u64;
        Some(span)
    })
}

impl redb::StorageBackend for SparseMemory {
    fn len(&self) -> Result<u64, io::Error> {
        Ok(self.lock().len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        let inner = self.lock();
        if offset
            .checked_add(out.len() as u64)
            .is_none_or(|e| e > inner.len)
        {
            return Err(beyond(offset, out.len(), inner.len));
        }
        for (index, within, pos, take) in spans(offset, out.len()) {
            let to = &mut out[pos..pos + take];
            match inner.pieces.get(&index) {
                Some(piece) => to.copy_from_slice(&piece[within..within + take]),
                None => to.fill(0),
            }
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        let mut inner = self.lock();
        if len < inner.len {
            // Whatever lies beyond the new end must read as zeros if it grows again.
            inner.pieces.retain(|&i, _| i * PIECE < len);
            if !len.is_multiple_of(PIECE) {
                if let Some(piece) = inner.pieces.get_mut(&(len / PIECE)) {
                    piece[(len % PIECE) as usize..].fill(0);
                }
            }
        }
        inner.len = len;
        Ok(())
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        let mut inner = self.lock();
        if offset
            .checked_add(data.len() as u64)
            .is_none_or(|e| e > inner.len)
        {
            return Err(beyond(offset, data.len(), inner.len));
        }
        for (index, within, pos, take) in spans(offset, data.len()) {
            let piece = inner
                .pieces
                .entry(index)
                .or_insert_with(|| vec![0; PIECE as usize].into_boxed_slice());
            piece[within..within + take].copy_from_slice(&data[pos..pos + take]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::StorageBackend;

    #[test]
    fn reads_back_writes_across_pieces_and_zeros_elsewhere() {
        let m = SparseMemory::default();
        m.set_len(4 * PIECE).unwrap();
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8 + 1).collect();
        m.write(PIECE - 100, &data).unwrap();
        assert_eq!(m.held_bytes(), 3 * PIECE);
        let mut back = vec![0; 5000];
        m.read(PIECE - 100, &mut back).unwrap();
        assert_eq!(back, data);
        let mut head = vec![9; 100];
        m.read(0, &mut head).unwrap();
        assert!(head.iter().all(|&b| b == 0));
        // Beyond the end is an error, not a panic.
        assert!(m.read(4 * PIECE - 1, &mut [0; 2]).is_err());
        assert!(m.write(4 * PIECE, &[1]).is_err());
        // Shrinking then growing reads zeros where data was.
        m.set_len(PIECE).unwrap();
        m.set_len(3 * PIECE).unwrap();
        let mut again = vec![9; 200];
        m.read(PIECE - 100, &mut again).unwrap();
        assert_eq!(&again[..100], &data[..100]);
        assert!(again[100..].iter().all(|&b| b == 0));
    }
}
