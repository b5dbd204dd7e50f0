//! Content sniffing: which decoder a byte string goes to, judged by its magic
//! bytes only (never a file name). Images are recognised by `image`, video
//! containers by their box or element signatures; everything else is unknown.
//! Also the media type a stored creative is served with ([`mime_type`]).

use image::ImageFormat;

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sniffed {
    /// A still (or animated GIF/WebP) in one of the formats `image` decodes here.
    Image(ImageFormat),
    /// An ISO base media (MP4, MOV, M4V, 3GP) or Matroska (MKV, WebM) container.
    Video,
    Unknown,
}

/// Image formats this crate decodes (the `image` features it enables).
const IMAGE_FORMATS: [ImageFormat; 4] = [
    ImageFormat::Jpeg,
    ImageFormat::Png,
    ImageFormat::Gif,
    ImageFormat::WebP,
];

/// Top-level box types an ISO base media or QuickTime file may start with.
const ISO_BMFF_BOXES: [&[u8; 4]; 5] = [b"ftyp", b"moov", b"mdat", b"wide", b"free"];

/// The EBML header that starts every Matroska and WebM file.
const EBML_MAGIC: [u8; 4] = [0x1a, 0x45, 0xdf, 0xa3];

pub(crate) fn sniff(data: &[u8]) -> Sniffed {
    if let Ok(format) = image::guess_format(data) {
        // Formats `image` recognises but this build cannot decode (BMP, TIFF,
        // AVIF...) are unknown rather than handed to FFmpeg.
        return if IMAGE_FORMATS.contains(&format) {
            Sniffed::Image(format)
        } else {
            Sniffed::Unknown
        };
    }
    let iso_bmff = data
        .get(4..8)
        .is_some_and(|kind| ISO_BMFF_BOXES.iter().any(|b| b.as_slice() == kind));
    if iso_bmff || data.starts_with(&EBML_MAGIC) {
        return Sniffed::Video;
    }
    Sniffed::Unknown
}

/// How many leading bytes [`mime_type`] looks at.
pub const MIME_SNIFF_BYTES: usize = 64;

/// The media type of a creative judged by its first bytes (at least the
/// first [`MIME_SNIFF_BYTES`] when the file is that long): JPEG, PNG, GIF,
/// WebP, MP4 (any ISO base media file) or WebM (Matroska naming its doctype
/// `webm`); anything else is `application/octet-stream`.
pub fn mime_type(head: &[u8]) -> &'static str {
    const WEBP_TAG: &[u8] = b"WEBP";
    if head.starts_with(b"\xff\xd8\xff") {
        "image/jpeg"
    } else if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        "image/gif"
    } else if head.starts_with(b"RIFF") && head.get(8..12) == Some(WEBP_TAG) {
        "image/webp"
    } else if head.get(4..8) == Some(b"ftyp") {
        "video/mp4"
    } else if head.starts_with(&EBML_MAGIC) && head.windows(4).any(|w| w == b"webm") {
        "video/webm"
    } else {
        "application/octet-stream"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_types() {
        for (head, expect) in [
            (b"\xff\xd8\xff\xe0\0\x10JFIF".as_slice(), "image/jpeg"),
            (b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR", "image/png"),
            (b"GIF87a\x01\0", "image/gif"),
            (b"GIF89a\x01\0", "image/gif"),
            (b"RIFF\x10\0\0\0WEBPVP8 ", "image/webp"),
            (b"RIFF\x10\0\0\0WAVEfmt ", "application/octet-stream"),
            (b"\0\0\0\x20ftypisom\0\0\x02\0", "video/mp4"),
            (
                b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm",
                "video/webm",
            ),
            (
                b"\x1a\x45\xdf\xa3\xa3\x42\x82\x88matroska",
                "application/octet-stream",
            ),
            (b"<html>", "application/octet-stream"),
            (b"", "application/octet-stream"),
        ] {
            assert_eq!(mime_type(head), expect, "{head:02x?}");
        }
    }

    fn check(data: &[u8], expect: Sniffed) {
        assert_eq!(sniff(data), expect, "{data:02x?}");
    }

    #[test]
    fn sniffs_by_content() {
        check(
            b"\xff\xd8\xff\xe0\0\x10JFIF",
            Sniffed::Image(ImageFormat::Jpeg),
        );
        check(
            b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR",
            Sniffed::Image(ImageFormat::Png),
        );
        check(b"GIF89a\x01\0\x01\0", Sniffed::Image(ImageFormat::Gif));
        check(b"RIFF\x10\0\0\0WEBPVP8 ", Sniffed::Image(ImageFormat::WebP));
        check(b"\0\0\0\x20ftypisom\0\0\x02\0", Sniffed::Video);
        check(b"\0\0\x0b\x3bmoov", Sniffed::Video);
        check(b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81", Sniffed::Video);
        check(b"BM\x36\0\0\0\0\0\0\0\x36\0\0\0", Sniffed::Unknown);
        check(b"<html><body>", Sniffed::Unknown);
        check(b"", Sniffed::Unknown);
        check(b"\0\0", Sniffed::Unknown);
    }
}
