//! Renditions checked by decoding the output with `image` (independent of the resizer):
//! exact sizes, the padding colour at the borders, a centre crop keeping the centre,
//! transparency over the background, and the refusals.

use std::path::PathBuf;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage, RgbaImage};

use super::*;

/// Writes `picture` as `format` into `dir`; returns its path.
fn write(dir: &Path, name: &str, picture: &DynamicImage, format: ImageFormat) -> PathBuf {
    let path = dir.join(name);
    picture.save_with_format(&path, format).unwrap();
    path
}

/// Makes the rendition of `src` for `spec`, decodes it with `image` and checks it
/// against the measurement returned.
fn rendition(src: &Path, spec: RenditionSpec) -> RgbImage {
    let out = src.with_extension("out.jpg");
    let measured = still_rendition(src, &spec, &Limits::default(), &out)
        .unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    let data = std::fs::read(&out).unwrap();
    assert_eq!(measured.sha256, sha256_hex(&data));
    assert_eq!(measured.bytes, data.len() as u64);
    assert_eq!((measured.width, measured.height), (spec.width, spec.height));
    assert_eq!(image::guess_format(&data).unwrap(), ImageFormat::Jpeg);
    let picture = image::load_from_memory(&data).unwrap().into_rgb8();
    assert_eq!(
        picture.dimensions(),
        (spec.width, spec.height),
        "decoded size"
    );
    picture
}

/// Whether `got` is `want` within JPEG's error.
fn near(got: &Rgb<u8>, want: [u8; 3]) -> bool {
    got.0.iter().zip(want).all(|(g, w)| g.abs_diff(w) <= 12)
}

fn check_pixel(picture: &RgbImage, (x, y): (u32, u32), want: [u8; 3]) {
    let got = picture.get_pixel(x, y);
    assert!(
        near(got, want),
        "pixel {x},{y} is {got:?}, expected {want:?}"
    );
}

/// A picture of three vertical bands: blue, green, red.
fn bands(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, _| {
        match 3 * x / width {
            0 => Rgb([0, 0, 255]),
            1 => Rgb([0, 255, 0]),
            _ => Rgb([255, 0, 0]),
        }
    }))
}

const GREEN: [u8; 3] = [0, 255, 0];
const WHITE: [u8; 3] = [255, 255, 255];
const PINK: [u8; 3] = [255, 0, 128];

#[test]
fn contain_pads_with_the_background() {
    let dir = tempfile::tempdir().unwrap();
    // 600x200 into 300x300: scaled to 300x100, 100 rows of pink above and below.
    let src = write(dir.path(), "wide.png", &bands(600, 200), ImageFormat::Png);
    let fit = Fit::Contain { background: PINK };
    let out = rendition(
        &src,
        RenditionSpec {
            width: 300,
            height: 300,
            fit,
        },
    );
    for (x, y) in [
        (0, 0),
        (299, 0),
        (150, 90),
        (0, 299),
        (299, 299),
        (150, 210),
    ] {
        check_pixel(&out, (x, y), PINK);
    }
    check_pixel(&out, (150, 150), GREEN);
    check_pixel(&out, (20, 150), [0, 0, 255]);
    check_pixel(&out, (280, 150), [255, 0, 0]);
    // A tall source into a wide screen: pillars left and right.
    let src = write(dir.path(), "tall.jpg", &bands(200, 600), ImageFormat::Jpeg);
    let out = rendition(
        &src,
        RenditionSpec {
            width: 400,
            height: 300,
            fit,
        },
    );
    check_pixel(&out, (2, 150), PINK);
    check_pixel(&out, (397, 150), PINK);
    check_pixel(&out, (200, 150), GREEN);
}

#[test]
fn cover_keeps_the_centre() {
    let dir = tempfile::tempdir().unwrap();
    // 900x300 into 100x100: the centre third (green) fills the whole output.
    let src = write(dir.path(), "wide.jpg", &bands(900, 300), ImageFormat::Jpeg);
    let out = rendition(
        &src,
        RenditionSpec {
            width: 100,
            height: 100,
            fit: Fit::Cover,
        },
    );
    for (x, y) in [(5, 5), (50, 50), (94, 94), (5, 94), (94, 5)] {
        check_pixel(&out, (x, y), GREEN);
    }
}

