//! Tests of the public API against the real creatives of the
//! `beijing-role-models` scenario, small fixtures in `testdata/`, and damaged
//! or hostile copies of them.

use std::path::PathBuf;

use super::*;

fn scenario_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios/beijing-role-models/media")
        .join(name)
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `data` cut to `fraction` of its length.
fn truncated(data: &[u8], fraction: f64) -> Vec<u8> {
    data[..(data.len() as f64 * fraction) as usize].to_vec()
}

/// Probes `path` from disk and from memory; both must agree with `expect`,
/// written as `kind width height duration sha256`.
fn check_measures(path: &Path, expect: &str) {
    let limits = Limits::default();
    let from_file = probe_file(path, &limits).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let data = read(path);
    let from_bytes = probe_bytes(&data, &limits).unwrap();
    assert_eq!(from_file, from_bytes);
    let duration = from_file
        .duration_ms
        .map_or_else(|| "-".to_string(), |ms| format!("{ms}ms"));
    let actual = format!(
        "{:?} {} {} {duration} {}",
        from_file.kind, from_file.width, from_file.height, from_file.sha256
    );
    assert_eq!(actual, expect, "{}", path.display());
    assert_eq!(from_file.bytes, data.len() as u64);
}

/// Probes `data` and expects an error whose `Debug` starts with `variant`.
fn check_rejects(what: &str, data: &[u8], limits: &Limits, variant: &str) {
    match probe_bytes(data, limits) {
        Ok(measured) => panic!("{what}: accepted as {measured:?}, expected {variant}"),
        Err(e) => assert!(
            format!("{e:?}").starts_with(variant),
            "{what}: expected {variant}, got {e:?} ({e})"
        ),
    }
}

#[test]
fn measures_real_creatives() {
    for (name, expect) in [
        (
            "rm2023-annual-01-l.jpg",
            "Image 1920 1080 - 96ca639a9782725c89caecf3700461e8cf31a5f1bd8ad9a207059cb20a2add1b",
        ),
        (
            "rm2023-annual-01-p.jpg",
            "Image 1080 1920 - 7d356988e3508137625dcf784ef0f927e23cd1f9ac37b73c6b27c11b04f9f1af",
        ),
        (
            "alert-epidemic-l.png",
            "Image 1920 1080 - 6b459bdf6eb0c258a81f0c1013462d9d370fe94670be6ee2ce9f9009ecf5ded0",
        ),
        (
            "alert-epidemic-p.png",
            "Image 1080 1920 - 5d81ed91d521c5eb3e8c69d63138de394abdd5c62cbc53badc2f08e1666dbb01",
        ),
        (
            "rm2023-vote-video.mp4",
            "Video 1280 720 10000ms 64c1e42485eff3f7f17c306e63970f1eb05d93c6a10b2413b7201146b680ff11",
        ),
        (
            "rm2023-special-award.mp4",
            "Video 1280 720 15000ms c921fa9659a2f542c8d639a9eaf75abcf7925d8907d93f381791829f9d8fdade",
        ),
    ] {
        check_measures(&scenario_file(name), expect);
    }
}

#[test]
fn measures_fixtures() {
    let limits = Limits::default();
    for (name, expect) in [
        ("clip-4s.webm", (MediaKind::Video, 160, 90, Some(4000))),
        // 3 s of video, 3.5 s of audio: the video's length counts.
        ("clip-av.webm", (MediaKind::Video, 96, 54, Some(3000))),
        ("anim.gif", (MediaKind::Image, 64, 36, None)),
    ] {
        let m = probe_file(&fixture(name), &limits).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((m.kind, m.width, m.height, m.duration_ms), expect, "{name}");
    }
}

#[test]
fn rejects_damaged_files() {
    let limits = Limits::default();
    for (name, fraction, variant) in [
        ("rm2023-annual-01-l.jpg", 0.5, "CorruptImage"),
        ("rm2023-annual-01-l.jpg", 0.99, "CorruptImage"),
        ("alert-epidemic-l.png", 0.5, "CorruptImage"),
        ("alert-epidemic-l.png", 0.99, "CorruptImage"),
        ("rm2023-vote-video.mp4", 0.5, "CorruptVideo"),
        ("rm2023-vote-video.mp4", 0.99, "CorruptVideo"),
        // Cuts into the moov box: the container does not even open.
        ("rm2023-special-award.mp4", 0.02, "CorruptVideo"),
        ("rm2023-special-award.mp4", 0.5, "CorruptVideo"),
    ] {
        let data = read(&scenario_file(name));
        check_rejects(
            &format!("{name} cut to {fraction}"),
            &truncated(&data, fraction),
            &limits,
            variant,
        );
    }
    for (name, fraction, variant) in [
        // WebM declares no frame count: caught by the frames' end time.
        ("clip-4s.webm", 0.5, "CorruptVideo"),
        ("clip-4s.webm", 0.99, "CorruptVideo"),
        ("clip-av.webm", 0.5, "CorruptVideo"),
        ("anim.gif", 0.5, "CorruptImage"),
    ] {
        let data = read(&fixture(name));
        check_rejects(
            &format!("{name} cut to {fraction}"),
            &truncated(&data, fraction),
            &limits,
            variant,
        );
    }
}

