//! Renditions end to end: the real server (embedded broker, redb store with the Beijing
//! scenario, HTTP API) and two real `signage-agent` processes on one scaled timeline.
//! Staff upload a generated 3840x2160 JPEG that plays on any aspect, on a dark blue
//! background, and a campaign for a 1920x1080 metro screen and a 1080x1920 bus shelter:
//! - the server makes one rendition per screen, listed by the API, each a JPEG decoding
//!   (with `image`, not the resizer that made it) at exactly its screen's size, the
//!   portrait one padded with the background above and below the picture;
//! - each agent's cache holds its own rendition, not the other's and not the 4K original;
//! - the plays of the campaign in the ledger name the creative, its original hash and the
//!   rendition's hash as the file played, and `audit verify` finds no problem;
//! - an emergency with the same creative plays the portrait screen's rendition too (its
//!   command names it), never downloading the original;
//! - an original that cannot be rendered is published as it is.

use std::time::Duration;
use tests::store::off_runtime;

use chrono::{DateTime, Utc};
use reqwest::multipart::{Form, Part};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use server::app::Options;
use server::clock::ServerClock;
use tests::agent_proc::{scaled_args, wait_for, AgentProc};
use tests::ledger_check::screen_plays;
use tests::TestEnv;

const LANDSCAPE: &str = "bj-metro-xidan-s1";
const PORTRAIT: &str = "bj-bus-tiananmen-east-s1";
const START: &str = "2023-12-20T10:00:00+08:00";
const SPEED: f64 = 5.0;
const CREATIVE: &str = "rend-4k";
const CAMPAIGN: &str = "rend-everywhere";
const BACKGROUND: [u8; 3] = [0x10, 0x20, 0x40];

