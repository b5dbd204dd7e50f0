//! Video for kiosks end to end: the real server (embedded broker, redb store with the
//! Beijing scenario, HTTP API) and two real `signage-agent` processes on one scaled
//! timeline. Staff upload a 1280x720 VP9 WebM and an H.265 MP4 (made with the `ffmpeg`
//! command line), both outside the kiosk gate, and a campaign of both for a 1920x1080
//! metro screen and a 640x360 screen added over the API:
//! - both are stored transcoded into the gate (H.264, checked with `ffprobe`);
//! - the small screen's rendition is made in the background, after the campaign was
//!   published (its document first names the original), and is an H.264 file of at most
//!   640x360 (checked with `ffprobe`);
//! - the metro screen plays both videos from the transcoded originals, the small screen
//!   plays the VP9 one from its rendition: the ledger names each play's file, and
//!   `audit verify` finds no problem.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};
use server::app::Options;
use server::clock::ServerClock;
use tests::agent_proc::{scaled_args, wait_for, AgentProc};
use tests::ledger_check::screen_plays;
use tests::TestEnv;

const METRO: &str = "bj-metro-xidan-s1";
const SMALL: &str = "bj-metro-xidan-s8";
const START: &str = "2023-12-20T10:00:00+08:00";
const SPEED: f64 = 5.0;
const VP9: &str = "clip-vp9";
const HEVC: &str = "clip-hevc";
const CAMPAIGN: &str = "kiosk-video";

/// A 4-second 1280x720 clip encoded by the `ffmpeg` command line with `codec` into `name`.
fn clip(dir: &Path, name: &str, codec: &[&str]) -> Vec<u8> {
    let out = dir.join(name);
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=s=1280x720:r=25:d=4")
        .args(["-pix_fmt", "yuv420p"])
        .args(codec)
        .arg(&out)
        .status()
        .expect("the ffmpeg command line (scripts/setup.sh installs it)");
    assert!(status.success(), "ffmpeg made {name}");
    std::fs::read(out).expect("the clip")
}

/// `ffprobe`'s codec, width and height of the first video stream of `file`.
fn probe(file: &Path) -> (String, u32, u32) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("ffprobe");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let parts: Vec<&str> = text.split(',').collect();
    assert_eq!(parts.len(), 3, "ffprobe said {text:?}");
    (
        parts[0].to_owned(),
        parts[1].parse().expect("width"),
        parts[2].parse().expect("height"),
    )
}

