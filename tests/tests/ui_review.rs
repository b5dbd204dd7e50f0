//! Creatives, approval and preview in a real browser (Debian's Chromium over WebDriver)
//! against a real server with the Beijing scenario. A staff member uploads one of the
//! scenario's JPEGs through the library's form (a second upload under the same id is
//! refused next to the id, a file that is no image next to the file), sees it with its
//! thumbnail, makes a campaign with it through the API and submits both on the page. An
//! approver, another person, rejects the campaign on its review page (not without a
//! reason); the staff member reads the reason on the library page and through the API,
//! fixes the campaign and submits it again. The approver sees the fixed field in the diff,
//! approves the creative and then the campaign, and the API shows it live; the preview of
//! a targeted screen then shows its slots, in English and Chinese, and a slot explains
//! itself. Someone both staff and approver is refused (by the server, shown on the page)
//! when approving their own submission. Each page passes axe; screenshots `creatives`,
//! `approvals`, `approval-diff` and `preview` are taken at 1280x720.

use chrono::{TimeDelta, Utc};
use serde_json::{json, Value};
use tests::{send_json, webdriver, TestEnv};

const STAFF_PASSWORD: &str = "sara's long enough password";
const APPROVER_PASSWORD: &str = "anna approves with care";
const SCREEN: &str = "bj-metro-xidan-s1";

async fn call(base: &str, token: &str, method: reqwest::Method, path: &str, body: Value) -> Value {
    let (status, answer) = send_json(
        reqwest::Client::new()
            .request(method.clone(), format!("{base}/api/v1{path}"))
            .bearer_auth(token)
            .json(&body),
    )
    .await;
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {answer}"
    );
    answer
}

/// The test's campaign, flying from two hours before `now` for three days.
fn campaign(weight: u32, now: chrono::DateTime<Utc>) -> Value {
    json!({
        "id": "ui-camp", "name": "文明乘车 界面测试", "priority": "normal", "weight": weight,
        "flight": {
            "start": (now - TimeDelta::hours(2)).to_rfc3339(),
            "end": (now + TimeDelta::days(3)).to_rfc3339(),
        },
        "dayparts": ["* * * * *"],
        "target": {"screens": [SCREEN]},
        "creatives": ["ui-still"]
    })
}

/// Logs out and waits for the login form.
async fn log_out(page: &webdriver::Session) {
    page.click("#logout").await;
    page.wait_js(
        "the login form",
        "return !document.querySelector('#login-page').hidden && document.querySelector('#app').hidden",
    )
    .await;
}

