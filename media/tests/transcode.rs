//! The video gate, transcoding and loudness against real files made by the
//! `ffmpeg` command line, with results checked by `ffprobe` and FFmpeg's own
//! `ebur128` filter rather than by our probe.

use std::path::{Path, PathBuf};
use std::process::Command;

use media::{inspect, measure_loudness, transcode, TranscodeSpec, VideoGate};

/// Runs the `ffmpeg` CLI quietly with `args`, making `out` in `dir`.
fn make(dir: &Path, out: &str, args: &[&str]) -> PathBuf {
    let path = dir.join(out);
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .arg(&path)
        .status()
        .expect("the ffmpeg command line is installed");
    assert!(status.success(), "ffmpeg failed making {out}");
    path
}

fn vp9_webm(dir: &Path) -> PathBuf {
    make(
        dir,
        "vp9.webm",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=60:duration=2",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=2",
            "-c:v",
            "libvpx-vp9",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-c:a",
            "libopus",
        ],
    )
}

fn hevc_mp4(dir: &Path) -> PathBuf {
    make(
        dir,
        "hevc.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=2048x1152:rate=30:duration=1",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=1",
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-x265-params",
            "log-level=error",
            "-tag:v",
            "hvc1",
            "-c:a",
            "aac",
        ],
    )
}

fn h264_mp4(dir: &Path, name: &str, faststart: bool) -> PathBuf {
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=25:duration=2",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=2",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-profile:v",
        "high",
        "-level",
        "4.0",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
    ];
    if faststart {
        args.extend(["-movflags", "+faststart"]);
    }
    make(dir, name, &args)
}

/// What ffprobe says about a file's streams, as JSON.
fn ffprobe(path: &Path) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe is installed");
    assert!(out.status.success(), "ffprobe failed on {}", path.display());
    serde_json::from_slice(&out.stdout).expect("ffprobe answers JSON")
}

/// Top-level MP4 box types in file order, walked independently of the
/// crate's own walker.
fn top_boxes(path: &Path) -> Vec<String> {
    let data = std::fs::read(path).unwrap();
    let mut boxes = Vec::new();
    let mut at = 0usize;
    while at + 8 <= data.len() {
        let mut size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        if size == 1 {
            size = u64::from_be_bytes(data[at + 8..at + 16].try_into().unwrap()) as usize;
        } else if size == 0 {
            size = data.len() - at;
        }
        boxes.push(String::from_utf8_lossy(&data[at + 4..at + 8]).into_owned());
        assert!(size >= 8, "box of size {size}");
        at += size;
    }
    boxes
}

/// Asserts that `path` is inside the default gate, by ffprobe.
fn assert_in_gate(path: &Path, width: u64, height: u64) {
    let probe = ffprobe(path);
    let streams = probe["streams"].as_array().unwrap();
    let video = streams.iter().find(|s| s["codec_type"] == "video").unwrap();
    assert_eq!(video["codec_name"], "h264", "{video}");
    let profile = video["profile"].as_str().unwrap();
    assert!(
        ["High", "Main", "Baseline", "Constrained Baseline"].contains(&profile),
        "profile {profile}"
    );
    assert!(video["level"].as_i64().unwrap() <= 42, "{video}");
    assert_eq!(video["pix_fmt"], "yuv420p");
    assert_eq!(video["width"].as_u64().unwrap(), width);
    assert_eq!(video["height"].as_u64().unwrap(), height);
    let rate = video["avg_frame_rate"].as_str().unwrap();
    let (n, d) = rate.split_once('/').unwrap();
    let fps = n.parse::<f64>().unwrap() / d.parse::<f64>().unwrap();
    assert!(fps <= 30.01 && fps > 20.0, "fps {fps}");
    for audio in streams.iter().filter(|s| s["codec_type"] == "audio") {
        assert_eq!(audio["codec_name"], "aac");
    }
    assert!(probe["format"]["format_name"]
        .as_str()
        .unwrap()
        .contains("mp4"));
    let boxes = top_boxes(path);
    let moov = boxes.iter().position(|b| b == "moov").unwrap();
    let mdat = boxes.iter().position(|b| b == "mdat").unwrap();
    assert!(moov < mdat, "moov after mdat: {boxes:?}");
}

