//! The operator's pages in a real browser (headless Chromium over WebDriver) against a real
//! server with the Beijing scenario: the fleet filter narrows to a district and shows
//! exactly the rows `GET /api/v1/fleet?district=` gives; the map draws one circle per
//! venue with coordinates; a dark screen is raised in `#alerts`; an operator starts and
//! ends an emergency from the page and the API shows each change, and with
//! `emergency_confirm = "two-person"` the starter's own confirmation is refused on the
//! page while a second operator's confirms it. Every page is axe-clean; screenshots
//! `fleet`, `map`, `emergencies` go to target/screenshots/ at 1280x720.

use chrono::{TimeDelta, Utc};
use serde_json::{json, Value};
use tests::{send_json, webdriver, TestEnv};

const PASSWORD: &str = "an operator's long password";

async fn add_user(env: &TestEnv, name: &str, roles: &[&str]) {
    let (status, body) = send_json(
        reqwest::Client::new()
            .post(format!("{}/api/v1/users", env.http_url()))
            .bearer_auth(env.admin_token())
            .json(&json!({"name": name, "roles": roles, "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

async fn get(env: &TestEnv, path: &str) -> Value {
    let (status, body) = send_json(
        reqwest::Client::new()
            .get(format!("{}/api/v1/{path}", env.http_url()))
            .bearer_auth(env.admin_token()),
    )
    .await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// The emergency `id` as `GET /api/v1/emergencies` lists it.
async fn emergency(env: &TestEnv, id: &str) -> Value {
    get(env, "emergencies")
        .await
        .as_array()
        .expect("a list")
        .iter()
        .find(|e| e["id"] == id)
        .cloned()
        .unwrap_or(Value::Null)
}

fn assert_axe_clean(page: &str, violations: Vec<String>) {
    assert!(
        violations.is_empty(),
        "accessibility of {page}: {violations:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_map_alerts_and_an_emergency_from_the_pages() {
    let env = TestEnv::spawn_with(
        None,
        server::app::Options {
            dark_after: TimeDelta::minutes(15),
            ..server::app::Options::default()
        },
    )
    .await;
    let base = env.http_url();
    add_user(&env, "olga", &["operator"]).await;

    // A screen whose Last Will arrived 40 minutes ago: dark.
    let dark = env.catalogue().screens[3].id.to_string();
    {
        let shared = &env.handle.shared;
        shared.fleet.lock().expect("fleet").insert(
            dark.clone(),
            playlists::wire::Status {
                v: 1,
                screen_id: dark.clone(),
                online: false,
                session: 1,
                seq: playlists::wire::LAST_WILL_SEQ,
                ..playlists::wire::Status::default()
            },
        );
        shared
            .fleet_view
            .received(&dark, Utc::now() - TimeDelta::minutes(40));
    }

    let (_driver, page) = webdriver::start(&env.tmp.path().join("chromium-operator")).await;
    page.window(1280, 720).await;
    page.goto(&format!("{base}/")).await;
    page.log_in("olga", PASSWORD).await;

    // The dark screen is raised above the page.
    page.wait_js(
        "the dark alert",
        &format!(
            "const a = document.querySelector('#alerts .dark-alert[data-screen={}]'); \
             return !!a && a.textContent.includes('offline') && a.textContent.includes('40 min')",
            json!(dark)
        ),
    )
    .await;

    // The fleet: every screen in service, then one district's, as the API gives them.
    page.goto(&format!("{base}/#/fleet")).await;
    let fleet = get(&env, "fleet?limit=1000").await;
    let total = fleet["total"].as_u64().expect("total");
    assert_eq!(total as usize, env.catalogue().screens.len());
    page.wait_js(
        "the fleet's first page",
        &format!(
            "return document.querySelectorAll('#fleet tr[data-screen]').length === {} && \
             (document.querySelector('#fleet-count')?.textContent ?? '').includes('of {total} ')",
            total.min(100)
        ),
    )
    .await;
    assert_axe_clean("fleet", page.axe().await);
    page.js("window.scrollTo(0, 0); return true").await;
    page.screenshot("fleet").await;

    page.js(
        "const s = document.querySelector('#fleet-filter select[name=district]'); \
             s.value = 'dongcheng'; s.dispatchEvent(new Event('change')); return true",
    )
    .await;
    let want: Vec<String> = get(&env, "fleet?district=dongcheng&limit=1000").await["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["screen_id"].as_str().expect("id").to_owned())
        .collect();
    assert!(!want.is_empty() && want.len() < total as usize);
    page.wait_js(
        "the district's rows",
        &format!(
            "return JSON.stringify([...document.querySelectorAll('#fleet tr[data-screen]')].map(r => r.dataset.screen)) === {}",
            json!(serde_json::to_string(&want).unwrap())
        ),
    )
    .await;
    // The dark screen's row says so, and a search narrows to it.
    page.js(&format!(
        "const f = document.querySelector('#fleet-filter'); f.elements.district.value = ''; \
         f.elements.q.value = {}; f.requestSubmit(); return true",
        json!(dark)
    ))
    .await;
    page.wait_js(
        "the searched screen",
        &format!(
            "const rows = document.querySelectorAll('#fleet tr[data-screen]'); \
             return rows.length === 1 && rows[0].dataset.screen === {} && rows[0].dataset.state === 'offline'",
            json!(dark)
        ),
    )
    .await;

    // The map: one circle per venue with coordinates, each focusable and named.
    let venues = get(&env, "fleet/venues").await;
    let placed = venues
        .as_array()
        .expect("venues")
        .iter()
        .filter(|v| v["lat"].is_number())
        .count();
    assert!(placed > 0);
    page.goto(&format!("{base}/#/map")).await;
    page.wait_js(
        "the map's circles",
        &format!(
            "return document.querySelectorAll('#map circle.venue[tabindex=\"0\"][aria-label]').length === {placed} && \
             document.querySelectorAll('#map-table tbody tr').length > 0"
        ),
    )
    .await;
    let offline: Vec<Value> = venues
        .as_array()
        .expect("venues")
        .iter()
        .filter(|v| v["lat"].is_number() && v["worst"] == "offline")
        .map(|v| v["id"].clone())
        .collect();
    assert!(offline.len() <= 1, "only the dark screen is offline");
    assert_eq!(
        page.js("return [...document.querySelectorAll('#map circle.state-offline')].map(c => c.dataset.venue)")
            .await,
        json!(offline),
        "the dark screen's venue is drawn offline"
    );
    // Focusing a circle names its venue and states.
    page.js("document.querySelector('#map circle.venue').focus(); return true")
        .await;
    page.wait_js(
        "the focused venue's states",
        "const c = document.activeElement; \
         return c.matches('#map circle.venue') && \
         (document.querySelector('#map-detail')?.textContent ?? '') === c.getAttribute('aria-label') && \
         c.getAttribute('aria-label').includes('online')",
    )
    .await;
    assert_axe_clean("map", page.axe().await);
    page.js("window.scrollTo(0, 0); return true").await;
    page.screenshot("map").await;

    // Emergencies: start one from the form, see it on the server, end it from its row.
    page.goto(&format!("{base}/#/emergencies")).await;
    page.wait_js(
        "the start form",
        "return document.querySelectorAll('#start input[name=creatives]').length > 0 && \
         (document.querySelector('#emergencies tbody')?.textContent ?? '').includes('none active')",
    )
    .await;
    assert_axe_clean("emergencies", page.axe().await);
    // A used id: the server's refusal is shown next to the id, and nothing starts.
    page.type_into("#start input[name=id]", "alert-epidemic-2023-12-20")
        .await;
    page.type_into("#start input[name=name]", "UI alert").await;
    page.click("#start input[name=creatives][value=\"alert-epidemic-l\"]")
        .await;
    page.click("#start input[name=creatives][value=\"alert-epidemic-p\"]")
        .await;
    page.click("#start input[name=districts][value=\"dongcheng\"]")
        .await;
    page.click("#start button").await;
    page.wait_js(
        "the refusal next to the id",
        "const e = document.querySelector('#start input[name=id]'); \
         const msg = e.closest('label').querySelector('.field-error'); \
         return e.getAttribute('aria-invalid') === 'true' && !!msg && msg.textContent.includes('already used') && \
         document.querySelector('#said').classList.contains('bad')",
    )
    .await;
    assert_eq!(
        get(&env, "emergencies").await.as_array().map(Vec::len),
        Some(1),
        "only the scenario's own emergency"
    );
    page.type_into("#start input[name=id]", "ui-alert").await;
    page.click("#start button").await;
    page.wait_js(
        "the start",
        "return (document.querySelector('#said')?.textContent ?? '').startsWith('started ui-alert')",
    )
    .await;
    let e = emergency(&env, "ui-alert").await;
    assert_eq!(e["active"], json!(true), "{e}");
    assert_eq!(e["target"], json!({"districts": ["dongcheng"]}));
    page.wait_js(
        "its row with an End button",
        "const b = document.querySelector('#emergencies button[data-end=\"ui-alert\"]'); \
         return !!b && b.closest('tr').textContent.includes('olga')",
    )
    .await;
    assert_axe_clean("emergencies with one active", page.axe().await);
    page.js("window.scrollTo(0, 0); return true").await;
    page.screenshot("emergencies").await;

    page.click("button[data-end=\"ui-alert\"]").await;
    page.wait_js(
        "the end, in the history",
        "return (document.querySelector('#said')?.textContent ?? '').startsWith('ended ui-alert') && \
         (document.querySelector('#emergencies tbody')?.textContent ?? '').includes('none active') && \
         [...document.querySelectorAll('#emergency-history tr[data-emergency=\"ui-alert\"] td')].some(td => td.textContent === 'olga')",
    )
    .await;
    let e = emergency(&env, "ui-alert").await;
    assert_eq!(
        (e["active"].clone(), e["ended"].clone()),
        (json!(false), json!(true)),
        "{e}"
    );
    let history = get(&env, "emergencies/history").await;
    let row = history
        .as_array()
        .expect("history")
        .iter()
        .find(|r| r["id"] == "ui-alert")
        .expect("in the history");
    assert_eq!(
        (row["started_by"].clone(), row["ended_by"].clone()),
        (json!("olga"), json!("olga"))
    );

    // At tablet size the pages still lay out (a screenshot to look at).
    page.window(1024, 768).await;
    page.goto(&format!("{base}/#/fleet")).await;
    page.wait_js(
        "the fleet at tablet size",
        "return document.querySelectorAll('#fleet tr[data-screen]').length > 0",
    )
    .await;
    page.screenshot("fleet-tablet").await;
    page.close().await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_operator_confirms_an_emergency_on_the_page() {
    let env = TestEnv::spawn_with(
        None,
        server::app::Options {
            emergency_confirm: Some(TimeDelta::minutes(10)),
            ..server::app::Options::default()
        },
    )
    .await;
    let base = env.http_url();
    add_user(&env, "ann", &["operator"]).await;
    add_user(&env, "bob", &["operator"]).await;
    let (_driver, page) = webdriver::start(&env.tmp.path().join("chromium-confirm")).await;
    page.window(1280, 720).await;
    page.goto(&format!("{base}/")).await;
    page.log_in("ann", PASSWORD).await;
    page.goto(&format!("{base}/#/emergencies")).await;
    page.wait_js(
        "the start form, saying a second operator confirms",
        "return document.querySelectorAll('#start input[name=creatives]').length > 0 && \
         document.querySelector('#start').textContent.includes('second operator')",
    )
    .await;
    page.type_into("#start input[name=id]", "two-alert").await;
    page.type_into("#start input[name=name]", "Two-person alert")
        .await;
    page.click("#start input[name=creatives][value=\"alert-epidemic-l\"]")
        .await;
    page.click("#start input[name=creatives][value=\"alert-epidemic-p\"]")
        .await;
    page.click("#start input[name=districts][value=\"dongcheng\"]")
        .await;
    page.click("#start button").await;
    page.wait_js(
        "the pending row with its Confirm button",
        "return (document.querySelector('#said')?.textContent ?? '').includes('waits for a second operator') && \
         !!document.querySelector('#emergencies tr[data-state=pending] button[data-confirm=\"two-alert\"]')",
    )
    .await;
    let e = emergency(&env, "two-alert").await;
    assert_eq!(e["active"], json!(false), "{e}");
    assert!(e["pending"].is_object(), "{e}");
    assert_axe_clean("emergencies with one pending", page.axe().await);

    // The starter's own confirmation: refused, the server's reason shown.
    page.click("button[data-confirm=\"two-alert\"]").await;
    page.wait_js(
        "the refusal",
        "const s = document.querySelector('#said'); \
         return s.classList.contains('bad') && s.textContent.startsWith('refused: ') && s.textContent.length > 12",
    )
    .await;
    assert!(emergency(&env, "two-alert").await["pending"].is_object());

    // Another operator confirms it: it plays.
    page.click("#logout").await;
    page.wait_js(
        "the login page after logout",
        "return !document.querySelector('#login-page').hidden && document.querySelector('#app').hidden",
    )
    .await;
    page.log_in("bob", PASSWORD).await;
    page.goto(&format!("{base}/#/emergencies")).await;
    page.wait_js(
        "the pending row for bob",
        "return !!document.querySelector('button[data-confirm=\"two-alert\"]')",
    )
    .await;
    page.click("button[data-confirm=\"two-alert\"]").await;
    page.wait_js(
        "the confirmation",
        "return (document.querySelector('#said')?.textContent ?? '').startsWith('confirmed two-alert') && \
         document.querySelector('#emergencies tr[data-emergency=\"two-alert\"]')?.dataset.state === 'active'",
    )
    .await;
    let e = emergency(&env, "two-alert").await;
    assert_eq!(e["active"], json!(true), "{e}");
    let history = get(&env, "emergencies/history").await;
    let row = history
        .as_array()
        .expect("history")
        .iter()
        .find(|r| r["id"] == "two-alert")
        .cloned()
        .expect("in the history");
    assert_eq!(
        (row["started_by"].clone(), row["confirmed_by"].clone()),
        (json!("ann"), json!("bob")),
        "{row}"
    );
    page.close().await;
    env.stop().await;
}
