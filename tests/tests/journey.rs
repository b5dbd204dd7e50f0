//! One campaign through every role's pages, in a real browser (Debian's Chromium over
//! WebDriver) against a real server (embedded broker, redb store with the Beijing scenario,
//! HTTP) and a real agent: a staff member uploads a creative, makes a campaign in the
//! editor, reads its forecast and submits both; an approver rejects the campaign with a
//! reason; the staff member reads the reason in the editor, fixes the campaign and submits
//! it again; the approver approves the creative and the campaign; the preview of the
//! targeted screen shows it; the screen's agent plays it and reports the plays; the
//! auditor's report shows them delivered, as the API counts them. Screenshots of each step
//! are kept in target/screenshots (`journey-*`).

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Asia::Shanghai;
use serde_json::json;
use tests::agent_proc::{scaled_args, wait_for, AgentProc};
use tests::{webdriver, TestEnv};

const SCREEN: &str = "bj-metro-xidan-s1";
const VENUE: &str = "bj-metro-xidan";
const CAMPAIGN: &str = "journey";
const CREATIVE: &str = "journey-still";
const STAFF: (&str, &str) = ("sara", "sara's long enough password");
const APPROVER: (&str, &str) = ("anna", "anna approves with care");
const AUDITOR: (&str, &str) = ("audrey", "audrey counts every play");

/// Logs out (when someone is logged in) and logs `who` in.
async fn as_user(page: &webdriver::Session, who: (&str, &str)) {
    let logged_in = page
        .js("return !document.querySelector('#app').hidden")
        .await;
    if logged_in == json!(true) {
        page.click("#logout").await;
    }
    page.log_in(who.0, who.1).await;
}

/// Axe finds no serious violation; the page is kept as `journey-NAME`.
async fn step(page: &webdriver::Session, name: &str) {
    page.assert_accessible(name).await;
    page.screenshot(&format!("journey-{name}")).await;
}

/// Sets a `datetime-local` input as a person would, with the events the page listens to.
async fn set_local(page: &webdriver::Session, css: &str, value: &str) {
    page.js(&format!(
        "const i = document.querySelector({css}); i.value = {value}; \
         i.dispatchEvent(new Event('input', {{bubbles: true}})); \
         i.dispatchEvent(new Event('change', {{bubbles: true}})); return true",
        css = json!(css),
        value = json!(value),
    ))
    .await;
}

