//! The memory budget of probing (see the crate docs, "Memory budget"): hostile
//! files generated here (a 622 KB PNG of 16384x4882 RGBA16 pixels, a small
//! GIF of 2,000 one-pixel frames on a large canvas, and others) are refused
//! with the error naming the budget they break, and the peak resident memory
//! of probing each is measured in a child process of this test binary and
//! held to the budget. The pictures are written with the `png` and `gif`
//! encoders row by row and frame by frame: `image`'s own encoders would need
//! the whole 640 MB picture in memory first.

use std::borrow::Cow;
use std::io::Write;
use std::process::Command;

use media::{probe_bytes, Limits, MediaError};

/// A PNG of `width` x `height` black pixels of `color` at `depth`, written row
/// by row; zeros compress about a thousandfold (deflate's limit).
fn black_png(width: u32, height: u32, color: png::ColorType, depth: png::BitDepth) -> Vec<u8> {
    let bytes_per_pixel = color.samples()
        * if depth == png::BitDepth::Sixteen {
            2
        } else {
            1
        };
    let row = vec![0u8; width as usize * bytes_per_pixel];
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(color);
    encoder.set_depth(depth);
    encoder.set_compression(png::Compression::High);
    let mut writer = encoder.write_header().unwrap();
    let mut stream = writer.stream_writer().unwrap();
    for _ in 0..height {
        stream.write_all(&row).unwrap();
    }
    stream.finish().unwrap();
    writer.finish().unwrap();
    out
}

/// A GIF on a `canvas`-sized screen of `frames` frames of `frame` pixels each
/// (alternating black and white, in the top left corner).
fn gif(canvas: (u16, u16), frames: usize, frame: (u16, u16)) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let palette = [0, 0, 0, 255, 255, 255];
        let mut encoder = gif::Encoder::new(&mut out, canvas.0, canvas.1, &palette).unwrap();
        for i in 0..frames {
            let pixels = usize::from(frame.0) * usize::from(frame.1);
            encoder
                .write_frame(&gif::Frame {
                    width: frame.0,
                    height: frame.1,
                    delay: 4,
                    buffer: Cow::Owned(vec![(i % 2) as u8; pixels]),
                    ..gif::Frame::default()
                })
                .unwrap();
        }
    }
    out
}

/// The hostile and the borderline files, by name.
fn generate(case: &str) -> Vec<u8> {
    use png::{BitDepth, ColorType};
    match case {
        // The file of the issue: 79.98 megapixels (under the pixel limit) of
        // 8 bytes each, 640 MB decoded.
        "png-rgba16" => black_png(16_384, 4_882, ColorType::Rgba, BitDepth::Sixteen),
        // 2,000 frames of one pixel on a 4000x4000 canvas: 64 MB per
        // composited frame, 32 gigapixels to composite in all.
        "gif-2000-frames" => gif((4_000, 4_000), 2_000, (1, 1)),
        // Within the frame count, over the total: 300 frames of 2000x2000.
        "gif-pixels" => gif((2_000, 2_000), 300, (1, 1)),
        // Two frames on an 8000x8000 canvas: five canvases are 1.28 GB.
        "gif-canvas" => gif((8_000, 8_000), 2, (1, 1)),
        // Accepted: 144 MB decoded, within the budget.
        "png-rgba8-accepted" => black_png(6_000, 6_000, ColorType::Rgba, BitDepth::Eight),
        // Accepted: a 6000x4000 baseline JPEG, 72 MB decoded.
        "jpeg-accepted" => {
            let picture = image::RgbImage::from_pixel(6_000, 4_000, image::Rgb([40, 90, 160]));
            let mut out = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
                .encode_image(&picture)
                .unwrap();
            out
        }
        other => panic!("no case {other}"),
    }
}

