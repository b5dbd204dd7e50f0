//! Stills through `image`: read the dimensions from the header and refuse
//! decompression bombs before any pixel buffer exists, then decode every
//! frame to prove the file is whole; JPEG thumbnail encoding.
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

/// Worst case bytes per decoded pixel (RGBA, 16 bits per channel).
const MAX_BYTES_PER_PIXEL: u64 = 8;

/// Decoder bookkeeping allowed on top of the pixel buffer.
const ALLOC_SLACK: u64 = 64 * 1024 * 1024;

/// Checks `data` (already sniffed as `format`) against `limits` and decodes
/// all of it (every frame of an animation); returns its size and its (first)
/// picture.
pub(crate) fn decode(
    data: &[u8],
    format: ImageFormat,
    limits: &Limits,
) -> Result<((u32, u32), DynamicImage), MediaError> {
    let size = dimensions(data, format, limits)?;
    let picture = match format {
        ImageFormat::Gif => {
            let decoder =
                GifDecoder::new(Cursor::new(data)).map_err(|e| from_image(e, size, limits))?;
            decode_frames(decoder, size, limits)?
        }
        ImageFormat::WebP if is_animated_webp(data) => {
            let decoder =
                WebPDecoder::new(Cursor::new(data)).map_err(|e| from_image(e, size, limits))?;
            decode_frames(decoder, size, limits)?
        }
        _ => decode_single(data, format, size, limits)?,
    };
    Ok((size, picture))
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

/// Reads width and height from the header alone and refuses sizes over the
/// limits; no pixel buffer is allocated yet.
fn dimensions(data: &[u8], format: ImageFormat, limits: &Limits) -> Result<(u32, u32), MediaError> {
    let mut reader = ImageReader::with_format(Cursor::new(data), format);
    // Side limits would make the decoder fail without telling the size.
    let mut header_limits = decode_limits(limits);
    header_limits.max_image_width = None;
    header_limits.max_image_height = None;
    reader.limits(header_limits);
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| MediaError::CorruptImage(format!("unreadable header: {e}")))?;
    limits.check_frame(width, height)?;
    Ok((width, height))
}

/// Decodes a single-frame image completely.
fn decode_single(
    data: &[u8],
    format: ImageFormat,
    size: (u32, u32),
    limits: &Limits,
) -> Result<DynamicImage, MediaError> {
    if format == ImageFormat::Jpeg {
        jpeg_reaches_end(data).map_err(MediaError::CorruptImage)?;
    }
    let mut reader = ImageReader::with_format(Cursor::new(data), format);
    reader.limits(decode_limits(limits));
    reader.decode().map_err(|e| from_image(e, size, limits))
}

/// Decodes every frame of an animation; returns the first.
fn decode_frames<'a>(
    mut decoder: impl AnimationDecoder<'a> + ImageDecoder,
    size: (u32, u32),
    limits: &Limits,
) -> Result<DynamicImage, MediaError> {
    decoder
        .set_limits(decode_limits(limits))
        .map_err(|e| from_image(e, size, limits))?;
    let mut first = None;
    for frame in decoder.into_frames() {
        let frame = frame.map_err(|e| from_image(e, size, limits))?;
        if first.is_none() {
            first = Some(DynamicImage::ImageRgba8(frame.into_buffer()));
        }
    }
    first.ok_or_else(|| MediaError::CorruptImage("the animation has no frames".into()))
}

/// `image` limits matching ours, for the decoding pass.
fn decode_limits(limits: &Limits) -> image::Limits {
    let mut decode = image::Limits::default();
    decode.max_image_width = Some(limits.max_dimension);
    decode.max_image_height = Some(limits.max_dimension);
    decode.max_alloc = Some(
        limits
            .max_pixels
            .saturating_mul(MAX_BYTES_PER_PIXEL)
            .saturating_add(ALLOC_SLACK),
    );
    decode
}

fn from_image(error: ImageError, (width, height): (u32, u32), limits: &Limits) -> MediaError {
    match error {
        ImageError::Limits(_) => MediaError::DecompressionBomb {
            width,
            height,
            max_pixels: limits.max_pixels,
            max_dimension: limits.max_dimension,
        },
        ImageError::Unsupported(e) => MediaError::Unsupported(e.to_string()),
        e => MediaError::CorruptImage(e.to_string()),
    }
}

/// Whether a WebP file has the animation flag in its VP8X header.
fn is_animated_webp(data: &[u8]) -> bool {
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
    fn flattens_transparency_onto_white() {
        let rgba =
            image::RgbaImage::from_vec(3, 1, vec![0, 0, 0, 0, 0, 0, 0, 255, 200, 100, 0, 128])
                .unwrap();
        let rgb = flatten(&DynamicImage::ImageRgba8(rgba));
        assert_eq!(rgb.into_raw(), [255, 255, 255, 0, 0, 0, 227, 177, 127]);
    }
}
