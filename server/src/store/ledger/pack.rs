//! How a batch envelope is kept in `pop_batches`: the exact bytes received, compressed.
//!
//! Envelopes are most of the ledger file (the same keys and ids over and over), so they are
//! stored compressed with zstd. A packed value starts with a format byte:
//!
//! - [`RAW`]: the bytes as they are follow;
//! - [`ZSTD`]: the length of the unpacked bytes (u32, little-endian), then one zstd frame;
//! - [`ZSTD_DICT1`]: the length, then one zstd frame made with [`DICT1`] as its dictionary:
//!   envelopes up to [`DICT_MAX`] bytes, most of all the one-record batches agents send a
//!   second after each play, whose field names and structure a lone frame cannot compress
//!   (about 45 % smaller than [`ZSTD`] for those);
//! - [`LZ`]: the length, then sequences of the hand-written LZ77 codec that stored envelopes
//!   before zstd. Nothing writes it any more; [`legacy`] only reads it, so ledgers written
//!   before the change keep their envelopes, signatures and audits.
//!
//! [`pack`] proves its own output before returning it: it unpacks it and compares with the
//! input, and stores the input as it is when that fails or saves nothing, so a flaw here can
//! cost space, never a byte of the signed envelope. [`unpack`] checks the length before it
//! allocates: damaged bytes give `None` (or other bytes, which the audit's signature check
//! reports), never a panic or a huge allocation.

use std::borrow::Cow;
use std::cell::RefCell;

/// Format byte: the envelope as received follows.
pub(crate) const RAW: u8 = 0;
/// Format byte: the envelope's length and the old codec's sequences follow (read only).
pub(crate) const LZ: u8 = 1;
/// Format byte: the envelope's length and a zstd frame follow.
pub(crate) const ZSTD: u8 = 2;
/// Format byte: the envelope's length and a zstd frame made with [`DICT1`] follow.
pub(crate) const ZSTD_DICT1: u8 = 3;

/// The raw-content dictionary of [`ZSTD_DICT1`]: three one-record envelopes as agents sign
/// them (every field name, each status). Stored values depend on these exact bytes: never
/// change this file; a better dictionary gets a new format byte.
const DICT1: &[u8] = include_bytes!("pack-dict-1.json");

/// Envelopes up to this size are packed with [`DICT1`]; larger ones compress well alone.
const DICT_MAX: usize = 16 * 1024;

/// The format byte and the unpacked length.
const HEADER: usize = 5;

/// zstd's level: 3 (its default) packs envelopes several times smaller than the old codec
/// at ingest speed; higher levels save little more on these small JSON documents.
const LEVEL: i32 = 3;

thread_local! {
    /// One compression context per ingest thread: making one costs more than compressing a
    /// one-record envelope.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
    static DICT_COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { RefCell::new(None) };
    static DICT_DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// The stored form of `raw`.
pub(crate) fn pack(raw: &[u8]) -> Vec<u8> {
    if let Some(packed) = compress(raw) {
        if packed.len() < raw.len() + 1 && unpack(&packed, raw.len()).as_deref() == Some(raw) {
            return packed;
        }
    }
    let mut out = Vec::with_capacity(raw.len() + 1);
    out.push(RAW);
    out.extend_from_slice(raw);
    out
}

/// The bytes `stored` keeps, if it is intact and they are at most `max` long.
pub(crate) fn unpack(stored: &[u8], max: usize) -> Option<Cow<'_, [u8]>> {
    let mut buf = Vec::new();
    match unpack_into(stored, max, &mut buf)? {
        Unpacked::Raw(raw) => Some(Cow::Borrowed(raw)),
        Unpacked::InBuffer => Some(Cow::Owned(buf)),
    }
}

/// Where [`unpack_into`] left the bytes.
pub(crate) enum Unpacked<'s> {
    /// Stored as they are: this part of `stored`.
    Raw(&'s [u8]),
    /// In the buffer.
    InBuffer,
}

