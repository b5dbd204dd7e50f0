//! The media checks at upload end to end, through the real `signage serve`: clips made
//! with the `ffmpeg` command line are uploaded over HTTP. A clip flashing black and white
//! at 10 Hz, one flashing red and a flashing animated GIF are refused with a 4xx naming
//! the flash check and what it found, and nothing is stored; a slow fade is stored with a
//! "passed" flash check and a stored thumbnail that is its poster frame (the clip starts
//! black; the poster is not), served as a JPEG. With `[media] flash = "warn"` the
//! flashing clip is stored with a warning; an imported creative gets its thumbnail
//! stored on the first request.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};

use tests::{beijing, signage_bin, signage_ok as ok, TestStore};

fn s(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `signage serve` over plain HTTP on free ports, on a store holding the Beijing
/// scenario; killed on drop (before its database is dropped).
struct Server {
    child: Child,
    url: String,
    token: String,
    data: PathBuf,
    store: TestStore,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(config: &str) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let store = TestStore::new();
        ok(&store.with(&["import", s(&beijing()), "--data-dir", s(&data)]));
        for _ in 0..5 {
            let (http, broker) = (free_port(), free_port());
            let file = dir.path().join("config.toml");
            std::fs::write(
                &file,
                format!(
                    "http = \"127.0.0.1:{http}\"\nembedded_broker = \"127.0.0.1:{broker}\"\n{config}"
                ),
            )
            .expect("write config");
            let mut child = Command::new(signage_bin())
                .args(["serve", "--data-dir", s(&data), "--config", s(&file)])
                .args(store.args())
                .env_remove("SIGNAGE_HTTP")
                .env_remove("SIGNAGE_MQTT_URL")
                .env_remove("SIGNAGE_MEDIA")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.path().join("stderr")).expect("stderr"))
                .spawn()
                .expect("start signage serve");
            let url = format!("http://127.0.0.1:{http}");
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                let health = reqwest::get(format!("{url}/health")).await;
                if health.is_ok_and(|r| r.status() == 200) {
                    let token = std::fs::read_to_string(data.join("admin.token"))
                        .expect("the admin token")
                        .trim()
                        .to_owned();
                    return Server {
                        child,
                        url,
                        token,
                        data,
                        store,
                        _dir: dir,
                    };
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "signage serve did not start: {}",
            std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default()
        );
    }

    /// Uploads `file` as creative `id` (a GIF, a still, plays 10 s; a video its length);
    /// (status, body).
    async fn upload(&self, id: &str, file: Vec<u8>) -> (u16, Value) {
        let mut meta = json!({"id": id});
        if file.starts_with(b"GIF") {
            meta["duration_seconds"] = 10.into();
        }
        let form = Form::new()
            .text("meta", meta.to_string())
            .part("file", Part::bytes(file).file_name("upload.bin"));
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/creatives", self.url))
            .bearer_auth(&self.token)
            .multipart(form)
            .send()
            .await
            .expect("upload");
        let status = r.status().as_u16();
        (status, r.json().await.expect("a JSON answer"))
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(format!("{}/api/v1{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("get")
    }

    /// The files of the media directory, of uploads in progress, and the media the
    /// database holds (on PostgreSQL).
    fn files(&self) -> (Vec<String>, usize, Option<Vec<String>>) {
        let mut media: Vec<String> = std::fs::read_dir(self.data.join("media"))
            .expect("media dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        media.sort();
        let uploads = std::fs::read_dir(self.data.join("uploads")).map_or(0, |d| d.count());
        (media, uploads, self.store.stored_media())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A 3-second 320x180 clip at 20 fps (H.264 in MP4, or a GIF by `ext`) from an
/// ffmpeg filter chain over black.
fn clip(filter: &str, ext: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(format!("clip.{ext}"));
    let mut command = Command::new("ffmpeg");
    command
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("color=black:s=320x180:r=20:d=3")
        .args(["-vf", filter]);
    if ext == "mp4" {
        command.args(["-pix_fmt", "yuv420p", "-c:v", "libx264"]);
    }
    let status = command
        .arg(&out)
        .status()
        .expect("the ffmpeg command line is installed (scripts/setup.sh)");
    assert!(status.success(), "ffmpeg failed on {filter}");
    std::fs::read(out).unwrap()
}

fn grey(expr: &str) -> Vec<u8> {
    clip(&format!("geq=lum='{expr}':cb=128:cr=128"), "mp4")
}

/// Mean luma of the first frame of `video`, decoded by the ffmpeg command line.
fn first_frame_luma(video: &[u8]) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mp4");
    std::fs::write(&input, video).unwrap();
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i", s(&input), "-frames:v", "1"])
        .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout.iter().map(|&b| f64::from(b)).sum::<f64>() / out.stdout.len() as f64
}

fn message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .or(body["message"].as_str())
        .map_or_else(|| body.to_string(), str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flashing_uploads_are_refused_and_a_fade_is_stored_with_its_poster() {
    let server = Server::start("").await;
    let before = server.files();

    let refusals = [
        ("flash-10hz", grey("if(mod(N,2),255,0)"), "10 general flashes in the second from 0.05 s; at most 3"),
        (
            "flash-red",
            clip(
                "format=gbrp,geq=r='if(mod(N,2),255,127)':g='if(mod(N,2),0,127)':b='if(mod(N,2),0,127)'",
                "mp4",
            ),
            "red flashes in the second from",
        ),
        ("flash-gif", clip("geq=lum='if(mod(N,2),255,0)':cb=128:cr=128", "gif"), "general flashes in the second"),
    ];
    for (id, file, found) in refusals {
        let (status, body) = server.upload(id, file).await;
        let said = message(&body);
        assert_eq!(status, 400, "{id}: {body}");
        assert!(
            said.contains(&format!("creative {id:?}: flash: ")) && said.contains(found),
            "{id}: {said}"
        );
        let field = body["error"]["field"].as_str().or(body["field"].as_str());
        assert_eq!(
            field,
            Some("flash"),
            "{id}: the refusal names the check: {body}"
        );
        assert_eq!(
            server.get(&format!("/creatives/{id}")).await.status(),
            404,
            "{id}"
        );
        assert_eq!(server.files(), before, "{id}: nothing stored");
    }

    // A slow fade from black: accepted, with the check kept on the creative.
    let fade = grey("min(255,100*T)");
    assert!(first_frame_luma(&fade) < 5.0, "the clip starts black");
    let (status, body) = server.upload("fade-in", fade).await;
    assert_eq!(status, 201, "{body}");
    let checks = body["checks"].as_array().expect("checks");
    let flash: Vec<&Value> = checks.iter().filter(|c| c["check"] == "flash").collect();
    assert_eq!(flash.len(), 1, "one flash check: {body}");
    assert_eq!(flash[0]["outcome"], "passed");
    assert!(
        flash[0]["detail"]
            .as_str()
            .unwrap()
            .contains("at most 0 general"),
        "{body}"
    );
    let stored: Value = server.get("/creatives/fade-in").await.json().await.unwrap();
    assert_eq!(stored["checks"], body["checks"]);

    // Its thumbnail: stored at upload under its hash, served as a JPEG, the poster.
    let thumb_sha = body["thumbnail_sha256"]
        .as_str()
        .expect("a stored thumbnail")
        .to_owned();
    let on_disk = std::fs::read(server.data.join("media").join(&thumb_sha)).expect("stored");
    if let Some(stored) = server.store.stored_media() {
        assert!(
            stored.contains(&thumb_sha),
            "the thumbnail is in the database"
        );
    }
    let r = server.get("/creatives/fade-in/thumbnail").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    let jpeg = r.bytes().await.unwrap().to_vec();
    assert_eq!(jpeg, on_disk);
    let picture = image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg)
        .expect("a JPEG")
        .to_luma8();
    assert_eq!(picture.dimensions(), (320, 180));
    let mean = picture.pixels().map(|p| f64::from(p[0])).sum::<f64>() / (320.0 * 180.0);
    assert!(
        mean > 20.0,
        "mean luma {mean}: the poster is not the black first frame"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warn_keeps_a_flashing_clip_and_imported_creatives_get_stored_thumbnails() {
    let server = Server::start("[media]\nflash = \"warn\"\n").await;
    let (status, body) = server
        .upload("flash-kept", grey("if(mod(N,2),255,0)"))
        .await;
    assert_eq!(status, 201, "{body}");
    let checks = body["checks"].as_array().expect("checks");
    let flash = checks
        .iter()
        .find(|c| c["check"] == "flash")
        .unwrap_or_else(|| panic!("a flash check among {checks:?}"));
    assert_eq!(flash["outcome"], "warning");
    assert_eq!(
        flash["detail"],
        "10 general flashes in the second from 0.05 s; at most 3"
    );

    // An imported creative: no thumbnail named; the first request stores one.
    let list: Value = server
        .get("/creatives?limit=500")
        .await
        .json()
        .await
        .unwrap();
    let imported = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|c| c["spec"]["id"] != "flash-kept")
        .expect("an imported creative")
        .clone();
    assert!(imported.get("thumbnail_sha256").is_none());
    let id = imported["spec"]["id"].as_str().unwrap();
    let before = server.files().0;
    let first = server.get(&format!("/creatives/{id}/thumbnail")).await;
    assert_eq!(first.status(), 200);
    let first = first.bytes().await.unwrap().to_vec();
    let after = server.files().0;
    let added: Vec<&String> = after.iter().filter(|f| !before.contains(f)).collect();
    assert_eq!(added.len(), 1, "one thumbnail stored: {added:?}");
    if let Some(stored) = server.store.stored_media() {
        assert!(
            stored.contains(added[0]),
            "the thumbnail is in the database"
        );
    }
    assert_eq!(
        std::fs::read(server.data.join("media").join(added[0])).unwrap(),
        first
    );
    let again = server.get(&format!("/creatives/{id}/thumbnail")).await;
    assert_eq!(again.bytes().await.unwrap().to_vec(), first);
    assert_eq!(server.files().0, after, "nothing more stored");
}
