//! Stored XSS, every way data reaches the dashboard (issue 10): a real server (embedded
//! broker, redb store with the Beijing scenario, HTTP) gets script payloads in venue and
//! campaign names, in ids (refused), in emergency names, and in MQTT statuses (an anonymous
//! client publishes on a screen topic whose id is itself a payload, and for a real screen
//! with payloads in its fields; a status with payloads is also put in the fleet as the
//! status worker stores a kiosk's, dark, so it is raised in the alerts). Headless Chromium
//! then logs in through the form and opens every page that shows them (fleet, map,
//! emergencies, the alerts above each): no payload runs, the names show as literal text,
//! no page holds an element the payloads would have made, the CSP header is sent and the
//! browser enforces it (an injected inline script does not run). A screenshot goes to
//! target/screenshots/.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use tests::{send_json, webdriver, TestEnv};

const IMG: &str = r#"<img src=x onerror="window.__pwned=1">"#;
const SCRIPT: &str = "<script>window.__pwned=2</script>";
const PASSWORD: &str = "vera's long password";

/// Publishes `payload` retained on `topic` as an anonymous client; `false` when the broker
/// refuses the connection (another part of the project adds broker authentication: then
/// the payload simply cannot arrive this way).
async fn publish_anonymously(port: u16, topic: &str, payload: Vec<u8>) -> bool {
    let mut opts = MqttOptions::new("xss-test-anonymous", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut events) = AsyncClient::new(opts, 10);
    client
        .publish(topic, QoS::AtLeastOnce, true, payload)
        .await
        .expect("queue the publish");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let next = tokio::time::timeout_at(deadline, events.poll()).await;
        match next {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => {
                let _ = client.disconnect().await;
                return true;
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                eprintln!("anonymous publish refused: {e}");
                return false;
            }
            Err(_) => panic!("no answer from the broker on {port}"),
        }
    }
}

/// Sets the `name` of the entity at `path` (GET, edit, PUT).
async fn rename(http: &reqwest::Client, base: &str, token: &str, path: &str, name: &str) {
    let url = format!("{base}/api/v1/{path}");
    let (status, got) = send_json(http.get(&url).bearer_auth(token)).await;
    assert_eq!(status, 200, "{path}: {got}");
    let mut spec = got.get("spec").cloned().unwrap_or(got);
    spec["name"] = json!(name);
    if path.starts_with("venues/") {
        spec["name_en"] = json!(name);
    }
    let (status, body) = send_json(http.put(&url).bearer_auth(token).json(&spec)).await;
    assert_eq!(status, 200, "PUT {path}: {body}");
}

