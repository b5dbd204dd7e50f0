//! Every route with every role, on a running server: the table below is written by hand
//! from design.md's route table ("HTTP API", and "People and roles"), not from the code.
//! Each route in the server's OpenAPI document must be in it (and each of its rows in the
//! document); each is called with a token of a user holding only `admin`, `staff`,
//! `approver`, `operator` or `auditor`, of a user holding no role, and with no token. A role
//! the table names is let through (any answer but 401 and 403); any other gets a 403 whose
//! message names the roles needed; no token gets a 401.
//!
//! Beyond design.md's table, by design.md's own words elsewhere:
//! - approvers read the campaigns and creatives they review (they "approve them"), with
//!   the versions to compare, the forecast and the preview of what they approve;
//! - staff may import: their import "arrives as drafts" (design.md, "Approval");
//! - approving and rejecting is the approver's, submitting and archiving staff's;
//! - retiring a creative and decommissioning a screen belong with their resource's role;
//! - users are the admin's ("admin (users, screens and keys, settings)"), and so is the
//!   broker's configuration, which carries every screen's password hash;
//! - `whoami` is any signed-in user's, with or without roles;
//! - a user's password is the admin's to set (or the user's own: here another user's);
//! - logging in is open; reading or ending a session needs the session's cookie, so no
//!   bearer token gets through (401, or 400 for a logout without a session cookie);
//! - confirming an emergency (two-person confirmation) is the operator's, as starting it;
//! - `/health`, `/ready`, `/metrics` and `/media/{sha256}` are open (agents download without tokens).

use std::collections::{BTreeMap, BTreeSet};
use tests::store::off_runtime;

use chrono::Utc;
use reqwest::multipart::Form;
use serde_json::{json, Value};

use server::store::User;
use tests::TestEnv;

const ADMIN: &str = "admin";
const STAFF: &str = "staff";
const APPROVER: &str = "approver";
const OPERATOR: &str = "operator";
const AUDITOR: &str = "auditor";
/// A signed-in user with no role.
const NONE: &str = "none";
/// Anyone, without a token.
const OPEN: &str = "open";
/// Any signed-in user.
const ANY: &str = "any";
/// Only a dashboard session's cookie gets through: never a bearer token.
const SESSION: &str = "session";

