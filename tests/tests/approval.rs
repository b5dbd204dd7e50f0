//! Four-eyes approval end to end, on a running server (embedded broker, redb store with the
//! Beijing scenario, HTTP API), with the schedule documents read back from the broker and
//! verified with the server's key:
//! - staff upload a creative and create a campaign: drafts, in no document and no plan;
//! - staff cannot approve (no approver role); a user who is staff and approver cannot
//!   approve or reject what they submitted; a campaign with an unapproved creative is not
//!   approved; a rejection needs a reason and shows it;
//! - a second approver approves: the campaign is in the documents of the screens it
//!   targets, and in the plan;
//! - an edit of the live campaign is a new draft while the documents keep the approved
//!   version, until that draft is approved;
//! - every transition is one revision by its author; `signage creatives|campaigns
//!   submit|approve|reject --server` do the same as the API;
//! - with `approval = "off"`, staff's campaign is live at once, as before;
//! - with `emergency_confirm = "two-person"`, an emergency is announced only once a second
//!   operator confirms it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tests::store::off_runtime;

use reqwest::multipart::{Form, Part};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};

use playlists::wire::schedule::{ScheduleDoc, KIND};
use server::app::Options;
use server::approval::ApprovalMode;
use tests::agent_proc::wait_for;
use tests::{send_json, TestEnv};

const CAMPAIGN: &str = "approval-xicheng";
const CREATIVE: &str = "approval-still";

/// The latest verified schedule document per screen, as the broker delivers them.
type Documents = Arc<Mutex<BTreeMap<String, ScheduleDoc>>>;

async fn watch_documents(env: &TestEnv) -> (AsyncClient, Documents) {
    let port: u16 = env
        .mqtt_url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let mut options = MqttOptions::new("approval-test-watcher", "127.0.0.1", port);
    options.set_max_packet_size(16 << 20, 16 << 20);
    // The embedded broker authenticates every client: log in as the server does.
    let (user, secret) = env.server_login();
    options.set_credentials(user, secret);
    let (client, mut events) = AsyncClient::new(options, 256);
    client
        .subscribe("signage/v1/screens/+/schedule", QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    let key = env.handle.shared.key.public();
    let docs: Documents = Arc::default();
    let seen = docs.clone();
    tokio::spawn(async move {
        while let Ok(event) = events.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = event {
                let doc: ScheduleDoc =
                    playlists::wire::signed::open(&p.payload, KIND, &key, 16 << 20)
                        .expect("a document signed by the server");
                let mut docs = seen.lock().expect("documents");
                let newer = docs
                    .get(&doc.screen_id)
                    .is_none_or(|old| old.version < doc.version);
                if newer {
                    docs.insert(doc.screen_id.clone(), doc);
                }
            }
        }
    });
    (client, docs)
}

/// The campaign's weight in each screen's latest document that carries it.
fn carried(docs: &Documents) -> BTreeMap<String, u32> {
    docs.lock()
        .expect("documents")
        .iter()
        .filter_map(|(screen, d)| {
            let c = d.body.campaigns.iter().find(|c| c.id == CAMPAIGN)?;
            Some((screen.clone(), c.weight))
        })
        .collect()
}

/// The version the server last published for each screen.
fn versions(env: &TestEnv) -> BTreeMap<String, u64> {
    let published = off_runtime(|| env.store.published()).expect("published");
    published.into_iter().map(|(s, p)| (s, p.version)).collect()
}

/// Waits until the server published every screen's document and the watcher holds each
/// screen's latest version.
async fn documents_settled(env: &TestEnv, docs: &Documents) {
    let screens = env.catalogue().screens.len();
    wait_for(
        "the broker's documents to match what the server published",
        Duration::from_secs(30),
        || {
            let published = versions(env);
            let docs = docs.lock().expect("documents");
            published.len() == screens
                && published
                    .iter()
                    .all(|(s, v)| docs.get(s).is_some_and(|d| d.version == *v))
        },
        || format!("{} documents seen", docs.lock().expect("documents").len()),
    )
    .await;
}

