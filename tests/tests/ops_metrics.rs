//! `GET /metrics` after real traffic: a real agent plays on the scaled clock and drains
//! its outbox, a garbage batch arrives on its proof-of-play topic, HTTP requests are
//! answered and refused. The scrape parses as Prometheus text and its numbers are what
//! happened, checked against the ledger, the fleet and the requests this test made.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use playlists::wire::Topics;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use tests::agent_proc::{scaled_args, wait_for, AgentProc};

const SCREEN: &str = "bj-metro-xidan-s1";

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// One sample: its name and labels, and its value.
type Samples = BTreeMap<(String, BTreeMap<String, String>), f64>;

/// Parses the text exposition format (what a scraper accepts): `# HELP` / `# TYPE`
/// comments, then `name{label="value",...} number` lines. Panics on anything else.
fn parse(text: &str) -> (Samples, BTreeMap<String, String>) {
    let mut samples = Samples::new();
    let mut types = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line}");
        let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|e| panic!("{line}: value {value:?}: {e}"));
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("labels end with }");
                let mut labels = BTreeMap::new();
                let mut rest = body;
                while !rest.is_empty() {
                    let (key, after) = rest.split_once("=\"").expect("label=\"value\"");
                    let mut value = String::new();
                    let mut chars = after.char_indices();
                    let end = loop {
                        match chars.next().expect("closing quote") {
                            (_, '\\') => value.push(chars.next().expect("escaped").1),
                            (i, '"') => break i,
                            (_, c) => value.push(c),
                        }
                    };
                    labels.insert(key.to_owned(), value);
                    rest = after[end + 1..].trim_start_matches(',');
                }
                (name, labels)
            }
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "metric name {name:?}"
        );
        assert!(
            samples.insert((name.to_owned(), labels), value).is_none(),
            "duplicate sample {line}"
        );
    }
    (samples, types)
}

fn get(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    *samples
        .get(&(name.to_owned(), labels.clone()))
        .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
}

