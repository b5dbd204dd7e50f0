//! Still renditions: a creative at a screen's exact resolution, so a kiosk downloads and
//! scales no more pixels than it shows. Decoding goes through `image_probe` (same checks,
//! same memory budget as ingest), resizing through `fast_image_resize` (SIMD convolution,
//! an order of magnitude faster than `image`'s own resize), encoding to JPEG with
//! `jpeg-encoder`.
//!
//! Which renditions exist, where they are kept and which screen gets which are the
//! server's business; video and animations are not handled here (see
//! [`MediaError::Animated`]).

use std::io::Write;
use std::path::Path;

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::DynamicImage;

use crate::sniff::{sniff, Sniffed};
use crate::Measured;
use crate::{image_probe, len_u64, read_limited, sha256_hex, Limits, MediaError, MediaKind};

/// JPEG quality of renditions: indistinguishable from the source at viewing distance,
/// about a tenth of the bytes of a lossless copy.
const RENDITION_QUALITY: u8 = 85;

/// How a picture of another aspect ratio meets the screen's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fit {
    /// Scaled to fit inside, the rest of the screen filled with `background` (RGB).
    Contain { background: [u8; 3] },
    /// Scaled to fill the screen, the overflow cropped evenly from both sides.
    Cover,
}

/// The exact output wanted: `width` x `height` pixels, fitted by `fit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RenditionSpec {
    pub width: u32,
    pub height: u32,
    pub fit: Fit,
}

/// Makes the rendition of the still in `src` described by `spec` and writes it (a JPEG of
/// exactly `spec.width` x `spec.height`) to `out`, fsynced; returns its measurement.
/// `src` is decoded within `limits` exactly as at ingest; transparency is composited on
/// the background (black for [`Fit::Cover`]). An animated GIF or WebP is refused with
/// [`MediaError::Animated`].
pub fn still_rendition(
    src: &Path,
    spec: &RenditionSpec,
    limits: &Limits,
    out: &Path,
) -> Result<Measured, MediaError> {
    if spec.width == 0 || spec.height == 0 {
        return Err(MediaError::Rendition(format!(
            "{}x{} is not a picture size",
            spec.width, spec.height
        )));
    }
    limits.check_frame(spec.width, spec.height)?;
    let data = read_limited(src, limits)?;
    let format = match sniff(&data) {
        Sniffed::Image(format) => format,
        Sniffed::Video => {
            return Err(MediaError::Unsupported(
                "still rendition of a video".to_owned(),
            ))
        }
        Sniffed::Unknown => return Err(MediaError::UnknownFormat),
    };
    if image_probe::is_animation(&data, format) {
        return Err(MediaError::Animated);
    }
    let (_, picture) = image_probe::decode(&data, format, limits)?;
    drop(data);
    let rgb = render(picture, spec)?;
    let jpeg = encode_jpeg(&rgb, spec.width, spec.height)?;
    write_synced(out, &jpeg)?;
    Ok(Measured {
        kind: MediaKind::Image,
        width: spec.width,
        height: spec.height,
        duration_ms: None,
        sha256: sha256_hex(&jpeg),
        bytes: len_u64(&jpeg),
    })
}

/// The RGB8 pixels of `picture` at the spec's size.
fn render(picture: DynamicImage, spec: &RenditionSpec) -> Result<Vec<u8>, MediaError> {
    let background = match spec.fit {
        Fit::Contain { background } => background,
        Fit::Cover => [0, 0, 0],
    };
    let alpha = picture.color().has_alpha();
    let (src_w, src_h) = (picture.width(), picture.height());
    let (src, pixel_type, channels) = if alpha {
        (picture.into_rgba8().into_raw(), PixelType::U8x4, 4)
    } else {
        (picture.into_rgb8().into_raw(), PixelType::U8x3, 3)
    };
    let src = Image::from_vec_u8(src_w, src_h, src, pixel_type).map_err(resize_error)?;
    let (inner_w, inner_h, crop) = match spec.fit {
        Fit::Contain { .. } => {
            let (w, h) = contained(src_w, src_h, spec.width, spec.height);
            (w, h, false)
        }
        Fit::Cover => (spec.width, spec.height, true),
    };
    let mut scaled = Image::new(inner_w, inner_h, pixel_type);
    let mut options =
        ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom));
    if crop {
        options = options.fit_into_destination(Some((0.5, 0.5)));
    }
    Resizer::new()
        .resize(&src, &mut scaled, &options)
        .map_err(resize_error)?;
    drop(src);
    let scaled = scaled.into_vec();
    let rgb = if channels == 4 {
        composite(&scaled, background)
    } else {
        scaled
    };
    if (inner_w, inner_h) == (spec.width, spec.height) {
        return Ok(rgb);
    }
    Ok(pad(&rgb, (inner_w, inner_h), spec, background))
}

