//! The operator's dashboard in a real browser: Debian's Chromium driven by chromedriver over
//! the WebDriver protocol, against a real server (embedded broker, redb store with the
//! Beijing scenario, HTTP). Campaign staff start an emergency from the page's form (refused with a wrong admin token, accepted with the right one) and end
//! it with its End button, and the server's API shows each change.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use tests::TestEnv;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The key under which WebDriver returns an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A response body as JSON (`Null` when it is not JSON).
async fn json_of(resp: reqwest::Response) -> Value {
    let bytes = resp.bytes().await.expect("response body");
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

/// A chromedriver process, killed on drop.
struct Driver(std::process::Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One WebDriver session.
struct Session {
    http: reqwest::Client,
    base: String,
}

impl Session {
    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("webdriver request");
        let status = resp.status();
        let value = json_of(resp).await;
        assert!(status.is_success(), "webdriver {path}: {status} {value}");
        value["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, body).await
    }

    /// Runs `script` in the page and returns its value.
    async fn js(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": []}))
            .await
    }

    async fn element(&self, css: &str) -> String {
        let found = self
            .post("/element", json!({"using": "css selector", "value": css}))
            .await;
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.post(&format!("/element/{id}/clear"), json!({})).await;
        self.post(&format!("/element/{id}/value"), json!({ "text": text }))
            .await;
    }

    async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.post(&format!("/element/{id}/click"), json!({})).await;
    }

    /// Waits until `script` returns true in the page.
    async fn wait_js(&self, what: &str, script: &str) {
        for _ in 0..150 {
            if self.js(script).await == Value::Bool(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let page = self
            .js("return document.body.innerText.slice(0, 2000)")
            .await;
        panic!(
            "timed out waiting for {what}; the page reads:\n{}",
            page.as_str().unwrap_or_default()
        );
    }
}

async fn start_driver(profile: &Path) -> (Driver, Session) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = Driver(
        std::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start chromedriver"),
    );
    let http = reqwest::Client::new();
    let root = format!("http://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(r) = http.get(format!("{root}/status")).send().await {
            let v = json_of(r).await;
            if v["value"]["ready"] == Value::Bool(true) {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "chromedriver did not become ready on {port}");
    let caps = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--no-first-run", format!("--user-data-dir={}", profile.display())],
        },
    }}});
    let created = json_of(
        http.post(format!("{root}/session"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(caps.to_string())
            .send()
            .await
            .expect("new session"),
    )
    .await;
    let id = created["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no WebDriver session: {created}"));
    let session = Session {
        http,
        base: format!("{root}/session/{id}"),
    };
    (driver, session)
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
    for bin in [CHROMEDRIVER, CHROMIUM] {
        assert!(
            Path::new(bin).exists(),
            "{bin} is missing: install it with `scripts/setup.sh --with-browser`"
        );
    }
    let env = TestEnv::spawn(None).await;
    let base = format!("http://{}", env.handle.http_addr);
    let (_driver, page) = start_driver(&env.tmp.path().join("chromium-dashboard")).await;
    page.post("/url", json!({ "url": format!("{base}/") }))
        .await;

    // Signed in with a token, the page loads its data: no emergency yet.
    let token = env.admin_token();
    page.type_into("#token", &token).await;
    page.click("h1").await;
    page.wait_js(
        "an empty emergencies table",
        "return document.querySelector('#emergencies tbody').textContent.includes('none active')",
    )
    .await;

    // A wrong token: refused, named, nothing stored.
    page.type_into("#token", &"0".repeat(64)).await;
    page.click("h1").await;
    page.type_into("input[name=id]", "dash-alert").await;
    page.type_into("input[name=name]", "Dashboard alert").await;
    page.type_into(
        "input[name=creatives]",
        "alert-epidemic-l, alert-epidemic-p",
    )
    .await;
    page.type_into("input[name=target]", r#"{"districts": ["dongcheng"]}"#)
        .await;
    page.click("#start button").await;
    page.wait_js(
        "the refusal",
        "return document.querySelector('#said').textContent.startsWith('refused:') && \
         document.querySelector('#said').textContent.includes('token')",
    )
    .await;
    assert!(emergencies(&base, &token).await.is_empty());

    // The right token: started, listed as open with an End button, active on the server.
    page.type_into("#token", &token).await;
    page.click("h1").await;
    page.click("#start button").await;
    page.wait_js(
        "the start",
        "return document.querySelector('#said').textContent.startsWith('done: dash-alert')",
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

    // End: the row goes, the server says it is no longer active.
    page.click("button[data-end=\"dash-alert\"]").await;
    page.wait_js(
        "the emergency to end",
        "return document.querySelector('#emergencies tbody').textContent.includes('none active')",
    )
    .await;
    assert_eq!(
        emergencies(&base, &token).await,
        [("dash-alert".to_owned(), false)]
    );
    page.call(reqwest::Method::DELETE, "", json!({})).await;
    env.stop().await;
}