/// A 3840x2160 JPEG with detail everywhere (no scenario holds it).
fn still_4k() -> Vec<u8> {
    let img = image::RgbImage::from_fn(3840, 2160, |x, y| {
        image::Rgb([
            200 + (x % 50) as u8,
            150 + (y % 100) as u8,
            100 + ((x + y) % 100) as u8,
        ])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(
            &mut std::io::Cursor::new(&mut out),
            image::ImageFormat::Jpeg,
        )
        .expect("jpeg");
    out
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

fn near(got: [u8; 3], want: [u8; 3]) -> bool {
    got.iter().zip(want).all(|(g, w)| g.abs_diff(w) <= 10)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_screen_downloads_and_plays_its_own_rendition() {
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

    // A bad background is refused, naming the field.
    let upload = |meta: Value, file: Vec<u8>| {
        let form = Form::new()
            .text("meta", meta.to_string())
            .part("file", Part::bytes(file).file_name("still.jpg"));
        http.post(format!("{base}/creatives"))
            .bearer_auth(&admin)
            .multipart(form)
    };
    let original = still_4k();
    let (status, body) = call(upload(
        json!({"id": "rend-bad", "duration_seconds": 10, "background": "navy"}),
        original.clone(),
    ))
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "background", "{body}");

    let (status, body) = call(upload(
        json!({"id": CREATIVE, "title": "4K everywhere", "duration_seconds": 10,
               "any_aspect": true, "fit": "fit", "background": "#102040"}),
        original.clone(),
    ))
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["spec"]["any_aspect"], true, "{body}");
    assert_eq!(body["spec"]["background"], "#102040", "{body}");
    let original_sha = body["spec"]["sha256"].as_str().expect("sha256").to_owned();

    let campaign = json!({
        "id": CAMPAIGN, "name": "Renditions", "priority": "high", "weight": 1,
        "flight": {"start": "2023-12-20T00:00:00+08:00", "end": "2023-12-21T00:00:00+08:00"},
        "dayparts": ["* * * * *"], "target": {"screens": [LANDSCAPE, PORTRAIT]},
        "creatives": [CREATIVE]
    });
    let (status, body) = call(
        http.post(format!("{base}/campaigns"))
            .bearer_auth(&admin)
            .json(&campaign),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // One rendition per screen size, made before the documents were published.
    let (status, list) = call(
        http.get(format!("{base}/creatives/{CREATIVE}/renditions"))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(status, 200, "{list}");
    let list = list.as_array().expect("a list").clone();
    let rendition_of = |w: u64, h: u64| -> String {
        let r = list
            .iter()
            .find(|r| r["width"] == w && r["height"] == h)
            .unwrap_or_else(|| panic!("no {w}x{h} rendition in {list:?}"));
        assert_eq!(r["fit"], "fit");
        assert_eq!(r["source"], original_sha.as_str());
        r["sha256"].as_str().expect("sha256").to_owned()
    };
    let landscape_sha = rendition_of(1920, 1080);
    let portrait_sha = rendition_of(1080, 1920);
    assert_eq!(list.len(), 2, "{list:?}");

    // Each decodes at exactly its screen's size; the portrait one is padded.
    for (sha, size) in [
        (&landscape_sha, (1920, 1080)),
        (&portrait_sha, (1080, 1920)),
    ] {
        let path = env
            .store
            .media_path(&playlists::Sha256::parse(sha).expect("sha"));
        let data = std::fs::read(&path).expect("rendition file");
        assert_eq!(media::sha256_hex(&data), *sha, "content-addressed");
        assert!(data.len() < original.len(), "{} bytes", data.len());
        let picture = image::load_from_memory_with_format(&data, image::ImageFormat::Jpeg)
            .expect("a JPEG")
            .into_rgb8();
        assert_eq!(picture.dimensions(), size);
    }
    let portrait = std::fs::read(
        env.store
            .media_path(&playlists::Sha256::parse(&portrait_sha).expect("sha")),
    )
    .expect("rendition file");
    let portrait = image::load_from_memory_with_format(&portrait, image::ImageFormat::Jpeg)
        .expect("decode")
        .into_rgb8();
    // 3840x2160 inside 1080x1920 is 1080x608, centred: 656 rows of background each side.
    for (x, y) in [(0, 0), (540, 300), (1079, 640), (540, 1300), (0, 1919)] {
        let got = portrait.get_pixel(x, y).0;
        assert!(near(got, BACKGROUND), "({x},{y}) is {got:?}");
    }
    let centre = portrait.get_pixel(540, 960).0;
    assert!(!near(centre, BACKGROUND), "the picture is in the middle");

    // Both agents play the campaign, each from its own rendition.
    let timeline = scaled_args(start, anchor_ms, SPEED);
    let mut landscape =
        AgentProc::new(&env.tmp.path().join("landscape"), &env.provision(LANDSCAPE));
    let mut portrait_agent =
        AgentProc::new(&env.tmp.path().join("portrait"), &env.provision(PORTRAIT));
    landscape.spawn(&timeline);
    portrait_agent.spawn(&timeline);
    let played = |screen: &str| {
        screen_plays(&*env.handle.shared.ledger, screen)
            .into_iter()
            .filter(|r| r.campaign_id == CAMPAIGN)
            .collect::<Vec<_>>()
    };
    for (screen, agent) in [(LANDSCAPE, &landscape), (PORTRAIT, &portrait_agent)] {
        wait_for(
            "the agent to play the campaign",
            Duration::from_secs(120),
            || !played(screen).is_empty(),
            || {
                format!(
                    "{screen}: status {:?}\n{}",
                    env.status(screen),
                    agent.log_tail()
                )
            },
        )
        .await;
    }
    for (screen, sha) in [(LANDSCAPE, &landscape_sha), (PORTRAIT, &portrait_sha)] {
        for r in played(screen) {
            assert_eq!(r.creative_id, CREATIVE);
            assert_eq!(r.creative_sha256, original_sha, "the creative's own hash");
            assert_eq!(
                r.media_sha256.as_deref(),
                Some(sha.as_str()),
                "{screen}: {r:?}"
            );
        }
    }
    // An emergency with the same creative on the portrait screen: its command names the
    // screen's rendition as its documents do, so the takeover plays it too.
    let port: u16 = env
        .mqtt_url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let mut options = MqttOptions::new("rend-test-watcher", "127.0.0.1", port);
    let (user, secret) = env.server_login();
    options.set_credentials(user, secret);
    let (watcher, mut events) = AsyncClient::new(options, 64);
    watcher
        .subscribe(
            format!("signage/v1/screens/{PORTRAIT}/command"),
            QoS::AtLeastOnce,
        )
        .await
        .expect("subscribe");
    let (command_tx, mut command_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut subscribed = false;
    tokio::spawn(async move {
        while let Ok(event) = events.poll().await {
            match event {
                Event::Incoming(Packet::SubAck(_)) => {
                    let _ = command_tx.send(None);
                }
                Event::Incoming(Packet::Publish(p)) => {
                    let _ = command_tx.send(Some(p.payload.to_vec()));
                }
                _ => {}
            }
        }
    });
    while !subscribed {
        subscribed = command_rx.recv().await.expect("the watcher").is_none();
    }
    let (status, body) = call(
        http.post(format!("{base}/emergencies"))
            .bearer_auth(&admin)
            .json(
                &json!({"id": "rend-alert", "name": "Alert", "creatives": [CREATIVE],
                          "target": {"screens": [PORTRAIT]}}),
            ),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let alert_plays = || {
        screen_plays(&*env.handle.shared.ledger, PORTRAIT)
            .into_iter()
            .filter(|r| r.campaign_id == "rend-alert")
            .collect::<Vec<_>>()
    };
    wait_for(
        "the portrait agent to play the emergency",
        Duration::from_secs(120),
        || !alert_plays().is_empty(),
        || portrait_agent.log_tail(),
    )
    .await;
    for r in alert_plays() {
        assert_eq!(
            r.media_sha256.as_deref(),
            Some(portrait_sha.as_str()),
            "{r:?}"
        );
    }
    let command = tokio::time::timeout(Duration::from_secs(10), command_rx.recv())
        .await
        .expect("the emergency's command on the broker")
        .flatten()
        .expect("a command");
    let text = String::from_utf8_lossy(&command);
    assert!(
        text.contains("rend-alert") && text.contains(&portrait_sha),
        "the command names the portrait rendition: {text}"
    );
    landscape.terminate().await;
    portrait_agent.terminate().await;

    // Each cache holds its own rendition only.
    for (agent, own, other) in [
        (&landscape, &landscape_sha, &portrait_sha),
        (&portrait_agent, &portrait_sha, &landscape_sha),
    ] {
        let (cache, _) =
            agent::cache::Cache::open(agent.data_dir(), u64::MAX, 0).expect("agent cache");
        let held: Vec<String> = cache
            .entries()
            .expect("entries")
            .into_iter()
            .map(|e| e.sha256)
            .collect();
        assert!(held.contains(own), "{own} not in {held:?}");
        assert!(!held.contains(other), "{other} in {held:?}");
        assert!(!held.contains(&original_sha), "the original was downloaded");
    }

    let verdict = off_runtime(|| server::audit::verify(&*env.store)).expect("audit");
    assert!(verdict.problems.is_empty(), "{:?}", verdict.problems);
    env.stop().await;
}

/// An original that cannot be rendered (damaged on disk after ingest) does not stop
/// publishing: the document names the original, and no rendition is listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rendition_that_cannot_be_made_sends_the_original() {
    let env = TestEnv::spawn_with(
        None,
        Options {
            approval: server::approval::ApprovalMode::Off,
            ..Options::default()
        },
    )
    .await;
    let base = format!("{}/api/v1", env.http_url());
    let http = reqwest::Client::new();
    let admin = env.admin_token();
    let original = still_4k();
    let form = Form::new()
        .text(
            "meta",
            json!({"id": "rend-broken", "duration_seconds": 10, "any_aspect": true}).to_string(),
        )
        .part("file", Part::bytes(original.clone()).file_name("still.jpg"));
    let (status, body) = call(
        http.post(format!("{base}/creatives"))
            .bearer_auth(&admin)
            .multipart(form),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let sha = playlists::Sha256::parse(body["spec"]["sha256"].as_str().expect("sha")).expect("sha");
    // Half the file: a truncated JPEG, which the rendition refuses.
    std::fs::write(env.store.media_path(&sha), &original[..original.len() / 2]).expect("damage");

    let before = off_runtime(|| env.store.published()).expect("published")[LANDSCAPE].version;
    let campaign = json!({
        "id": "rend-broken-c", "name": "Broken", "priority": "high", "weight": 1,
        "flight": {"start": "2023-12-20T00:00:00+08:00", "end": "2023-12-21T00:00:00+08:00"},
        "dayparts": ["* * * * *"], "target": {"screens": [LANDSCAPE]},
        "creatives": ["rend-broken"]
    });
    let (status, body) = call(
        http.post(format!("{base}/campaigns"))
            .bearer_auth(&admin)
            .json(&campaign),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let after = off_runtime(|| env.store.published()).expect("published")[LANDSCAPE].version;
    assert!(after > before, "published anyway: {before} -> {after}");
    let issued = off_runtime(|| env.store.issued(LANDSCAPE)).expect("issued");
    let latest = issued.iter().max_by_key(|d| d.version).expect("a document");
    assert!(
        latest.signed.contains("rend-broken"),
        "the creative is in the document"
    );
    assert!(
        !latest.signed.contains("rendition"),
        "no rendition is named"
    );
    let (status, list) = call(
        http.get(format!("{base}/creatives/rend-broken/renditions"))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!((status, list), (200, json!([])));
    env.stop().await;
}