#[test]
fn same_aspect_scales_without_padding() {
    let dir = tempfile::tempdir().unwrap();
    let src = write(dir.path(), "4k.jpg", &bands(3840, 2160), ImageFormat::Jpeg);
    let fit = Fit::Contain { background: PINK };
    let out = rendition(
        &src,
        RenditionSpec {
            width: 1920,
            height: 1080,
            fit,
        },
    );
    check_pixel(&out, (2, 2), [0, 0, 255]);
    check_pixel(&out, (1917, 1077), [255, 0, 0]);
    check_pixel(&out, (960, 540), GREEN);
    // Enlarging works too: exactly the size asked.
    let out = rendition(
        &src,
        RenditionSpec {
            width: 4000,
            height: 2250,
            fit,
        },
    );
    check_pixel(&out, (2000, 1125), GREEN);
}

#[test]
fn transparency_lies_over_the_background() {
    let dir = tempfile::tempdir().unwrap();
    // Transparent left half, opaque green right half.
    let rgba = RgbaImage::from_fn(200, 100, |x, _| {
        if x < 100 {
            image::Rgba([0, 0, 0, 0])
        } else {
            image::Rgba([0, 255, 0, 255])
        }
    });
    let src = write(
        dir.path(),
        "alpha.png",
        &DynamicImage::ImageRgba8(rgba),
        ImageFormat::Png,
    );
    let fit = Fit::Contain { background: WHITE };
    let out = rendition(
        &src,
        RenditionSpec {
            width: 100,
            height: 50,
            fit,
        },
    );
    check_pixel(&out, (10, 25), WHITE);
    check_pixel(&out, (90, 25), GREEN);
}

#[test]
fn refusals_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let spec = RenditionSpec {
        width: 64,
        height: 64,
        fit: Fit::Cover,
    };
    let limits = Limits::default();
    let out = dir.path().join("out.jpg");
    let check = |src: &Path, spec: &RenditionSpec, variant: &str| match still_rendition(
        src, spec, &limits, &out,
    ) {
        Ok(m) => panic!("{}: made {m:?}, expected {variant}", src.display()),
        Err(e) => assert!(
            format!("{e:?}").starts_with(variant),
            "{variant}: got {e:?}"
        ),
    };
    // An animated GIF: two frames.
    let gif = dir.path().join("anim.gif");
    {
        let file = std::fs::File::create(&gif).unwrap();
        let mut encoder = gif::Encoder::new(file, 4, 4, &[0, 0, 0, 255, 255, 255]).unwrap();
        for colour in [0u8, 1] {
            let frame = gif::Frame {
                width: 4,
                height: 4,
                buffer: std::borrow::Cow::Owned(vec![colour; 16]),
                ..gif::Frame::default()
            };
            encoder.write_frame(&frame).unwrap();
        }
    }
    check(&gif, &spec, "Animated");
    // A JPEG cut in half.
    let jpeg = write(dir.path(), "whole.jpg", &bands(300, 300), ImageFormat::Jpeg);
    let data = std::fs::read(&jpeg).unwrap();
    let cut = dir.path().join("cut.jpg");
    std::fs::write(&cut, &data[..data.len() / 2]).unwrap();
    check(&cut, &spec, "CorruptImage");
    let text = dir.path().join("text.jpg");
    std::fs::write(&text, b"not a picture at all").unwrap();
    check(&text, &spec, "UnknownFormat");
    check(
        &jpeg,
        &RenditionSpec {
            width: 0,
            height: 64,
            fit: Fit::Cover,
        },
        "Rendition",
    );
    check(
        &jpeg,
        &RenditionSpec {
            width: 100_000,
            height: 64,
            fit: Fit::Cover,
        },
        "DecompressionBomb",
    );
    assert!(!out.exists(), "nothing written for a refusal");
}

#[test]
fn contained_sizes() {
    for (src, dst, want) in [
        ((3840, 2160), (1920, 1080), (1920, 1080)),
        ((3840, 2160), (1080, 1920), (1080, 608)),
        ((1000, 1), (10, 10), (10, 1)),
        ((1, 1000), (10, 10), (1, 10)),
        ((100, 100), (300, 200), (200, 200)),
    ] {
        assert_eq!(
            contained(src.0, src.1, dst.0, dst.1),
            want,
            "{src:?} in {dst:?}"
        );
    }
}