#[test]
fn refuses_the_png_over_the_memory_budget() {
    let data = generate("png-rgba16");
    assert!(data.len() < 700_000, "{} bytes", data.len());
    match probe_bytes(&data, &Limits::default()) {
        Err(MediaError::OverMemoryBudget { needed, budget }) => {
            assert_eq!((needed, budget), (16_384 * 4_882 * 8, 256 << 20));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn refuses_animations_over_the_frame_and_pixel_budgets() {
    let limits = Limits::default();
    let data = generate("gif-2000-frames");
    assert!(data.len() < 60_000, "{} bytes", data.len());
    match probe_bytes(&data, &limits) {
        Err(MediaError::TooManyFrames {
            frames: 2_000,
            max: 1_000,
        }) => {}
        other => panic!("{other:?}"),
    }
    match probe_bytes(&generate("gif-pixels"), &limits) {
        Err(MediaError::AnimationTooLarge {
            frames: 300,
            width: 2_000,
            height: 2_000,
            pixels: 1_200_000_000,
            max_pixels: 1_000_000_000,
        }) => {}
        other => panic!("{other:?}"),
    }
    match probe_bytes(&generate("gif-canvas"), &limits) {
        Err(MediaError::OverMemoryBudget { needed, .. }) => {
            assert_eq!(needed, 8_000 * 8_000 * 4 * 5);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn frame_budget_boundary() {
    let at_limit = gif((16, 16), 1_000, (16, 16));
    let measured = probe_bytes(&at_limit, &Limits::default()).unwrap();
    assert_eq!((measured.width, measured.height), (16, 16));
    let tight = Limits {
        max_frames: 999,
        ..Limits::default()
    };
    assert!(matches!(
        probe_bytes(&at_limit, &tight),
        Err(MediaError::TooManyFrames {
            frames: 1_000,
            max: 999
        })
    ));
}

/// Set in a child process: which case to generate and probe.
const CHILD_CASE: &str = "MEDIA_PEAK_RSS_CASE";

/// A field of `/proc/self/status` in KiB.
fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// The child's half of [`peak_rss_of_probing`]: generates its case, resets
/// the peak (`clear_refs` 5), probes, and prints how far the peak rose over
/// the resident memory before probing. A no-op in a normal test run.
#[test]
fn peak_rss_child() {
    let Ok(case) = std::env::var(CHILD_CASE) else {
        return;
    };
    let data = generate(&case);
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = proc_status_kib("VmRSS");
    let verdict = match probe_bytes(&data, &Limits::default()) {
        Ok(_) => "accepted".to_string(),
        Err(e) => format!("{e:?}")
            .split([' ', '{', '('])
            .next()
            .unwrap()
            .to_owned(),
    };
    let peak = proc_status_kib("VmHWM");
    println!(
        "peak-rss {case} {verdict} {} KiB",
        peak.saturating_sub(before)
    );
}

/// Probes each case in a child process of this binary and holds the rise in
/// peak resident memory to the budget: a few MiB for what is refused from
/// its header, at most `max_alloc` for what is decoded. Linux only.
#[test]
fn peak_rss_of_probing() {
    if !std::path::Path::new("/proc/self/clear_refs").exists() {
        eprintln!("no /proc/self/clear_refs: peak RSS not measured");
        return;
    }
    let budget_kib = Limits::default().max_alloc / 1024;
    for (case, verdict, max_kib) in [
        ("png-rgba16", "OverMemoryBudget", 8 << 10),
        ("gif-2000-frames", "TooManyFrames", 8 << 10),
        ("gif-pixels", "AnimationTooLarge", 8 << 10),
        ("gif-canvas", "OverMemoryBudget", 8 << 10),
        ("png-rgba8-accepted", "accepted", budget_kib),
        ("jpeg-accepted", "accepted", budget_kib),
    ] {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "peak_rss_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_CASE, case)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{case}: {stdout}");
        // The libtest runner prints the test's name on the same line.
        let line = stdout
            .lines()
            .find_map(|l| Some(&l[l.find("peak-rss ")?..]))
            .unwrap_or_else(|| panic!("{case}: no figure in {stdout}"));
        eprintln!("{line}");
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[2], verdict, "{case}: {line}");
        let rise: u64 = fields[3].parse().unwrap();
        assert!(rise <= max_kib, "{case}: {line}, over {max_kib} KiB");
    }
}
