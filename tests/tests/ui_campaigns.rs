//! The campaign staff's pages in a real browser against a real server with the Beijing
//! scenario: a staff member opens the editor, types a bad crontab and reads the server's
//! own message beside the dayparts, fixes it and reads the daypart in words, picks
//! creatives and targets, reads a forecast figure that `POST /api/v1/forecast` confirms,
//! saves and submits; the API then holds the campaign, submitted, with the form's rules.
//! The calendar shows it in its week and its month, by venue type and by district; after
//! a rejection the list and the editor show the reason, and an approver reads the editor
//! without being able to change it. axe finds nothing serious on the list, the calendar or
//! the editor.

use serde_json::{json, Value};
use tests::{send_json, webdriver, TestEnv};

const PASSWORD: &str = "sara's long password";

/// The campaign the test builds in the form, as the API takes it.
fn campaign() -> Value {
    json!({
        "id": "ui-winter",
        "name": "冬季文明出行",
        "priority": "normal",
        "weight": 2,
        "flight": {"start": "2023-12-17T16:00:00.000Z", "end": "2023-12-20T16:00:00.000Z"},
        "dayparts": ["* 7-8 * * 1-5", "0 9,17 * * *"],
        "target": {"venue_types": ["transit.subway"], "districts": ["dongcheng"]},
        "creatives": ["rm2023-vote-l", "rm2023-vote-p"],
    })
}

