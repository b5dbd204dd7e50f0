//! Stills through `image`: read the header and refuse decompression bombs,
//! decodes over the memory budget and animations over the frame and pixel
//! budgets before any pixel buffer exists (frames are counted by walking the
//! GIF blocks or WebP chunks), then decode every frame to prove the file is
//! whole; JPEG thumbnail encoding.
//!
//! `image` decodes a truncated baseline JPEG without complaint (the missing
//! part comes out grey), so JPEGs must also reach their end-of-image marker.
//! Animated GIF and WebP count as stills; all their frames are decoded.

use std::io::Cursor;

use image::codecs::gif::GifDecoder;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::webp::WebPDecoder;
use image::imageops::FilterType;
use image::{AnimationDecoder, DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader};
use image::{Rgb, RgbImage};

use crate::{Limits, MediaError};

/// JPEG quality of thumbnails.
const THUMBNAIL_QUALITY: u8 = 85;

/// Canvases an animation holds at once while decoding, each RGBA8: the
/// decoder's previous (non-disposed) frame, the frame read and its composite
/// (or WebP's own canvas), and the first frame this crate keeps.
pub(crate) const ANIMATION_CANVASES: u64 = 5;

/// Decoding memory as a multiple of the output buffer, per still format: the
/// JPEG decoder copies the file and holds the coefficient planes of a
/// progressive image; lossy WebP decodes through YUV planes.
fn still_factor(format: ImageFormat) -> u64 {
    match format {
        ImageFormat::Jpeg | ImageFormat::WebP => 2,
        _ => 1,
    }
}

/// Checks `data` (already sniffed as `format`) against `limits` and decodes
/// all of it (every frame of an animation); returns its size and its (first)
/// picture.
pub(crate) fn decode(
    data: &[u8],
    format: ImageFormat,
    limits: &Limits,
) -> Result<((u32, u32), DynamicImage), MediaError> {
    if format == ImageFormat::Jpeg {
        jpeg_reaches_end(data).map_err(MediaError::CorruptImage)?;
    }
    let mut decoder = header(data, format)?;
    let size = decoder.dimensions();
    limits.check_frame(size.0, size.1)?;
    let frames = match format {
        ImageFormat::Gif => Some(gif_frame_count(data)),
        ImageFormat::WebP if is_animated_webp(data) => Some(webp_frame_count(data)),
        _ => None,
    };
    let canvas_bytes = u64::from(size.0) * u64::from(size.1) * 4;
    let picture = match frames {
        Some(frames) => {
            limits.check_animation(frames, size)?;
            let needed = canvas_bytes.saturating_mul(ANIMATION_CANVASES);
            limits.check_alloc(needed)?;
            drop(decoder);
            if format == ImageFormat::Gif {
                let decoder = GifDecoder::new(Cursor::new(data))
                    .map_err(|e| from_image(e, needed, limits))?;
                decode_frames(decoder, needed, limits)?
            } else {
                let decoder = WebPDecoder::new(Cursor::new(data))
                    .map_err(|e| from_image(e, needed, limits))?;
                decode_frames(decoder, needed, limits)?
            }
        }
        None => {
            let needed = decoder.total_bytes().saturating_mul(still_factor(format));
            limits.check_alloc(needed)?;
            decoder
                .set_limits(decode_limits(limits))
                .map_err(|e| from_image(e, needed, limits))?;
            DynamicImage::from_decoder(decoder).map_err(|e| from_image(e, needed, limits))?
        }
    };
    Ok((size, picture))
}

/// Whether `data` (sniffed as `format`) holds more than one frame: an animated GIF or
/// WebP. Walks the container only (no decompression).
pub(crate) fn is_animation(data: &[u8], format: ImageFormat) -> bool {
    match format {
        ImageFormat::Gif => gif_frame_count(data) > 1,
        ImageFormat::WebP => is_animated_webp(data) && webp_frame_count(data) > 1,
        _ => false,
    }
}

