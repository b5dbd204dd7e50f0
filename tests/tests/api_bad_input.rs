//! Bad input over real HTTP: every broken upload, invalid campaign, malformed body, wrong
//! token, wrong method and unknown route gets a JSON 4xx in the API's one error shape,
//! naming the field to blame, and the store is exactly as it was (entities, change log,
//! media files). Then a good upload and campaign go through and reach the schedules of
//! the screens they target, and only those.

use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};
use tests::store::off_runtime;

use tests::TestEnv;

/// Everything a refused request must leave alone.
fn snapshot(env: &TestEnv) -> String {
    let mut media: Vec<String> = std::fs::read_dir(env.store.dir().join("media"))
        .expect("media dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    media.sort();
    let uploads = std::fs::read_dir(env.store.dir().join("uploads"))
        .expect("uploads dir")
        .count();
    format!(
        "{:?}\n{:?}\n{media:?}\n{uploads}",
        off_runtime(|| env.store.snapshot()).expect("snapshot"),
        off_runtime(|| env.store.revisions(0, usize::MAX)).expect("revisions"),
    )
}

fn beijing_media(name: &str) -> Vec<u8> {
    std::fs::read(tests::beijing().join("media").join(name)).expect("beijing media")
}

fn upload(meta: Option<Value>, file: Option<Vec<u8>>) -> Form {
    let mut form = Form::new();
    if let Some(m) = meta {
        form = form.text("meta", m.to_string());
    }
    if let Some(f) = file {
        form = form.part("file", Part::bytes(f).file_name("upload.bin"));
    }
    form
}

/// A PNG header claiming 100000 x 100000 pixels.
fn png_bomb() -> Vec<u8> {
    let mut img = image::RgbImage::new(4, 4);
    img.put_pixel(0, 0, image::Rgb([1, 2, 3]));
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("png");
    // IHDR width and height sit at bytes 16..24; the CRC after them is not checked by
    // the header sniff, so rewrite it too.
    png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = tests::crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_json_4xx_naming_the_field_and_changes_nothing() {
    // Not about approval (tests/tests/approval.rs is): changes are live at once.
    let env = TestEnv::spawn_with(
        None,
        server::app::Options {
            approval: server::approval::ApprovalMode::Off,
            ..server::app::Options::default()
        },
    )
    .await;
    let http = reqwest::Client::new();
    let base = format!("{}/api/v1", env.http_url());
    let token = env.admin_token();
    let screens = env.catalogue().screens.len();
    tests::agent_proc::wait_for(
        "the server's first schedule publication",
        std::time::Duration::from_secs(30),
        || {
            off_runtime(|| env.store.published())
                .expect("published")
                .len()
                == screens
        },
        String::new,
    )
    .await;
    let before = snapshot(&env);

    // Ready: the broker is connected, the store answers, ingest keeps up.
    let (status, ready) = tests::send_json(http.get(format!("{}/ready", env.http_url()))).await;
    assert_eq!((status, &ready["ready"]), (200, &json!(true)), "{ready}");
    assert_eq!(ready["broker"]["detail"], "connected", "{ready}");

    let still = beijing_media("rm2023-w51-1.jpg");
    let truncated = still[..still.len() / 2].to_vec();
    let good_campaign = json!({
        "id": "test-campaign", "name": "Test", "priority": "high", "weight": 1,
        "flight": {"start": "2023-12-20T00:00:00+08:00", "end": "2023-12-27T00:00:00+08:00"},
        "dayparts": ["* 7-9 * * *"], "target": {"districts": ["xicheng"]},
        "creatives": ["rm2023-w51-1"]
    });
    let campaign = |patch: Value| {
        let mut v = good_campaign.clone();
        for (k, x) in patch.as_object().expect("object") {
            v[k] = x.clone();
        }
        v
    };
    let creatives = format!("{base}/creatives");
    let campaigns = format!("{base}/campaigns");
    type Case = (
        &'static str,
        reqwest::RequestBuilder,
        u16,
        Option<&'static str>,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        ("upload without meta", http.post(&creatives).bearer_auth(&token).multipart(upload(None, Some(still.clone()))),
            400, Some("meta"), "missing"),
        ("upload without file", http.post(&creatives).bearer_auth(&token).multipart(upload(Some(json!({"id": "x1", "duration_seconds": 10})), None)),
            400, Some("file"), "missing"),
        ("a truncated JPEG", http.post(&creatives).bearer_auth(&token).multipart(upload(Some(json!({"id": "x2", "duration_seconds": 10})), Some(truncated))),
            400, Some("file"), "creative \"x2\""),
        ("a decompression bomb", http.post(&creatives).bearer_auth(&token).multipart(upload(Some(json!({"id": "x3", "duration_seconds": 10})), Some(png_bomb()))),
            400, Some("file"), "100000"),
        ("not media at all", http.post(&creatives).bearer_auth(&token).multipart(upload(Some(json!({"id": "x4", "duration_seconds": 10})), Some(b"hello, world".to_vec()))),
            400, Some("file"), "creative \"x4\""),
        ("a hash mismatch", http.post(&creatives).bearer_auth(&token).multipart(upload(Some(json!({"id": "x5", "duration_seconds": 10, "sha256": "0".repeat(64)})), Some(still.clone()))),
            400, Some("sha256"), "the file has sha256"),
        ("a still without a duration", http.post(&creatives).bearer_auth(&token).multipart(upload(Some(json!({"id": "x6"})), Some(still.clone()))),
            400, Some("duration_seconds"), "a still needs"),
        ("a bad creative id", http.post(&creatives).bearer_auth(&token).multipart(upload(Some(json!({"id": "no spaces", "duration_seconds": 10})), Some(still.clone()))),
            400, Some("id"), "no spaces"),
        ("bad meta JSON", http.post(&creatives).bearer_auth(&token).multipart(Form::new().text("meta", "{").part("file", Part::bytes(still.clone()))),
            400, Some("meta"), "not the expected JSON"),
        ("an existing creative id", http.post(&creatives).bearer_auth(&token).multipart(upload(Some(json!({"id": "rm2023-w51-2", "duration_seconds": 10})), Some(beijing_media("rm2023-w51-3.jpg")))),
            409, None, "already exists"),
        ("upload without a token", http.post(&creatives).multipart(upload(Some(json!({"id": "x7", "duration_seconds": 10})), Some(still.clone()))),
            401, None, "missing Authorization"),
        ("a bad cron", http.post(&campaigns).bearer_auth(&token).json(&campaign(json!({"dayparts": ["* 25 * * *"]}))),
            400, Some("dayparts[0]"), "campaign \"test-campaign\""),
        ("a daypart that never matches", http.post(&campaigns).bearer_auth(&token).json(&campaign(json!({"dayparts": ["0 0 31 2 *"]}))),
            400, Some("dayparts[0]"), "can never match"),
        ("a target that matches no screen", http.post(&campaigns).bearer_auth(&token).json(&campaign(json!({"target": {"districts": ["atlantis"]}}))),
            400, Some("target"), "matches no screen"),
        ("no creative fits a targeted screen", http.post(&campaigns).bearer_auth(&token).json(&campaign(json!({"target": {"screens": ["bj-metro-xidan-s1"]}, "creatives": ["rm2023-annual-01-p"]}))),
            400, Some("creatives"), "none fits"),
        ("an unknown creative", http.post(&campaigns).bearer_auth(&token).json(&campaign(json!({"creatives": ["nope"]}))),
            400, Some("creatives[0]"), "no creative \"nope\""),
        ("weight zero", http.post(&campaigns).bearer_auth(&token).json(&campaign(json!({"weight": 0}))),
            400, Some("weight"), "at least 1"),
        ("an unknown field", http.post(&campaigns).bearer_auth(&token).json(&campaign(json!({"colour": "red"}))),
            400, None, "unknown field `colour`"),
        ("malformed JSON", http.post(&campaigns).bearer_auth(&token).header("content-type", "application/json").body("{\"id\":"),
            400, None, "not the expected JSON"),
        ("an existing campaign id", http.post(&campaigns).bearer_auth(&token).json(&campaign(json!({"id": "rm2023-annual"}))),
            409, None, "already exists"),
        ("a path id that differs from the body's", http.put(format!("{campaigns}/rm2023-annual")).bearer_auth(&token).json(&good_campaign),
            400, Some("id"), "is not the path's"),
        ("replacing an unknown campaign", http.put(format!("{campaigns}/test-campaign")).bearer_auth(&token).json(&good_campaign),
            404, None, "no campaign"),
        ("a wrong token", http.post(&campaigns).bearer_auth("ab".repeat(32)).json(&good_campaign),
            401, None, "unknown or malformed API token"),
        ("a wrong method", http.delete(&campaigns).bearer_auth(&token),
            405, None, "does not take that method"),
        ("an unknown route", http.get(format!("{base}/nothing-here")).bearer_auth(&token),
            404, None, "no such route"),
        ("a report window backwards", http.get(format!("{base}/reports/venues?from=2023-12-21T00:00:00Z&to=2023-12-20T00:00:00Z")).bearer_auth(&token),
            400, Some("from"), "must be before"),
        ("a plan window too long", http.get(format!("{base}/plan?from=2023-01-01T00:00:00Z&to=2023-12-20T00:00:00Z")).bearer_auth(&token),
            400, Some("to"), "longer than 31 days"),
        ("a bad time", http.get(format!("{base}/plan?from=yesterday&to=2023-12-20T00:00:00Z")).bearer_auth(&token),
            400, None, "from"),
    ];
    for (what, req, status, field, needle) in cases {
        let (got, body) = tests::send_json(req).await;
        assert_eq!(got, status, "{what}: {body}");
        let error = &body["error"];
        let message = error["message"].as_str().unwrap_or_default();
        assert!(error["code"].is_string(), "{what}: no code in {body}");
        assert!(
            message.contains(needle),
            "{what}: {message:?} should say {needle:?}"
        );
        if let Some(f) = field {
            assert_eq!(error["field"], json!(f), "{what}: {body}");
        }
        assert!(snapshot(&env) == before, "{what} changed the store");
    }

    // A good upload and campaign: stored, one revision each, and published only to the
    // screens of the district they target.
    let published_before = off_runtime(|| env.store.published()).expect("published");
    let (status, body) =
        tests::send_json(http.post(&creatives).bearer_auth(&token).multipart(upload(
            Some(json!({"id": "test-still", "title": "A test still", "duration_seconds": 10})),
            Some(still.clone()),
        )))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["spec"]["sha256"], json!(media::sha256_hex(&still)));
    assert_eq!(body["measurement"]["width"], json!(1920));
    let (status, body) = tests::send_json(
        http.post(&campaigns)
            .bearer_auth(&token)
            .json(&campaign(json!({"creatives": ["test-still"]}))),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["state"], "live");
    let catalogue = env.catalogue();
    let xicheng: Vec<String> = catalogue
        .screens
        .iter()
        .filter(|s| {
            catalogue
                .venue(&s.venue)
                .is_some_and(|v| v.district.as_deref() == Some("xicheng"))
        })
        .map(|s| s.id.to_string())
        .collect();
    assert!(!xicheng.is_empty());
    let published_after = off_runtime(|| env.store.published()).expect("published");
    for (screen, p) in &published_after {
        let old = published_before[screen].version;
        if xicheng.contains(screen) {
            assert_eq!(p.version, old + 1, "{screen} got no new version");
        } else {
            assert_eq!(p.version, old, "{screen} outside Xicheng was republished");
        }
    }
    let log = off_runtime(|| env.store.revisions(0, usize::MAX)).expect("revisions");
    let last: Vec<(&str, &str)> = log
        .iter()
        .rev()
        .take(2)
        .map(|r| (r.author.as_str(), r.comment.as_str()))
        .collect();
    assert_eq!(
        last,
        [
            ("admin", "campaign test-campaign created"),
            ("admin", "creative test-still uploaded")
        ]
    );
    env.stop().await;
}