async fn call(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn videos_are_gated_rendered_for_small_screens_and_played() {
    let anchor_ms = Utc::now().timestamp_millis();
    let start: DateTime<Utc> = DateTime::parse_from_rfc3339(START)
        .expect("start")
        .with_timezone(&Utc);
    let clock = ServerClock::Scaled {
        start,
        anchor: DateTime::from_timestamp_millis(anchor_ms).expect("anchor"),
        speed: SPEED,
    };
    let env = TestEnv::spawn_with(
        None,
        Options {
            clock,
            approval: server::approval::ApprovalMode::Off,
            ..Options::default()
        },
    )
    .await;
    let base = format!("{}/api/v1", env.http_url());
    let http = reqwest::Client::new();
    let admin = env.admin_token();
    let work = env.tmp.path().join("clips");
    std::fs::create_dir_all(&work).expect("dir");

    // A small screen at a metro station.
    let (status, body) = call(
        http.post(format!("{base}/screens")).bearer_auth(&admin).json(
            &json!({"id": SMALL, "venue": "bj-metro-xidan", "resolution": {"width": 640, "height": 360}}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // Both uploads are outside the gate and stored as H.264.
    let mut stored = std::collections::BTreeMap::new();
    for (id, name, codec) in [
        (
            VP9,
            "clip.webm",
            &[
                "-c:v",
                "libvpx-vp9",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
                "-b:v",
                "300k",
            ][..],
        ),
        (
            HEVC,
            "clip.mp4",
            &[
                "-c:v",
                "libx265",
                "-preset",
                "ultrafast",
                "-x265-params",
                "log-level=error",
            ][..],
        ),
    ] {
        let file = clip(&work, name, codec);
        let form = Form::new()
            .text("meta", json!({"id": id, "title": id}).to_string())
            .part("file", Part::bytes(file).file_name(name));
        let (status, body) = call(
            http.post(format!("{base}/creatives"))
                .bearer_auth(&admin)
                .multipart(form),
        )
        .await;
        assert_eq!(status, 201, "{id}: {body}");
        let sha = body["spec"]["sha256"].as_str().expect("sha256").to_owned();
        let path = env
            .store
            .media_path(&playlists::Sha256::parse(&sha).expect("sha"));
        assert_eq!(probe(&path), ("h264".to_owned(), 1280, 720), "{id} stored");
        stored.insert(id, sha);
    }

    let campaign = json!({
        "id": CAMPAIGN, "name": "Kiosk video", "priority": "high", "weight": 1,
        "flight": {"start": "2023-12-20T00:00:00+08:00", "end": "2023-12-21T00:00:00+08:00"},
        "dayparts": ["* * * * *"], "target": {"screens": [METRO, SMALL]},
        "creatives": [VP9, HEVC]
    });
    let (status, body) = call(
        http.post(format!("{base}/campaigns"))
            .bearer_auth(&admin)
            .json(&campaign),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // The small screen's renditions are made in the background; its document then names
    // the VP9 one's.
    let mut renditions = Vec::new();
    for _ in 0..240 {
        let (status, list) = call(
            http.get(format!("{base}/creatives/{VP9}/renditions"))
                .bearer_auth(&admin),
        )
        .await;
        assert_eq!(status, 200, "{list}");
        renditions = list.as_array().expect("a list").clone();
        if !renditions.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(renditions.len(), 1, "{renditions:?}");
    let rendition = renditions[0]["sha256"].as_str().expect("sha256").to_owned();
    assert_eq!(renditions[0]["source"], stored[VP9].as_str());
    let path = env
        .store
        .media_path(&playlists::Sha256::parse(&rendition).expect("sha"));
    assert_eq!(probe(&path), ("h264".to_owned(), 640, 360), "the rendition");
    wait_for(
        "the small screen's document to name its rendition",
        Duration::from_secs(60),
        || {
            env.store.issued(SMALL).is_ok_and(|docs| {
                docs.iter()
                    .max_by_key(|d| d.version)
                    .is_some_and(|d| d.signed.contains(&rendition))
            })
        },
        || format!("{:?}", env.store.published().map(|p| p.get(SMALL).cloned())),
    )
    .await;

    // Both agents play the campaign.
    let timeline = scaled_args(start, anchor_ms, SPEED);
    let mut metro = AgentProc::new(&env.tmp.path().join("metro"), &env.provision(METRO));
    let mut small = AgentProc::new(&env.tmp.path().join("small"), &env.provision(SMALL));
    metro.spawn(&timeline);
    small.spawn(&timeline);
    let played = |screen: &str, creative: &str| {
        screen_plays(&*env.handle.shared.ledger, screen)
            .into_iter()
            .filter(|r| r.campaign_id == CAMPAIGN && r.creative_id == creative)
            .collect::<Vec<_>>()
    };
    for (screen, creative, agent) in [
        (METRO, VP9, &metro),
        (METRO, HEVC, &metro),
        (SMALL, VP9, &small),
    ] {
        wait_for(
            "the agent to play the video",
            Duration::from_secs(180),
            || !played(screen, creative).is_empty(),
            || {
                format!(
                    "{screen} {creative}: status {:?}\n{}",
                    env.status(screen),
                    agent.log_tail()
                )
            },
        )
        .await;
    }
    for creative in [VP9, HEVC] {
        for r in played(METRO, creative) {
            assert_eq!(
                r.media_sha256.as_deref(),
                Some(stored[creative].as_str()),
                "the metro screen plays the transcoded original: {r:?}"
            );
        }
    }
    let small_plays = played(SMALL, VP9);
    let last = small_plays.last().expect("plays");
    assert_eq!(
        last.media_sha256.as_deref(),
        Some(rendition.as_str()),
        "the small screen plays its rendition once named: {last:?}"
    );
    metro.terminate().await;
    small.terminate().await;

    let verdict = server::audit::verify(&*env.store).expect("audit");
    assert!(verdict.problems.is_empty(), "{:?}", verdict.problems);
    env.stop().await;
}
