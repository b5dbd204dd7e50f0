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

use ffmpeg_next as ffmpeg;
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
        let rgb = match yuv420_grid(at.frame, (w, h)) {
            Some(rgb) => rgb,
            None => video_probe::scale_rgb(at.frame, (w as u32, h as u32), &mut scaler)?,
        };
        scan.push(at.at_ms, &rgb);
        Ok(true)
    })?;
    scan.map(FlashScan::finish)
        .ok_or_else(|| MediaError::CorruptVideo("no frame decodes".into()))
}

/// Rows of a cell read for its mean (a 1080p cell has 30): reading them all costs more
/// than decoding, and a flash large enough to count spans many rows.
const ROWS_PER_CELL: usize = 8;

/// Cell means of a planar 4:2:0 frame (what H.264, HEVC, VP9 and AV1 decode to),
/// computed from its planes directly (every column of up to [`ROWS_PER_CELL`] rows of
/// each cell), then as RGB: averaging is linear, so this is the mean of the RGB pixels
/// (but for clipping), without swscale's full-size colour conversion. BT.709 coefficients when the frame says so, else
/// BT.601 (as swscale would use); full range for JPEG-range frames. `None` for other
/// pixel formats, which go through swscale.
fn yuv420_grid(frame: &ffmpeg::frame::Video, (gw, gh): (usize, usize)) -> Option<Vec<u8>> {
    use ffmpeg::format::Pixel;
    let full = match frame.format() {
        Pixel::YUV420P => frame.color_range() == ffmpeg::color::Range::JPEG,
        Pixel::YUVJ420P => true,
        _ => return None,
    };
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    if w < gw || h < gh {
        return None;
    }
    let (kr, kb) = if frame.color_space() == ffmpeg::color::Space::BT709 {
        (0.2126, 0.0722)
    } else {
        (0.299, 0.114)
    };
    // Cell (cx, cy) covers columns [cx * pw / gw, (cx + 1) * pw / gw) and rows likewise.
    let plane_means = |index: usize, pw: usize, ph: usize| -> Vec<f32> {
        let (data, stride) = (frame.data(index), frame.stride(index));
        let col = |cx: usize| cx * pw / gw;
        let line = |cy: usize| cy * ph / gh;
        let mut means = vec![0f32; gw * gh];
        let cols: Vec<usize> = (0..=gw).map(col).collect();
        for cy in 0..gh {
            let mut sums = vec![0u64; gw];
            let (top, height) = (line(cy), line(cy + 1) - line(cy));
            // At most ROWS_PER_CELL rows, evenly spread: a cell's mean barely moves.
            let rows = height.min(ROWS_PER_CELL);
            for k in 0..rows {
                let y = top + k * height / rows;
                let row = &data[y * stride..y * stride + pw];
                for (cx, sum) in sums.iter_mut().enumerate() {
                    let cells = &row[cols[cx]..cols[cx + 1]];
                    *sum += u64::from(cells.iter().map(|&v| u32::from(v)).sum::<u32>());
                }
            }
            for (cx, sum) in sums.into_iter().enumerate() {
                let n = (rows * (col(cx + 1) - col(cx))).max(1);
                means[cy * gw + cx] = sum as f32 / n as f32;
            }
        }
        means
    };
    let luma = plane_means(0, w, h);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let (u, v) = (plane_means(1, cw, ch), plane_means(2, cw, ch));
    let mut rgb = Vec::with_capacity(gw * gh * 3);
    for i in 0..gw * gh {
        let (y, pb, pr) = if full {
            (
                luma[i] / 255.0,
                (u[i] - 128.0) / 255.0,
                (v[i] - 128.0) / 255.0,
            )
        } else {
            (
                (luma[i] - 16.0) / 219.0,
                (u[i] - 128.0) / 224.0,
                (v[i] - 128.0) / 224.0,
            )
        };
        let kg = 1.0 - kr - kb;
        let r = y + 2.0 * (1.0 - kr) * pr;
        let b = y + 2.0 * (1.0 - kb) * pb;
        let g = (y - kr * r - kb * b) / kg;
        for c in [r, g, b] {
            rgb.push((c * 255.0).round().clamp(0.0, 255.0) as u8);
        }
    }
    Some(rgb)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct 4:2:0 cell means agree with the means of the frame's RGB pixels as the
    /// `ffmpeg` command line converts them (full size), on a colourful pattern.
    #[test]
    fn plane_means_are_the_means_of_the_rgb_pixels() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("pattern.mp4");
        let ffmpeg = |args: &[&str]| {
            let o = std::process::Command::new("ffmpeg")
                .args(["-v", "error", "-y"])
                .args(args)
                .output()
                .expect("the ffmpeg command line is installed (scripts/setup.sh)");
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            o.stdout
        };
        let path = out.to_str().unwrap();
        ffmpeg(
            &[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=s=640x360:r=10:d=1",
                "-pix_fmt",
                "yuv420p",
            ]
            .into_iter()
            .chain(["-c:v", "libx264", path])
            .collect::<Vec<_>>(),
        );
        let (w, h) = (640usize, 360usize);
        let rgb = ffmpeg(&[
            "-i",
            path,
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ]);
        assert_eq!(rgb.len(), w * h * 3);
        let mut truth = vec![0u8; 64 * 36 * 3];
        for cy in 0..36 {
            for cx in 0..64 {
                for c in 0..3 {
                    let mut sum = 0u64;
                    for y in cy * h / 36..(cy + 1) * h / 36 {
                        for x in cx * w / 64..(cx + 1) * w / 64 {
                            sum += u64::from(rgb[(y * w + x) * 3 + c]);
                        }
                    }
                    truth[(cy * 64 + cx) * 3 + c] = (sum as f64 / 100.0).round() as u8;
                }
            }
        }
        let mut direct = None;
        video_probe::each_frame(std::fs::read(&out).unwrap(), &Limits::default(), |at| {
            direct = yuv420_grid(at.frame, (64, 36));
            Ok(false)
        })
        .unwrap();
        let direct = direct.expect("a 4:2:0 frame");
        let diffs: Vec<u8> = direct
            .iter()
            .zip(&truth)
            .map(|(a, b)| a.abs_diff(*b))
            .collect();
        let mean = diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64;
        let worst = diffs.iter().max().copied().unwrap();
        assert!(mean < 2.0 && worst < 40, "mean {mean}, worst {worst}");
    }
}