fn xicheng_screens(env: &TestEnv) -> BTreeSet<String> {
    let c = env.catalogue();
    c.screens
        .iter()
        .filter(|s| {
            c.venue(&s.venue)
                .is_some_and(|v| v.district.as_deref() == Some("xicheng"))
        })
        .map(|s| s.id.to_string())
        .collect()
}

/// A 1920x1080 JPEG that no scenario holds.
fn fresh_still() -> Vec<u8> {
    let img = image::RgbImage::from_fn(1920, 1080, |x, y| {
        image::Rgb([(x % 13) as u8 * 19, (y % 17) as u8 * 15, 90])
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

fn campaign(weight: u32) -> Value {
    json!({
        "id": CAMPAIGN, "name": "Approval in Xicheng", "priority": "high", "weight": weight,
        "flight": {"start": "2023-12-20T00:00:00+08:00", "end": "2023-12-23T00:00:00+08:00"},
        "dayparts": ["* * * * *"], "target": {"districts": ["xicheng"]},
        "creatives": [CREATIVE]
    })
}

struct Api {
    http: reqwest::Client,
    base: String,
    tokens: BTreeMap<&'static str, String>,
}

impl Api {
    async fn post(&self, who: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}/{path}", self.base))
            .bearer_auth(&self.tokens[who]);
        if let Some(b) = body {
            req = req.json(&b);
        }
        send_json(req).await
    }

    async fn put(&self, who: &str, path: &str, body: Value) -> (u16, Value) {
        send_json(
            self.http
                .put(format!("{}/{path}", self.base))
                .bearer_auth(&self.tokens[who])
                .json(&body),
        )
        .await
    }

    async fn get(&self, who: &str, path: &str) -> (u16, Value) {
        send_json(
            self.http
                .get(format!("{}/{path}", self.base))
                .bearer_auth(&self.tokens[who]),
        )
        .await
    }

    /// The campaign's ids in the planned plays of `screen` over ten minutes of the flight.
    async fn planned(&self, screen: &str) -> bool {
        let resp = self
            .http
            .get(format!("{}/plan", self.base))
            .query(&[
                ("screen", screen),
                ("from", "2023-12-21T12:00:00+08:00"),
                ("to", "2023-12-21T12:10:00+08:00"),
            ])
            .bearer_auth(&self.tokens["admin"])
            .send()
            .await
            .expect("plan");
        assert_eq!(resp.status().as_u16(), 200);
        let csv = resp.text().await.expect("csv");
        assert!(csv.lines().count() > 1, "{csv}");
        csv.lines().any(|l| l.split(',').nth(3) == Some(CAMPAIGN))
    }
}

/// The admin and people with roles, each with a token.
async fn people(env: &TestEnv, roles: &[(&'static str, &[&str])]) -> Api {
    let http = reqwest::Client::new();
    let base = format!("{}/api/v1", env.http_url());
    let mut tokens = BTreeMap::from([("admin", env.admin_token())]);
    for (name, r) in roles {
        let (status, body) = send_json(
            http.post(format!("{base}/users"))
                .bearer_auth(&tokens["admin"])
                .json(&json!({"name": name, "roles": r})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        tokens.insert(name, body["token"].as_str().expect("token").to_owned());
    }
    Api { http, base, tokens }
}

/// A campaign naming a creative nobody uploaded is refused, draft or live.
async fn unknown_creative_refused(api: &Api) {
    let mut c = campaign(1);
    c["id"] = json!("approval-unknown");
    c["creatives"] = json!(["nope"]);
    let (status, body) = api.post("sam", "campaigns", Some(c)).await;
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("nope"), "{body}");
}

fn message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn upload(api: &Api, who: &str) -> (u16, Value) {
    let form = Form::new()
        .text(
            "meta",
            json!({"id": CREATIVE, "title": "Approval still", "duration_seconds": 10}).to_string(),
        )
        .part("file", Part::bytes(fresh_still()).file_name("still.jpg"));
    send_json(
        api.http
            .post(format!("{}/creatives", api.base))
            .bearer_auth(&api.tokens[who])
            .multipart(form),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_plays_until_a_second_person_approves_it() {
    let env = TestEnv::spawn(None).await;
    let api = people(
        &env,
        &[
            ("sam", &["staff"]),
            ("bob", &["staff", "approver"]),
            ("ann", &["approver"]),
        ],
    )
    .await;
    let (_watcher, docs) = watch_documents(&env).await;
    documents_settled(&env, &docs).await;
    let xicheng = xicheng_screens(&env);
    let inside = xicheng.first().expect("a Xicheng screen").clone();
    let published_before = versions(&env);

    // Staff's creative and campaign are drafts: in no document, no plan, no new version.
    let (status, body) = upload(&api, "sam").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["approval"]["status"], "draft");
    let (status, body) = api.post("sam", "campaigns", Some(campaign(1))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["state"], "draft");
    assert_eq!(body["approval"]["status"], "draft");
    assert!(body.get("approved").is_none(), "{body}");
    assert_eq!(versions(&env), published_before);
    assert!(!api.planned(&inside).await, "a draft is planned");
    unknown_creative_refused(&api).await;

    // Submitting: only a draft; approving: only an approver, never one's own submission.
    let (status, body) = api.post("ann", "campaigns/nope/submit", None).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (403, json!("forbidden"))
    );
    let (status, body) = api
        .post("sam", &format!("campaigns/{CAMPAIGN}/approve"), None)
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(message(&body).contains("approver"), "{body}");
    let (status, body) = api
        .post("bob", &format!("campaigns/{CAMPAIGN}/approve"), None)
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(message(&body).contains("is draft"), "{body}");
    let (status, body) = api
        .post("bob", &format!("campaigns/{CAMPAIGN}/submit"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["approval"]["status"], "submitted");
    assert_eq!(body["approval"]["submitted_by"], "bob");
    let (status, body) = api
        .post("sam", &format!("campaigns/{CAMPAIGN}/submit"), None)
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(message(&body).contains("is submitted"), "{body}");
    for (action, reason) in [
        ("approve", None),
        ("reject", Some(json!({"reason": "mine"}))),
    ] {
        let (status, body) = api
            .post("bob", &format!("campaigns/{CAMPAIGN}/{action}"), reason)
            .await;
        assert_eq!(status, 403, "{action}: {body}");
        assert!(
            message(&body).contains("their own submission"),
            "{action}: {body}"
        );
    }
    // The creative is still a draft: the campaign cannot be approved yet.
    let (status, body) = api
        .post("ann", &format!("campaigns/{CAMPAIGN}/approve"), None)
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(message(&body).contains(CREATIVE), "{body}");
    // The creative's review over the command line (`signage creatives ... --server`).
    let cli = |who: &str, args: &[&str]| {
        let file = env.tmp.path().join(format!("{who}.token"));
        std::fs::write(&file, &api.tokens[who]).expect("token file");
        let url = env.http_url();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--server", url.as_str(), "--token-file"]);
        all.push(file.to_str().expect("path"));
        tests::signage(&all)
    };
    let (ok, out, err) = cli("sam", &["creatives", "approve", CREATIVE]);
    assert!(!ok && err.contains("approver"), "{out}{err}");
    let (ok, out, err) = cli("sam", &["creatives", "submit", CREATIVE]);
    assert!(ok, "{out}{err}");
    assert_eq!(out.trim(), format!("creative {CREATIVE}: submitted by sam"));
    let (ok, out, err) = cli("bob", &["creatives", "reject", CREATIVE]);
    assert!(!ok && err.contains("--reason"), "{out}{err}");
    let (ok, out, err) = cli("bob", &["creatives", "approve", CREATIVE]);
    assert!(ok, "{out}{err}");
    assert_eq!(out.trim(), format!("creative {CREATIVE}: approved by bob"));
    let (_, body) = api.get("sam", &format!("creatives/{CREATIVE}")).await;
    assert_eq!(body["approval"]["status"], "approved");
    assert_eq!(body["approval"]["decided_by"], "bob");

    // A rejection needs a reason, and shows it.
    let path = format!("campaigns/{CAMPAIGN}/reject");
    let (status, body) = api.post("ann", &path, Some(json!({}))).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = api.post("ann", &path, Some(json!({"reason": "  "}))).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "reason", "{body}");
    let reason = "The district name is misspelt";
    let (status, body) = api
        .post("ann", &path, Some(json!({ "reason": reason })))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = api.get("sam", &format!("campaigns/{CAMPAIGN}")).await;
    assert_eq!(body["approval"]["status"], "rejected");
    assert_eq!(body["approval"]["reason"], reason);
    assert_eq!(body["approval"]["decided_by"], "ann");
    let (status, body) = api
        .post("sam", &format!("campaigns/{CAMPAIGN}/submit"), None)
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(message(&body).contains("is rejected"), "{body}");
    assert_eq!(versions(&env), published_before);
    assert!(carried(&docs).is_empty(), "{:?}", carried(&docs));
    assert!(!api.planned(&inside).await);

    // The same rules again change nothing; edited, resubmitted and approved by a second
    // person: in the documents of Xicheng.
    let (status, body) = api
        .put("sam", &format!("campaigns/{CAMPAIGN}"), campaign(1))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["approval"]["status"], "rejected");
    let (status, body) = api
        .put("sam", &format!("campaigns/{CAMPAIGN}"), campaign(2))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["approval"]["status"], "draft");
    let (status, _) = api
        .post("sam", &format!("campaigns/{CAMPAIGN}/submit"), None)
        .await;
    assert_eq!(status, 200);
    let (status, body) = api
        .post("bob", &format!("campaigns/{CAMPAIGN}/approve"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "live");
    assert_eq!(body["approved"]["approved_by"], "bob");
    documents_settled(&env, &docs).await;
    let expected: BTreeMap<String, u32> = xicheng.iter().map(|s| (s.clone(), 2)).collect();
    assert_eq!(carried(&docs), expected);
    assert!(
        api.planned(&inside).await,
        "the approved campaign is not planned"
    );

    // An edit of the live campaign: a draft; the approved version keeps playing.
    let published_live = versions(&env);
    let (status, body) = api
        .put("sam", &format!("campaigns/{CAMPAIGN}"), campaign(5))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "live");
    assert_eq!(body["approval"]["status"], "draft");
    assert_eq!(body["spec"]["weight"], 5);
    assert_eq!(body["approved"]["spec"]["weight"], 2);
    assert_eq!(versions(&env), published_live);
    assert_eq!(carried(&docs), expected);
    assert!(api.planned(&inside).await);
    let (ok, out, err) = cli("sam", &["campaigns", "submit", CAMPAIGN]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = cli(
        "sam",
        &["campaigns", "reject", CAMPAIGN, "--reason", "mine"],
    );
    assert!(!ok && err.contains("403"), "{out}{err}");
    let (ok, out, err) = cli("ann", &["campaigns", "approve", CAMPAIGN]);
    assert!(ok, "{out}{err}");
    assert_eq!(out.trim(), format!("campaign {CAMPAIGN}: approved by ann"));
    documents_settled(&env, &docs).await;
    let expected: BTreeMap<String, u32> = xicheng.iter().map(|s| (s.clone(), 5)).collect();
    assert_eq!(carried(&docs), expected);

    // Every transition is one revision by its author, in the change log.
    let (status, body) = api.get("admin", "changes?limit=1000").await;
    assert_eq!(status, 200, "{body}");
    let log: Vec<(String, String)> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| {
            (
                r["author"].as_str().unwrap_or_default().to_owned(),
                r["comment"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .filter(|(_, c)| c.contains(CAMPAIGN) || c.contains(CREATIVE))
        .collect();
    let staff_only = "this needs the role approver; sam has staff";
    let want: Vec<(String, String)> = [
        ("sam", format!("creative {CREATIVE} uploaded")),
        ("sam", format!("campaign {CAMPAIGN} created")),
        // Refusals of privileged actions are in the log too, with who was refused.
        (
            "sam",
            format!("refused POST /api/v1/campaigns/{CAMPAIGN}/approve: {staff_only}"),
        ),
        ("bob", format!("campaign {CAMPAIGN} submitted for approval")),
        (
            "sam",
            format!("refused POST /api/v1/creatives/{CREATIVE}/approve: {staff_only}"),
        ),
        ("sam", format!("creative {CREATIVE} submitted for approval")),
        ("bob", format!("creative {CREATIVE} approved")),
        ("ann", format!("campaign {CAMPAIGN} rejected: {reason}")),
        ("sam", format!("campaign {CAMPAIGN} changed")),
        ("sam", format!("campaign {CAMPAIGN} submitted for approval")),
        ("bob", format!("campaign {CAMPAIGN} approved")),
        ("sam", format!("campaign {CAMPAIGN} changed")),
        ("sam", format!("campaign {CAMPAIGN} submitted for approval")),
        (
            "sam",
            format!("refused POST /api/v1/campaigns/{CAMPAIGN}/reject: {staff_only}"),
        ),
        ("ann", format!("campaign {CAMPAIGN} approved")),
    ]
    .into_iter()
    .map(|(a, c)| (a.to_owned(), c))
    .collect();
    assert_eq!(log, want);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_approval_off_staff_changes_are_live_at_once() {
    let env = TestEnv::spawn_with(
        None,
        Options {
            approval: ApprovalMode::Off,
            ..Options::default()
        },
    )
    .await;
    let api = people(&env, &[("sam", &["staff"])]).await;
    let (_watcher, docs) = watch_documents(&env).await;
    let xicheng = xicheng_screens(&env);
    unknown_creative_refused(&api).await;
    let (status, body) = upload(&api, "sam").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["approval"]["status"], "approved");
    let (status, body) = api.post("sam", "campaigns", Some(campaign(2))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["state"], "live");
    assert_eq!(body["approved"]["approved_by"], "sam");
    documents_settled(&env, &docs).await;
    let expected: BTreeMap<String, u32> = xicheng.iter().map(|s| (s.clone(), 2)).collect();
    assert_eq!(carried(&docs), expected);
    assert!(api.planned(xicheng.first().expect("a screen")).await);
    // Nothing waits for review: submitting is refused as the version is approved already.
    let (status, body) = api
        .post("sam", &format!("campaigns/{CAMPAIGN}/submit"), None)
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(message(&body).contains("is approved"), "{body}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emergency_waits_for_a_second_operator() {
    let env = TestEnv::spawn_with(
        None,
        Options {
            emergency_confirm: Some(chrono::TimeDelta::minutes(10)),
            ..Options::default()
        },
    )
    .await;
    let api = people(&env, &[("olga", &["operator"]), ("otto", &["operator"])]).await;
    let (_watcher, docs) = watch_documents(&env).await;
    documents_settled(&env, &docs).await;
    let before = versions(&env);
    let id = "drill-xicheng";
    let carried = || -> BTreeSet<String> {
        docs.lock()
            .expect("documents")
            .iter()
            .filter(|(_, d)| d.body.campaigns.iter().any(|c| c.id == id))
            .map(|(s, _)| s.clone())
            .collect()
    };
    let (status, body) = api
        .post(
            "olga",
            "emergencies",
            Some(
                json!({"id": id, "name": "Drill", "creatives": ["alert-epidemic-l"],
                "target": {"districts": ["xicheng"]}}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["emergency"]["pending"]["started_by"], "olga");
    assert_eq!(body["screens"], json!([]), "announced before confirmation");
    assert_eq!(versions(&env), before);
    let (_, listed) = api.get("olga", "emergencies").await;
    let row = listed
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["id"] == id).cloned())
        .expect("listed");
    assert_eq!(row["active"], false);

    let (status, body) = api
        .post("olga", &format!("emergencies/{id}/confirm"), None)
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(message(&body).contains("second operator"), "{body}");
    assert!(carried().is_empty());
    let (status, body) = api
        .post("otto", &format!("emergencies/{id}/confirm"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["emergency"].get("pending").is_none(), "{body}");
    let screens: BTreeSet<String> = body["screens"]
        .as_array()
        .expect("screens")
        .iter()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect();
    assert_eq!(screens, xicheng_screens(&env));
    documents_settled(&env, &docs).await;
    assert_eq!(carried(), xicheng_screens(&env));
    let (status, body) = api
        .post("otto", &format!("emergencies/{id}/confirm"), None)
        .await;
    assert_eq!(status, 409, "{body}");
    env.stop().await;
}