/// The next 10:00 in Beijing at least an hour after `now`: the metro is open then.
fn next_morning(now: DateTime<Utc>) -> DateTime<Utc> {
    let local = (now + TimeDelta::hours(1)).with_timezone(&Shanghai);
    let ten = Shanghai
        .from_local_datetime(&local.date_naive().and_hms_opt(10, 0, 0).expect("10:00"))
        .single()
        .expect("Beijing has no DST");
    let ten = if ten < local {
        ten + TimeDelta::days(1)
    } else {
        ten
    };
    ten.with_timezone(&Utc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_from_upload_to_proof_of_play_in_the_browser() {
    let env = TestEnv::spawn(None).await;
    let base = env.http_url();
    let admin = env.admin_token();
    let staff = tests::add_user(&base, &admin, STAFF.0, &["staff"], STAFF.1).await;
    tests::add_user(&base, &admin, APPROVER.0, &["approver"], APPROVER.1).await;
    let auditor = tests::add_user(&base, &admin, AUDITOR.0, &["auditor"], AUDITOR.1).await;
    let now = Utc::now();
    let plays_at = next_morning(now);
    let (_driver, page) = webdriver::start(&env.tmp.path().join("chromium-journey")).await;
    page.window(1280, 720).await;
    page.goto(&format!("{base}/")).await;

    // Staff upload a still and submit it.
    as_user(&page, STAFF).await;
    page.goto(&format!("{base}/#/creatives")).await;
    page.wait_js(
        "the upload form",
        "return !!document.querySelector('form#upload')",
    )
    .await;
    let jpeg = tests::beijing()
        .join("media/civility-riding.jpg")
        .canonicalize()
        .expect("the scenario's JPEG");
    let input = page.element("form#upload input[name=file]").await;
    page.post(
        &format!("/element/{input}/value"),
        json!({"text": jpeg.to_str().expect("a UTF-8 path")}),
    )
    .await;
    page.type_into("form#upload input[name=id]", CREATIVE).await;
    page.type_into("form#upload input[name=title]", "文明乘车 全程")
        .await;
    page.type_into("form#upload input[name=duration_seconds]", "15")
        .await;
    page.click("form#upload button.primary").await;
    page.wait_js(
        "the upload, its progress full",
        &format!(
            "const c = document.querySelector('#creatives [data-id=\"{CREATIVE}\"]'); \
             return !!c && c.dataset.state === 'draft' && \
               document.querySelector('#upload-progress').value === 100"
        ),
    )
    .await;
    page.click(&format!("[data-submit=\"{CREATIVE}\"]")).await;
    page.wait_js(
        "the creative submitted",
        &format!(
            "const c = document.querySelector('#creatives [data-id=\"{CREATIVE}\"]'); \
             return !!c && c.dataset.state === 'submitted'"
        ),
    )
    .await;
    step(&page, "1-creatives").await;

    // The campaign, made in the editor for the Xidan platform's two screens: the server's
    // checks pass, the forecast has it.
    page.goto(&format!("{base}/#/campaigns/new")).await;
    page.wait_js(
        "the editor",
        &format!(
            "return !!document.querySelector('#f-id') && \
             !!document.querySelector('input[name=creative][value=\"{CREATIVE}\"]')"
        ),
    )
    .await;
    page.type_into("#f-id", CAMPAIGN).await;
    page.type_into("#f-name", "文明乘车 全程测试").await;
    page.type_into("#f-weight", "4").await;
    let local = |t: DateTime<Utc>| {
        t.with_timezone(&Shanghai)
            .format("%Y-%m-%dT%H:%M")
            .to_string()
    };
    set_local(&page, "#f-flight_start", &local(now - TimeDelta::hours(1))).await;
    set_local(&page, "#f-flight_end", &local(now + TimeDelta::days(3))).await;
    page.type_into("#f-dayparts", "* * * * *").await;
    // The venue list is folded: open it, then tick the venue.
    page.js("document.querySelector('#venues').closest('details').querySelector('summary').scrollIntoView(); return true")
        .await;
    page.click("#targeting details:has(#venues) > summary")
        .await;
    page.js(&format!(
        "document.querySelector('input[name=venue][value=\"{VENUE}\"]').scrollIntoView(); return true"
    ))
    .await;
    page.click(&format!("input[name=venue][value=\"{VENUE}\"]"))
        .await;
    page.click(&format!("input[name=creative][value=\"{CREATIVE}\"]"))
        .await;
    page.wait_js(
        "the server's checks to pass",
        "const ok = document.querySelector('#validation p.ok'); return !!ok && Number(ok.dataset.screens) === 2",
    )
    .await;
    page.wait_js(
        "the forecast with the campaign",
        &format!(
            "const c = document.querySelector('#forecast-campaigns tr[data-id=\"{CAMPAIGN}\"] td.with'); \
             return !!c && Number(c.textContent) > 0"
        ),
    )
    .await;
    let forecast = page
        .js(&format!(
            "return Number(document.querySelector('#forecast-campaigns tr[data-id=\"{CAMPAIGN}\"] td.with').textContent)"
        ))
        .await;
    step(&page, "2-editor").await;
    page.click("#save").await;
    page.wait_js(
        "the saved draft",
        &format!(
            "return location.hash === '#/campaigns/{CAMPAIGN}' && \
             document.querySelector('#campaign-state')?.dataset.state === 'draft' && \
             !!document.querySelector('#validation p.ok')"
        ),
    )
    .await;
    page.click("#submit").await;
    page.wait_js(
        "the submission",
        "return document.querySelector('#campaign-state').dataset.state === 'submitted'",
    )
    .await;
    let stored = tests::get_ok(&base, &staff, &format!("/campaigns/{CAMPAIGN}")).await;
    assert_eq!(stored["approval"]["status"], "submitted", "{stored}");
    assert_eq!(
        stored["spec"]["target"]["venues"],
        json!([VENUE]),
        "{stored}"
    );
    assert_eq!(stored["spec"]["creatives"], json!([CREATIVE]), "{stored}");

    // The approver rejects it with a reason.
    as_user(&page, APPROVER).await;
    page.goto(&format!("{base}/#/approvals")).await;
    page.wait_js(
        "the queue with both",
        &format!(
            "return !!document.querySelector('#queue [data-kind=\"campaign\"][data-id=\"{CAMPAIGN}\"]') && \
             !!document.querySelector('#queue [data-kind=\"creative\"][data-id=\"{CREATIVE}\"]')"
        ),
    )
    .await;
    step(&page, "3-queue").await;
    page.goto(&format!("{base}/#/approvals/campaign/{CAMPAIGN}"))
        .await;
    page.wait_js(
        "the review",
        "return !!document.querySelector('#diff') && !!document.querySelector('#reject') && \
         !!document.querySelector('#forecast-result')",
    )
    .await;
    page.type_into("#reason", "权重过高：请降到 2").await;
    page.click("#reject").await;
    page.wait_js(
        "the rejection",
        "return document.querySelector('#decision-said').textContent.includes('Rejected')",
    )
    .await;

    // Staff read the reason in the editor, fix the weight and submit again.
    as_user(&page, STAFF).await;
    page.goto(&format!("{base}/#/campaigns/{CAMPAIGN}")).await;
    page.wait_js(
        "the reason in the editor",
        "const r = document.querySelector('#rejection'); \
         return !!r && !r.hidden && r.textContent.includes('权重过高') && r.textContent.includes('anna')",
    )
    .await;
    step(&page, "4-rejected").await;
    page.type_into("#f-weight", "2").await;
    page.wait_js(
        "the checks of the fix",
        "return !!document.querySelector('#validation p.ok')",
    )
    .await;
    page.click("#save").await;
    page.wait_js(
        "the fix saved",
        "return document.querySelector('#campaign-said').textContent !== '' && \
         document.querySelector('#campaign-state')?.dataset.state === 'draft'",
    )
    .await;
    page.click("#submit").await;
    page.wait_js(
        "the second submission",
        "return document.querySelector('#campaign-state').dataset.state === 'submitted'",
    )
    .await;

    // The approver sees the fix in the diff and approves the creative, then the campaign.
    as_user(&page, APPROVER).await;
    page.goto(&format!("{base}/#/approvals/creative/{CREATIVE}"))
        .await;
    page.wait_js(
        "the creative's review",
        "return !!document.querySelector('#approve')",
    )
    .await;
    page.click("#approve").await;
    page.wait_js(
        "the creative approved",
        "return document.querySelector('#decision-said').textContent.includes('Approved')",
    )
    .await;
    page.goto(&format!("{base}/#/approvals/campaign/{CAMPAIGN}"))
        .await;
    page.wait_js(
        "the weight named in the diff since the rejection",
        "const r = document.querySelector('#diff-rejected tr[data-field=\"weight\"]'); \
         return !!r && r.dataset.change === 'changed' && !!document.querySelector('#approve')",
    )
    .await;
    step(&page, "5-review").await;
    page.click("#approve").await;
    page.wait_js(
        "the campaign approved",
        "return document.querySelector('#decision-said').textContent.includes('Approved')",
    )
    .await;
    let live = tests::get_ok(&base, &staff, &format!("/campaigns/{CAMPAIGN}")).await;
    assert_eq!(live["state"], "live", "{live}");
    assert_eq!(live["approved"]["spec"]["weight"], 2, "{live}");

    // The preview of the screen, from the morning the agent will play, shows the campaign.
    page.goto(&format!(
        "{base}/#/preview/{SCREEN}?from={}",
        plays_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    ))
    .await;
    page.wait_js(
        "the campaign in the timeline",
        &format!(
            "return document.querySelectorAll('#timeline .slot[data-campaign=\"{CAMPAIGN}\"]').length > 10"
        ),
    )
    .await;
    step(&page, "6-preview").await;

    // The agent plays it on a clock running from that morning, and reports the plays.
    let config = env.provision(SCREEN);
    let mut agent = AgentProc::new(&env.tmp.path().join("agent"), &config);
    agent.spawn(&scaled_args(plays_at, Utc::now().timestamp_millis(), 4.0));
    let ledger = env.handle.shared.ledger.clone();
    let ours = || {
        let q = server::ledger::Query {
            from: None,
            to: None,
            dimension: server::ledger::Dimension::Screen,
            venue: None,
            screen: Some(SCREEN.to_owned()),
        };
        let mut n = 0u64;
        ledger
            .plays(&q, &mut |r| {
                // Delivered plays are complete ones: on a loaded machine the x4 clock's
                // first slots may come before the media (failed) and the last is cut by
                // the agent's stop (partial).
                if r.campaign_id == CAMPAIGN
                    && r.creative_id == CREATIVE
                    && r.status == playlists::wire::PlayStatus::Complete
                {
                    n += 1;
                }
                Ok(())
            })
            .expect("the ledger's plays");
        n
    };
    wait_for(
        "complete plays of the campaign in the ledger",
        std::time::Duration::from_secs(90),
        || ours() >= 3,
        || agent.log_tail(),
    )
    .await;
    agent.terminate().await;
    let played = ours();

    // The auditor's report for that day shows them, as the API counts them.
    as_user(&page, AUDITOR).await;
    let day = plays_at.with_timezone(&Shanghai).date_naive();
    let (from, to) = (
        day.to_string(),
        day.succ_opt().expect("next day").to_string(),
    );
    page.goto(&format!(
        "{base}/#/reports?by=campaigns&zone=Asia/Shanghai&from={from}&to={to}"
    ))
    .await;
    page.wait_js(
        "the campaign's row",
        &format!("return !!document.querySelector('#report tr[data-id=\"{CAMPAIGN}\"]')"),
    )
    .await;
    let cell = page
        .js(&format!(
            "const heads = [...document.querySelectorAll('#report thead th')].map(h => h.textContent.trim()); \
             const row = document.querySelector('#report tr[data-id=\"{CAMPAIGN}\"]'); \
             return [...row.children][heads.indexOf('Delivered')].textContent.trim()"
        ))
        .await;
    let window = page
        .js("const d = document.querySelector('#report').dataset; return [d.from, d.to]")
        .await;
    let api = tests::get_ok(
        &base,
        &auditor,
        &format!(
            "/reports/campaigns?format=json&from={}&to={}",
            urlencode(window[0].as_str().expect("from")),
            urlencode(window[1].as_str().expect("to"))
        ),
    )
    .await;
    let row = api
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["campaign_id"] == CAMPAIGN)
        .unwrap_or_else(|| panic!("no {CAMPAIGN} in {api}"))
        .clone();
    assert_eq!(
        row["delivered"],
        json!(played),
        "the API counts the ledger's plays"
    );
    assert_eq!(
        cell.as_str().and_then(|c| c.parse::<u64>().ok()),
        Some(played),
        "the auditor's page shows the delivered plays: {cell}"
    );
    step(&page, "7-report").await;
    assert!(
        forecast.as_u64().unwrap_or(0) > 0,
        "the forecast: {forecast}"
    );
    page.close().await;
    env.stop().await;
}

/// `s` for a query string.
fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}