/// A JPEG of `picture` whose longer side is at most `max_side` (at least 1)
/// pixels, never enlarged; transparency is flattened onto white.
pub(crate) fn encode_thumbnail(
    picture: &DynamicImage,
    max_side: u32,
) -> Result<Vec<u8>, MediaError> {
    let max_side = max_side.max(1);
    let rgb = if picture.width().max(picture.height()) > max_side {
        flatten(&picture.resize(max_side, max_side, FilterType::Triangle))
    } else {
        flatten(picture)
    };
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, THUMBNAIL_QUALITY)
        .encode_image(&rgb)
        .map_err(|e| MediaError::Encode(e.to_string()))?;
    Ok(jpeg)
}

/// A decoder that has read the header alone (size, colour type); no pixel
/// buffer exists yet. Without limits, so that an oversized file still tells
/// its size and the refusal can name it.
fn header(data: &[u8], format: ImageFormat) -> Result<impl ImageDecoder + '_, MediaError> {
    let mut reader = ImageReader::with_format(Cursor::new(data), format);
    reader.no_limits();
    reader
        .into_decoder()
        .map_err(|e| MediaError::CorruptImage(format!("unreadable header: {e}")))
}

/// Decodes every frame of an animation; returns the first.
fn decode_frames<'a>(
    mut decoder: impl AnimationDecoder<'a> + ImageDecoder,
    needed: u64,
    limits: &Limits,
) -> Result<DynamicImage, MediaError> {
    decoder
        .set_limits(decode_limits(limits))
        .map_err(|e| from_image(e, needed, limits))?;
    let mut first = None;
    for frame in decoder.into_frames() {
        let frame = frame.map_err(|e| from_image(e, needed, limits))?;
        if first.is_none() {
            first = Some(DynamicImage::ImageRgba8(frame.into_buffer()));
        }
    }
    first.ok_or_else(|| MediaError::CorruptImage("the animation has no frames".into()))
}

/// `image` limits matching ours, for the decoding pass: a backstop behind the
/// checks made from the header.
pub(crate) fn decode_limits(limits: &Limits) -> image::Limits {
    let mut decode = image::Limits::default();
    decode.max_image_width = Some(limits.max_dimension);
    decode.max_image_height = Some(limits.max_dimension);
    decode.max_alloc = Some(limits.max_alloc);
    decode
}

/// Maps a decoding error; `needed` is the memory the header promised, named
/// if `image`'s own allocation limit trips anyway (a GIF frame larger than
/// its canvas, say).
pub(crate) fn from_image(error: ImageError, needed: u64, limits: &Limits) -> MediaError {
    match error {
        ImageError::Limits(_) => MediaError::OverMemoryBudget {
            needed: needed.max(limits.max_alloc.saturating_add(1)),
            budget: limits.max_alloc,
        },
        ImageError::Unsupported(e) => MediaError::Unsupported(e.to_string()),
        e => MediaError::CorruptImage(e.to_string()),
    }
}

/// Image descriptors in a GIF, counted by walking its block structure
/// without decompressing anything. The count stops where the structure
/// does (trailer, truncation, garbage); decoding judges the rest.
pub(crate) fn gif_frame_count(data: &[u8]) -> u64 {
    /// Length of a colour table announced by `flags`, if any.
    fn table(flags: u8) -> usize {
        if flags & 0x80 != 0 {
            3 << ((flags & 7) + 1)
        } else {
            0
        }
    }
    /// Index past a chain of data sub-blocks starting at `at`.
    fn skip_sub_blocks(data: &[u8], mut at: usize) -> Option<usize> {
        loop {
            let n = usize::from(*data.get(at)?);
            at += 1 + n;
            if n == 0 {
                return Some(at);
            }
        }
    }
    let Some(&flags) = data.get(10) else {
        return 0;
    };
    // Header (6), logical screen descriptor (7), global colour table.
    let mut at = Some(13 + table(flags));
    let mut frames = 0;
    while let Some(here) = at {
        at = match data.get(here) {
            // Image descriptor (10), local colour table, LZW code size, data.
            Some(0x2c) => {
                frames += 1;
                data.get(here + 9)
                    .and_then(|&f| skip_sub_blocks(data, here + 10 + table(f) + 1))
            }
            // Extension: label, then sub-blocks.
            Some(0x21) => skip_sub_blocks(data, here + 2),
            _ => None,
        };
    }
    frames
}

