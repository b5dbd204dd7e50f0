//! Reading records stored by reference: a record is kept once, inside the signed batch that
//! stored it, as `(batch_seq, batch hash, index in the batch's records)`; reading it means
//! unpacking and parsing its batch. Shared by both backends: each gives a [`BatchSource`]
//! (its table of stored batches) and [`Reader`] keeps the last few batches it parsed.

use std::borrow::Cow;

use playlists::wire::{PlayRecord, PopBatch, SignedEnvelope, MAX_POP_BYTES};

use super::pack::{unpack, unpack_into, Unpacked};
use super::{HashBytes, LedgerError};

/// A stored record's place: `(batch_seq, batch hash, index in the batch's records)`.
pub(crate) type RecordRef<'a> = (u64, &'a HashBytes, u32);

/// Where stored batches are read from.
pub(crate) trait BatchSource {
    /// The records of stored batch `(screen, epoch, batch_seq, hash)`, if it is stored and
    /// intact (see [`records_of`]); `buf` is scratch space.
    fn records(
        &mut self,
        key: (&str, &str, u64, &HashBytes),
        buf: &mut Vec<u8>,
    ) -> Result<Option<Vec<PlayRecord>>, LedgerError>;
}

/// The envelope a stored batch keeps, as received, if it is intact.
pub(crate) fn envelope(stored: &[u8]) -> Option<Cow<'_, [u8]>> {
    unpack(stored, MAX_POP_BYTES)
}

/// The envelope stored batch `(screen, epoch, batch_seq)` keeps, as received; damaged
/// (it no longer unpacks) is an error naming the batch. What `LedgerStore::batches` gives.
pub(crate) fn stored_envelope<'a>(
    stored: &'a [u8],
    screen: &str,
    epoch: &str,
    batch_seq: u64,
) -> Result<Cow<'a, [u8]>, LedgerError> {
    envelope(stored).ok_or_else(|| {
        LedgerError::Corrupt(format!(
            "batch {batch_seq} of screen {screen}'s {}: the stored envelope no longer unpacks",
            super::epoch_name(epoch)
        ))
    })
}

/// The records of a stored batch, if it is intact: its signed payload still hashes to
/// `hash` (the hash it was stored under), so a damaged byte never reaches an export as a
/// record; `buf` is scratch space.
pub(crate) fn records_of(
    stored: &[u8],
    hash: &HashBytes,
    buf: &mut Vec<u8>,
) -> Option<Vec<PlayRecord>> {
    let raw = match unpack_into(stored, MAX_POP_BYTES, buf)? {
        Unpacked::Raw(raw) => raw,
        Unpacked::InBuffer => buf.as_slice(),
    };
    let payload = payload_of(raw)?;
    if playlists::wire::pop::batch_hash(&payload).as_str() != hex::encode(hash) {
        return None;
    }
    serde_json::from_str::<PopBatch>(&payload)
        .ok()
        .map(|b| b.records)
}

/// The payload of a stored envelope, as signed; the signature is not checked.
pub(crate) fn payload_of(raw: &[u8]) -> Option<String> {
    serde_json::from_slice::<SignedEnvelope>(raw)
        .ok()
        .map(|env| env.payload)
}

/// A stored batch: `(screen, epoch, batch_seq, hash)`.
type OwnedBatchKey = (String, String, u64, HashBytes);

/// Batches parsed to read the records stored by reference.
const CACHED_BATCHES: usize = 4;

/// Reads stored records through their references, parsing each stored batch once while it
/// is among the last few used (records of a screen mostly come batch by batch).
pub(crate) struct Reader<T> {
    batches: T,
    /// Most recently used last. `None`: the batch is not stored or does not parse.
    cache: Vec<(OwnedBatchKey, Option<Vec<PlayRecord>>)>,
    /// Scratch space to unpack envelopes in.
    buf: Vec<u8>,
}

impl<T: BatchSource> Reader<T> {
    pub fn new(batches: T) -> Reader<T> {
        Reader {
            batches,
            cache: Vec::with_capacity(CACHED_BATCHES),
            buf: Vec::new(),
        }
    }

    /// The source of batches, for the caller's other queries.
    pub fn source(&mut self) -> &mut T {
        &mut self.batches
    }

    /// Record `seq` of `screen`'s `epoch`, stored as `at`; `Err` says why it cannot be read
    /// (the reference is damaged or its batch is gone).
    pub fn record(
        &mut self,
        screen: &str,
        epoch: &str,
        seq: u64,
        at: RecordRef<'_>,
    ) -> Result<Result<&PlayRecord, String>, LedgerError> {
        let (batch_seq, hash, index) = at;
        let records = self.batch(screen, epoch, batch_seq, hash)?;
        let Some(records) = records else {
            return Ok(Err(format!(
                "its batch {batch_seq} with hash {} is not stored, does not parse or does not match its hash",
                hex::encode(hash)
            )));
        };
        Ok(match records.get(index as usize) {
            Some(r) if r.seq == seq && r.screen_id == screen && r.epoch == epoch => Ok(r),
            Some(r) => Err(format!(
                "record {index} of batch {batch_seq} is seq {} of screen {:?}",
                r.seq, r.screen_id
            )),
            None => Err(format!(
                "batch {batch_seq} has {} records, none at index {index}",
                records.len()
            )),
        })
    }

    /// Whether incoming record `r` of `screen`'s `epoch` is the one stored as `at`: `Err`
    /// is why a batch carrying it is refused (held with other content, or unreadable).
    pub fn same_as_held(
        &mut self,
        screen: &str,
        epoch: &str,
        r: &super::view::RecordView<'_>,
        at: RecordRef<'_>,
    ) -> Result<Result<(), String>, LedgerError> {
        let conflict = match self.record(screen, epoch, r.seq, at)? {
            Ok(stored) if r.same_as(stored) => return Ok(Ok(())),
            Ok(_) => "already held with other content".to_owned(),
            Err(why) => format!("held but unreadable ({why})"),
        };
        Ok(Err(format!(
            "seq {} of {} is {conflict}, from batch {}: a batch that conflicts with stored records is not stored",
            r.seq,
            super::epoch_name(epoch),
            at.0
        )))
    }

    fn batch(
        &mut self,
        screen: &str,
        epoch: &str,
        batch_seq: u64,
        hash: &HashBytes,
    ) -> Result<Option<&Vec<PlayRecord>>, LedgerError> {
        let hit = self.cache.iter().rposition(|((s, e, b, h), _)| {
            s == screen && e == epoch && *b == batch_seq && h == hash
        });
        let at = match hit {
            Some(at) => at,
            None => {
                let records = self
                    .batches
                    .records((screen, epoch, batch_seq, hash), &mut self.buf)?;
                if self.cache.len() == CACHED_BATCHES {
                    self.cache.remove(0);
                }
                self.cache.push((
                    (screen.to_owned(), epoch.to_owned(), batch_seq, *hash),
                    records,
                ));
                self.cache.len() - 1
            }
        };
        Ok(self.cache[at].1.as_ref())
    }
}