#[test]
fn rejects_garbled_video() {
    let mut data = read(&scenario_file("rm2023-vote-video.mp4"));
    let middle = data.len() / 2;
    for byte in &mut data[middle..middle + 2000] {
        *byte ^= 0x5a;
    }
    check_rejects("garbled mp4", &data, &Limits::default(), "CorruptVideo");
}

#[test]
fn rejects_what_is_not_media() {
    let limits = Limits::default();
    // Deterministic noise (xorshift), so failures reproduce.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let noise: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let audio_only = read(&fixture("tone.m4a"));
    for (what, data, variant) in [
        ("random bytes", noise.as_slice(), "UnknownFormat"),
        ("empty", b"".as_slice(), "UnknownFormat"),
        ("text", b"hello, signage".as_slice(), "UnknownFormat"),
        (
            "BMP magic",
            b"BM\x36\0\0\0\0\0\0\0\x36\0\0\0".as_slice(),
            "UnknownFormat",
        ),
        (
            "bare JPEG magic",
            b"\xff\xd8\xff".as_slice(),
            "CorruptImage",
        ),
        (
            "bare ftyp box",
            b"\0\0\0\x08ftyp".as_slice(),
            "CorruptVideo",
        ),
        ("audio only", audio_only.as_slice(), "NoVideoStream"),
    ] {
        check_rejects(what, data, &limits, variant);
    }
}

/// A PNG whose IHDR claims `width` x `height` but whose IDAT holds a tiny
/// zlib stream: what a decompression bomb looks like to a header reader.
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, no interlace
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, body) in [
        (b"IHDR", ihdr.as_slice()),
        (b"IDAT", b"\x78\x9c\x03\x00\x00\x00\x00\x01".as_slice()),
        (b"IEND", b"".as_slice()),
    ] {
        png.extend_from_slice(&(body.len() as u32).to_be_bytes());
        let chunk = [kind.as_slice(), body].concat();
        png.extend_from_slice(&chunk);
        png.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    png
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn rejects_decompression_bombs_from_the_header() {
    let limits = Limits::default();
    for (width, height) in [
        (100_000, 100_000),
        (20_000, 20_000),
        (16_385, 10),
        (10_000, 9_000),
    ] {
        match probe_bytes(&png_header(width, height), &limits) {
            Err(MediaError::DecompressionBomb {
                width: w,
                height: h,
                max_pixels: 80_000_000,
                max_dimension: 16_384,
            }) => assert_eq!((w, h), (width, height)),
            other => panic!("{width}x{height}: {other:?}"),
        }
    }
    // Within the limits the same file is merely short of pixel data.
    check_rejects(
        "1000x1000 header",
        &png_header(1000, 1000),
        &limits,
        "CorruptImage",
    );

    // Real files over tighter limits, still and video.
    let tight = Limits {
        max_pixels: 1920 * 1080 - 1,
        ..Limits::default()
    };
    let narrow = Limits {
        max_dimension: 1279,
        ..Limits::default()
    };
    for (name, limits) in [
        ("rm2023-annual-01-l.jpg", &tight),
        ("alert-epidemic-p.png", &tight),
        ("rm2023-vote-video.mp4", &narrow),
    ] {
        check_rejects(
            name,
            &read(&scenario_file(name)),
            limits,
            "DecompressionBomb",
        );
    }
}

#[test]
fn enforces_size_and_duration_limits() {
    let small = Limits {
        max_bytes: 75_683,
        ..Limits::default()
    };
    let path = scenario_file("rm2023-annual-01-l.jpg"); // 75,684 bytes
    assert!(matches!(
        probe_file(&path, &small),
        Err(MediaError::TooLarge {
            bytes: 75_684,
            max: 75_683
        })
    ));
    check_rejects("jpeg", &read(&path), &small, "TooLarge");

    let short = Limits {
        max_duration_ms: 12_000,
        ..Limits::default()
    };
    check_rejects(
        "15 s video",
        &read(&scenario_file("rm2023-special-award.mp4")),
        &short,
        "TooLong",
    );
    assert!(probe_bytes(&read(&scenario_file("rm2023-vote-video.mp4")), &short).is_ok());
}

#[test]
fn missing_file_is_an_io_error() {
    let path = scenario_file("no-such-file.jpg");
    match probe_file(&path, &Limits::default()) {
        Err(e @ MediaError::Io { .. }) => assert!(e.to_string().contains("no-such-file.jpg")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn thumbnails_fit_the_box() {
    let limits = Limits::default();
    for (path, max_side, expect) in [
        (scenario_file("rm2023-annual-01-l.jpg"), 320, (320, 180)),
        (scenario_file("rm2023-annual-01-p.jpg"), 320, (180, 320)),
        (scenario_file("alert-epidemic-l.png"), 200, (200, 113)),
        (scenario_file("rm2023-vote-video.mp4"), 320, (320, 180)),
        (fixture("clip-4s.webm"), 320, (160, 90)), // never enlarged
        (fixture("anim.gif"), 32, (32, 18)),
    ] {
        let jpeg = thumbnail(&read(&path), max_side, &limits)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let decoded = image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg).unwrap();
        assert_eq!(
            (decoded.width(), decoded.height()),
            expect,
            "{}",
            path.display()
        );
    }
    let half = truncated(&read(&scenario_file("rm2023-annual-01-l.jpg")), 0.5);
    assert!(matches!(
        thumbnail(&half, 320, &limits),
        Err(MediaError::CorruptImage(_))
    ));
}

#[test]
fn sha256_hex_is_lowercase_hex() {
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}