/// Checks the page with axe, then takes its screenshot at 1280x720.
async fn check_page(page: &webdriver::Session, name: &str) {
    page.assert_accessible(name).await;
    page.keep(name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_submit_reject_fix_approve_and_preview_in_the_browser() {
    let env = TestEnv::spawn(None).await;
    let base = env.http_url();
    let admin = env.admin_token();
    let staff = tests::add_user(&base, &admin, "sara", &["staff"], STAFF_PASSWORD).await;
    let approver = tests::add_user(&base, &admin, "anna", &["approver"], APPROVER_PASSWORD).await;
    let now = Utc::now();
    let (_driver, page) = webdriver::start(&env.tmp.path().join("chromium-review")).await;
    page.window(1280, 720).await;
    page.goto(&format!("{base}/")).await;

    // Staff upload a still through the form: it is in the library with its thumbnail.
    page.log_in("sara", STAFF_PASSWORD).await;
    page.goto(&format!("{base}/#/creatives")).await;
    page.wait_js(
        "the upload form",
        "return !!document.querySelector('form#upload')",
    )
    .await;
    let jpeg = tests::beijing().join("media/civility-riding.jpg");
    let jpeg = jpeg.canonicalize().expect("the scenario's JPEG");
    let input = page.element("form#upload input[name=file]").await;
    page.post(
        &format!("/element/{input}/value"),
        json!({"text": jpeg.to_str().expect("a UTF-8 path")}),
    )
    .await;
    page.type_into("form#upload input[name=id]", "ui-still")
        .await;
    page.type_into("form#upload input[name=title]", "文明乘车 静态图")
        .await;
    page.type_into("form#upload input[name=duration_seconds]", "15")
        .await;
    page.click("form#upload button.primary").await;
    page.wait_js(
        "the uploaded creative",
        "const c = document.querySelector('#creatives [data-id=\"ui-still\"]'); \
         return !!c && c.dataset.state === 'draft' && \
           document.querySelector('#upload-said').textContent.includes('uploaded ui-still') && \
           document.querySelector('#upload-progress').value === 100",
    )
    .await;
    // Thumbnails load lazily: in view, it loads.
    page.js(
        "document.querySelector('#creatives [data-id=\"ui-still\"]').scrollIntoView(); return true",
    )
    .await;
    page.wait_js(
        "its thumbnail",
        "const img = document.querySelector('#creatives [data-id=\"ui-still\"] img'); \
         return img.complete && img.naturalWidth > 0",
    )
    .await;
    let c = tests::get_ok(&base, &staff, "/creatives/ui-still").await;
    assert_eq!(c["approval"]["status"], "draft", "{c}");
    assert_eq!(c["measurement"]["width"], 1920, "{c}");

    // The same id again: the server's refusal is shown next to the id.
    let input = page.element("form#upload input[name=file]").await;
    page.post(
        &format!("/element/{input}/value"),
        json!({"text": jpeg.to_str().expect("a UTF-8 path")}),
    )
    .await;
    page.type_into("form#upload input[name=id]", "ui-still")
        .await;
    page.type_into("form#upload input[name=duration_seconds]", "15")
        .await;
    page.click("form#upload button.primary").await;
    page.wait_js(
        "the duplicate refused beside the id",
        "return document.querySelector('.err[data-for=\"id\"]').textContent.includes('already exists') && \
         document.querySelector('form#upload input[name=id]').getAttribute('aria-invalid') === 'true'",
    )
    .await;

    // A file that is no image: the server's refusal beside the file.
    let not_media = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let input = page.element("form#upload input[name=file]").await;
    page.post(
        &format!("/element/{input}/value"),
        json!({"text": not_media.to_str().expect("a UTF-8 path")}),
    )
    .await;
    page.type_into("form#upload input[name=id]", "ui-not-media")
        .await;
    page.type_into("form#upload input[name=duration_seconds]", "15")
        .await;
    page.click("form#upload button.primary").await;
    page.wait_js(
        "the bad file refused beside the file",
        "return document.querySelector('.err[data-for=\"file\"]').textContent.includes('ui-not-media') && \
         document.querySelector('#upload-said').classList.contains('bad')",
    )
    .await;
    let (status, _) = send_json(
        reqwest::Client::new()
            .get(format!("{base}/api/v1/creatives/ui-not-media"))
            .bearer_auth(&staff),
    )
    .await;
    assert_eq!(status, 404, "a refused upload stores nothing");

    // A campaign through the API; both submitted from the page.
    let (status, body) = send_json(
        reqwest::Client::new()
            .post(format!("{base}/api/v1/campaigns"))
            .bearer_auth(&staff)
            .json(&campaign(4, now)),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    page.js("location.reload(); return true").await;
    page.wait_js(
        "the draft's submit buttons",
        "return !!document.querySelector('[data-submit=\"ui-still\"]') && \
         !!document.querySelector('[data-submit-campaign=\"ui-camp\"]')",
    )
    .await;
    check_page(&page, "creatives").await;
    // Submitting the creative reloads the library, then the campaigns in review: their
    // table is made anew, buttons included. The campaign's button is clicked only once it
    // is the new one (the old one, found while the table is replaced, goes stale).
    page.js(
        "document.querySelector('[data-submit-campaign=\"ui-camp\"]').dataset.old = '1'; return true",
    )
    .await;
    page.click("[data-submit=\"ui-still\"]").await;
    page.wait_js(
        "the creative submitted and the campaigns in review reloaded",
        "const c = document.querySelector('#creatives [data-id=\"ui-still\"]'); \
         const b = document.querySelector('[data-submit-campaign=\"ui-camp\"]'); \
         return !!c && c.dataset.state === 'submitted' && !!b && !b.dataset.old",
    )
    .await;
    page.click("[data-submit-campaign=\"ui-camp\"]").await;
    page.wait_js(
        "the campaign submitted",
        "const r = document.querySelector('#campaign-reviews tr[data-campaign=\"ui-camp\"]'); \
         return !!r && r.dataset.state === 'submitted'",
    )
    .await;
    assert_eq!(
        tests::get_ok(&base, &staff, "/campaigns/ui-camp").await["approval"]["status"],
        "submitted"
    );
    assert_eq!(
        tests::get_ok(&base, &staff, "/creatives/ui-still").await["approval"]["status"],
        "submitted"
    );

    // The approver's queue lists both; the campaign is rejected, not without a reason.
    log_out(&page).await;
    page.log_in("anna", APPROVER_PASSWORD).await;
    page.goto(&format!("{base}/#/approvals")).await;
    page.wait_js(
        "the queue",
        "return !!document.querySelector('#queue [data-kind=\"campaign\"][data-id=\"ui-camp\"]') && \
         !!document.querySelector('#queue [data-kind=\"creative\"][data-id=\"ui-still\"]') && \
         document.querySelector('#queue [data-id=\"ui-camp\"]').textContent.includes('sara')",
    )
    .await;
    check_page(&page, "approvals").await;
    page.click("#queue [data-id=\"ui-camp\"] a").await;
    page.wait_js(
        "the campaign's review",
        "return !!document.querySelector('#diff') && !!document.querySelector('#approve') && \
         !!document.querySelector('#forecast-result') && \
         !!document.querySelector('#campaign-creatives [data-id=\"ui-still\"] img')",
    )
    .await;
    page.click("#reject").await;
    page.wait_js(
        "the missing reason named",
        "return document.querySelector('#reason-err').textContent.includes('reason')",
    )
    .await;
    assert_eq!(
        tests::get_ok(&base, &approver, "/campaigns/ui-camp").await["approval"]["status"],
        "submitted",
        "no reason: nothing sent"
    );
    page.type_into("#reason", "权重过高：请降到 2").await;
    page.click("#reject").await;
    page.wait_js(
        "the rejection",
        "return document.querySelector('#decision-said').textContent.includes('Rejected')",
    )
    .await;

    // Staff read the reason (API and page), fix the weight and submit again.
    let c = tests::get_ok(&base, &staff, "/campaigns/ui-camp").await;
    assert_eq!(c["approval"]["status"], "rejected", "{c}");
    assert_eq!(c["approval"]["reason"], "权重过高：请降到 2", "{c}");
    assert_eq!(c["approval"]["decided_by"], "anna", "{c}");
    log_out(&page).await;
    page.log_in("sara", STAFF_PASSWORD).await;
    page.goto(&format!("{base}/#/creatives")).await;
    page.wait_js(
        "the reason on the staff's page",
        "const r = document.querySelector('#campaign-reviews tr[data-campaign=\"ui-camp\"]'); \
         return !!r && r.dataset.state === 'rejected' && r.textContent.includes('权重过高')",
    )
    .await;
    call(
        &base,
        &staff,
        reqwest::Method::PUT,
        "/campaigns/ui-camp",
        campaign(2, now),
    )
    .await;
    call(
        &base,
        &staff,
        reqwest::Method::POST,
        "/campaigns/ui-camp/submit",
        Value::Null,
    )
    .await;

    // The approver sees what changed since the rejection, approves the creative, then the
    // campaign: live.
    log_out(&page).await;
    page.log_in("anna", APPROVER_PASSWORD).await;
    page.goto(&format!("{base}/#/approvals/campaign/ui-camp"))
        .await;
    page.wait_js(
        "the diff naming the weight",
        "const r = document.querySelector('#diff #diff-rejected tr[data-field=\"weight\"]'); \
         return !!r && r.dataset.change === 'changed' && r.textContent.includes('4') && r.textContent.includes('2') && \
           document.querySelectorAll('#diff-rejected tbody tr').length === 1 && \
           !!document.querySelector('#forecast-result')",
    )
    .await;
    check_page(&page, "approval-diff").await;
    page.window(1024, 768).await;
    assert_eq!(
        page.js("return document.documentElement.scrollWidth <= window.innerWidth + 1")
            .await,
        json!(true),
        "the review without sideways scroll at 1024x768"
    );
    page.window(1280, 720).await;
    // The campaign's creative is not approved yet: the server's refusal is on the page.
    page.click("#approve").await;
    page.wait_js(
        "the refusal while its creative waits",
        "return document.querySelector('#decision-said').textContent.includes('ui-still')",
    )
    .await;
    page.goto(&format!("{base}/#/approvals/creative/ui-still"))
        .await;
    page.wait_js(
        "the creative's review",
        "const img = document.querySelector('#creative-large img'); \
         return !!img && img.complete && img.naturalWidth === 1920 && !!document.querySelector('#approve')",
    )
    .await;
    let violations = page.axe().await;
    assert!(violations.is_empty(), "creative review: {violations:#?}");
    page.click("#approve").await;
    page.wait_js(
        "the creative approved",
        "return document.querySelector('#decision-said').textContent.includes('Approved')",
    )
    .await;
    page.goto(&format!("{base}/#/approvals/campaign/ui-camp"))
        .await;
    page.wait_js(
        "the campaign's review",
        "return !!document.querySelector('#approve')",
    )
    .await;
    page.click("#approve").await;
    page.wait_js(
        "the campaign approved",
        "return document.querySelector('#decision-said').textContent.includes('Approved')",
    )
    .await;
    let c = tests::get_ok(&base, &staff, "/campaigns/ui-camp").await;
    assert_eq!(c["state"], "live", "{c}");
    assert_eq!(c["approved"]["spec"]["weight"], 2, "{c}");
    assert_eq!(c["approved"]["approved_by"], "anna", "{c}");

    // The preview of a targeted screen shows the campaign's slots; one explains itself, and
    // the arrow keys move between slots.
    page.goto(&format!("{base}/#/preview")).await;
    page.wait_js(
        "the screen search",
        "return !!document.querySelector('#screen-search')",
    )
    .await;
    page.type_into("#screen-search", "西单站").await;
    page.wait_js(
        "the screen found by its venue's name",
        &format!("return !!document.querySelector('#screens [data-screen=\"{SCREEN}\"] a')"),
    )
    .await;
    page.click(&format!("#screens [data-screen=\"{SCREEN}\"] a"))
        .await;
    page.wait_js(
        "the timeline with the campaign",
        "return document.querySelectorAll('#timeline .slot[data-campaign=\"ui-camp\"][data-creative=\"ui-still\"][data-at]').length > 10 && \
         document.querySelector('#legend [data-campaign=\"ui-camp\"]') !== null && \
         document.querySelector('#main').textContent.includes('Asia/Shanghai')",
    )
    .await;
    page.click("#timeline .slot[data-campaign=\"ui-camp\"]")
        .await;
    page.wait_js(
        "the slot's explanation",
        "const e = document.querySelector('#explain'); \
         return e.dataset.at === document.querySelector('#timeline .slot[data-campaign=\"ui-camp\"]').dataset.at && \
           e.textContent.includes('ui-camp') && !e.classList.contains('bad')",
    )
    .await;
    let moved = page
        .js("const s = [...document.querySelectorAll('#timeline .slot')]; \
             const i = s.indexOf(document.activeElement); \
             document.activeElement.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowRight', bubbles: true})); \
             return i >= 0 && s.indexOf(document.activeElement) === i + 1 && document.activeElement.tabIndex === 0")
        .await;
    assert_eq!(moved, json!(true), "ArrowRight moves to the next slot");
    check_page(&page, "preview").await;
    // In Chinese, the page and its timeline again, the zone still named.
    page.click("#lang").await;
    page.wait_js(
        "the preview in Chinese",
        "return document.querySelector('#main h1')?.textContent === '预览' && \
         document.querySelector('#explain-h')?.textContent === '此时段为何播放此内容' && \
         document.querySelector('#timeline .slot[data-campaign=\"ui-camp\"]') !== null && \
         document.querySelector('#main').textContent.includes('时间为 Asia/Shanghai')",
    )
    .await;
    page.click("#lang").await;
    page.wait_js(
        "the preview in English",
        "return document.querySelector('#main h1')?.textContent === 'Preview'",
    )
    .await;

    // A tablet reads the preview without the page scrolling sideways.
    page.window(1024, 768).await;
    let wide = page
        .js("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        .await;
    assert_eq!(wide, json!(true), "no sideways scroll at 1024x768");

    // Someone both staff and approver cannot approve their own submission: the queue says
    // so, and the server's refusal is shown on the review page.
    let mia = tests::add_user(&base, &admin, "mia", &["staff", "approver"], STAFF_PASSWORD).await;
    let form = reqwest::multipart::Form::new()
        .text(
            "meta",
            json!({"id": "mia-still", "title": "Mia", "duration_seconds": 10}).to_string(),
        )
        .part(
            "file",
            reqwest::multipart::Part::bytes(std::fs::read(&jpeg).expect("the JPEG"))
                .file_name("mia.jpg"),
        );
    let (status, body) = send_json(
        reqwest::Client::new()
            .post(format!("{base}/api/v1/creatives"))
            .bearer_auth(&mia)
            .multipart(form),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    call(
        &base,
        &mia,
        reqwest::Method::POST,
        "/creatives/mia-still/submit",
        Value::Null,
    )
    .await;
    page.window(1280, 720).await;
    log_out(&page).await;
    page.log_in("mia", STAFF_PASSWORD).await;
    page.goto(&format!("{base}/#/approvals")).await;
    page.wait_js(
        "the own submission marked",
        "const r = document.querySelector('#queue [data-kind=\"creative\"][data-id=\"mia-still\"]'); \
         return !!r && !!r.querySelector('.own')",
    )
    .await;
    page.goto(&format!("{base}/#/approvals/creative/mia-still"))
        .await;
    page.wait_js(
        "the creative's review",
        "return !!document.querySelector('#approve')",
    )
    .await;
    page.click("#approve").await;
    page.wait_js(
        "the server's refusal",
        "const s = document.querySelector('#decision-said'); \
         return s.classList.contains('bad') && s.textContent.includes('own submission')",
    )
    .await;
    assert_eq!(
        tests::get_ok(&base, &mia, "/creatives/mia-still").await["approval"]["status"],
        "submitted"
    );
    page.close().await;
    env.stop().await;
}