/// `ANMF` chunks of an animated WebP, counted by walking its RIFF chunks.
pub(crate) fn webp_frame_count(data: &[u8]) -> u64 {
    let mut at = 12; // RIFF, size, WEBP
    let mut frames = 0;
    while let (Some(fourcc), Some(size)) = (data.get(at..at + 4), data.get(at + 4..at + 8)) {
        if fourcc == b"ANMF" {
            frames += 1;
        }
        let size = u32::from_le_bytes([size[0], size[1], size[2], size[3]]) as usize;
        at = at
            .saturating_add(8)
            .saturating_add(size)
            .saturating_add(size & 1);
    }
    frames
}

/// Whether a WebP file has the animation flag in its VP8X header.
pub(crate) fn is_animated_webp(data: &[u8]) -> bool {
    // RIFF....WEBP, then the VP8X chunk: fourcc, size, flags (bit 1: animation).
    data.get(12..16) == Some(b"VP8X") && data.get(20).is_some_and(|flags| flags & 0x02 != 0)
}

/// Walks the JPEG segment structure, skipping entropy-coded data, and
/// succeeds only on reaching the end-of-image marker (bytes after it are
/// ignored, as decoders do).
fn jpeg_reaches_end(data: &[u8]) -> Result<(), String> {
    const SOS: u8 = 0xda;
    const EOI: u8 = 0xd9;
    let truncated = || "the data ends before the end-of-image marker".to_string();
    let mut at = 2; // past SOI, which sniffing has seen
    loop {
        if *data.get(at).ok_or_else(truncated)? != 0xff {
            return Err(format!("no marker where one belongs (byte {at})"));
        }
        while data.get(at) == Some(&0xff) {
            at += 1; // 0xff fill bytes
        }
        let marker = *data.get(at).ok_or_else(truncated)?;
        at += 1;
        match marker {
            EOI => return Ok(()),
            // Markers without a length: TEM, RST0..RST7.
            0x01 | 0xd0..=0xd7 => continue,
            _ => {}
        }
        let length = data.get(at..at + 2).ok_or_else(truncated)?;
        let length = usize::from(u16::from_be_bytes([length[0], length[1]]));
        if length < 2 {
            return Err(format!("segment length {length} at byte {at}"));
        }
        at += length;
        if at > data.len() {
            return Err(truncated());
        }
        if marker == SOS {
            at = skip_entropy_coded(data, at).ok_or_else(truncated)?;
        }
    }
}

/// Index of the first marker after entropy-coded data starting at `at`
/// (stuffed `ff 00` bytes and restart markers belong to the data).
fn skip_entropy_coded(data: &[u8], mut at: usize) -> Option<usize> {
    loop {
        at += data.get(at..)?.iter().position(|&b| b == 0xff)?;
        match *data.get(at + 1)? {
            0x00 | 0xd0..=0xd7 => at += 2,
            0xff => at += 1,
            _ => return Some(at),
        }
    }
}

