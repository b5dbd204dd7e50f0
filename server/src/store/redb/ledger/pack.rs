//! How a batch envelope is kept in `pop_batches`: the exact bytes received, compressed.
//!
//! Envelopes are most of the ledger file (a batch of 1,000 plays is about 480 KB of JSON,
//! the same keys and ids over and over), so they are stored LZ77-compressed, in an LZ4-like
//! block format (literal runs and back references within 64 KiB). A packed value starts with
//! a format byte: [`RAW`] then the bytes as they are, or [`LZ`] then the length of the
//! unpacked bytes (u32, little-endian) and the sequences. [`pack`] proves its own output
//! before returning it: it unpacks it and compares with the input, and stores the input as
//! it is when that fails or saves nothing, so a flaw here can cost space, never a byte of
//! the signed envelope. [`unpack`] checks every length and offset: damaged bytes give `None`,
//! never a panic or a huge allocation.

use std::borrow::Cow;

/// Format byte: the envelope as received follows.
pub(super) const RAW: u8 = 0;
/// Format byte: the envelope's length and its compressed sequences follow.
pub(super) const LZ: u8 = 1;

/// The shortest back reference.
const MIN_MATCH: usize = 4;
/// The farthest back reference.
const MAX_OFFSET: usize = u16::MAX as usize;
const HASH_BITS: u32 = 16;

/// The stored form of `raw`.
pub(super) fn pack(raw: &[u8]) -> Vec<u8> {
    if let Ok(len) = u32::try_from(raw.len()) {
        let packed = compress(raw, len);
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
pub(super) fn unpack(stored: &[u8], max: usize) -> Option<Cow<'_, [u8]>> {
    let mut buf = Vec::new();
    match unpack_into(stored, max, &mut buf)? {
        Unpacked::Raw(raw) => Some(Cow::Borrowed(raw)),
        Unpacked::InBuffer => Some(Cow::Owned(buf)),
    }
}

/// Where [`unpack_into`] left the bytes.
pub(super) enum Unpacked<'s> {
    /// Stored as they are: this part of `stored`.
    Raw(&'s [u8]),
    /// In the buffer.
    InBuffer,
}

/// [`unpack`], decompressing into `buf` (cleared first), so a reader of many batches
/// reuses one allocation.
pub(super) fn unpack_into<'s>(
    stored: &'s [u8],
    max: usize,
    buf: &mut Vec<u8>,
) -> Option<Unpacked<'s>> {
    match stored.split_first()? {
        (&RAW, raw) => (raw.len() <= max).then_some(Unpacked::Raw(raw)),
        (&LZ, rest) => {
            let (len, seqs) = rest.split_first_chunk::<4>()?;
            let len = u32::from_le_bytes(*len) as usize;
            if len > max {
                return None;
            }
            decompress(seqs, len, buf).then_some(Unpacked::InBuffer)
        }
        _ => None,
    }
}

fn compress(input: &[u8], len: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() / 4 + 16);
    out.push(LZ);
    out.extend_from_slice(&len.to_le_bytes());
    // The last position (plus one) where each hash of four bytes was seen.
    let mut seen = vec![0u32; 1 << HASH_BITS];
    let hash = |at: usize| {
        let word = u32::from_le_bytes(input[at..at + 4].try_into().expect("4 bytes"));
        (word.wrapping_mul(2_654_435_761) >> (32 - HASH_BITS)) as usize
    };
    let (mut anchor, mut at) = (0, 0);
    while at + MIN_MATCH <= input.len() {
        let h = hash(at);
        let candidate = seen[h] as usize;
        seen[h] = (at + 1) as u32;
        if let Some(from) = candidate.checked_sub(1) {
            if at - from <= MAX_OFFSET && input[from..from + 4] == input[at..at + 4] {
                let n = MIN_MATCH + common_len(&input[from + 4..], &input[at + 4..]);
                sequence(&mut out, &input[anchor..at], Some((at - from, n)));
                at += n;
                anchor = at;
                if at >= 2 && at + 2 <= input.len() {
                    seen[hash(at - 2)] = (at - 1) as u32;
                }
                continue;
            }
        }
        at += 1;
    }
    if anchor < input.len() {
        sequence(&mut out, &input[anchor..], None);
    }
    out
}