/// (method, path as in the OpenAPI document, who may call it).
const TABLE: &[(&str, &str, &[&str])] = &[
    ("get", "/api/v1/venues", &[STAFF]),
    ("post", "/api/v1/venues", &[STAFF]),
    ("get", "/api/v1/venues/{id}", &[STAFF]),
    ("put", "/api/v1/venues/{id}", &[STAFF]),
    ("get", "/api/v1/screens", &[ADMIN]),
    ("post", "/api/v1/screens", &[ADMIN]),
    ("get", "/api/v1/screens/{id}", &[ADMIN]),
    ("put", "/api/v1/screens/{id}", &[ADMIN]),
    ("post", "/api/v1/screens/{id}/provision", &[ADMIN]),
    ("post", "/api/v1/screens/{id}/decommission", &[ADMIN]),
    ("get", "/api/v1/creatives", &[STAFF, APPROVER]),
    ("post", "/api/v1/creatives", &[STAFF]),
    ("get", "/api/v1/creatives/{id}", &[STAFF, APPROVER]),
    ("get", "/api/v1/creatives/progress/{token}", &[STAFF]),
    (
        "get",
        "/api/v1/creatives/{id}/thumbnail",
        &[STAFF, APPROVER],
    ),
    (
        "get",
        "/api/v1/creatives/{id}/renditions",
        &[STAFF, APPROVER],
    ),
    ("post", "/api/v1/creatives/{id}/retire", &[STAFF]),
    ("post", "/api/v1/creatives/{id}/submit", &[STAFF]),
    ("post", "/api/v1/creatives/{id}/approve", &[APPROVER]),
    ("post", "/api/v1/creatives/{id}/reject", &[APPROVER]),
    ("get", "/api/v1/campaigns", &[STAFF, APPROVER]),
    ("post", "/api/v1/campaigns", &[STAFF]),
    ("get", "/api/v1/campaigns/{id}", &[STAFF, APPROVER]),
    ("put", "/api/v1/campaigns/{id}", &[STAFF]),
    ("post", "/api/v1/campaigns/{id}/submit", &[STAFF]),
    ("post", "/api/v1/campaigns/{id}/approve", &[APPROVER]),
    ("post", "/api/v1/campaigns/{id}/reject", &[APPROVER]),
    ("post", "/api/v1/campaigns/validate", &[STAFF]),
    ("get", "/api/v1/taxonomy", &[STAFF, APPROVER]),
    ("post", "/api/v1/dayparts/text", &[STAFF, APPROVER]),
    ("post", "/api/v1/campaigns/{id}/archive", &[STAFF]),
    ("post", "/api/v1/import", &[ADMIN, STAFF]),
    ("get", "/api/v1/plan", &[STAFF, APPROVER, AUDITOR]),
    ("get", "/api/v1/explain", &[STAFF, APPROVER, AUDITOR]),
    ("post", "/api/v1/forecast", &[STAFF, APPROVER]),
    ("get", "/api/v1/campaigns/{id}/versions", &[STAFF, APPROVER]),
    (
        "get",
        "/api/v1/preview/screens",
        &[STAFF, APPROVER, AUDITOR],
    ),
    ("get", "/api/v1/reports/{kind}", &[AUDITOR]),
    ("post", "/api/v1/audit/verify", &[AUDITOR]),
    ("get", "/api/v1/audit/last", &[AUDITOR]),
    ("get", "/api/v1/reports/series", &[AUDITOR]),
    ("get", "/api/v1/reports/names", &[AUDITOR]),
    ("get", "/api/v1/fleet", &[OPERATOR, AUDITOR]),
    ("get", "/api/v1/fleet/summary", &[OPERATOR, AUDITOR]),
    ("get", "/api/v1/fleet/venues", &[OPERATOR, AUDITOR]),
    ("get", "/api/v1/emergencies/history", &[OPERATOR]),
    ("get", "/api/v1/emergencies/choices", &[OPERATOR]),
    ("get", "/api/v1/changes", &[AUDITOR]),
    ("get", "/api/v1/emergencies", &[OPERATOR]),
    ("post", "/api/v1/emergencies", &[OPERATOR]),
    ("post", "/api/v1/emergencies/{id}/end", &[OPERATOR]),
    ("post", "/api/v1/emergencies/{id}/confirm", &[OPERATOR]),
    ("get", "/api/v1/users", &[ADMIN]),
    ("post", "/api/v1/users", &[ADMIN]),
    ("get", "/api/v1/whoami", &[ANY]),
    ("get", "/api/v1/broker/mosquitto", &[ADMIN]),
    ("put", "/api/v1/users/{name}/password", &[ADMIN]),
    ("post", "/api/v1/session", &[OPEN]),
    ("get", "/api/v1/session", &[SESSION]),
    ("delete", "/api/v1/session", &[SESSION]),
    ("get", "/health", &[OPEN]),
    ("get", "/ready", &[OPEN]),
    ("get", "/metrics", &[OPEN]),
    ("get", "/media/{sha256}", &[OPEN]),
];

/// The roles a caller holds, as the table names them.
const CALLERS: [&str; 6] = [ADMIN, STAFF, APPROVER, OPERATOR, AUDITOR, NONE];

fn scenario() -> Value {
    let text = std::fs::read_to_string(tests::beijing().join("scenario.json")).expect("scenario");
    serde_json::from_str(&text).expect("scenario JSON")
}

fn campaign(id: &str) -> Value {
    json!({
        "id": id, "name": "Roles", "priority": "normal", "weight": 1,
        "flight": {"start": "2023-12-20T00:00:00+08:00", "end": "2023-12-21T00:00:00+08:00"},
        "dayparts": ["* * * * *"], "target": {"districts": ["xicheng"]},
        "creatives": ["rm2023-w51-1"]
    })
}

