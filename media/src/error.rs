//! `MediaError`: every way ingest can refuse a file, one variant per case a
//! caller may want to branch on (reject the upload, report a limit, retry).
//! Mapping from `image` and `ffmpeg` errors happens in the probe modules.

use std::path::PathBuf;

/// Why a file was not accepted as a creative.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The file could not be read from disk.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is bigger than `Limits::max_bytes`.
    #[error("file is {bytes} bytes, over the limit of {max} bytes")]
    TooLarge { bytes: u64, max: u64 },
    /// Neither a supported image (JPEG, PNG, GIF, WebP) nor a supported video
    /// container (MP4/QuickTime, WebM/Matroska), judged by the content.
    #[error("not a supported image (JPEG, PNG, GIF, WebP) or video (MP4, MOV, WebM, MKV) file")]
    UnknownFormat,
    /// A recognised image that does not decode completely.
    #[error("corrupt or truncated image: {0}")]
    CorruptImage(String),
    /// An image (or video frame) larger than the pixel or side-length
    /// limits; detected from the header, before any pixels are allocated.
    #[error(
        "{width}x{height} pixels is over the limit \
         ({max_pixels} pixels, {max_dimension} pixels per side)"
    )]
    DecompressionBomb {
        width: u32,
        height: u32,
        max_pixels: u64,
        max_dimension: u32,
    },
    /// Decoding would take more memory than `Limits::max_alloc`; judged from
    /// the header (size, colour type, frame count), before decoding.
    #[error("decoding needs about {needed} bytes of memory, over the budget of {budget} bytes")]
    OverMemoryBudget { needed: u64, budget: u64 },
    /// An animated GIF or WebP with more frames than `Limits::max_frames`;
    /// counted from the container before any frame is decoded.
    #[error("the animation has {frames} frames, over the limit of {max}")]
    TooManyFrames { frames: u64, max: u64 },
    /// An animation whose frames times canvas pixels exceed
    /// `Limits::max_animation_pixels`: too much work to composite.
    #[error(
        "{frames} frames of {width}x{height} are {pixels} pixels to decode, \
         over the limit of {max_pixels}"
    )]
    AnimationTooLarge {
        frames: u64,
        width: u32,
        height: u32,
        pixels: u64,
        max_pixels: u64,
    },
    /// A recognised video container that does not demux or decode
    /// completely (truncated, damaged, or lying about its length).
    #[error("corrupt or truncated video: {0}")]
    CorruptVideo(String),
    /// A video container without a video stream (audio only, cover art only).
    #[error("the file has no video stream")]
    NoVideoStream,
    /// A recognised format using a feature or codec this build cannot
    /// decode (a video codec missing from the system FFmpeg, an arithmetic
    /// coded JPEG).
    #[error("unsupported {0}")]
    Unsupported(String),
    /// The video plays longer than `Limits::max_duration_ms`.
    #[error("video lasts {duration_ms} ms, over the limit of {max_ms} ms")]
    TooLong { duration_ms: u64, max_ms: u64 },
    /// FFmpeg failed in a way that says nothing about the file
    /// (initialisation, allocation, scaling).
    #[error("FFmpeg failed: {0}")]
    Ffmpeg(String),
    /// A still rendition was asked of an animated GIF or WebP: animations
    /// are sent as they are.
    #[error("an animated image has no still rendition (its original is sent)")]
    Animated,
    /// Making a rendition failed after decoding (an impossible size,
    /// resizing, encoding, writing the output).
    #[error("cannot make the rendition: {0}")]
    Rendition(String),
    /// Encoding a thumbnail failed.
    #[error("cannot encode the thumbnail: {0}")]
    Encode(String),
}