/// RGB of `picture`, with any transparency composited onto white.
fn flatten(picture: &DynamicImage) -> RgbImage {
    if !picture.color().has_alpha() {
        return picture.to_rgb8();
    }
    let rgba = picture.to_rgba8();
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let over_white = |c: u8| {
            let (c, a) = (u16::from(c), u16::from(a));
            // At most 255 * 255 + 127: fits, and the quotient fits a u8.
            ((c * a + 255 * (255 - a) + 127) / 255) as u8
        };
        Rgb([over_white(r), over_white(g), over_white(b)])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_jpeg(data: &[u8], expect: Result<(), &str>) {
        assert_eq!(
            jpeg_reaches_end(data)
                .as_ref()
                .map_err(String::as_str)
                .copied(),
            expect,
            "{data:02x?}"
        );
    }

    #[test]
    fn jpeg_structure() {
        const CUT: Result<(), &str> = Err("the data ends before the end-of-image marker");
        check_jpeg(b"\xff\xd8\xff\xd9", Ok(()));
        check_jpeg(b"\xff\xd8\xff\xd9trailing", Ok(()));
        check_jpeg(b"\xff\xd8\xff\xe0\x00\x04ab\xff\xd9", Ok(()));
        // Entropy-coded data with a stuffed ff 00, a restart marker and fill.
        check_jpeg(
            b"\xff\xd8\xff\xda\x00\x02\x12\xff\x00\x34\xff\xd0\x56\xff\xff\xd9",
            Ok(()),
        );
        check_jpeg(b"\xff\xd8", CUT);
        check_jpeg(b"\xff\xd8\xff\xe0\x00\x10ab", CUT);
        check_jpeg(b"\xff\xd8\xff\xda\x00\x02\x12\xff\x00\x34", CUT);
        check_jpeg(b"\xff\xd8\xff\xda\x00\x02\x12\xff", CUT);
        check_jpeg(b"\xff\xd8\x00", Err("no marker where one belongs (byte 2)"));
        check_jpeg(
            b"\xff\xd8\xff\xe0\x00\x01",
            Err("segment length 1 at byte 4"),
        );
    }

    #[test]
    fn counts_frames_without_decoding() {
        // Header, screen 1x1 with a 2-colour table, an extension, two frames
        // (the second with a 2-colour local table), trailer.
        let mut gif = b"GIF89a\x01\0\x01\0\x80\0\0".to_vec();
        gif.extend_from_slice(&[0; 6]);
        gif.extend_from_slice(b"\x21\xf9\x04\0\x0a\0\0\0");
        gif.extend_from_slice(b"\x2c\0\0\0\0\x01\0\x01\0\0\x02\x02\x44\x01\0");
        gif.extend_from_slice(b"\x2c\0\0\0\0\x01\0\x01\0\x80");
        gif.extend_from_slice(&[0; 6]);
        gif.extend_from_slice(b"\x02\x02\x44\x01\0\x3b");
        assert_eq!(gif_frame_count(&gif), 2);
        assert_eq!(gif_frame_count(&gif[..gif.len() - 8]), 2); // cut in the data
        assert_eq!(gif_frame_count(&gif[..30]), 1);
        assert_eq!(gif_frame_count(b"GIF89a"), 0);

        let chunk = |fourcc: &[u8], body: &[u8]| {
            let mut c = fourcc.to_vec();
            c.extend_from_slice(&(body.len() as u32).to_le_bytes());
            c.extend_from_slice(body);
            if body.len() % 2 == 1 {
                c.push(0);
            }
            c
        };
        let mut webp = b"RIFF\0\0\0\0WEBP".to_vec();
        webp.extend(chunk(b"VP8X", &[2, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
        webp.extend(chunk(b"ANIM", &[0; 6]));
        for _ in 0..3 {
            webp.extend(chunk(b"ANMF", &[0; 17]));
        }
        assert_eq!(webp_frame_count(&webp), 3);
        assert_eq!(webp_frame_count(&webp[..webp.len() - 1]), 3);
        assert_eq!(webp_frame_count(&webp[..webp.len() - 30]), 2);
    }

    #[test]
    fn flattens_transparency_onto_white() {
        let rgba =
            image::RgbaImage::from_vec(3, 1, vec![0, 0, 0, 0, 0, 0, 0, 255, 200, 100, 0, 128])
                .unwrap();
        let rgb = flatten(&DynamicImage::ImageRgba8(rgba));
        assert_eq!(rgb.into_raw(), [255, 255, 255, 0, 0, 0, 227, 177, 127]);
    }
}