/// [`unpack`], decompressing into `buf` (cleared first), so a reader of many batches
/// reuses one allocation.
pub(crate) fn unpack_into<'s>(
    stored: &'s [u8],
    max: usize,
    buf: &mut Vec<u8>,
) -> Option<Unpacked<'s>> {
    let (&tag, rest) = stored.split_first()?;
    if tag == RAW {
        return (rest.len() <= max).then_some(Unpacked::Raw(rest));
    }
    let (len, body) = rest.split_first_chunk::<4>()?;
    let len = u32::from_le_bytes(*len) as usize;
    if len > max {
        return None;
    }
    buf.clear();
    buf.reserve(len);
    let ok = match tag {
        ZSTD => decompress(&DECOMPRESSOR, None, body, len, buf),
        ZSTD_DICT1 => decompress(&DICT_DECOMPRESSOR, Some(DICT1), body, len, buf),
        LZ => legacy::decompress(body, len, buf),
        _ => false,
    };
    ok.then_some(Unpacked::InBuffer)
}

/// `[ZSTD_DICT1 or ZSTD, len, frame]`, or `None` when `raw` is too long to say its length or
/// zstd fails.
fn compress(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.len() <= DICT_MAX {
        compress_with(raw, ZSTD_DICT1)
    } else {
        compress_with(raw, ZSTD)
    }
}

/// `[tag, len, frame]`: `tag` is [`ZSTD`] or [`ZSTD_DICT1`].
fn compress_with(raw: &[u8], tag: u8) -> Option<Vec<u8>> {
    let len = u32::try_from(raw.len()).ok()?;
    let mut out = vec![0; HEADER + zstd::zstd_safe::compress_bound(raw.len())];
    out[0] = tag;
    out[1..HEADER].copy_from_slice(&len.to_le_bytes());
    let (context, dict) = if tag == ZSTD_DICT1 {
        (&DICT_COMPRESSOR, Some(DICT1))
    } else {
        (&COMPRESSOR, None)
    };
    let n = context.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = Some(match dict {
                Some(d) => zstd::bulk::Compressor::with_dictionary(LEVEL, d).ok()?,
                None => zstd::bulk::Compressor::new(LEVEL).ok()?,
            });
        }
        c.as_mut()?.compress_to_buffer(raw, &mut out[HEADER..]).ok()
    })?;
    out.truncate(HEADER + n);
    Some(out)
}

type Decompressors = std::thread::LocalKey<RefCell<Option<zstd::bulk::Decompressor<'static>>>>;

/// Decompresses the frame `body` into `out` (empty, with room for `len`) with `context`
/// (made with `dict` on first use); false if it is damaged or does not make exactly `len`
/// bytes.
fn decompress(
    context: &'static Decompressors,
    dict: Option<&'static [u8]>,
    body: &[u8],
    len: usize,
    out: &mut Vec<u8>,
) -> bool {
    context.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = match dict {
                Some(dict) => zstd::bulk::Decompressor::with_dictionary(dict).ok(),
                None => zstd::bulk::Decompressor::new().ok(),
            };
        }
        let Some(d) = d.as_mut() else {
            return false;
        };
        // The buffer's spare capacity bounds the output: a frame that claims more fails.
        matches!(d.decompress_to_buffer(body, out), Ok(n) if n == len)
    })
}

/// The hand-written LZ77 codec that packed envelopes before zstd (an LZ4-like block format:
/// literal runs and back references within 64 KiB). Only its reader is left.
mod legacy {
    /// The shortest back reference.
    const MIN_MATCH: usize = 4;

    /// Decompresses `input` into `out` (empty); false if it is damaged or does not make
    /// `len` bytes.
    pub(super) fn decompress(input: &[u8], len: usize, out: &mut Vec<u8>) -> bool {
        decompress_into(input, len, out).is_some()
    }

