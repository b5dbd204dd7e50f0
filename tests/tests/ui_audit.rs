//! The auditor's pages in a real browser (Debian's Chromium over WebDriver) on a server
//! whose ledger holds signed plays: a short simulation with two real agents (a Xicheng
//! metro screen and a Daxing bus screen, across the hour when Daxing's emergency starts)
//! fills a store, and a server is started on it. An auditor logs in; every figure the
//! pages show is checked against the API for the same window: the venue report, the
//! drill-down to one screen's plays, the hourly chart against the series endpoint and the
//! report's totals, the CSV export against the rows shown, the change log's import (its
//! field diff, paging with "More", the kind filter), and the audit run from the page
//! against `GET /api/v1/audit/last`.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use server::app::{self, MqttTarget};
use server::sim::{simulate, SimOptions};
use server::store::OpenMode;
use tests::{send_json, webdriver};
use tokio_util::sync::CancellationToken;

const FROM: &str = "2023-12-20T08:50:00+08:00";
const TO: &str = "2023-12-20T09:05:00+08:00";
const SCREEN: &str = "bj-metro-xidan-s1";
const VENUE: &str = "bj-metro-xidan";
const SCREENS: [&str; 2] = [SCREEN, "bj-bus-daxing-huangcun-s1"];
const PASSWORD: &str = "audrey's long password";

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// GET `path` (with `query`) as the auditor; the body as JSON.
async fn get(base: &str, token: &str, path: &str, query: &[(&str, &str)]) -> Value {
    let (status, body) = send_json(
        reqwest::Client::new()
            .get(format!("{base}{path}"))
            .query(query)
            .bearer_auth(token),
    )
    .await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// The page's report rows: (data-id, the text of every cell).
const ROWS_JS: &str = "return [...document.querySelectorAll('#report tbody tr[data-id]')]\
    .map(tr => [tr.dataset.id, [...tr.children].map(c => c.textContent.trim())])";

fn page_rows(v: &Value) -> Vec<(String, Vec<String>)> {
    v.as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            let cells = r[1]
                .as_array()
                .expect("cells")
                .iter()
                .map(|c| c.as_str().unwrap_or_default().to_owned())
                .collect();
            (r[0].as_str().unwrap_or_default().to_owned(), cells)
        })
        .collect()
}

fn n(s: &str) -> u64 {
    s.parse().unwrap_or_else(|_| panic!("{s:?} is not a count"))
}