/// How many leading bytes `a` and `b` share (`a` is at least as long as `b`).
fn common_len(a: &[u8], b: &[u8]) -> usize {
    let mut n = 0;
    while n + 8 <= b.len() {
        let x = u64::from_le_bytes(a[n..n + 8].try_into().expect("8 bytes"))
            ^ u64::from_le_bytes(b[n..n + 8].try_into().expect("8 bytes"));
        if x != 0 {
            return n + (x.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    while n < b.len() && a[n] == b[n] {
        n += 1;
    }
    n
}

/// One sequence: a token (literal count, match length - 4, 15 meaning "more follows"), the
/// literals, then the match as offset and length, unless this is the last sequence.
fn sequence(out: &mut Vec<u8>, literals: &[u8], back: Option<(usize, usize)>) {
    let extra = back.map_or(0, |(_, n)| n - MIN_MATCH);
    out.push(((literals.len().min(15) as u8) << 4) | extra.min(15) as u8);
    if literals.len() >= 15 {
        length(out, literals.len() - 15);
    }
    out.extend_from_slice(literals);
    if let Some((offset, _)) = back {
        out.extend_from_slice(&(offset as u16).to_le_bytes());
        if extra >= 15 {
            length(out, extra - 15);
        }
    }
}

fn length(out: &mut Vec<u8>, mut n: usize) {
    while n >= 255 {
        out.push(255);
        n -= 255;
    }
    out.push(n as u8);
}

/// Decompresses `input` into `out`; false if it is damaged or does not make `len` bytes.
fn decompress(input: &[u8], len: usize, out: &mut Vec<u8>) -> bool {
    out.clear();
    out.reserve(len);
    decompress_into(input, len, out).is_some()
}

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

#[cfg(test)]
mod tests {
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

    #[test]
    fn packs_and_unpacks() {
        assert_eq!(round_trip(b""), [RAW]);
        assert_eq!(round_trip(b"abc"), [RAW, b'a', b'b', b'c']);
        // Random bytes do not compress: kept as they are.
        assert_eq!(round_trip(&noise(7, 5000))[0], RAW);
        let json: Vec<u8> = (0..3000)
            .flat_map(|i| {
                format!(r#"{{"play_id":"s1-{i}","seq":{i},"status":"complete"}},"#).into_bytes()
            })
            .collect();
        let packed = round_trip(&json);
        assert_eq!(packed[0], LZ);
        assert!(
            packed.len() * 5 < json.len(),
            "{} of {}",
            packed.len(),
            json.len()
        );
        // Long runs (overlapping references), long literals, matches far apart.
        let mut mixed = vec![b'x'; 70_000];
        mixed.extend(noise(3, 300));
        mixed.extend_from_slice(&json[..40_000]);
        mixed.extend(noise(3, 300));
        mixed.extend(noise(5, 20));
        round_trip(&mixed);
        for n in 0..40 {
            round_trip(&json[..n]);
            round_trip(&vec![b'a'; n]);
        }
    }

    #[test]
    fn damage_is_refused_not_panicked_on() {
        let json: Vec<u8> = (0..500)
            .flat_map(|i| format!(r#"{{"seq":{i},"status":"complete"}},"#).into_bytes())
            .collect();
        let packed = pack(&json);
        assert_eq!(unpack(&packed, json.len() - 1), None, "longer than allowed");
        assert_eq!(unpack(&[], 10), None);
        assert_eq!(unpack(&[9, 1, 2], 10), None);
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
            let mut bad = noise(seed, 64);
            bad[0] = LZ;
            let _ = unpack(&bad, 1 << 20);
        }
    }
}