/// A request that gets past every extractor (path, query, body shape), so what answers
/// is the route's own role check.
fn request(
    http: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    n: usize,
) -> reqwest::RequestBuilder {
    let s = scenario();
    let venue = s["venues"][0].clone();
    let screen = s["screens"][0].clone();
    let concrete = path
        .replace("{id}", "ID")
        .replace("{kind}", "plays")
        .replace("{name}", "admin")
        .replace("{token}", "roles-test")
        .replace("{sha256}", &"ab".repeat(32));
    let id = match path {
        p if p.starts_with("/api/v1/venues/") => venue["id"].as_str().unwrap_or_default(),
        p if p.starts_with("/api/v1/screens/") && p.ends_with("decommission") => {
            "bj-community-xinggong-s1"
        }
        p if p.starts_with("/api/v1/screens/") => screen["id"].as_str().unwrap_or_default(),
        p if p.starts_with("/api/v1/creatives/") => "rm2023-w51-1",
        p if p.starts_with("/api/v1/campaigns/") && p.ends_with("archive") => "rm2023-vote",
        p if p.starts_with("/api/v1/campaigns/") => "rm2023-w51",
        p if p.starts_with("/api/v1/emergencies/") => "alert-epidemic-2023-12-20",
        _ => "",
    };
    let url = format!("{base}{}", concrete.replace("ID", id));
    let req = match method {
        "get" => http.get(&url),
        "post" => http.post(&url),
        "put" => http.put(&url),
        "delete" => http.delete(&url),
        other => panic!("no method {other} in the table"),
    };
    let fresh = format!("roles-{n}");
    match (method, path) {
        ("post", "/api/v1/venues") => {
            let mut v = venue.clone();
            v["id"] = json!(fresh);
            v["timezone"] = json!("Asia/Shanghai");
            req.json(&v)
        }
        ("put", "/api/v1/venues/{id}") => {
            let mut v = venue.clone();
            v["timezone"] = json!("Asia/Shanghai");
            req.json(&v)
        }
        ("post", "/api/v1/screens") => {
            let mut v = screen.clone();
            v["id"] = json!(fresh);
            req.json(&v)
        }
        ("put", "/api/v1/screens/{id}") => req.json(&screen),
        ("post", "/api/v1/campaigns")
        | ("post", "/api/v1/forecast")
        | ("post", "/api/v1/campaigns/validate") => req.json(&campaign(&fresh)),
        ("put", "/api/v1/campaigns/{id}") => {
            let c = s["campaigns"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["id"] == "rm2023-w51").cloned())
                .expect("rm2023-w51");
            req.json(&c)
        }
        (_, p) if p.ends_with("/reject") => req.json(&json!({"reason": "roles test"})),
        ("post", "/api/v1/creatives") | ("post", "/api/v1/import") => {
            req.multipart(Form::new().text("unexpected", "part"))
        }
        ("get", "/api/v1/plan") => req.query(&[
            ("screen", "bj-metro-xidan-s1"),
            ("from", "2023-12-20T10:00:00+08:00"),
            ("to", "2023-12-20T10:01:00+08:00"),
        ]),
        ("get", "/api/v1/explain") => req.query(&[
            ("screen", "bj-metro-xidan-s1"),
            ("at", "2023-12-20T10:00:00+08:00"),
        ]),
        ("post", "/api/v1/emergencies") => req.json(&json!({
            "id": fresh, "name": "Roles", "creatives": ["alert-epidemic-l"],
            "target": {"screens": ["bj-metro-xidan-s1"]},
            "until": (Utc::now() + chrono::TimeDelta::minutes(5)).to_rfc3339()
        })),
        ("post", "/api/v1/users") => req.json(&json!({"name": fresh, "roles": ["auditor"]})),
        ("post", "/api/v1/dayparts/text") => req.json(&json!({"dayparts": ["* 7-8 * * 1-5"]})),
        ("put", "/api/v1/users/{name}/password") => {
            req.json(&json!({"password": "a long roles-test passphrase"}))
        }
        ("post", "/api/v1/session") => req.json(&json!({})),
        _ => req,
    }
}

