//! Ingest of creatives: sniff a file by its content, decode it completely to
//! prove it is whole, measure it (kind, dimensions, duration) and address it
//! by SHA-256; make JPEG thumbnails (videos: a poster frame, see `poster`);
//! check video and animations for flashes (WCAG 2.3.1, see `flash`).
//!
//! Stills go through `image` (see `image_probe`), video through the system
//! FFmpeg (see `video_probe`). Everything here is synchronous CPU and FFI
//! work: async callers run it under `spawn_blocking`. Storing files, naming
//! them and deciding which screens a creative fits are left to the server and
//! `playlists`.
//!
//! # Memory budget
//!
//! Probing a still or an animation holds the file's bytes (at most
//! [`Limits::max_bytes`]) plus what decoding needs, and decoding is refused
//! before it starts when that would exceed [`Limits::max_alloc`] (256 MiB by
//! default). What a decode needs is judged from the header alone: the pixel
//! buffer of the header's size and colour type (times a per-format factor for
//! the decoder's own planes), or for an animation five canvases of RGBA (the
//! decoder's composite, previous and output frames and the first frame kept).
//! Animations are also bounded in work: their frames are counted by walking
//! the container (no decompression) and refused over [`Limits::max_frames`]
//! or over [`Limits::max_animation_pixels`] (frames times canvas pixels).
//! So a 622 KB PNG of 16384x4882 RGBA16 pixels (640 MB decoded) and a tens
//! of KB GIF of 2,000 one-pixel frames on a large canvas are refused while
//! their headers are read. `tests/memory_budget.rs` measures the rise in peak
//! resident memory while probing, in a child process: under 1 MiB for those
//! refused, 138 MiB for a 6000x6000 RGBA PNG (144 MB decoded) and 70 MiB for
//! a 6000x4000 baseline JPEG (72 MB decoded), against a budget of 256 MiB.
//! `image`'s own allocation limit is set to the same budget as a backstop.

mod error;
pub mod flash;
mod flash_decode;
mod gate;
mod graph;
mod image_probe;
mod loudness;
mod poster;
mod rendition;
mod sniff;
mod transcode;
mod video_probe;

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

pub use crate::error::MediaError;
pub use crate::flash::{FlashKind, FlashReport};
pub use crate::gate::{inspect, GateVerdict, H264Profile, VideoGate};
pub use crate::loudness::{measure_loudness, Loudness, LoudnessTarget};
pub use crate::rendition::{still_rendition, Fit, RenditionSpec};
pub use crate::sniff::{mime_type, MIME_SNIFF_BYTES};
use crate::sniff::{sniff, Sniffed};
pub use crate::transcode::{fit, transcode, TranscodeSpec, Transcoded, X264_CRF, X264_PRESET};

/// Whether a creative is a still or a moving picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Image,
    Video,
}

/// What ingest learned about a valid creative.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub kind: MediaKind,
    pub width: u32,
    pub height: u32,
    /// `None` for stills (animated GIF and WebP included). For video the
    /// duration its stream header declares (checked against the decoded
    /// frames), or else how long its decoded frames last.
    pub duration_ms: Option<u64>,
    /// Lowercase hex SHA-256 of the file bytes.
    pub sha256: String,
    pub bytes: u64,
}

/// Upper bounds ingest enforces before and while decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Size of the file itself.
    pub max_bytes: u64,
    /// Width times height of an image or a video frame.
    pub max_pixels: u64,
    /// Width or height of an image or a video frame.
    pub max_dimension: u32,
    /// Playing time of a video.
    pub max_duration_ms: u64,
    /// Memory decoding a still or an animation may take, in bytes, judged
    /// from its header before any pixel buffer exists (see the crate docs).
    pub max_alloc: u64,
    /// Frames of an animated GIF or WebP.
    pub max_frames: u64,
    /// Frames times canvas pixels of an animated GIF or WebP: the work of
    /// compositing every frame.
    pub max_animation_pixels: u64,
}

impl Default for Limits {
    /// 256 MiB files, 80 megapixels, 16384 pixels per side, one hour; 256 MiB
    /// of decoding memory; animations of at most 1,000 frames and 1
    /// gigapixel in all (500 frames of 1920x1080).
    fn default() -> Self {
        Limits {
            max_bytes: 256 * 1024 * 1024,
            max_pixels: 80_000_000,
            max_dimension: 16_384,
            max_duration_ms: 60 * 60 * 1000,
            max_alloc: 256 * 1024 * 1024,
            max_frames: 1_000,
            max_animation_pixels: 1_000_000_000,
        }
    }
}

impl Limits {
    /// Rejects picture sizes over the pixel or side limits.
    pub(crate) fn check_frame(&self, width: u32, height: u32) -> Result<(), MediaError> {
        let pixels = u64::from(width) * u64::from(height);
        if pixels > self.max_pixels || width > self.max_dimension || height > self.max_dimension {
            return Err(MediaError::DecompressionBomb {
                width,
                height,
                max_pixels: self.max_pixels,
                max_dimension: self.max_dimension,
            });
        }
        Ok(())
    }

    /// Rejects a decode that needs more than `max_alloc` bytes.
    pub(crate) fn check_alloc(&self, needed: u64) -> Result<(), MediaError> {
        if needed > self.max_alloc {
            return Err(MediaError::OverMemoryBudget {
                needed,
                budget: self.max_alloc,
            });
        }
        Ok(())
    }

