//! The media checks' verdicts and video posters on the dashboard, in a real browser
//! (Debian's Chromium over WebDriver) against a real server configured with
//! `[media] flash = "warn"`. Staff upload a clip flashing at 10 Hz (kept with a warning)
//! and a slow fade (passed), both made with the `ffmpeg` command line. The library shows
//! the warning on the flashing clip's card and the fade's poster as its thumbnail; an
//! approver's review page of each shows its checks, in English and in Chinese, uses the
//! poster for the video player, and passes axe.

use std::process::Command;

use reqwest::multipart::{Form, Part};
use serde_json::json;
use tests::{webdriver, TestEnv};

const STAFF_PASSWORD: &str = "sara's long enough password";
const APPROVER_PASSWORD: &str = "anna approves with care";

/// A 3-second 320x180 H.264 clip at 20 fps whose grey level is `expr` of `T` and `N`.
fn grey(expr: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("clip.mp4");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("color=black:s=320x180:r=20:d=3")
        .args(["-vf", &format!("geq=lum='{expr}':cb=128:cr=128")])
        .args(["-pix_fmt", "yuv420p", "-c:v", "libx264"])
        .arg(&out)
        .status()
        .expect("the ffmpeg command line is installed (scripts/setup.sh)");
    assert!(status.success());
    std::fs::read(out).unwrap()
}

async fn upload(base: &str, token: &str, id: &str, file: Vec<u8>) {
    let form = Form::new()
        .text("meta", json!({"id": id, "title": id}).to_string())
        .part("file", Part::bytes(file).file_name("clip.mp4"));
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/creatives"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_and_posters_on_the_dashboard() {
    let options = server::app::Options {
        media: server::ingest::MediaPolicy {
            flash: server::media_checks::FlashMode::Warn,
            ..server::ingest::MediaPolicy::default()
        },
        ..server::app::Options::default()
    };
    let env = TestEnv::spawn_with(None, options).await;
    let base = env.http_url();
    let admin = env.admin_token();
    let staff = tests::add_user(&base, &admin, "sara", &["staff"], STAFF_PASSWORD).await;
    tests::add_user(&base, &admin, "anna", &["approver"], APPROVER_PASSWORD).await;
    upload(&base, &staff, "flashing", grey("if(mod(N,2),255,0)")).await;
    upload(&base, &staff, "fade", grey("min(255,100*T)")).await;

    let (_driver, page) = webdriver::start(&env.tmp.path().join("chromium-checks")).await;
    page.window(1280, 720).await;
    page.goto(&format!("{base}/")).await;
    page.log_in("anna", APPROVER_PASSWORD).await;

    // The library: the warning on the flashing clip's card, the fade's poster loaded.
    page.goto(&format!("{base}/#/creatives")).await;
    page.wait_js(
        "the warning and the poster in the library",
        "const w = document.querySelector('[data-check-warning=\"flashing\"]'); \
         const img = document.querySelector('#creatives [data-id=\"fade\"] img.thumb'); \
         return !!w && w.textContent.includes('10 general flashes') && \
           !!img && img.complete && img.naturalWidth === 320 && img.naturalHeight === 180",
    )
    .await;

    // The flashing clip's review: its warning in the checks, the poster on the player.
    page.goto(&format!("{base}/#/approvals/creative/flashing"))
        .await;
    page.wait_js(
        "the flash warning on the review page",
        "const r = document.querySelector('#creative-checks tr[data-check=\"flash\"]'); \
         const v = document.querySelector('#creative-large video'); \
         return !!r && r.dataset.outcome === 'warning' && \
           r.textContent.includes('10 general flashes in the second from 0.05 s; at most 3') && \
           r.textContent.includes('Flashes (WCAG 2.3.1)') && r.textContent.includes('warning') && \
           !!v && v.getAttribute('poster') === '/api/v1/creatives/flashing/thumbnail'",
    )
    .await;
    page.assert_accessible("creative checks").await;
    page.click("#lang").await;
    page.wait_js(
        "the checks in Chinese",
        "const r = document.querySelector('#creative-checks tr[data-check=\"flash\"]'); \
         return document.querySelector('#checks-h')?.textContent === '媒体检查' && \
           !!r && r.textContent.includes('闪烁（WCAG 2.3.1）') && r.textContent.includes('警告')",
    )
    .await;
    page.click("#lang").await;

    // The fade passed.
    page.goto(&format!("{base}/#/approvals/creative/fade"))
        .await;
    page.wait_js(
        "the passed check on the fade's page",
        "const r = document.querySelector('#creative-checks tr[data-check=\"flash\"]'); \
         return !!r && r.dataset.outcome === 'passed' && r.textContent.includes('passed')",
    )
    .await;

    // Staff upload a VP9 WebM through the page: the server transcodes it into the kiosk
    // gate while the page follows its progress, and the page names the checks' verdicts.
    let webm = env.tmp.path().join("kiosk-unfriendly.webm");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=s=320x180:r=25:d=4")
        .args(["-c:v", "libvpx-vp9", "-b:v", "200k"])
        .arg(&webm)
        .status()
        .expect("the ffmpeg command line");
    assert!(status.success());
    page.click("#logout").await;
    page.log_in("sara", STAFF_PASSWORD).await;
    page.goto(&format!("{base}/#/creatives")).await;
    page.wait_js(
        "the upload form",
        "return !!document.querySelector('form#upload')",
    )
    .await;
    let input = page.element("form#upload input[name=file]").await;
    page.post(
        &format!("/element/{input}/value"),
        json!({"text": webm.to_str().expect("a UTF-8 path")}),
    )
    .await;
    page.type_into("form#upload input[name=id]", "vp9-clip")
        .await;
    page.click("form#upload button.primary").await;
    page.wait_js(
        "the transcoded upload's verdicts on the page",
        "const l = document.querySelector('#upload-said'); \
         return !!l && l.textContent.includes('uploaded vp9-clip') && \
           l.textContent.includes('gate changed to pass') && \
           l.textContent.includes('transcode changed to pass') && \
           l.textContent.includes('flash passed')",
    )
    .await;
    // Independently of the page: what is stored is H.264 now.
    let stored: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/api/v1/creatives/vp9-clip"))
        .bearer_auth(&staff)
        .send()
        .await
        .expect("the creative")
        .json()
        .await
        .expect("JSON");
    let sha = stored["spec"]["sha256"].as_str().expect("a sha256");
    let media = reqwest::get(format!("{base}/media/{sha}"))
        .await
        .expect("the stored media")
        .bytes()
        .await
        .expect("its bytes");
    let stored_file = env.tmp.path().join("stored.mp4");
    std::fs::write(&stored_file, &media).unwrap();
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name",
        ])
        .args(["-of", "csv=p=0"])
        .arg(&stored_file)
        .output()
        .expect("ffprobe");
    assert_eq!(String::from_utf8_lossy(&probe.stdout).trim(), "h264");
    page.close().await;
}