/// Status and body text (its first 300 characters).
async fn send(req: reqwest::RequestBuilder) -> (u16, String) {
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let mut text = resp.text().await.unwrap_or_default();
    if let Some((cut, _)) = text.char_indices().nth(300) {
        text.truncate(cut);
    }
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_with_every_role() {
    let env = TestEnv::spawn(None).await;
    let http = reqwest::Client::new();
    let base = env.http_url();

    // The document's routes are the table's.
    let (status, doc) = tests::send_json(http.get(format!("{base}/api/v1/openapi.json"))).await;
    assert_eq!(status, 200);
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                documented.insert((method.clone(), path.clone()));
            }
        }
    }
    let tabled: BTreeSet<(String, String)> = TABLE
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let missing: Vec<_> = documented.difference(&tabled).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the table: {missing:?}"
    );
    let stale: Vec<_> = tabled.difference(&documented).collect();
    assert!(
        stale.is_empty(),
        "table rows the server does not have: {stale:?}"
    );

    // One user per role, and one with none (the API refuses to make one: straight into
    // the server's store).
    let admin = env.admin_token();
    let mut tokens = BTreeMap::new();
    for role in [ADMIN, STAFF, APPROVER, OPERATOR, AUDITOR] {
        let (status, body) = tests::send_json(
            http.post(format!("{base}/api/v1/users"))
                .bearer_auth(&admin)
                .json(&json!({"name": format!("only-{role}"), "roles": [role]})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        tokens.insert(role, body["token"].as_str().expect("token").to_owned());
    }
    let token = server::auth::new_token().expect("token");
    let nobody = User {
        name: "nobody".into(),
        roles: Vec::new(),
        token_sha256: server::auth::token_hash(&token),
        created_at: Utc::now(),
        password_phc: None,
    };
    off_runtime(|| env.store.add_user(&nobody, "roles test")).expect("a user without roles");
    tokens.insert(NONE, token);

    let mut failures = Vec::new();
    let mut n = 0;
    for (method, path, allowed) in TABLE {
        let open = allowed.contains(&OPEN);
        if allowed.contains(&SESSION) {
            for caller in std::iter::once(None).chain(CALLERS.iter().map(Some)) {
                n += 1;
                let mut req = request(&http, &base, method, path, n);
                if let Some(caller) = caller {
                    req = req.bearer_auth(&tokens[caller]);
                }
                let (status, body) = send(req).await;
                if !matches!(status, 400 | 401) {
                    failures.push(format!(
                        "{method} {path} as {caller:?} without a session: {status} {body}"
                    ));
                }
            }
            continue;
        }
        n += 1;
        let (status, body) = send(request(&http, &base, method, path, n)).await;
        let right = if open {
            !matches!(status, 401 | 403)
        } else {
            status == 401
        };
        if !right {
            failures.push(format!("{method} {path} without a token: {status} {body}"));
        }
        for caller in CALLERS {
            n += 1;
            let may = open || allowed.contains(&ANY) || allowed.contains(&caller);
            let req = request(&http, &base, method, path, n).bearer_auth(&tokens[caller]);
            let (status, body) = send(req).await;
            if may {
                if matches!(status, 401 | 403) {
                    failures.push(format!("{method} {path} as {caller}: {status} {body}"));
                }
                continue;
            }
            let message = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|b| b["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let needed = message
                .strip_prefix("this needs the role ")
                .and_then(|m| m.split(';').next())
                .unwrap_or_default();
            let named: BTreeSet<&str> = needed.split(" or ").collect();
            let want: BTreeSet<&str> = allowed.iter().copied().collect();
            if status != 403 || named != want {
                failures.push(format!(
                    "{method} {path} as {caller}: want 403 naming {want:?}, got {status} {body}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} calls went wrong:\n{}",
        failures.len(),
        n,
        failures.join("\n")
    );
    env.stop().await;
}
