//! How fast the flash check runs on a 30-second 1080p clip at 30 fps (H.264, made with the
//! `ffmpeg` command line from its `testsrc2` pattern, which moves but does not flash), beside
//! the plain decode of the same file by the `ffmpeg` command line (`-f null`, all
//! threads) and `media::probe_bytes` (our full decode). Prints wall-clock medians of
//! three runs. Run: `cargo bench -p media --bench flash`.

use std::process::Command;
use std::time::{Duration, Instant};

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn time(mut f: impl FnMut()) -> Duration {
    median(
        (0..3)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed()
            })
            .collect(),
    )
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clip = dir.path().join("clip.mp4");
    let made = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=s=1920x1080:r=30:d=30")
        .args([
            "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "veryfast",
        ])
        .arg(&clip)
        .status()
        .expect("the ffmpeg command line is installed");
    assert!(made.success());
    let data = std::fs::read(&clip).expect("the clip");
    let limits = media::Limits::default();

    let report = media::flash_check(&data, &limits)
        .expect("the check runs")
        .expect("a video is checked");
    let flash = time(|| {
        media::flash_check(&data, &limits).expect("the check runs");
    });
    let probe = time(|| {
        media::probe_bytes(&data, &limits).expect("a valid clip");
    });
    let cli = time(|| {
        let ok = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&clip)
            .args(["-f", "null", "-"])
            .status()
            .expect("ffmpeg");
        assert!(ok.success());
    });
    let seconds = |d: Duration| d.as_secs_f64();
    println!(
        "30 s of 1920x1080 at 30 fps ({} frames, {:.1} MB): {report}",
        report.frames,
        data.len() as f64 / 1e6
    );
    println!(
        "flash check {:.2} s ({:.1}x real time); probe (full decode) {:.2} s; ffmpeg -f null {:.2} s",
        seconds(flash),
        30.0 / seconds(flash),
        seconds(probe),
        seconds(cli)
    );
}