async fn scrape(http: &reqwest::Client, url: &str) -> (Samples, BTreeMap<String, String>) {
    let r = http.get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    parse(&r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_scrape_parses_and_counts_what_happened() {
    let env = tests::TestEnv::spawn(None).await;
    let url = env.http_url();
    let http = reqwest::Client::new();
    // The agent serves its own metrics on a local port.
    let config = env.provision(SCREEN) + "metrics_listen = \"127.0.0.1:0\"\n";
    let mut agent = AgentProc::new(&env.tmp.path().join("agent"), &config);
    env.install(SCREEN, &mut agent).await;

    // Plays: 15 s slots at 50x, for a few seconds of real time, then a drain at night.
    agent.spawn(&scaled_args(
        t("2023-12-20T08:00:00+08:00"),
        Utc::now().timestamp_millis(),
        50.0,
    ));
    let ledger = env.handle.shared.ledger.clone();
    wait_for(
        "a few plays in the ledger",
        Duration::from_secs(60),
        || ledger.counts().unwrap().records >= 5,
        || agent.log_tail(),
    )
    .await;
    agent.terminate().await;
    let last_seq = env
        .drain(SCREEN, &mut agent, t("2023-12-21T02:00:00+08:00"))
        .await;

    // A garbage batch on the screen's proof-of-play topic: refused as malformed.
    let (user, secret) = env.server_login();
    let port: u16 = env.mqtt_url.rsplit(':').next().unwrap().parse().unwrap();
    let mut options = MqttOptions::new("metrics-test", "127.0.0.1", port);
    options.set_credentials(user, secret);
    let (client, mut events) = AsyncClient::new(options, 16);
    let driver = tokio::spawn(async move { while events.poll().await.is_ok() {} });
    client
        .publish(
            Topics::default().pop(SCREEN),
            QoS::AtLeastOnce,
            false,
            b"not a signed batch".to_vec(),
        )
        .await
        .unwrap();
    let refused = || async {
        let (s, _) = scrape(&http, &url).await;
        get(
            &s,
            "signage_pop_batches_refused_total",
            &[("reason", "malformed")],
        )
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while refused().await < 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the garbage batch was never counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    driver.abort();

    // HTTP: two health checks, a refused and an answered list, an unknown route.
    let token = env.admin_token();
    for _ in 0..2 {
        assert_eq!(
            http.get(format!("{url}/health"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let venues = format!("{url}/api/v1/venues/bj-metro-xidan");
    assert_eq!(http.get(&venues).send().await.unwrap().status(), 401);
    let answered = http.get(&venues).bearer_auth(&token).send().await.unwrap();
    assert_eq!(answered.status(), 200);
    assert_eq!(
        http.get(format!("{url}/no/such/route"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // Ready, with a reason for each verdict.
    let (status, ready) = tests::send_json(http.get(format!("{url}/ready"))).await;
    assert_eq!(
        (status, &ready["ready"]),
        (200, &serde_json::json!(true)),
        "{ready}"
    );
    assert_eq!(ready["broker"]["detail"], "connected");
    let store = ready["store"]["detail"].as_str().unwrap();
    assert!(store.ends_with("data directory writable"), "{store}");
    assert_eq!(ready["ingest"]["detail"], "0 batches waiting");

    let (s, types) = scrape(&http, &url).await;
    // Proof of play: every record the agent wrote, stored once.
    let counts = ledger.counts().unwrap();
    assert_eq!(counts.records, last_seq);
    assert_eq!(
        get(&s, "signage_plays_ingested_total", &[]),
        counts.records as f64
    );
    assert_eq!(
        get(
            &s,
            "signage_pop_batches_accepted_total",
            &[("outcome", "stored")]
        ),
        counts.batches as f64
    );
    assert_eq!(
        get(
            &s,
            "signage_pop_batches_refused_total",
            &[("reason", "malformed")]
        ),
        1.0
    );
    assert_eq!(
        get(
            &s,
            "signage_pop_batches_refused_total",
            &[("reason", "bad_signature")]
        ),
        0.0
    );
    let ingests = get(&s, "signage_ingest_seconds_count", &[]);
    assert!(ingests >= 2.0, "{ingests} ledger writes");
    assert_eq!(
        get(&s, "signage_ingest_seconds_bucket", &[("le", "+Inf")]),
        ingests
    );
    // Every screen's document went out at least once (on connect).
    let screens = env.catalogue().screens.len() as f64;
    assert!(get(&s, "signage_schedules_published_total", &[]) >= screens);
    assert!(get(&s, "signage_publish_seconds_count", &[]) >= 1.0);
    // HTTP by route template and status.
    let requests = |method: &str, route: &str, status: &str| {
        get(
            &s,
            "signage_http_requests_total",
            &[("method", method), ("route", route), ("status", status)],
        )
    };
    assert_eq!(requests("GET", "/health", "200"), 2.0);
    assert_eq!(requests("GET", "/ready", "200"), 1.0);
    assert_eq!(requests("GET", "/api/v1/venues/{id}", "401"), 1.0);
    assert_eq!(requests("GET", "/api/v1/venues/{id}", "200"), 1.0);
    assert_eq!(requests("GET", "unmatched", "404"), 1.0);
    // Every scrape before this one (a request is counted once answered).
    assert!(requests("GET", "/metrics", "200") >= 1.0);
    // The agent stopped cleanly: offline, nothing left in its outbox; its district is
    // listed with no screen online.
    let catalogue = env.catalogue();
    let district = catalogue
        .venues
        .iter()
        .find(|v| v.id.as_str() == "bj-metro-xidan")
        .and_then(|v| v.district.as_deref())
        .expect("the venue's district");
    assert_eq!(
        get(&s, "signage_screens_online", &[("district", district)]),
        0.0
    );
    assert_eq!(get(&s, "signage_outbox_backlog_records", &[]), 0.0);
    assert_eq!(get(&s, "signage_broker_connected", &[]), 1.0);
    let store_bytes = get(&s, "signage_store_bytes", &[]);
    assert!(store_bytes > 0.0);
    for (name, kind) in [
        ("signage_plays_ingested_total", "counter"),
        ("signage_http_requests_total", "counter"),
        ("signage_ingest_seconds", "histogram"),
        ("signage_publish_seconds", "histogram"),
        ("signage_screens_online", "gauge"),
        ("signage_store_bytes", "gauge"),
    ] {
        assert_eq!(types.get(name).map(String::as_str), Some(kind), "{name}");
    }

    // Online again: the district counts the screen, as the fleet view does.
    let addr_file = agent.data_dir().join(agent::telemetry::ADDR_FILE);
    std::fs::remove_file(&addr_file).unwrap();
    agent.spawn(&scaled_args(
        t("2023-12-21T02:00:00+08:00"),
        Utc::now().timestamp_millis(),
        1.0,
    ));
    env.wait_media_ready(SCREEN, &agent).await;
    let (s, _) = scrape(&http, &url).await;
    let fleet: serde_json::Value = http
        .get(format!(
            "{url}/api/v1/fleet?status=online&district={district}"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let online = fleet["items"].as_array().unwrap().len() as f64;
    assert_eq!(online, 1.0, "{fleet}");
    // The agent's readiness, as the server's /ready says its own: broker, store, ingest,
    // each with its reason, in its status and so in the fleet view.
    let row = &fleet["items"][0];
    assert_eq!(row["ready"], true, "{row}");
    let readiness = &row["status"]["readiness"];
    for (verdict, detail) in [
        ("broker", "connected"),
        ("store", "data directory writable"),
        ("ingest", "plays not yet acknowledged"),
    ] {
        assert_eq!(readiness[verdict]["ok"], true, "{readiness}");
        let said = readiness[verdict]["detail"].as_str().unwrap();
        assert!(said.contains(detail), "{verdict}: {said}");
    }
    assert_eq!(
        get(&s, "signage_screens_online", &[("district", district)]),
        online
    );

    // The agent's own metrics: what its status says and the ledger holds.
    let addr = std::fs::read_to_string(&addr_file).expect("the agent wrote its metrics address");
    let (a, types) = scrape(&http, &format!("http://{addr}")).await;
    let status = env.status(SCREEN).expect("a status");
    assert_eq!(get(&a, "signage_agent_plays_total", &[]), last_seq as f64);
    assert_eq!(get(&a, "signage_agent_outbox_backlog_records", &[]), 0.0);
    assert_eq!(
        get(&a, "signage_agent_cache_bytes", &[]),
        status.cache_bytes as f64
    );
    assert_eq!(
        get(&a, "signage_agent_cache_items", &[]),
        status.cache_items as f64
    );
    assert!(status.cache_bytes > 0);
    assert_eq!(get(&a, "signage_agent_download_failures", &[]), 0.0);
    assert_eq!(get(&a, "signage_agent_broker_connected", &[]), 1.0);
    assert_eq!(get(&a, "signage_agent_media_ready", &[]), 1.0);
    let runway = get(&a, "signage_agent_runway_seconds", &[]);
    assert!(runway > 0.0 && runway <= 168.0 * 3600.0, "{runway}");
    for verdict in [
        "signage_agent_ready",
        "signage_agent_store_writable",
        "signage_agent_ingest_keeping_up",
    ] {
        assert_eq!(get(&a, verdict, &[]), 1.0, "{verdict}");
    }
    let readiness = status.readiness.expect("the status carries its readiness");
    assert!(readiness.ready, "{readiness:?}");
    assert_eq!(types["signage_agent_plays_total"], "counter");
    assert_eq!(types["signage_agent_runway_seconds"], "gauge");
    agent.terminate().await;
    // Its goodbye says it no longer reaches the broker, the other verdicts still judged.
    let gone = env.status(SCREEN).expect("the offline status");
    let readiness = gone
        .readiness
        .expect("the offline status carries its readiness");
    assert!(!gone.online && !readiness.ready && !readiness.broker.ok);
    assert_eq!(readiness.broker.detail, "not connected");
    assert!(readiness.store.ok && readiness.ingest.ok, "{readiness:?}");
    env.stop().await;
}
