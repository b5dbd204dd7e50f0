//! The live service end to end: the real server (embedded broker, redb store with the
//! Beijing scenario, HTTP API) and real `signage-agent` processes on one scaled timeline
//! (2023-12-20 10:00 Beijing time, five times real speed). Nothing is stopped or restarted:
//! - the admin adds a staff member and an auditor over the API;
//! - staff upload a creative none of the agents holds and create a high-priority campaign
//!   for one district: the agent there fetches the creative and plays it, while a screen in
//!   another district is sent no new document (its retained schedule topic stays silent and
//!   its version stays put);
//! - staff archive the campaign: it stops within a slot of the archive;
//! - the admin adds a screen and provisions it over the API; its agent plays;
//! - the auditor reads reports and the audit through `signage ... --server` while agents
//!   play, and the delivered counts are the ledger's.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tests::store::off_runtime;

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::multipart::{Form, Part};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use server::app::Options;
use server::clock::ServerClock;
use tests::agent_proc::{scaled_args, wait_for, AgentProc};
use tests::ledger_check::screen_plays;
use tests::TestEnv;

const INSIDE: &str = "bj-metro-xidan-s1";
const OUTSIDE: &str = "bj-metro-guomao-s1";
const NEW_SCREEN: &str = "bj-metro-xidan-s9";
const START: &str = "2023-12-20T10:00:00+08:00";
const SPEED: f64 = 5.0;
const CAMPAIGN: &str = "live-xicheng";

/// A 1920x1080 JPEG that no scenario holds.
fn fresh_still() -> Vec<u8> {
    let img = image::RgbImage::from_fn(1920, 1080, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x + y) % 239) as u8])
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