/// The largest size of `src_w` x `src_h`'s aspect ratio inside `w` x `h` (at least one
/// pixel a side).
fn contained(src_w: u32, src_h: u32, w: u32, h: u32) -> (u32, u32) {
    let (sw, sh, w64, h64) = (
        u64::from(src_w),
        u64::from(src_h),
        u64::from(w),
        u64::from(h),
    );
    // Compare sw/sh with w/h in integers: the wider one is bound by width.
    let (iw, ih) = if sw * h64 >= w64 * sh {
        (w64, (sh * w64 + sw / 2) / sw)
    } else {
        ((sw * h64 + sh / 2) / sh, h64)
    };
    // Both are at most w, h: the rounding of a ratio <= 1 times w (or h).
    (
        u32::try_from(iw.clamp(1, w64)).unwrap_or(w),
        u32::try_from(ih.clamp(1, h64)).unwrap_or(h),
    )
}

/// RGBA8 (straight alpha) over an opaque `background`, as RGB8.
fn composite(rgba: &[u8], background: [u8; 3]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rgba.len() / 4 * 3);
    for px in rgba.chunks_exact(4) {
        let a = u16::from(px[3]);
        for (c, bg) in px[..3].iter().zip(background) {
            // At most 255 * 255 + 127: fits, and the quotient fits a u8.
            out.push(((u16::from(*c) * a + u16::from(bg) * (255 - a) + 127) / 255) as u8);
        }
    }
    out
}

/// `inner` (RGB8 of `size`) centred on a canvas of the spec's size filled with `background`.
fn pad(inner: &[u8], size: (u32, u32), spec: &RenditionSpec, background: [u8; 3]) -> Vec<u8> {
    let (iw, ih) = (size.0 as usize, size.1 as usize);
    let (w, h) = (spec.width as usize, spec.height as usize);
    let (left, top) = ((w - iw) / 2, (h - ih) / 2);
    let mut canvas: Vec<u8> = background.iter().copied().cycle().take(w * h * 3).collect();
    for (y, row) in inner.chunks_exact(iw * 3).enumerate() {
        let at = ((top + y) * w + left) * 3;
        canvas[at..at + iw * 3].copy_from_slice(row);
    }
    canvas
}

/// JPEG through `jpeg-encoder` (SIMD colour conversion and DCT, 4:2:0 chroma like
/// libvips): a third smaller and faster than `image`'s own encoder (4:2:2) at the same
/// quality.
fn encode_jpeg(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, MediaError> {
    let side = |v: u32| {
        u16::try_from(v)
            .map_err(|_| MediaError::Rendition(format!("{v} pixels is too wide for JPEG")))
    };
    let mut jpeg = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut jpeg, RENDITION_QUALITY);
    encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_2_0);
    encoder
        .encode(
            rgb,
            side(width)?,
            side(height)?,
            jpeg_encoder::ColorType::Rgb,
        )
        .map_err(|e| MediaError::Rendition(format!("JPEG encoding: {e}")))?;
    Ok(jpeg)
}

/// Writes `data` to `path` and fsyncs it; the caller moves it into place.
fn write_synced(path: &Path, data: &[u8]) -> Result<(), MediaError> {
    let fail =
        |e: std::io::Error| MediaError::Rendition(format!("writing {}: {e}", path.display()));
    let mut file = std::fs::File::create(path).map_err(fail)?;
    file.write_all(data).map_err(fail)?;
    file.sync_all().map_err(fail)
}

fn resize_error(e: impl std::fmt::Display) -> MediaError {
    MediaError::Rendition(format!("resizing: {e}"))
}

#[cfg(test)]
mod tests;