    /// Rejects animations over the frame count or total pixel budgets.
    pub(crate) fn check_animation(
        &self,
        frames: u64,
        (width, height): (u32, u32),
    ) -> Result<(), MediaError> {
        if frames > self.max_frames {
            return Err(MediaError::TooManyFrames {
                frames,
                max: self.max_frames,
            });
        }
        let pixels = frames.saturating_mul(u64::from(width) * u64::from(height));
        if pixels > self.max_animation_pixels {
            return Err(MediaError::AnimationTooLarge {
                frames,
                width,
                height,
                pixels,
                max_pixels: self.max_animation_pixels,
            });
        }
        Ok(())
    }

    fn check_bytes(&self, bytes: u64) -> Result<(), MediaError> {
        if bytes > self.max_bytes {
            return Err(MediaError::TooLarge {
                bytes,
                max: self.max_bytes,
            });
        }
        Ok(())
    }
}

/// Sniffs `data` by its magic bytes (never by a name), decodes it completely
/// to prove it is neither truncated nor corrupt, checks it against `limits`
/// and measures it.
pub fn probe_bytes(data: &[u8], limits: &Limits) -> Result<Measured, MediaError> {
    limits.check_bytes(len_u64(data))?;
    match sniff(data) {
        Sniffed::Image(format) => measure_image(data, format, limits),
        // FFmpeg reads from an owned buffer, so video needs a copy here.
        Sniffed::Video => measure_video(data.to_vec(), limits),
        Sniffed::Unknown => Err(MediaError::UnknownFormat),
    }
}

/// [`probe_bytes`] for a file on disk; refuses oversized files before reading
/// them.
pub fn probe_file(path: &Path, limits: &Limits) -> Result<Measured, MediaError> {
    let data = read_limited(path, limits)?;
    match sniff(&data) {
        Sniffed::Image(format) => measure_image(&data, format, limits),
        Sniffed::Video => measure_video(data, limits),
        Sniffed::Unknown => Err(MediaError::UnknownFormat),
    }
}

/// Lowercase hex SHA-256 of `data`: the content address of a creative.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A JPEG whose longer side is at most `max_side` pixels (never enlarged).
/// Stills are validated as in [`probe_bytes`]; for video it is the poster
/// frame (the first frame from 1 s in, or a tenth of the length, that is not
/// near-black; else the first), after the container and limits checks,
/// decoding the stream only as far as that frame.
pub fn thumbnail(data: &[u8], max_side: u32, limits: &Limits) -> Result<Vec<u8>, MediaError> {
    limits.check_bytes(len_u64(data))?;
    let picture = match sniff(data) {
        Sniffed::Image(format) => image_probe::decode(data, format, limits)?.1,
        Sniffed::Video => poster::video_poster(data.to_vec(), max_side, limits)?,
        Sniffed::Unknown => return Err(MediaError::UnknownFormat),
    };
    image_probe::encode_thumbnail(&picture, max_side)
}

/// The flash check (WCAG 2.3.1, see [`flash`]) over every frame of a video
/// or an animated GIF or WebP; `None` for a still, which cannot flash. The
/// file should have passed [`probe_bytes`]; the same limits apply again.
pub fn flash_check(data: &[u8], limits: &Limits) -> Result<Option<FlashReport>, MediaError> {
    limits.check_bytes(len_u64(data))?;
    match sniff(data) {
        Sniffed::Video => flash_decode::video(data.to_vec(), limits).map(Some),
        Sniffed::Image(format @ image::ImageFormat::Gif) => {
            flash_decode::animation(data, format, limits).map(Some)
        }
        Sniffed::Image(format @ image::ImageFormat::WebP)
            if image_probe::is_animated_webp(data) =>
        {
            flash_decode::animation(data, format, limits).map(Some)
        }
        Sniffed::Image(_) => Ok(None),
        Sniffed::Unknown => Err(MediaError::UnknownFormat),
    }
}

fn measure_image(
    data: &[u8],
    format: image::ImageFormat,
    limits: &Limits,
) -> Result<Measured, MediaError> {
    let ((width, height), _picture) = image_probe::decode(data, format, limits)?;
    Ok(Measured {
        kind: MediaKind::Image,
        width,
        height,
        duration_ms: None,
        sha256: sha256_hex(data),
        bytes: len_u64(data),
    })
}

fn measure_video(data: Vec<u8>, limits: &Limits) -> Result<Measured, MediaError> {
    let sha256 = sha256_hex(&data);
    let bytes = len_u64(&data);
    let video = video_probe::validate(data, limits)?;
    Ok(Measured {
        kind: MediaKind::Video,
        width: video.width,
        height: video.height,
        duration_ms: Some(video.duration_ms),
        sha256,
        bytes,
    })
}

/// Reads a whole file, failing with `TooLarge` as soon as it is known to be
/// over `limits.max_bytes` (also when it grows while being read).
fn read_limited(path: &Path, limits: &Limits) -> Result<Vec<u8>, MediaError> {
    let io_error = |source| MediaError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let size = file.metadata().map_err(io_error)?.len();
    limits.check_bytes(size)?;
    let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(limits.max_bytes.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(io_error)?;
    limits.check_bytes(len_u64(&data))?;
    Ok(data)
}

fn len_u64(data: &[u8]) -> u64 {
    // usize is at most 64 bits on every supported target.
    data.len() as u64
}

#[cfg(test)]
mod tests;
