//! The flash check and poster frames on real files: clips generated with the
//! `ffmpeg` command line (H.264 in MP4) and animated GIFs written with the
//! `gif` encoder. The verdicts are WCAG 2.3.1's for what the clips are made
//! of (full-screen black and white at 10 Hz is 10 flashes a second).

use std::process::Command;

use media::{flash_check, thumbnail, FlashKind, Limits};

/// An H.264 MP4 of 3 s at 20 fps, 320x180, from a `geq` filter of time `T`
/// and frame number `N` (`filter` is the whole filter chain).
fn clip(filter: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("clip.mp4");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("color=black:s=320x180:r=20:d=3")
        .args(["-vf", filter, "-pix_fmt", "yuv420p", "-c:v", "libx264"])
        .arg(&out)
        .status()
        .expect("the ffmpeg command line is installed (scripts/setup.sh)");
    assert!(status.success(), "ffmpeg failed on {filter}");
    std::fs::read(out).unwrap()
}

/// Grey levels from an expression (luma only, no colour).
fn grey(expr: &str) -> Vec<u8> {
    clip(&format!("geq=lum='{expr}':cb=128:cr=128"))
}

fn report(data: &[u8]) -> media::FlashReport {
    flash_check(data, &Limits::default())
        .expect("the check runs")
        .expect("video and animations are checked")
}

#[test]
fn black_and_white_at_10_hz_is_refused() {
    let r = report(&grey("if(mod(N,2),255,0)"));
    let (kind, peak) = r.over_limit().expect("refused");
    assert_eq!((kind, peak.flashes), (FlashKind::General, 10), "{r}");
    assert!(
        r.to_string()
            .starts_with("10 general flashes in the second from 0.05 s"),
        "{r}"
    );
}

#[test]
fn slow_fade_is_accepted() {
    let r = report(&grey("255*T/3"));
    assert!(r.passes(), "{r}");
    assert_eq!(r.general.flashes, 0, "{r}");
    assert_eq!(r.frames, 60);
}

#[test]
fn flashing_at_2_hz_is_accepted() {
    // A quarter second black, a quarter white: 2 flashes a second.
    let r = report(&grey("if(mod(floor(N/5),2),255,0)"));
    assert!(r.passes(), "{r}");
    assert_eq!(r.general.flashes, 2, "{r}");
}

#[test]
fn red_flashing_is_refused_as_red() {
    // Saturated red against a grey of the same relative luminance: no general
    // flash, only red ones.
    let r = report(&clip(
        "format=gbrp,geq=r='if(mod(N,2),255,127)':g='if(mod(N,2),0,127)':b='if(mod(N,2),0,127)'",
    ));
    let (kind, peak) = r.over_limit().expect("refused");
    assert_eq!(kind, FlashKind::Red, "{r}");
    assert!(peak.flashes >= 9, "{r}");
    assert!(r.to_string().contains("red flashes"), "{r}");
}

/// An animated GIF of `frames` 64x36 frames, each `delay_cs` hundredths of a
/// second, frame `i` all black or all white as `white(i)` says.
fn gif(frames: u16, delay_cs: u16, white: impl Fn(u16) -> bool) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let palette = [0, 0, 0, 255, 255, 255];
        let mut encoder = gif::Encoder::new(&mut out, 64, 36, &palette).unwrap();
        encoder.set_repeat(gif::Repeat::Infinite).unwrap();
        for i in 0..frames {
            let index = u8::from(white(i));
            let mut frame = gif::Frame::from_indexed_pixels(64, 36, vec![index; 64 * 36], None);
            frame.delay = delay_cs;
            encoder.write_frame(&frame).unwrap();
        }
    }
    out
}

#[test]
fn flashing_gif_is_refused() {
    // Two frames of a tenth of a second, looping: 5 flashes a second.
    let data = gif(2, 10, |i| i == 1);
    media::probe_bytes(&data, &Limits::default()).expect("a valid GIF");
    let r = report(&data);
    let (kind, peak) = r.over_limit().expect("refused");
    assert_eq!((kind, peak.flashes), (FlashKind::General, 5), "{r}");
}

#[test]
fn slow_gif_is_accepted_and_stills_are_not_checked() {
    // A second black, a second white, looping: half a flash a second.
    let r = report(&gif(2, 100, |i| i == 1));
    assert!(r.passes(), "{r}");
    let mut png = Vec::new();
    image::DynamicImage::new_rgb8(8, 8)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    assert_eq!(flash_check(&png, &Limits::default()).unwrap(), None);
}

#[test]
fn a_video_thumbnail_is_its_poster_not_the_black_first_frame() {
    // Black for 1.5 s, then light grey.
    let data = grey("if(lt(T,1.5),0,200)");
    let jpeg = thumbnail(&data, 320, &Limits::default()).unwrap();
    let picture = image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg)
        .unwrap()
        .to_luma8();
    assert_eq!(picture.dimensions(), (320, 180));
    let mean = picture.pixels().map(|p| u64::from(p[0])).sum::<u64>() / (320 * 180);
    assert!(mean > 150, "mean luma {mean}: the poster is the grey part");
    // A clip black throughout still gets a poster: its first frame.
    let jpeg = thumbnail(&grey("0"), 100, &Limits::default()).unwrap();
    let picture = image::load_from_memory(&jpeg).unwrap();
    assert_eq!((picture.width(), picture.height()), (100, 56));
}

#[test]
fn flashing_animated_webp_is_refused() {
    // Made by the ffmpeg command line's libwebp_anim: 20 frames a second alternating.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("flash.webp");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("color=black:s=64x36:r=20:d=2")
        .args([
            "-vf",
            "format=rgb24,geq=r='if(mod(N,2),255,0)':g='if(mod(N,2),255,0)':b='if(mod(N,2),255,0)'",
        ])
        .args(["-c:v", "libwebp_anim", "-lossless", "1", "-loop", "0"])
        .arg(&out)
        .status()
        .expect("the ffmpeg command line is installed (scripts/setup.sh)");
    assert!(status.success());
    let data = std::fs::read(out).unwrap();
    media::probe_bytes(&data, &Limits::default()).expect("a valid animated WebP");
    let r = report(&data);
    let (kind, peak) = r.over_limit().expect("refused");
    assert_eq!((kind, peak.flashes), (FlashKind::General, 10), "{r}");
}