/// Counts live (not retained) schedule messages per screen.
async fn watch_schedules(
    mqtt_url: &str,
    (user, secret): (String, String),
) -> (AsyncClient, Arc<Mutex<BTreeMap<String, u32>>>) {
    let port: u16 = mqtt_url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let mut options = MqttOptions::new("live-test-watcher", "127.0.0.1", port);
    options.set_max_packet_size(16 << 20, 16 << 20);
    options.set_credentials(user, secret);
    let (client, mut events) = AsyncClient::new(options, 64);
    client
        .subscribe("signage/v1/screens/+/schedule", QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    let seen = Arc::new(Mutex::new(BTreeMap::new()));
    let counts = seen.clone();
    tokio::spawn(async move {
        while let Ok(event) = events.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = event {
                if p.retain {
                    continue;
                }
                let screen = p.topic.split('/').nth(3).unwrap_or_default().to_owned();
                *counts.lock().expect("counts").entry(screen).or_insert(0) += 1;
            }
        }
    });
    (client, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_and_auditors_work_on_a_running_server() {
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
            // Not about approval (tests/tests/approval.rs is): staff's changes are live.
            approval: server::approval::ApprovalMode::Off,
            ..Options::default()
        },
    )
    .await;
    let base = format!("{}/api/v1", env.http_url());
    let http = reqwest::Client::new();
    let admin = env.admin_token();
    let timeline = || scaled_args(start, anchor_ms, SPEED);

    let mut inside = AgentProc::new(&env.tmp.path().join("inside"), &env.provision(INSIDE));
    let mut outside = AgentProc::new(&env.tmp.path().join("outside"), &env.provision(OUTSIDE));
    inside.spawn(&timeline());
    outside.spawn(&timeline());
    env.wait_media_ready(INSIDE, &inside).await;
    env.wait_media_ready(OUTSIDE, &outside).await;

    // People: a staff member and an auditor, each with a token shown once.
    let mut tokens = BTreeMap::new();
    for (name, role) in [("sam", "staff"), ("ada", "auditor")] {
        let (status, body) = call(
            http.post(format!("{base}/users"))
                .bearer_auth(&admin)
                .json(&json!({"name": name, "roles": [role]})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        tokens.insert(name, body["token"].as_str().expect("token").to_owned());
    }
    let staff = tokens["sam"].clone();
    let auditor_file = env.tmp.path().join("ada.token");
    std::fs::write(&auditor_file, &tokens["ada"]).expect("token file");
    // Staff upload a creative and create a campaign for Xicheng.
    let (_watcher, live) = watch_schedules(&env.mqtt_url, env.server_login()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let versions_before = off_runtime(|| env.store.published()).expect("published");
    let still = fresh_still();
    let form = Form::new()
        .text(
            "meta",
            json!({"id": "live-still", "title": "Live still", "duration_seconds": 10}).to_string(),
        )
        .part("file", Part::bytes(still.clone()).file_name("live.jpg"));
    let (status, body) = call(
        http.post(format!("{base}/creatives"))
            .bearer_auth(&staff)
            .multipart(form),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let campaign = json!({
        "id": CAMPAIGN, "name": "Live in Xicheng", "priority": "high", "weight": 1,
        "flight": {"start": "2023-12-20T00:00:00+08:00", "end": "2023-12-21T00:00:00+08:00"},
        "dayparts": ["* * * * *"], "target": {"districts": ["xicheng"]},
        "creatives": ["live-still"]
    });
    // An auditor cannot create campaigns; staff can.
    let (status, body) = call(
        http.post(format!("{base}/campaigns"))
            .bearer_auth(&tokens["ada"])
            .json(&campaign),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("staff"),
        "{body}"
    );
    let (status, body) = call(
        http.post(format!("{base}/campaigns"))
            .bearer_auth(&staff)
            .json(&campaign),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // The Xicheng agent applies the new document and plays the campaign.
    let new_version = off_runtime(|| env.store.published()).expect("published")[INSIDE].version;
    assert!(new_version > versions_before[INSIDE].version);
    wait_for(
        "the Xicheng agent to play the new campaign",
        Duration::from_secs(90),
        || {
            screen_plays(&*env.handle.shared.ledger, INSIDE)
                .iter()
                .any(|r| r.campaign_id == CAMPAIGN)
        },
        || format!("status {:?}\n{}", env.status(INSIDE), inside.log_tail()),
    )
    .await;
    let played = screen_plays(&*env.handle.shared.ledger, INSIDE);
    let first = played
        .iter()
        .find(|r| r.campaign_id == CAMPAIGN)
        .expect("a play");
    assert_eq!(first.creative_id, "live-still");
    assert_eq!(first.creative_sha256, media::sha256_hex(&still));
    assert_eq!(first.schedule_version, new_version);
    // Outside Xicheng: no new version, nothing sent.
    let after = off_runtime(|| env.store.published()).expect("published");
    assert_eq!(
        after[OUTSIDE], versions_before[OUTSIDE],
        "Chaoyang got a new document"
    );
    let seen = live.lock().expect("counts").clone();
    assert_eq!(seen.get(OUTSIDE), None, "schedule messages seen: {seen:?}");
    assert!(
        seen.get(INSIDE).copied().unwrap_or(0) >= 1,
        "schedule messages seen: {seen:?}"
    );
    let xicheng: Vec<String> = {
        let c = env.catalogue();
        c.screens
            .iter()
            .filter(|s| {
                c.venue(&s.venue)
                    .is_some_and(|v| v.district.as_deref() == Some("xicheng"))
            })
            .map(|s| s.id.to_string())
            .collect()
    };
    for screen in seen.keys() {
        assert!(
            xicheng.contains(screen),
            "{screen} outside Xicheng was republished: {seen:?}"
        );
    }
    assert!(!screen_plays(&*env.handle.shared.ledger, OUTSIDE)
        .iter()
        .any(|r| r.campaign_id == CAMPAIGN));

    // Archive: the campaign stops within a slot of the archive.
    let (status, body) = call(
        http.post(format!("{base}/campaigns/{CAMPAIGN}/archive"))
            .bearer_auth(&staff),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "archived");
    let archived_at: DateTime<Utc> =
        serde_json::from_value(body["archived_at"].clone()).expect("archived_at");
    wait_for(
        "plays after the archive",
        Duration::from_secs(60),
        || {
            screen_plays(&*env.handle.shared.ledger, INSIDE)
                .iter()
                .any(|r| r.slot_start > archived_at + TimeDelta::seconds(30))
        },
        || inside.log_tail(),
    )
    .await;
    let late: Vec<_> = screen_plays(&*env.handle.shared.ledger, INSIDE)
        .into_iter()
        .filter(|r| {
            r.campaign_id == CAMPAIGN && r.slot_start >= archived_at + TimeDelta::seconds(15)
        })
        .collect();
    assert!(late.is_empty(), "played after the archive: {late:?}");

    // A new screen, added and provisioned on the running server, plays.
    let (status, body) = call(
        http.post(format!("{base}/screens"))
            .bearer_auth(&admin)
            .json(&json!({"id": NEW_SCREEN, "venue": "bj-metro-xidan", "resolution": {"width": 1920, "height": 1080}})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let resp = http
        .post(format!("{base}/screens/{NEW_SCREEN}/provision"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("provision");
    assert_eq!(resp.status().as_u16(), 200);
    let config = resp.text().await.expect("config");
    assert!(
        config.contains(&format!("screen_id = \"{NEW_SCREEN}\"")),
        "{config}"
    );
    let mut added = AgentProc::new(&env.tmp.path().join("added"), &config);
    added.spawn(&timeline());
    wait_for(
        "the new screen to play",
        Duration::from_secs(90),
        || !screen_plays(&*env.handle.shared.ledger, NEW_SCREEN).is_empty(),
        || format!("status {:?}\n{}", env.status(NEW_SCREEN), added.log_tail()),
    )
    .await;

    // The auditor reads through the CLI while the agents play.
    let server_url = env.http_url();
    let token = auditor_file.to_str().expect("path").to_owned();
    let from = (start - TimeDelta::hours(1)).to_rfc3339();
    let to = (start + TimeDelta::hours(2)).to_rfc3339();
    let (ok, out, err) = tokio::task::block_in_place(|| {
        tests::signage(&[
            "report",
            "screens",
            "--server",
            &server_url,
            "--token-file",
            &token,
            "--format",
            "json",
            "--from",
            &from,
            "--to",
            &to,
        ])
    });
    assert!(ok, "{err}");
    let rows: Value = serde_json::from_str(&out).expect("report json");
    let delivered = |screen: &str| {
        rows.as_array()
            .expect("rows")
            .iter()
            .find(|r| r["screen_id"] == screen)
            .and_then(|r| r["delivered"].as_u64())
            .unwrap_or(0)
    };
    for screen in [INSIDE, NEW_SCREEN] {
        assert!(delivered(screen) > 0, "{screen} delivered nothing: {out}");
    }
    let (ok, out, err) = tokio::task::block_in_place(|| {
        tests::signage(&[
            "audit",
            "verify",
            "--server",
            &server_url,
            "--token-file",
            &token,
        ])
    });
    assert!(ok, "audit: {out}{err}");
    assert!(out.contains("ledger verified"), "{out}");
    let (ok, out, err) = tokio::task::block_in_place(|| {
        tests::signage(&[
            "changes",
            "--server",
            &server_url,
            "--token-file",
            &token,
            "--entity",
            "campaign",
        ])
    });
    assert!(ok, "{err}");
    assert!(
        out.contains("by sam at") && out.contains(&format!("campaign {CAMPAIGN} archived")),
        "{out}"
    );

    for a in [&mut inside, &mut outside, &mut added] {
        a.terminate().await;
    }
    env.stop().await;
}
