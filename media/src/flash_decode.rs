//! Drivers of the flash check: decode a video (FFmpeg, scaled down with
//! swscale) or an animated GIF/WebP (`image`, with its frame delays) into the
//! small timed grids [`crate::flash::FlashScan`] analyses.
//!
//! Grids are 64x36 cells (36x64 for portrait frames): a cell of a 1080p frame
//! averages 30x30 pixels, fine enough for the area rule (a block is 21x12
//! cells) and cheap to scale. An animation loops on a screen, so its frames
//! are replayed until a full loop and one more second have been seen; a
//! frame delay of 10 ms or less plays as 100 ms, as browsers play it.

use std::io::Cursor;

use image::codecs::gif::GifDecoder;
use image::codecs::webp::WebPDecoder;
use image::imageops::FilterType;
use image::{AnimationDecoder, ImageDecoder, ImageFormat, RgbaImage};

use crate::flash::{FlashReport, FlashScan};
use crate::image_probe;
use crate::video_probe;
use crate::{Limits, MediaError};

/// The grid of a frame of `width` x `height`.
fn grid_for(width: u32, height: u32) -> (u32, u32) {
    if height > width {
        (36, 64)
    } else {
        (64, 36)
    }
}

/// The flash check over every frame of a video.
pub(crate) fn video(data: Vec<u8>, limits: &Limits) -> Result<FlashReport, MediaError> {
    let mut scan: Option<FlashScan> = None;
    let mut scaler = None;
    video_probe::each_frame(data, limits, |at| {
        let grid = grid_for(at.frame.width(), at.frame.height());
        let scan = scan.get_or_insert_with(|| FlashScan::new(grid.0 as usize, grid.1 as usize));
        let (w, h) = scan.grid();
        let rgb = video_probe::scale_rgb(at.frame, (w as u32, h as u32), &mut scaler)?;
        scan.push(at.at_ms, &rgb);
        Ok(true)
    })?;
    scan.map(FlashScan::finish)
        .ok_or_else(|| MediaError::CorruptVideo("no frame decodes".into()))
}

/// The flash check over an animated GIF or WebP (already sniffed as
/// `format`), after the same frame, pixel and memory budgets as probing.
pub(crate) fn animation(
    data: &[u8],
    format: ImageFormat,
    limits: &Limits,
) -> Result<FlashReport, MediaError> {
    let frames = match format {
        ImageFormat::Gif => image_probe::gif_frame_count(data),
        _ => image_probe::webp_frame_count(data),
    };
    let mut grids: Vec<(u64, Vec<u8>)> = Vec::new();
    let size;
    if format == ImageFormat::Gif {
        let decoder = GifDecoder::new(Cursor::new(data))
            .map_err(|e| MediaError::CorruptImage(e.to_string()))?;
        size = decoder.dimensions();
        check(frames, size, limits)?;
        collect(decoder, size, limits, &mut grids)?;
    } else {
        let decoder = WebPDecoder::new(Cursor::new(data))
            .map_err(|e| MediaError::CorruptImage(e.to_string()))?;
        size = decoder.dimensions();
        check(frames, size, limits)?;
        collect(decoder, size, limits, &mut grids)?;
    }
    let grid = grid_for(size.0, size.1);
    let mut scan = FlashScan::new(grid.0 as usize, grid.1 as usize);
    let loop_ms: u64 = grids.iter().map(|(delay, _)| delay).sum();
    let mut at = 0u64;
    // One loop and a second more, so every second across the seam is seen.
    while at < loop_ms.max(1) + 1000 {
        for (delay, rgb) in &grids {
            scan.push(at, rgb);
            at += delay;
        }
        if grids.len() < 2 {
            break;
        }
    }
    Ok(scan.finish())
}

fn check(frames: u64, size: (u32, u32), limits: &Limits) -> Result<(), MediaError> {
    limits.check_frame(size.0, size.1)?;
    limits.check_animation(frames, size)?;
    let canvas = u64::from(size.0) * u64::from(size.1) * 4;
    limits.check_alloc(canvas.saturating_mul(image_probe::ANIMATION_CANVASES))
}

/// Every frame of an animation as (delay in ms, grid).
fn collect<'a>(
    mut decoder: impl AnimationDecoder<'a> + ImageDecoder,
    size: (u32, u32),
    limits: &Limits,
    grids: &mut Vec<(u64, Vec<u8>)>,
) -> Result<(), MediaError> {
    let needed = u64::from(size.0) * u64::from(size.1) * 4 * image_probe::ANIMATION_CANVASES;
    decoder
        .set_limits(image_probe::decode_limits(limits))
        .map_err(|e| image_probe::from_image(e, needed, limits))?;
    let grid = grid_for(size.0, size.1);
    for frame in decoder.into_frames() {
        let frame = frame.map_err(|e| image_probe::from_image(e, needed, limits))?;
        let (num, den) = frame.delay().numer_denom_ms();
        let delay = u64::from(num) / u64::from(den.max(1));
        let delay = if delay <= 10 { 100 } else { delay };
        grids.push((delay, to_grid(frame.buffer(), grid)));
    }
    if grids.is_empty() {
        return Err(MediaError::CorruptImage(
            "the animation has no frames".into(),
        ));
    }
    Ok(())
}

/// A canvas averaged down to the grid, transparency over white (as thumbnails).
fn to_grid(canvas: &RgbaImage, (w, h): (u32, u32)) -> Vec<u8> {
    let small = image::imageops::resize(canvas, w, h, FilterType::Triangle);
    let mut rgb = Vec::with_capacity((w * h * 3) as usize);
    for p in small.pixels() {
        let [r, g, b, a] = p.0;
        for c in [r, g, b] {
            let (c, a) = (u16::from(c), u16::from(a));
            rgb.push(((c * a + 255 * (255 - a) + 127) / 255) as u8);
        }
    }
    rgb
}