/// A JS string literal.
fn lit(s: &str) -> String {
    json!(s).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_make_check_forecast_save_and_submit_a_campaign() {
    let env = TestEnv::spawn(None).await;
    let base = env.http_url();
    let token = env.admin_token();
    let http = reqwest::Client::new();
    let (status, body) = send_json(
        http.post(format!("{base}/api/v1/users"))
            .bearer_auth(&token)
            .json(&json!({"name": "sara", "roles": ["staff"], "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (_driver, page) = webdriver::start(&env.tmp.path().join("chromium-campaigns")).await;
    page.window(1280, 720).await;
    page.goto(&format!("{base}/")).await;
    page.js("localStorage.setItem('signage.lang', 'en'); return true")
        .await;
    page.goto(&format!("{base}/#/campaigns")).await;
    page.log_in("sara", PASSWORD).await;

    // The list: the scenario's campaigns with their state, flight in the zone.
    page.wait_js(
        "the campaign list",
        "const r = document.querySelector('#campaigns tr[data-id=\"civility-rush-hour\"]'); \
         return !!r && r.textContent.includes('(Asia/Shanghai)') && r.dataset.state === 'live'",
    )
    .await;
    page.assert_accessible("the campaign list").await;
    page.keep("campaigns").await;

    // The editor: a bad crontab is refused by the server, beside the dayparts.
    page.click("#new-campaign").await;
    page.wait_js(
        "the editor",
        "return !!document.querySelector('#campaign-form #f-id') && \
         document.querySelectorAll('#creatives input[name=creative]').length > 10",
    )
    .await;
    page.type_into("#f-id", "ui-winter").await;
    page.type_into("#f-name", "冬季文明出行").await;
    page.type_into("#f-weight", "2").await;
    page.js(
        "for (const [id, v] of [['#f-flight_start', '2023-12-18T00:00'], ['#f-flight_end', '2023-12-21T00:00']]) { \
           const i = document.querySelector(id); i.value = v; i.dispatchEvent(new Event('input', {bubbles: true})); } \
         return true",
    )
    .await;
    page.type_into("#f-dayparts", "* 25 * * *").await;
    page.wait_js(
        "the server's message beside the dayparts",
        "return document.querySelector('#problem-dayparts').textContent.includes('hour field \"25\"') && \
         !!document.querySelector('#validation li[data-field=\"dayparts[0]\"]') && \
         document.querySelector('#f-dayparts').getAttribute('aria-invalid') === 'true'",
    )
    .await;

    // Fixed: the dayparts in words, the problem gone.
    page.type_into("#f-dayparts", "* 7-8 * * 1-5\n0 9,17 * * *")
        .await;
    page.wait_js(
        "the dayparts in words",
        "const li = [...document.querySelectorAll('#dayparts-text li')].map(l => l.textContent); \
         return li.length === 2 && li[0] === 'every minute from 07:00 to 08:59, Monday to Friday' && \
           li[1] === 'at 09:00 and 17:00, every day' && \
           document.querySelector('#problem-dayparts').textContent === ''",
    )
    .await;

    // Targets and creatives.
    page.click("#districts input[value=dongcheng]").await;
    page.click("input[name=venue_type][value=\"transit.subway\"]")
        .await;
    page.click("input[name=creative][value=\"rm2023-vote-l\"]")
        .await;
    page.click("input[name=creative][value=\"rm2023-vote-p\"]")
        .await;
    page.wait_js(
        "the checks to pass",
        "const ok = document.querySelector('#validation p.ok'); return !!ok && Number(ok.dataset.screens) > 0",
    )
    .await;

    // The forecast: its figures are the API's for the same campaign.
    let (status, forecast) = send_json(
        http.post(format!("{base}/api/v1/forecast"))
            .bearer_auth(&token)
            .json(&campaign()),
    )
    .await;
    assert_eq!(status, 200, "{forecast}");
    let dongcheng = forecast["by_district"]
        .as_array()
        .and_then(|d| d.iter().find(|r| r["id"] == "dongcheng"))
        .expect("dongcheng in the forecast");
    let ours = forecast["by_campaign"]
        .as_array()
        .and_then(|d| d.iter().find(|r| r["id"] == "ui-winter"))
        .expect("the draft in the forecast");
    assert!(ours["with"].as_u64().unwrap_or(0) > 0, "{forecast}");
    assert_eq!(
        dongcheng["campaign"], ours["with"],
        "all its plays are in dongcheng"
    );
    page.wait_js(
        "the forecast",
        &format!(
            "const d = document.querySelector('#forecast-districts tr[data-id=\"dongcheng\"] td.with'); \
             const o = document.querySelector('#forecast-districts tr[data-id=\"dongcheng\"] td.ours'); \
             const c = document.querySelector('#forecast-campaigns tr[data-id=\"ui-winter\"] td.with'); \
             return !!d && d.textContent === {} && !!o && o.textContent === {} && !!c && c.textContent === {} && \
               document.querySelector('#forecast-head').dataset.screens === {}",
            lit(&dongcheng["with"].to_string()),
            lit(&dongcheng["campaign"].to_string()),
            lit(&ours["with"].to_string()),
            lit(&forecast["screens"].to_string()),
        ),
    )
    .await;
    page.assert_accessible("the editor").await;
    page.js("window.scrollTo(0, 0); return true").await;
    page.keep("campaign-editor").await;

    // Saved (a draft), then submitted.
    page.click("#save").await;
    page.wait_js(
        "the saved draft",
        "return location.hash === '#/campaigns/ui-winter' && \
         document.querySelector('#campaign-state')?.dataset.state === 'draft' && \
         !!document.querySelector('#f-id') && document.querySelector('#f-id').readOnly",
    )
    .await;
    page.wait_js(
        "the checks of the saved campaign",
        "return !!document.querySelector('#validation p.ok')",
    )
    .await;
    page.click("#submit").await;
    page.wait_js(
        "the submission",
        "return document.querySelector('#campaign-state').dataset.state === 'submitted' && \
         document.querySelector('#campaign-said').textContent === 'submitted for approval'",
    )
    .await;
    let (status, stored) = send_json(
        http.get(format!("{base}/api/v1/campaigns/ui-winter"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["approval"]["status"], "submitted", "{stored}");
    assert_eq!(stored["approval"]["submitted_by"], "sara", "{stored}");
    let spec = &stored["spec"];
    let want = campaign();
    for key in ["id", "name", "priority", "weight", "dayparts", "target"] {
        assert_eq!(spec[key], want[key], "{key}: {stored}");
    }
    let mut creatives: Vec<&str> = spec["creatives"]
        .as_array()
        .expect("creatives")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    creatives.sort_unstable();
    assert_eq!(creatives, ["rm2023-vote-l", "rm2023-vote-p"]);
    for (key, want) in [
        ("start", "2023-12-18T00:00:00+08:00"),
        ("end", "2023-12-21T00:00:00+08:00"),
    ] {
        let got = chrono::DateTime::parse_from_rfc3339(spec["flight"][key].as_str().unwrap_or(""))
            .expect("an RFC 3339 flight");
        let want = chrono::DateTime::parse_from_rfc3339(want).expect("want");
        assert_eq!(got, want, "flight {key}");
    }

    // The calendar: its week, by venue type, with the dayparts in words.
    page.goto(&format!(
        "{base}/#/calendar?view=week&by=type&date=2023-12-18"
    ))
    .await;
    page.wait_js(
        "the week",
        "const bar = document.querySelector('#calendar tr[data-id=\"ui-winter\"][data-group=\"transit.subway.platform\"] td.cal-bar'); \
         return !!bar && bar.colSpan === 3 && bar.textContent.includes('every minute from 07:00 to 08:59, Monday to Friday') && \
           document.querySelector('#calendar').dataset.view === 'week'",
    )
    .await;
    page.assert_accessible("the calendar").await;
    page.keep("calendar").await;
    page.click("#cal-month").await;
    page.wait_js(
        "the month",
        "const t = document.querySelector('#calendar'); \
         return !!t && t.dataset.view === 'month' && t.querySelectorAll('thead th.cal-day').length === 31 && \
           t.querySelector('tr[data-id=\"ui-winter\"] td.cal-bar')?.colSpan === 3",
    )
    .await;
    page.click("#cal-by-district").await;
    page.wait_js(
        "the month by district",
        "return !!document.querySelector('#calendar[data-by=\"district\"] tr[data-id=\"ui-winter\"][data-group=\"dongcheng\"]') && \
         !document.querySelector('#calendar tr[data-id=\"ui-winter\"][data-group=\"haidian\"]')",
    )
    .await;
    page.click("#cal-next").await;
    page.wait_js(
        "the next month",
        "return document.querySelector('#cal-range')?.textContent.startsWith('2024-01-01') && \
         !document.querySelector('#calendar tr[data-id=\"ui-winter\"]')",
    )
    .await;

    // Rejected by an approver: the reason in the list and in the editor.
    let (status, body) = send_json(
        http.post(format!("{base}/api/v1/campaigns/ui-winter/reject"))
            .bearer_auth(&token)
            .json(&json!({"reason": "the slogan is too small"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    page.goto(&format!("{base}/#/campaigns?state=rejected"))
        .await;
    page.wait_js(
        "the rejection in the list, filtered",
        "const r = document.querySelector('#campaigns tr[data-id=\"ui-winter\"]'); \
         const shown = [...document.querySelectorAll('#campaigns tbody tr')].filter(r => !r.hidden); \
         return !!r && r.dataset.state === 'rejected' && shown.length === 1 && shown[0] === r && \
           r.querySelector('.rejection')?.textContent.includes('the slogan is too small')",
    )
    .await;
    page.click("#campaigns tr[data-id=\"ui-winter\"] a").await;
    page.wait_js(
        "the rejection in the editor",
        "const r = document.querySelector('#rejection'); \
         return !!r && !r.hidden && r.textContent.includes('the slogan is too small') && \
           document.querySelector('#campaign-state').dataset.state === 'rejected'",
    )
    .await;

    // An approver reads the editor: every control disabled, no save, the dayparts in words.
    let (status, body) = send_json(
        http.post(format!("{base}/api/v1/users"))
            .bearer_auth(&token)
            .json(&json!({"name": "ann", "roles": ["approver"], "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    page.click("#logout").await;
    page.log_in("ann", PASSWORD).await;
    page.goto(&format!("{base}/#/campaigns/ui-winter")).await;
    page.wait_js(
        "the approver's read-only editor",
        "const f = document.querySelector('#campaign-form'); \
         return !!f && !document.querySelector('#save') && \
           [...f.querySelectorAll('input, select, textarea')].every(c => c.disabled) && \
           document.querySelector('#districts input[value=dongcheng]')?.checked && \
           document.querySelector('#dayparts-text li')?.textContent === 'every minute from 07:00 to 08:59, Monday to Friday'",
    )
    .await;
    page.close().await;
    env.stop().await;
}

/// The editor's dry run says what a save says: the same field and message for a refusal,
/// nothing stored, and for a campaign a save accepts, the screens its forecast plans.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_says_what_a_save_would() {
    let env = TestEnv::spawn(None).await;
    let base = env.http_url();
    let token = env.admin_token();
    let http = reqwest::Client::new();
    let post = |path: &str, body: &Value| {
        http.post(format!("{base}/api/v1{path}"))
            .bearer_auth(&token)
            .json(body)
    };

    // Refusals: each the save's own, beside its field; nothing stored.
    let mut bad_cron = campaign();
    bad_cron["dayparts"] = json!(["* 7-8 * * 1-5", "* 25 * * *"]);
    let mut no_screen = campaign();
    no_screen["target"] = json!({"districts": ["nowhere"]});
    let mut unknown_creative = campaign();
    unknown_creative["creatives"] = json!(["no-such-creative"]);
    for (body, field) in [
        (&bad_cron, "dayparts[1]"),
        (&no_screen, "target"),
        (&unknown_creative, "creatives[0]"),
    ] {
        let (status, v) = send_json(post("/campaigns/validate", body)).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["problems"][0]["field"], field, "{v}");
        let (status, saved) = send_json(post("/campaigns", body)).await;
        assert_eq!(status, 400, "{saved}");
        assert_eq!(saved["error"]["field"], field, "{saved}");
        let message = v["problems"][0]["message"].as_str().unwrap_or("?");
        assert!(
            saved["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(message),
            "{saved} / {v}"
        );
    }
    let (_, v) = send_json(post("/campaigns/validate", &bad_cron)).await;
    assert_eq!(
        v["dayparts"][0]["en"],
        "every minute from 07:00 to 08:59, Monday to Friday"
    );
    assert_eq!(v["dayparts"][1]["en"], Value::Null);

    // A create of a taken id, an edit of a missing one.
    let mut taken = campaign();
    taken["id"] = json!("rm2023-w51");
    let (_, v) = send_json(post("/campaigns/validate?new=true", &taken)).await;
    assert_eq!(v["problems"][0]["field"], "id", "{v}");
    assert!(v["problems"][0]["message"]
        .as_str()
        .unwrap_or("")
        .contains("already exists"));
    let (_, v) = send_json(post("/campaigns/validate?new=false", &campaign())).await;
    assert_eq!(v["problems"][0]["field"], "id", "{v}");

    // Accepted: no problems, the forecast's screens; still nothing stored.
    let (status, v) = send_json(post("/campaigns/validate", &campaign())).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["problems"], json!([]), "{v}");
    assert_eq!(v["districts"], json!(["dongcheng"]), "{v}");
    let (_, forecast) = send_json(post("/forecast", &campaign())).await;
    assert_eq!(v["screens"], forecast["screens"], "{v} / {forecast}");
    let (status, _) = send_json(
        http.get(format!("{base}/api/v1/campaigns/ui-winter"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, 404, "a dry run stores nothing");

    // The words of the dayparts, for the calendar.
    let (status, words) = send_json(post(
        "/dayparts/text",
        &json!({"dayparts": ["30-59 17 * * 1-5", "nonsense"]}),
    ))
    .await;
    assert_eq!(status, 200, "{words}");
    assert_eq!(words[0]["zh"], "周一至周五 17:30至17:59 每分钟");
    assert_eq!(words[1]["en"], Value::Null);
    env.stop().await;
}
