//! Poster frames: the still that stands for a video in thumbnails and on the
//! dashboard. Not the first frame, which is often black (a fade in): the first
//! frame from one second in (or a tenth of the length, for a video under ten
//! seconds) that is not near-black, else the first frame.

use image::{DynamicImage, RgbImage};

use crate::video_probe;
use crate::{Limits, MediaError};

/// A frame whose mean 8-bit luma (BT.601 weights) is under this is near-black.
const NEAR_BLACK_LUMA: f32 = 24.0;

/// The poster frame of a video, scaled to fit `max_side` (never enlarged).
pub(crate) fn video_poster(
    data: Vec<u8>,
    max_side: u32,
    limits: &Limits,
) -> Result<DynamicImage, MediaError> {
    let mut first: Option<RgbImage> = None;
    let mut chosen: Option<RgbImage> = None;
    let mut scaler = None;
    video_probe::each_frame(data, limits, |at| {
        let size = fit(at.frame.width(), at.frame.height(), max_side);
        let from_ms = at.declared_ms.map_or(1000, |d| (d / 10).min(1000));
        if first.is_some() && at.at_ms < from_ms {
            return Ok(true);
        }
        let rgb = video_probe::scale_rgb(at.frame, size, &mut scaler)?;
        let picture = RgbImage::from_raw(size.0, size.1, rgb)
            .ok_or_else(|| MediaError::Ffmpeg("scaled frame has the wrong size".into()))?;
        if at.at_ms >= from_ms && !near_black(&picture) {
            chosen = Some(picture);
            return Ok(false);
        }
        if first.is_none() {
            first = Some(picture);
        }
        Ok(true)
    })?;
    chosen
        .or(first)
        .map(DynamicImage::ImageRgb8)
        .ok_or_else(|| MediaError::CorruptVideo("no frame decodes".into()))
}

/// `width` x `height` scaled to fit inside `max_side` (at least 1 pixel a side).
fn fit(width: u32, height: u32, max_side: u32) -> (u32, u32) {
    let max_side = max_side.max(1);
    let longer = width.max(height).max(1);
    if longer <= max_side {
        return (width.max(1), height.max(1));
    }
    let scale = |side: u32| {
        u32::try_from(
            (u64::from(side) * u64::from(max_side) + u64::from(longer) / 2) / u64::from(longer),
        )
        .unwrap_or(1)
        .max(1)
    };
    (scale(width), scale(height))
}

fn near_black(picture: &RgbImage) -> bool {
    let pixels = picture.pixels().len().max(1) as f32;
    let luma: f32 = picture
        .pixels()
        .map(|p| 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]))
        .sum();
    luma / pixels < NEAR_BLACK_LUMA
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_inside() {
        assert_eq!(fit(1920, 1080, 320), (320, 180));
        assert_eq!(fit(1080, 1920, 320), (180, 320));
        assert_eq!(fit(200, 100, 320), (200, 100));
        assert_eq!(fit(10_000, 1, 320), (320, 1));
    }
}