/// Integrated loudness and true peak by FFmpeg's `ebur128` filter.
fn ffmpeg_loudness(path: &Path) -> (f64, f64) {
    let out = Command::new("ffmpeg")
        .args(["-nostats", "-i"])
        .arg(path)
        .args(["-af", "ebur128=peak=true", "-f", "null", "-"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    let summary = &text[text.rfind("Summary:").expect("an ebur128 summary")..];
    let value = |key: &str| -> f64 {
        let line = summary
            .lines()
            .find(|l| l.trim_start().starts_with(key))
            .unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    (value("I:"), value("Peak:"))
}

#[test]
fn vp9_webm_is_transcoded_into_the_gate() {
    let dir = tempfile::tempdir().unwrap();
    let src = vp9_webm(dir.path());
    let gate = VideoGate::default();
    let verdict = inspect(&src, &gate).unwrap();
    assert!(!verdict.inside());
    let reasons = verdict.reasons.join("; ");
    assert!(reasons.contains("codec vp9, not h264"), "{reasons}");
    assert!(reasons.contains("1280x720 at 60 fps, over 30"), "{reasons}");
    assert!(reasons.contains("audio opus, not aac"), "{reasons}");
    assert!(reasons.contains("container webm, not mp4"), "{reasons}");

    let out = dir.path().join("out.mp4");
    let mut seen = Vec::new();
    let done = transcode(
        &src,
        &out,
        &TranscodeSpec::for_gate(gate.clone()),
        &mut |f| seen.push(f),
    )
    .unwrap();
    assert_eq!((done.width, done.height), (1280, 720));
    assert_eq!(done.fps, 30.0);
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "progress goes forward"
    );
    assert_eq!(seen.last(), Some(&1.0));
    assert!(seen.len() > 3, "progress reported along the way: {seen:?}");
    assert_in_gate(&out, 1280, 720);
    assert!(inspect(&out, &gate).unwrap().inside());
}

#[test]
fn hevc_mp4_is_transcoded_and_scaled_into_the_gate() {
    let dir = tempfile::tempdir().unwrap();
    let src = hevc_mp4(dir.path());
    let gate = VideoGate::default();
    let verdict = inspect(&src, &gate).unwrap();
    let reasons = verdict.reasons.join("; ");
    assert!(reasons.contains("codec hevc, not h264"), "{reasons}");
    assert!(reasons.contains("2048x1152, over 1920x1080"), "{reasons}");
    let out = dir.path().join("out.mp4");
    let done = transcode(&src, &out, &TranscodeSpec::for_gate(gate), &mut |_| {}).unwrap();
    assert_eq!((done.width, done.height), (1920, 1080));
    assert!(
        done.changes
            .iter()
            .any(|c| c == "scaled 2048x1152 -> 1920x1080"),
        "{:?}",
        done.changes
    );
    assert_in_gate(&out, 1920, 1080);
}

#[test]
fn in_gate_h264_is_inside_and_a_late_index_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let gate = VideoGate::default();
    let good = h264_mp4(dir.path(), "good.mp4", true);
    let verdict = inspect(&good, &gate).unwrap();
    assert!(verdict.inside(), "{:?}", verdict.reasons);
    assert_eq!(
        (verdict.codec.as_str(), verdict.width, verdict.height),
        ("h264", 640, 360)
    );
    assert_eq!(verdict.audio.as_deref(), Some("aac"));

    let late = h264_mp4(dir.path(), "late.mp4", false);
    let verdict = inspect(&late, &gate).unwrap();
    assert_eq!(
        verdict.reasons,
        ["the index (moov) is after the media data (mdat), not fast-start"]
    );

    let strict = VideoGate {
        max_profile: media::H264Profile::Main,
        max_level: 31,
        max_width: 320,
        max_height: 240,
        max_fps: 24,
    };
    let reasons = inspect(&good, &strict).unwrap().reasons.join("; ");
    for expect in [
        "profile high, over main",
        "level 4.0, over 3.1",
        "640x360, over 320x240",
        "at 25 fps, over 24",
    ] {
        assert!(reasons.contains(expect), "{expect} in {reasons}");
    }
}

#[test]
fn loud_tone_is_normalised_to_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let src = make(
        dir.path(),
        "loud.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "aevalsrc=0.45*sin(2*PI*1000*t):s=48000:d=4",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25:duration=4",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-movflags",
            "+faststart",
        ],
    );
    let (before, _) = ffmpeg_loudness(&src);
    assert!(
        (before + 10.0).abs() < 0.5,
        "the source is at {before} LUFS"
    );
    let ours = measure_loudness(&src).unwrap().unwrap();
    assert!(
        (ours.integrated_lufs - before).abs() < 0.3,
        "{ours:?} against {before}"
    );

    let out = dir.path().join("out.mp4");
    let done = transcode(
        &src,
        &out,
        &TranscodeSpec::for_gate(VideoGate::default()),
        &mut |_| {},
    )
    .unwrap();
    assert!((done.gain_db + 13.0).abs() < 0.5, "gain {}", done.gain_db);
    let (after, peak) = ffmpeg_loudness(&out);
    assert!((after + 23.0).abs() <= 1.0, "normalised to {after} LUFS");
    assert!(peak <= -1.0, "true peak {peak} dBTP");
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let gate = VideoGate::default();
    let spec = TranscodeSpec::for_gate(gate.clone());
    let out = dir.path().join("out.mp4");
    let junk = dir.path().join("junk.mp4");
    std::fs::write(&junk, b"\x00\x00\x00\x18ftypisomnot really a video at all").unwrap();
    assert!(inspect(&junk, &gate).is_err());
    assert!(transcode(&junk, &out, &spec, &mut |_| {}).is_err());
    let missing = dir.path().join("missing.webm");
    assert!(inspect(&missing, &gate).is_err());
    assert!(measure_loudness(&missing).is_err());
    let said = transcode(&missing, &out, &spec, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        said.contains("cannot read") && said.contains("missing.webm"),
        "a missing file is named as unreadable, not as a corrupt video: {said}"
    );
    // A still is not a video: no video stream to gate.
    let png = dir.path().join("still.png");
    image::RgbImage::new(8, 8).save(&png).unwrap();
    assert!(inspect(&png, &gate).is_err());
}

#[test]
fn silent_video_without_audio_is_transcoded_without_an_audio_stream() {
    let dir = tempfile::tempdir().unwrap();
    let src = make(
        dir.path(),
        "mpeg4.mkv",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1080x1920:rate=24:duration=1",
            "-c:v",
            "mpeg4",
            "-q:v",
            "5",
        ],
    );
    let gate = VideoGate::default();
    let verdict = inspect(&src, &gate).unwrap();
    assert_eq!(verdict.audio, None);
    assert!(
        verdict
            .reasons
            .iter()
            .any(|r| r == "1080x1920, over 1920x1080"),
        "{:?}",
        verdict.reasons
    );
    assert_eq!(measure_loudness(&src).unwrap(), None);
    let out = dir.path().join("out.mp4");
    let done = transcode(&src, &out, &TranscodeSpec::for_gate(gate), &mut |_| {}).unwrap();
    // A portrait frame fits by its height: 1080 * 1080 / 1920 = 607.5, rounded to 608.
    assert_eq!((done.width, done.height), (608, 1080));
    assert_eq!(done.fps, 24.0, "a rate under the cap is kept");
    assert_in_gate(&out, 608, 1080);
    let probe = ffprobe(&out);
    assert!(probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["codec_type"] != "audio"));
}
