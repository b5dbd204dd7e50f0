//! Debian's headless Chromium driven by chromedriver over the WebDriver protocol (plain
//! HTTP and JSON): start a driver and a browser session, navigate, type, click, run
//! scripts, wait for the page, take screenshots, log in to the dashboard.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// The key under which WebDriver returns an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A response body as JSON (`Null` when it is not JSON).
async fn json_of(resp: reqwest::Response) -> Value {
    let bytes = resp.bytes().await.expect("response body");
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

/// A chromedriver process, killed on drop.
#[derive(Debug)]
pub struct Driver(std::process::Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One WebDriver session.
#[derive(Debug)]
pub struct Session {
    http: reqwest::Client,
    base: String,
}

impl Session {
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        // A GET carries no body (chromedriver refuses one).
        if !body.is_null() {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let resp = req.send().await.expect("webdriver request");
        let status = resp.status();
        let value = json_of(resp).await;
        assert!(status.is_success(), "webdriver {path}: {status} {value}");
        value["value"].clone()
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, body).await
    }

    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    /// Runs `script` in the page and returns its value.
    pub async fn js(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": []}))
            .await
    }

    pub async fn element(&self, css: &str) -> String {
        let found = self
            .post("/element", json!({"using": "css selector", "value": css}))
            .await;
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_owned()
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.post(&format!("/element/{id}/clear"), json!({})).await;
        self.post(&format!("/element/{id}/value"), json!({ "text": text }))
            .await;
    }

    pub async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.post(&format!("/element/{id}/click"), json!({})).await;
    }

    /// Waits (up to 15 s) until `script` returns true in the page.
    pub async fn wait_js(&self, what: &str, script: &str) {
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

    /// Logs in through the dashboard's form and waits for the page to show the user.
    pub async fn log_in(&self, name: &str, password: &str) {
        self.wait_js(
            "the login page",
            "return !document.querySelector('#login-page').hidden && document.querySelector('#app').hidden",
        )
        .await;
        self.type_into("#login input[name=name]", name).await;
        self.type_into("#login input[name=password]", password)
            .await;
        self.click("#login button").await;
        self.wait_js(
            "the dashboard after login",
            &format!(
                "return !document.querySelector('#app').hidden && \
                 document.querySelector('#user').textContent.includes({})",
                json!(format!("logged in as {name}"))
            ),
        )
        .await;
    }

    /// A PNG of the page, written to `target/screenshots/NAME.png`; returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine as _;
        let shot = self
            .call(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot.as_str().expect("a base64 screenshot"))
            .expect("base64");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = crate::bin_dir().join("../screenshots");
        std::fs::create_dir_all(&dir).expect("screenshots dir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Sets the browser window's outer size (1280x720 for a laptop, 1024x768 for a tablet).
    pub async fn window(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({"width": width, "height": height}))
            .await;
    }

    /// Runs axe-core (vendored in `tests/assets/axe.min.js`, MPL-2.0) on the page as it is
    /// now and returns its serious and critical violations as "rule: help (targets)"
    /// lines; an empty list is a page without them.
    pub async fn axe(&self) -> Vec<String> {
        const AXE: &str = include_str!("../assets/axe.min.js");
        // Injected through WebDriver (which the page's CSP does not govern), then run.
        self.js(&format!("{AXE}\n;window.__axe = axe; return true"))
            .await;
        let result = self
            .call(
                reqwest::Method::POST,
                "/execute/async",
                json!({"script": "const done = arguments[arguments.length - 1]; \
                    window.__axe.run(document, {resultTypes: ['violations']}) \
                      .then(r => done(r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical') \
                        .map(v => `${v.id}: ${v.help} (${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', ')})`))) \
                      .catch(e => done(['axe failed: ' + e]));",
                    "args": []}),
            )
            .await;
        result
            .as_array()
            .expect("axe's violations")
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Panics naming `what` when axe finds serious or critical violations on the page.
    pub async fn assert_accessible(&self, what: &str) {
        let violations = self.axe().await;
        assert!(
            violations.is_empty(),
            "accessibility of {what}: {violations:#?}"
        );
    }

    /// A screenshot under target/screenshots and, with `SIGNAGE_DOCS_SCREENSHOTS` set, the
    /// README's copy under docs/screenshots (a plain run leaves the source tree alone).
    pub async fn keep(&self, name: &str) {
        let shot = self.screenshot(name).await;
        if std::env::var_os("SIGNAGE_DOCS_SCREENSHOTS").is_none() {
            return;
        }
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
        std::fs::create_dir_all(&docs).expect("docs/screenshots");
        std::fs::copy(&shot, docs.join(format!("{name}.png"))).expect("copy the screenshot");
    }

    /// Ends the browser session.
    pub async fn close(&self) {
        self.call(reqwest::Method::DELETE, "", json!({})).await;
    }
}

/// Starts chromedriver on a free port and a headless Chromium session with its profile in
/// `profile`.
pub async fn start(profile: &Path) -> (Driver, Session) {
    for bin in [CHROMEDRIVER, CHROMIUM] {
        assert!(
            Path::new(bin).exists(),
            "{bin} is missing: install it with `scripts/setup.sh --with-browser`"
        );
    }
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
                     "--no-first-run", "--window-size=1280,900",
                     format!("--user-data-dir={}", profile.display())],
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