/// A 1280x720 screenshot in target/screenshots; with `SIGNAGE_DOCS_SCREENSHOTS` set, also
/// the README's copy in docs/screenshots (a plain run leaves the source tree alone).
async fn keep(page: &webdriver::Session, name: &str) {
    page.window(1280, 720).await;
    page.keep(name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_checks_reports_changes_and_the_audit_in_the_browser() {
    // A store with plays: the simulation, then a server on it.
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let mut opts = SimOptions::new(
        tests::beijing(),
        t(FROM),
        t(TO),
        data.clone(),
        tests::agent_bin(),
    );
    opts.screens = SCREENS.iter().map(|s| s.to_string()).collect();
    opts.topics = playlists::wire::Topics::new("ui-audit/v1");
    let outcome = simulate(opts, CancellationToken::new())
        .await
        .expect("simulation");
    assert!(
        outcome.delivered > 20,
        "too few plays: {}",
        outcome.delivered
    );
    drop(outcome);

    let store = server::store::open(&data, OpenMode::Existing).expect("the simulated store");
    let logins = server::broker::Logins::of(&store).expect("broker logins");
    let broker = server::broker::start(None, logins)
        .await
        .expect("embedded broker");
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let handle = app::start_with(
        store.clone(),
        MqttTarget {
            host: "127.0.0.1".into(),
            port: broker.addr.port(),
            shared_subscription: false,
            tls: None,
        },
        listener,
        playlists::wire::Topics::default(),
        app::Options::default(),
        shutdown.clone(),
    )
    .await
    .expect("server");
    let base = format!("http://{}", handle.http_addr);
    let admin = std::fs::read_to_string(store.dir().join(server::admin::FILE))
        .expect("admin token")
        .trim()
        .to_owned();
    let (status, body) = send_json(
        reqwest::Client::new()
            .post(format!("{base}/api/v1/users"))
            .bearer_auth(&admin)
            .json(&json!({"name": "audrey", "roles": ["auditor"], "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().expect("token").to_owned();

    let (_driver, page) = webdriver::start(&tmp.path().join("chromium-audit")).await;
    page.goto(&format!("{base}/")).await;
    page.log_in("audrey", PASSWORD).await;

    // The venue report: the default window is the simulated day in Beijing time; every
    // row's planned and delivered are the API's for the same window.
    page.goto(&format!("{base}/#/reports?by=venues")).await;
    page.wait_js(
        "the venue report",
        "return document.querySelectorAll('#report tbody tr[data-id]').length > 10 && \
         document.querySelector('#chart-hour g.bucket') !== null",
    )
    .await;
    let window = page
        .js("const d = document.querySelector('#report').dataset; return [d.from, d.to, d.zone]")
        .await;
    let (from, to) = (
        window[0].as_str().expect("from").to_owned(),
        window[1].as_str().expect("to").to_owned(),
    );
    assert_eq!(window[2], "Asia/Shanghai");
    assert_eq!(t(&from), t("2023-12-20T00:00:00+08:00"));
    assert_eq!(t(&to), t("2023-12-21T00:00:00+08:00"));
    let span = [("from", from.as_str()), ("to", to.as_str())];
    let zone_named = page
        .js("return document.querySelector('#report-zone').textContent")
        .await;
    assert!(
        zone_named
            .as_str()
            .unwrap_or_default()
            .contains("Asia/Shanghai"),
        "{zone_named}"
    );
    let api_venues = get(
        &base,
        &token,
        "/api/v1/reports/venues",
        &[span[0], span[1], ("format", "json")],
    )
    .await;
    let shown = page_rows(&page.js(ROWS_JS).await);
    let api_rows: Vec<(String, u64, u64)> = api_venues
        .as_array()
        .expect("venue rows")
        .iter()
        .map(|r| {
            (
                r["venue_id"].as_str().unwrap_or_default().to_owned(),
                r["planned"].as_u64().expect("planned"),
                r["delivered"].as_u64().expect("delivered"),
            )
        })
        .collect();
    let page_figures: Vec<(String, u64, u64)> = shown
        .iter()
        .map(|(id, c)| (id.clone(), n(&c[3]), n(&c[4])))
        .collect();
    assert_eq!(page_figures, api_rows);
    let (planned, delivered) = api_rows.iter().fold((0, 0), |(p, d), r| (p + r.1, d + r.2));
    assert!(
        delivered > 20 && planned > delivered,
        "{planned} {delivered}"
    );
    // Names, not just ids: Xidan's row is named.
    let xidan = shown
        .iter()
        .find(|(id, _)| id == VENUE)
        .expect("xidan's row");
    assert_eq!(xidan.1[0], "Xidan Station");

    // The hourly chart's bars add up to the series endpoint's sums and the report's
    // totals; so do the daily chart's.
    let series = get(
        &base,
        &token,
        "/api/v1/reports/series",
        &[
            span[0],
            span[1],
            ("bucket", "hour"),
            ("zone", "Asia/Shanghai"),
        ],
    )
    .await;
    assert_eq!(series["buckets"].as_array().expect("buckets").len(), 24);
    let sum = |v: &Value, k: &str| -> u64 {
        v["buckets"]
            .as_array()
            .expect("buckets")
            .iter()
            .map(|b| b[k].as_u64().expect("count"))
            .sum()
    };
    assert_eq!(
        (sum(&series, "planned"), sum(&series, "delivered")),
        (planned, delivered)
    );
    // The same totals from buckets off the hour (Kolkata is +05:30) and, for one
    // campaign, the campaign report's row: both come from one pass over the records.
    let kolkata = get(
        &base,
        &token,
        "/api/v1/reports/series",
        &[
            span[0],
            span[1],
            ("bucket", "hour"),
            ("zone", "Asia/Kolkata"),
        ],
    )
    .await;
    assert_eq!(
        (sum(&kolkata, "planned"), sum(&kolkata, "delivered")),
        (planned, delivered)
    );
    let campaigns = get(
        &base,
        &token,
        "/api/v1/reports/campaigns",
        &[span[0], span[1], ("format", "json")],
    )
    .await;
    let busiest = campaigns
        .as_array()
        .expect("campaign rows")
        .iter()
        .max_by_key(|r| r["delivered"].as_u64())
        .expect("a campaign")
        .clone();
    let one = get(
        &base,
        &token,
        "/api/v1/reports/series",
        &[
            span[0],
            span[1],
            ("bucket", "day"),
            ("campaign", busiest["campaign_id"].as_str().expect("id")),
        ],
    )
    .await;
    assert_eq!(
        (json!(sum(&one, "planned")), json!(sum(&one, "delivered"))),
        (busiest["planned"].clone(), busiest["delivered"].clone()),
        "{busiest}"
    );
    for chart in ["chart-hour", "chart-day"] {
        let bars = page
            .js(&format!(
                "const g = [...document.querySelectorAll('#{chart} g.bucket')]; \
                 return [g.length, g.reduce((a, b) => a + Number(b.dataset.planned), 0), \
                         g.reduce((a, b) => a + Number(b.dataset.delivered), 0), \
                         document.querySelectorAll('#{chart} rect.bar title').length]"
            ))
            .await;
        assert_eq!(bars[1], json!(planned), "{chart}: {bars}");
        assert_eq!(bars[2], json!(delivered), "{chart}: {bars}");
        assert_eq!(
            bars[3],
            json!(bars[0].as_u64().unwrap() * 2),
            "a title per bar"
        );
    }
    let hour_bars = page
        .js("return document.querySelectorAll('#chart-hour g.bucket').length")
        .await;
    assert_eq!(hour_bars, json!(24));

    // The CSV made in the page (what the download link holds: the module keeps it) is
    // exactly the rows shown, header first.
    page.click("#export-csv").await;
    page.wait_js(
        "the export link",
        "return !document.querySelector('#export-download').hidden",
    )
    .await;
    let csv = page
        .js("return import('/ui/auditor.js').then(m => m.lastExport().text)")
        .await;
    let csv = csv.as_str().expect("csv text");
    let mut lines = csv.lines();
    let header = page
        .js("return [...document.querySelectorAll('#report thead th')].map(h => h.textContent).join(',')")
        .await;
    assert_eq!(lines.next(), header.as_str());
    let csv_rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect();
    let shown_cells: Vec<Vec<String>> = shown.iter().map(|(_, c)| c.clone()).collect();
    assert_eq!(csv_rows, shown_cells);
    // The server's CSV for the same query is linked.
    let server_csv = page
        .js("return document.querySelector('#export-server').getAttribute('href')")
        .await;
    assert!(
        server_csv
            .as_str()
            .unwrap_or_default()
            .starts_with("/api/v1/reports/venues?"),
        "{server_csv}"
    );
    page.assert_accessible("the venue report").await;
    keep(&page, "reports").await;

    // The drill-down: all districts -> Xicheng -> Xidan -> its screen -> its plays.
    page.goto(&format!("{base}/#/reports")).await;
    let district = store
        .snapshot()
        .expect("snapshot")
        .venues
        .get(VENUE)
        .and_then(|v| v.spec.district.clone())
        .expect("xidan's district");
    for (level, id) in [
        ("districts", district.as_str()),
        ("venues", VENUE),
        ("screens", SCREEN),
    ] {
        let css = format!("#report[data-kind={level}] tr[data-id=\"{id}\"] a");
        page.wait_js(
            &format!("{level}: the row of {id}"),
            &format!("return document.querySelector('{css}') !== null"),
        )
        .await;
        page.click(&css).await;
    }
    page.wait_js(
        "the screen's plays",
        "return document.querySelector('#report[data-kind=plays]') !== null",
    )
    .await;
    let plays_shown = page
        .js("return document.querySelectorAll('#report tbody tr[data-id]').length")
        .await;
    let api_plays = get(
        &base,
        &token,
        "/api/v1/reports/plays",
        &[span[0], span[1], ("screen", SCREEN), ("format", "json")],
    )
    .await;
    let api_plays = api_plays.as_array().expect("plays");
    assert!(api_plays.len() > 10, "{}", api_plays.len());
    assert!(api_plays.iter().all(|p| p["screen_id"] == SCREEN));
    assert_eq!(plays_shown, json!(api_plays.len()));
    let crumbs = page
        .js("return [...document.querySelectorAll('#drill li')].map(l => l.textContent)")
        .await;
    assert_eq!(crumbs.as_array().expect("crumbs").len(), 4, "{crumbs}");
    // Times in the venue's zone, named.
    let first = page
        .js("return document.querySelector('#report tbody tr[data-id] td').textContent")
        .await;
    assert!(
        first
            .as_str()
            .unwrap_or_default()
            .ends_with("(Asia/Shanghai)"),
        "{first}"
    );
    // The breadcrumb goes back to the venue's screens.
    page.click("#drill li:nth-child(3) a").await;
    page.wait_js(
        "the venue's screens again",
        &format!("return document.querySelector('#report[data-kind=screens] tr[data-id=\"{SCREEN}\"]') !== null"),
    )
    .await;
    page.assert_accessible("the drill-down").await;

    // The change log lists the import; a row opens to its field diff.
    page.goto(&format!("{base}/#/changes")).await;
    page.wait_js(
        "the change log",
        "return document.querySelectorAll('#changes tbody tr[data-id]').length > 0",
    )
    .await;
    let import = page
        .js(
            "return [...document.querySelectorAll('#changes tbody tr[data-id]')]\
             .find(tr => tr.textContent.includes('import of scenario'))?.dataset.id ?? null",
        )
        .await;
    assert!(import.is_string(), "no import in the change log");
    page.click(&format!(
        "#changes tr[data-id=\"{}\"] button.toggle",
        import.as_str().unwrap()
    ))
    .await;
    page.wait_js(
        "the import's diff",
        "return [...document.querySelectorAll('#changes tr.diff-row')].some(r => !r.hidden && \
         r.querySelector('table.fields td.after') !== null)",
    )
    .await;
    page.assert_accessible("the change log").await;
    keep(&page, "changes").await;
    // Two at a time: "More" adds the next page; a kind narrows the log.
    page.goto(&format!("{base}/#/changes?limit=2")).await;
    page.wait_js(
        "the first page of two",
        "return document.querySelectorAll('#changes tbody tr[data-id]').length === 2 && \
         !document.querySelector('#changes-more').hidden",
    )
    .await;
    page.click("#changes-more").await;
    page.wait_js(
        "the next page",
        "return document.querySelectorAll('#changes tbody tr[data-id]').length > 2",
    )
    .await;
    let numbers = page
        .js("return [...document.querySelectorAll('#changes tbody tr[data-id]')].map(r => Number(r.dataset.id))")
        .await;
    let numbers: Vec<u64> = serde_json::from_value(numbers).expect("numbers");
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
    page.goto(&format!("{base}/#/changes?entity=user")).await;
    page.wait_js(
        "the users' changes",
        "return [...document.querySelectorAll('#changes tbody tr[data-id]')].some(r => r.textContent.includes('user audrey'))",
    )
    .await;
    let kinds = page
        .js("return [...document.querySelectorAll('#changes tbody tr[data-id]')].every(r => r.children[3].textContent.startsWith('user'))")
        .await;
    assert_eq!(kinds, json!(true));

    // The audit: never run, then run from the page: intact, and the API agrees.
    let (status, _) = send_json(
        reqwest::Client::new()
            .get(format!("{base}/api/v1/audit/last"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, 404);
    page.goto(&format!("{base}/#/audit")).await;
    page.wait_js(
        "the audit page, never run",
        "return document.querySelector('#audit-last .verdict[data-verdict=never]') !== null",
    )
    .await;
    page.click("#audit-run").await;
    page.wait_js(
        "the audit's verdict",
        "return document.querySelector('#audit-last .verdict[data-verdict=intact]') !== null",
    )
    .await;
    let said = page
        .js("return document.querySelector('#audit-last').textContent")
        .await;
    assert!(
        said.as_str().unwrap_or_default().contains("intact"),
        "{said}"
    );
    let last = get(&base, &token, "/api/v1/audit/last", &[]).await;
    assert_eq!(last["intact"], true, "{last}");
    assert_eq!(last["by"], "audrey");
    assert!(last["verdict"]["records"].as_u64().unwrap_or_default() > 20);
    assert!(
        said.as_str()
            .unwrap_or_default()
            .contains("audited 2 screens"),
        "{said}"
    );
    page.assert_accessible("the audit page").await;
    keep(&page, "audit").await;

    page.close().await;
    shutdown.cancel();
    handle.wait().await;
}