fn forged_status(screen: &str, text: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "v": 1, "screen_id": screen, "online": true, "schedule_version": 1,
        "agent_version": text, "player": text, "now_playing": text, "notes": [text],
    }))
    .expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_from_every_source_never_run_in_the_dashboard() {
    let env = TestEnv::spawn(None).await;
    let base = env.http_url();
    let admin = env.admin_token();
    let http = reqwest::Client::new();
    let api = |method: reqwest::Method, path: &str| {
        http.request(method, format!("{base}/api/v1/{path}"))
            .bearer_auth(&admin)
    };

    // A user who sees every panel.
    let (status, body) = send_json(api(reqwest::Method::POST, "users").json(&json!({
        "name": "vera", "roles": ["operator", "auditor", "staff"], "password": PASSWORD,
    })))
    .await;
    assert_eq!(status, 201, "{body}");

    // Venue and campaign names through the API.
    let venue = env.catalogue().venues[0].id.to_string();
    let campaign = env.catalogue().campaigns[0].id.to_string();
    rename(
        &http,
        &base,
        &admin,
        &format!("venues/{venue}"),
        &format!("{IMG}{SCRIPT}"),
    )
    .await;
    rename(
        &http,
        &base,
        &admin,
        &format!("campaigns/{campaign}"),
        &format!("{SCRIPT}{IMG}"),
    )
    .await;
    // Ids cannot carry them: refused with a clear error.
    let (status, body) = send_json(api(reqwest::Method::POST, "venues").json(&json!({
        "id": IMG, "name": "x", "venue_type": 10101, "timezone": "Asia/Shanghai",
    })))
    .await;
    assert_eq!(status, 400, "{body}");

    // Emergency names (shown on the page).
    for (id, name) in [("xss-img", IMG), ("xss-script", SCRIPT)] {
        let (status, body) = send_json(api(reqwest::Method::POST, "emergencies").json(&json!({
            "id": id, "name": name, "creatives": ["alert-epidemic-l"],
            "target": {"districts": ["dongcheng"]},
        })))
        .await;
        assert_eq!(status, 201, "{body}");
    }

    // MQTT statuses from an anonymous client: on a topic whose screen id is a payload, and
    // for a real screen with payloads in its fields.
    let port: u16 = env
        .mqtt_url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("broker port");
    let evil = r#"<img src=x onerror=window.__pwned=3>"#;
    let real = env.catalogue().screens[0].id.to_string();
    let topic_ok = publish_anonymously(
        port,
        &format!("signage/v1/screens/{evil}/status"),
        forged_status(evil, IMG),
    )
    .await;
    let real_ok = publish_anonymously(
        port,
        &format!("signage/v1/screens/{real}/status"),
        forged_status(&real, SCRIPT),
    )
    .await;
    if real_ok {
        // Wait until the server holds it, so the page shows what was published.
        tests::agent_proc::wait_for(
            "the server to take the forged status",
            Duration::from_secs(30),
            || env.status(&real).is_some_and(|s| s.player == SCRIPT),
            String::new,
        )
        .await;
    }
    eprintln!(
        "anonymous statuses accepted by the broker: evil topic {topic_ok}, real screen {real_ok}"
    );

    // The page's own response carries the CSP.
    let page = http.get(format!("{base}/")).send().await.expect("page");
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );

    // A kiosk's status with payloads in its fields, at the renamed venue, dark for 40
    // minutes: shown in the fleet, on the map and in the alerts.
    let dark = env
        .catalogue()
        .screens
        .iter()
        .find(|s| s.venue.as_str() == venue)
        .expect("a screen at the venue")
        .id
        .to_string();
    {
        let shared = &env.handle.shared;
        shared.fleet.lock().expect("fleet").insert(
            dark.clone(),
            playlists::wire::Status {
                v: 1,
                screen_id: dark.clone(),
                online: false,
                session: 1,
                seq: 1,
                agent_version: IMG.into(),
                player: SCRIPT.into(),
                now_playing: Some(IMG.into()),
                notes: vec![SCRIPT.into(), IMG.into()],
                ..playlists::wire::Status::default()
            },
        );
        shared
            .fleet_view
            .received(&dark, chrono::Utc::now() - chrono::TimeDelta::minutes(40));
    }

    // The browser: log in through the form, open every page that shows the data.
    let (_driver, browser) = webdriver::start(&env.tmp.path().join("chromium-xss")).await;
    browser.goto(&format!("{base}/")).await;
    browser.log_in("vera", PASSWORD).await;
    let untouched = |page: &'static str| {
        let browser = &browser;
        async move {
            assert_eq!(
                browser.js("return typeof window.__pwned").await,
                "undefined",
                "a payload ran on {page}"
            );
            assert_eq!(
                browser
                    .js("return document.querySelectorAll('#app img, #app script').length")
                    .await,
                json!(0),
                "an element made from data on {page}"
            );
        }
    };
    // A JS expression: an element of `sel` shows the payload as text (or names it).
    let shows_payload = |sel: &str| {
        format!(
            "[...document.querySelectorAll({})].some(e => e.textContent.includes({}) ||              (e.getAttribute('aria-label') || '').includes({}))",
            json!(sel),
            json!(IMG),
            json!(IMG)
        )
    };

    browser.goto(&format!("{base}/#/fleet")).await;
    browser
        .wait_js(
            "the fleet with the payloads as text, and the alert",
            &format!(
                "return {} && {} && \
                 document.querySelector('#fleet tr[data-screen={}] td.notes')?.textContent === {}",
                shows_payload("#fleet tbody td"),
                shows_payload("#alerts .dark-alert"),
                json!(dark),
                json!(format!("{SCRIPT}; {IMG}"))
            ),
        )
        .await;
    // Give any onerror a chance to fire: wait for one more refresh of the fleet table.
    browser
        .js("window.__rows = document.querySelector('#fleet tbody').firstChild; return true")
        .await;
    browser
        .wait_js(
            "a refresh of the fleet table",
            "return document.querySelector('#fleet tbody').firstChild !== window.__rows",
        )
        .await;
    untouched("the fleet").await;

    browser.goto(&format!("{base}/#/map")).await;
    browser
        .wait_js(
            "the map naming the venue",
            &format!("return {}", shows_payload("#map circle.venue, #map title")),
        )
        .await;
    untouched("the map").await;

    browser.goto(&format!("{base}/#/emergencies")).await;
    browser
        .wait_js(
            "both emergencies",
            "return document.querySelectorAll('#emergencies button[data-end]').length === 2",
        )
        .await;
    untouched("the emergencies").await;
    // The names are shown as text, exactly.
    let names = browser
        .js("return [...document.querySelectorAll('#emergencies tbody tr')].map(r => r.children[1].textContent)")
        .await;
    let mut names: Vec<String> = serde_json::from_value(names).expect("names");
    names.sort();
    let mut want = vec![IMG.to_owned(), SCRIPT.to_owned()];
    want.sort();
    assert_eq!(names, want);
    // The browser enforces the policy: an inline script injected now does not run.
    browser
        .js(
            "const s = document.createElement('script'); s.textContent = 'window.__inline = 1'; \
             document.body.append(s); return true",
        )
        .await;
    assert_eq!(
        browser.js("return typeof window.__inline").await,
        "undefined"
    );

    let shot = browser.screenshot("xss-dashboard").await;
    eprintln!("screenshot: {}", shot.display());
    assert_eq!(
        browser.js("return typeof window.__pwned").await,
        Value::from("undefined")
    );
    browser.close().await;
    env.stop().await;
}