    /// Sequences: a token (literal count, match length - 4, 15 meaning "more follows"), the
    /// literals, then the match as offset (u16) and length, except in the last sequence.
    fn decompress_into(input: &[u8], len: usize, out: &mut Vec<u8>) -> Option<()> {
        let mut at = 0;
        let read_length = |at: &mut usize, mut n: usize| -> Option<usize> {
            loop {
                let b = *input.get(*at)?;
                *at += 1;
                n = n.checked_add(b as usize)?;
                if n > len {
                    return None;
                }
                if b != 255 {
                    return Some(n);
                }
            }
        };
        while at < input.len() {
            let token = input[at];
            at += 1;
            let mut literals = (token >> 4) as usize;
            if literals == 15 {
                literals = read_length(&mut at, literals)?;
            }
            let lits = input.get(at..at.checked_add(literals)?)?;
            if out.len() + lits.len() > len {
                return None;
            }
            out.extend_from_slice(lits);
            at += literals;
            if at == input.len() {
                break;
            }
            let offset = u16::from_le_bytes(input.get(at..at + 2)?.try_into().ok()?) as usize;
            at += 2;
            let mut n = (token & 15) as usize;
            if n == 15 {
                n = read_length(&mut at, n)?;
            }
            n += MIN_MATCH;
            if offset == 0 || offset > out.len() || out.len() + n > len {
                return None;
            }
            let from = out.len() - offset;
            if offset >= n {
                out.extend_from_within(from..from + n);
            } else {
                for k in 0..n {
                    out.push(out[from + k]);
                }
            }
        }
        (out.len() == len).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use playlists::wire::pop::BATCH_KIND;
    use playlists::wire::signed::open;
    use playlists::wire::PopBatch;

    use super::super::testkit::Agent;
    use super::*;

    /// A deterministic stream of pseudo-random bytes.
    fn noise(seed: u64, n: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn round_trip(raw: &[u8]) -> Vec<u8> {
        let packed = pack(raw);
        assert_eq!(unpack(&packed, raw.len()).as_deref(), Some(raw));
        packed
    }

    fn json(n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                format!(r#"{{"play_id":"s1-{i}","seq":{i},"status":"complete"}},"#).into_bytes()
            })
            .collect()
    }

    #[test]
    fn packs_and_unpacks() {
        assert_eq!(round_trip(b""), [RAW]);
        assert_eq!(round_trip(b"abc"), [RAW, b'a', b'b', b'c']);
        // Random bytes do not compress: kept as they are.
        assert_eq!(round_trip(&noise(7, 5000))[0], RAW);
        let json = json(3000);
        let packed = round_trip(&json);
        assert_eq!(packed[0], ZSTD);
        assert!(
            packed.len() * 10 < json.len(),
            "{} of {}",
            packed.len(),
            json.len()
        );
        for n in 0..40 {
            round_trip(&json[..n]);
            round_trip(&vec![b'a'; n]);
        }
    }

    /// A one-record envelope as an agent signs it, for batch `n` of a screen.
    fn one_record(n: u64) -> Vec<u8> {
        let mut a = Agent::new(
            5,
            "bj-community-tiantongyuan-s3",
            "bj-community-tiantongyuan",
        );
        a.epoch = format!("{:032x}", n * 7919);
        let mut raw = Vec::new();
        for _ in 0..n {
            let p = a.plays(1, "rm2023-annual", "rm2023-annual-02-l");
            raw = a.batch(p);
        }
        raw
    }

    #[test]
    fn one_record_envelopes_pack_with_the_dictionary() {
        let (mut with, mut alone) = (0, 0);
        for n in 1..20 {
            let raw = one_record(n);
            let packed = round_trip(&raw);
            assert_eq!(packed[0], ZSTD_DICT1);
            with += packed.len();
            let plain = compress_with(&raw, ZSTD).unwrap();
            assert_eq!(unpack(&plain, raw.len()).as_deref(), Some(&raw[..]));
            alone += plain.len();
        }
        // The figure, independent of `pack`: zstd at the same level, no dictionary.
        assert!(
            with * 10 < alone * 7,
            "{with} with the dictionary, {alone} without"
        );
        // Values packed before the dictionary (tag ZSTD) still unpack, as do damaged ones
        // not at all.
        let raw = one_record(3);
        let mut bad = pack(&raw);
        let at = bad.len() - 3;
        bad[at] ^= 0x40;
        assert_ne!(unpack(&bad, raw.len()).as_deref(), Some(&raw[..]));
        let digest = <sha2::Sha256 as sha2::Digest>::digest(DICT1);
        assert_eq!(
            hex::encode(digest),
            "bc5fd29be0bec40717aac23b7fdc3ce29dc385a40ec8859135d7439f3353461d",
            "the dictionary never changes"
        );
    }

    #[test]
    fn damage_is_refused_not_panicked_on() {
        let json = json(500);
        let packed = pack(&json);
        assert_eq!(unpack(&packed, json.len() - 1), None, "longer than allowed");
        assert_eq!(unpack(&[], 10), None);
        assert_eq!(unpack(&[9, 1, 0, 0, 0, 2], 10), None, "unknown format");
        assert_eq!(unpack(&[ZSTD, 1, 0], 10), None);
        assert_eq!(unpack(&[LZ, 1, 0], 10), None);
        for at in 0..packed.len() {
            for mask in [0x01, 0x10, 0xff] {
                let mut bad = packed.clone();
                bad[at] ^= mask;
                // Either refused or some other bytes: never a panic.
                let _ = unpack(&bad, json.len() * 2);
            }
        }
        for seed in 1..200 {
            for tag in [LZ, ZSTD, ZSTD_DICT1] {
                let mut bad = noise(seed, 64);
                bad[0] = tag;
                let _ = unpack(&bad, 1 << 20);
            }
        }
    }

    /// Envelopes packed by the old hand-written codec (`LZ`), written by its `pack` before
    /// zstd replaced it: a one-record batch and a hundred-record batch of screen
    /// `bj-metro-xidan-s1`, signed with the key from `[3; 32]`.
    const OLD_ENVELOPES: [(&str, &[u8], usize, usize, &str); 2] = [
        (
            "one record",
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/testdata/pack-v1-one-record.bin"
            )),
            821,
            1,
            "9faef6e170461407ae7e56fa5b6ea9790457f8a56b23ac68e42be9dffbb2ee99",
        ),
        (
            "a hundred records",
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/testdata/pack-v1-hundred-records.bin"
            )),
            48_522,
            100,
            "b218e49758106632876579361ea7ded6fec97db00e5ccc34e1b74ff5da7b68be",
        ),
    ];

    #[test]
    fn envelopes_packed_by_the_old_codec_still_unpack() {
        let key = Agent::new(3, "bj-metro-xidan-s1", "bj-metro-xidan")
            .key
            .public();
        for (name, stored, len, records, sha256) in OLD_ENVELOPES {
            assert_eq!(stored[0], LZ, "{name}");
            let raw = unpack(stored, MAX).unwrap_or_else(|| panic!("{name} does not unpack"));
            assert_eq!(raw.len(), len, "{name}");
            let digest = <sha2::Sha256 as sha2::Digest>::digest(&raw);
            assert_eq!(hex::encode(digest), sha256, "{name}");
            let batch: PopBatch = open(&raw, BATCH_KIND, &key, MAX).unwrap();
            assert_eq!(batch.records.len(), records, "{name}");
            assert_eq!(unpack(stored, len - 1), None, "{name}: longer than allowed");
            // Packing again today gives the new format, and the same bytes back.
            let tag = if len <= DICT_MAX { ZSTD_DICT1 } else { ZSTD };
            assert_eq!(round_trip(&raw)[0], tag, "{name}");
            for at in 0..stored.len().min(600) {
                let mut bad = stored.to_vec();
                bad[at] ^= 0x04;
                let _ = unpack(&bad, MAX);
            }
        }
    }

    const MAX: usize = 1 << 20;
}
