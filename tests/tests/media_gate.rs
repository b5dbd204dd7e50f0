//! The kiosk video gate through a real `signage serve`: an upload outside the gate is
//! stored transcoded (checked with the `ffprobe` command line on what `/media/{sha256}`
//! serves), its progress can be followed under a token until "done", a file inside the
//! gate keeps its bytes, and `signage creatives add` uploads and prints the verdicts.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::multipart::{Form, Part};
use tests::{signage_bin, TestStore};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `signage serve` over plain HTTP on free ports, on a fresh store; killed on drop
/// (before its database is dropped).
struct Server {
    child: Child,
    url: String,
    data: tempfile::TempDir,
    _store: TestStore,
}

impl Server {
    /// Starts `serve` with `extra` appended to its config file.
    fn start(extra: &str) -> Server {
        let data = tempfile::tempdir().unwrap();
        let store = TestStore::new();
        let (http, broker) = (free_port(), free_port());
        let config = data.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "http = \"127.0.0.1:{http}\"\nembedded_broker = \"127.0.0.1:{broker}\"\napproval = \"off\"\n{extra}"
            ),
        )
        .unwrap();
        let stdout = data.path().join("stdout");
        let mut child = Command::new(signage_bin())
            .args(["serve", "--data-dir"])
            .arg(data.path().join("store"))
            .arg("--config")
            .arg(&config)
            .args(store.args())
            .env_remove("SIGNAGE_HTTP")
            .env_remove("SIGNAGE_MQTT_URL")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(data.path().join("stderr")).unwrap())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{http}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !std::fs::read_to_string(&stdout)
            .unwrap_or_default()
            .contains("Ctrl-C")
        {
            if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
                let _ = child.kill();
                panic!(
                    "serve did not start: {}",
                    std::fs::read_to_string(data.path().join("stderr")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Server {
            child,
            url,
            data,
            _store: store,
        }
    }

    fn token_file(&self) -> PathBuf {
        self.data.path().join("store").join("admin.token")
    }

    fn token(&self) -> String {
        std::fs::read_to_string(self.token_file())
            .unwrap()
            .trim()
            .to_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ffmpeg(dir: &Path, out: &str, args: &[&str]) -> PathBuf {
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

/// H.264 High, 640x360 at 25 fps, AAC at about -23 LUFS, fast-start MP4: inside the gate.
fn in_gate(dir: &Path, name: &str) -> PathBuf {
    ffmpeg(
        dir,
        name,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=25:duration=2",
            "-f",
            "lavfi",
            "-i",
            "aevalsrc=0.1*sin(2*PI*1000*t):s=48000:d=2",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-movflags",
            "+faststart",
        ],
    )
}

fn sha256_hex(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

fn ffprobe_streams(path: &Path) -> Vec<serde_json::Value> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_streams", "-of", "json"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    json["streams"].as_array().unwrap().clone()
}

async fn upload(
    client: &reqwest::Client,
    server: &Server,
    file: &Path,
    id: &str,
    progress: Option<&str>,
) -> (u16, serde_json::Value) {
    let form = Form::new()
        .text("meta", serde_json::json!({ "id": id }).to_string())
        .part(
            "file",
            Part::bytes(std::fs::read(file).unwrap()).file_name("upload"),
        );
    let mut req = client
        .post(format!("{}/api/v1/creatives", server.url))
        .bearer_auth(server.token())
        .multipart(form);
    if let Some(t) = progress {
        req = req.query(&[("progress", t)]);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn check<'a>(entity: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    entity["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {entity}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_gated_transcoded_and_followed() {
    let server = Server::start("");
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap();

    // A VP9 WebM at 60 fps with Opus audio: outside the gate on four counts.
    let webm = ffmpeg(
        dir.path(),
        "vp9.webm",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=60:duration=3",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=3",
            "-c:v",
            "libvpx-vp9",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-c:a",
            "libopus",
        ],
    );
    let webm_sha = sha256_hex(&webm);
    let token = "media-gate-test-1";
    let poller = {
        let client = client.clone();
        let url = format!("{}/api/v1/creatives/progress/{token}", server.url);
        let auth = server.token();
        tokio::spawn(async move {
            let mut phases: Vec<String> = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(300);
            while Instant::now() < deadline {
                if let Ok(r) = client.get(&url).bearer_auth(&auth).send().await {
                    if r.status() == 200 {
                        let p: serde_json::Value = r.json().await.unwrap();
                        let phase = p["phase"].as_str().unwrap().to_owned();
                        if phases.last() != Some(&phase) {
                            phases.push(phase.clone());
                        }
                        if phase == "done" || phase == "failed" {
                            return (phases, p);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("the upload never finished: {phases:?}");
        })
    };
    let (status, entity) = upload(&client, &server, &webm, "vp9-clip", Some(token)).await;
    assert_eq!(status, 201, "{entity}");
    let (phases, last) = poller.await.unwrap();
    assert_eq!(last["phase"], "done", "{phases:?}");
    assert_eq!(last["detail"], "vp9-clip");
    assert!(
        phases.iter().any(|p| p == "transcoding") || phases.len() >= 2,
        "phases seen: {phases:?}"
    );

    assert_eq!(check(&entity, "gate")["outcome"], "changed");
    let gate = check(&entity, "gate")["detail"].as_str().unwrap();
    assert!(gate.contains("codec vp9, not h264"), "{gate}");
    assert!(gate.contains("at 60 fps, over 30"), "{gate}");
    assert_eq!(check(&entity, "transcode")["outcome"], "changed");
    assert!(check(&entity, "transcode")["detail"]
        .as_str()
        .unwrap()
        .starts_with("transcoded to h264"));
    assert_eq!(entity["source_sha256"], webm_sha.as_str());
    let stored_sha = entity["spec"]["sha256"].as_str().unwrap();
    assert_ne!(stored_sha, webm_sha);

    // What kiosks download is the transcode, by ffprobe.
    let media = client
        .get(format!("{}/media/{stored_sha}", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(media.status(), 200);
    let stored = dir.path().join("stored.mp4");
    std::fs::write(&stored, media.bytes().await.unwrap()).unwrap();
    assert_eq!(sha256_hex(&stored), stored_sha);
    let streams = ffprobe_streams(&stored);
    let video = streams.iter().find(|s| s["codec_type"] == "video").unwrap();
    assert_eq!(video["codec_name"], "h264");
    assert_eq!(video["profile"], "High");
    assert_eq!(video["pix_fmt"], "yuv420p");
    assert_eq!(video["avg_frame_rate"], "30/1");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(640), Some(360))
    );
    let audio = streams.iter().find(|s| s["codec_type"] == "audio").unwrap();
    assert_eq!(audio["codec_name"], "aac");
    assert_eq!(entity["measurement"]["width"], 640);

    // A file inside the gate, at the loudness target, is stored as uploaded.
    let good = in_gate(dir.path(), "good.mp4");
    let good_sha = sha256_hex(&good);
    let (status, entity) = upload(&client, &server, &good, "good-clip", None).await;
    assert_eq!(status, 201, "{entity}");
    assert_eq!(entity["spec"]["sha256"], good_sha.as_str());
    assert!(entity.get("source_sha256").is_none(), "{entity}");
    assert_eq!(check(&entity, "gate")["outcome"], "passed");
    assert_eq!(check(&entity, "transcode")["outcome"], "passed");
    assert_eq!(check(&entity, "loudness")["outcome"], "passed");

    // An unknown progress token is a 404; a malformed one a 400.
    let get = |t: &str| {
        client
            .get(format!("{}/api/v1/creatives/progress/{t}", server.url))
            .bearer_auth(server.token())
            .send()
    };
    assert_eq!(get("no-such-upload").await.unwrap().status(), 404);
    assert_eq!(get("bad%20token").await.unwrap().status(), 400);

    // The CLI: a damaged file is refused by name and check, the next one still goes.
    let cli_clip = dir.path().join("cli-clip.mp4");
    std::fs::copy(&good, &cli_clip).unwrap();
    let damaged = dir.path().join("damaged.mp4");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&damaged, &bytes[..bytes.len() / 2]).unwrap();
    let out = Command::new(signage_bin())
        .args(["creatives", "add"])
        .arg(&damaged)
        .arg(&cli_clip)
        .args(["--server", &server.url, "--token-file"])
        .arg(server.token_file())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a refusal exits non-zero");
    assert!(
        stderr.contains("damaged.mp4: refused by file"),
        "stderr: {stderr}"
    );
    assert!(
        stdout.contains("creative cli-clip stored as"),
        "stdout: {stdout}"
    );
    assert!(stdout.contains("  gate: passed: h264 640x360"), "{stdout}");
    assert!(stdout.contains("  transcode: passed"), "{stdout}");
    assert!(stdout.contains("  loudness: passed"), "{stdout}");
    assert!(
        !stderr.contains('\u{1b}'),
        "no bars off a terminal: {stderr:?}"
    );
}

/// With `loudness = "refuse"`, a -10 LUFS clip is refused by the loudness check: the API
/// names it in `field`, the CLI names the file and the check and exits non-zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loud_clip_is_refused_when_so_configured() {
    let server = Server::start("[media]\nloudness = \"refuse\"\n");
    let dir = tempfile::tempdir().unwrap();
    let loud = ffmpeg(
        dir.path(),
        "loud.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25:duration=2",
            "-f",
            "lavfi",
            "-i",
            "aevalsrc=0.45*sin(2*PI*1000*t):s=48000:d=2",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-movflags",
            "+faststart",
        ],
    );
    let client = reqwest::Client::new();
    let (status, body) = upload(&client, &server, &loud, "loud-clip", Some("loud-1")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "loudness", "{body}");
    let progress: serde_json::Value = client
        .get(format!("{}/api/v1/creatives/progress/loud-1", server.url))
        .bearer_auth(server.token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(progress["phase"], "failed");
    assert!(
        progress["detail"].as_str().unwrap().contains("LUFS"),
        "{progress}"
    );

    let out = Command::new(signage_bin())
        .args(["creatives", "add"])
        .arg(&loud)
        .args(["--server", &server.url, "--token-file"])
        .arg(server.token_file())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("loud.mp4: refused by loudness"),
        "stderr: {stderr}"
    );
    let listed: serde_json::Value = client
        .get(format!("{}/api/v1/creatives", server.url))
        .bearer_auth(server.token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !listed.to_string().contains("loud"),
        "nothing stored: {listed}"
    );
}
