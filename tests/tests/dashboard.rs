//! The operator's dashboard in a real browser: Debian's Chromium driven by chromedriver over
//! the WebDriver protocol, against a real server (embedded broker, redb store with the
//! Beijing scenario, HTTP). An operator logs in with a password (a wrong one is refused on
//! the page), starts an emergency from the page's form and ends it with its End button,
//! and the server's API shows each change; logging out returns to the login form.

use serde_json::{json, Value};
use tests::{send_json, webdriver, TestEnv};

const PASSWORD: &str = "otto's long password";

/// A response body as JSON (`Null` when it is not JSON).
async fn json_of(resp: reqwest::Response) -> Value {
    let bytes = resp.bytes().await.expect("response body");
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

/// The emergencies started in this test, as the server's API lists them: (id, active).
async fn emergencies(base: &str, token: &str) -> Vec<(String, bool)> {
    let list = json_of(
        reqwest::Client::new()
            .get(format!("{base}/api/v1/emergencies"))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET /api/v1/emergencies"),
    )
    .await;
    list.as_array()
        .expect("a list")
        .iter()
        // The scenario's own (long ended) epidemic alert is listed too.
        .filter(|e| e["id"] != "alert-epidemic-2023-12-20")
        .map(|e| {
            (
                e["id"].as_str().unwrap_or_default().to_owned(),
                e["active"] == Value::Bool(true),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_start_and_end_an_emergency_from_the_dashboard() {
    let env = TestEnv::spawn(None).await;
    let base = format!("http://{}", env.handle.http_addr);
    let token = env.admin_token();
    let (status, body) = send_json(
        reqwest::Client::new()
            .post(format!("{base}/api/v1/users"))
            .bearer_auth(&token)
            .json(&json!({"name": "otto", "roles": ["operator", "auditor"], "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (_driver, page) = webdriver::start(&env.tmp.path().join("chromium-dashboard")).await;
    page.goto(&format!("{base}/")).await;

    // A wrong password: refused, named, still the login form.
    page.wait_js(
        "the login form",
        "return !document.querySelector('#login').hidden",
    )
    .await;
    page.type_into("#login input[name=name]", "otto").await;
    page.type_into("#login input[name=password]", "not the password")
        .await;
    page.click("#login button").await;
    page.wait_js(
        "the refusal",
        "return document.querySelector('#login-said').textContent.includes('wrong name or password') && \
         document.querySelector('#app').hidden",
    )
    .await;
    page.assert_accessible("the login page").await;
    page.keep("login").await;

    // Logged in, the emergencies page loads its data: no emergency yet. No token in the
    // page's storage.
    page.log_in("otto", PASSWORD).await;
    page.goto(&format!("{base}/#/emergencies")).await;
    page.wait_js(
        "an empty emergencies table",
        "return (document.querySelector('#emergencies tbody')?.textContent ?? '').includes('none active')",
    )
    .await;
    assert_eq!(
        page.js("return sessionStorage.length + document.cookie.length + \
             Object.keys(localStorage).filter(k => k !== 'signage.lang').length")
            .await,
        json!(0),
        "nothing in JS storage but the language; the session cookie is HttpOnly"
    );
    let violations = page.axe().await;
    assert!(violations.is_empty(), "accessibility: {violations:#?}");
    // The check itself sees a violation: a button without a name.
    page.js("document.body.append(document.createElement('button')); return true")
        .await;
    let seen = page.axe().await;
    assert!(
        seen.iter().any(|v| v.starts_with("button-name")),
        "axe missed a nameless button: {seen:?}"
    );
    page.js("document.body.lastChild.remove(); return true")
        .await;

    // Started from the form, listed as open with an End button, active on the server.
    page.type_into("#start input[name=id]", "dash-alert").await;
    page.type_into("#start input[name=name]", "Dashboard alert")
        .await;
    for creative in ["alert-epidemic-l", "alert-epidemic-p"] {
        page.click(&format!("#start input[name=creatives][value={creative:?}]"))
            .await;
    }
    page.click("#start input[name=districts][value=\"dongcheng\"]")
        .await;
    page.click("#start button").await;
    page.wait_js(
        "the start",
        "return (document.querySelector('#said')?.textContent ?? '').startsWith('started dash-alert')",
    )
    .await;
    page.wait_js(
        "the emergency row",
        "const b = document.querySelector('button[data-end=\"dash-alert\"]'); \
         return !!b && b.closest('tr').textContent.includes('open')",
    )
    .await;
    assert_eq!(
        emergencies(&base, &token).await,
        [("dash-alert".to_owned(), true)]
    );
    page.screenshot("dashboard-emergency").await;

    // End: the row goes, the server says it is no longer active.
    page.click("button[data-end=\"dash-alert\"]").await;
    page.wait_js(
        "the emergency to end",
        "return (document.querySelector('#emergencies tbody')?.textContent ?? '').includes('none active')",
    )
    .await;
    assert_eq!(
        emergencies(&base, &token).await,
        [("dash-alert".to_owned(), false)]
    );

    // Log out: the login form again, and a reload stays logged out.
    page.click("#logout").await;
    page.wait_js(
        "the login form after logout",
        "return !document.querySelector('#login').hidden && document.querySelector('#app').hidden",
    )
    .await;
    page.goto(&format!("{base}/")).await;
    page.wait_js(
        "the login form after a reload",
        "return !document.querySelector('#login').hidden",
    )
    .await;
    page.close().await;
    env.stop().await;
}
