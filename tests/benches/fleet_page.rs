//! `cargo bench -p tests --bench fleet_page`: the operator's fleet page at city size. A
//! server (embedded broker, redb store) holds a generated scenario of 11,000 screens; a
//! key is registered for every screen straight in the store (not 11,000 provision calls)
//! and each screen's status, signed by its key as its agent signs it, is published
//! through the broker and taken by the server's status worker. Then it prints the median
//! of several runs of: the API's latency for a page of the fleet (unfiltered, by district,
//! by text), for the summary and for the map's venues; and in headless Chromium the time
//! from opening the fleet page to its rows painted, and from a filter change to the new
//! rows painted. Figures only: nothing here asserts a time.
//!
//! `FLEET_SCREENS` and `FLEET_VENUES` change the size (default 11,000 and 3,000).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};

use playlists::wire::{Keypair, Status, Topics, STATUS_KIND};
use server::app;
use server::catalogue::CatalogueService;
use server::generate::GenerateOptions;
use server::import::ImportOptions;
use server::store::OpenMode;
use tests::webdriver;

const RUNS: usize = 15;
const PASSWORD: &str = "a benchmark operator's password";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The screen's signing key, the same on every run.
fn key_of(i: usize) -> Keypair {
    let mut secret = [7u8; 32];
    secret[..8].copy_from_slice(&(i as u64).to_le_bytes());
    Keypair::from_secret(secret)
}

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let screens = env_usize("FLEET_SCREENS", 11_000);
    let venue_count = env_usize("FLEET_VENUES", 3_000);
    let tmp = tempfile::tempdir()?;
    let scenario = tmp.path().join("scenario");
    let t = Instant::now();
    server::generate::generate(
        &tests::beijing(),
        &scenario,
        &GenerateOptions {
            venues: venue_count,
            screens,
            seed: 1,
        },
    )?;
    let store = server::store::open(&tmp.path().join("server"), OpenMode::Create)?;
    server::import::import(
        &CatalogueService::new(store.clone()),
        &scenario,
        &ImportOptions::admin(),
    )?;
    eprintln!(
        "generated and imported {screens} screens at {venue_count} venues in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // A key per screen, written straight into the store.
    let t = Instant::now();
    let ids: Vec<String> = CatalogueService::new(store.clone())
        .catalogue()?
        .screens
        .iter()
        .map(|s| s.id.to_string())
        .collect();
    let now = chrono::Utc::now();
    for (i, id) in ids.iter().enumerate() {
        store.add_screen_key(id, &key_of(i).public_hex(), now)?;
    }
    eprintln!(
        "registered {} keys in {:.1} s",
        ids.len(),
        t.elapsed().as_secs_f64()
    );

    let tests::inproc::InProcess {
        handle,
        broker_port: port,
        shutdown,
    } = tests::inproc::start(store.clone(), app::Options::default()).await?;
    let base = format!("http://{}", handle.http_addr);
    let admin = std::fs::read_to_string(store.dir().join(server::admin::FILE))?
        .trim()
        .to_owned();

    // Every screen's status, signed by its key, through the broker (the server's login:
    // the embedded broker lets an authenticated client publish on any topic; the server
    // checks each status's signature against the screen's key).
    let t = Instant::now();
    let secret = server::broker_auth::server_secret(store.dir())?;
    let mut opts = MqttOptions::new(
        format!("{}-bench", server::broker_auth::SERVER_USER),
        "127.0.0.1",
        port,
    );
    opts.set_credentials(server::broker_auth::SERVER_USER, secret);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = AsyncClient::new(opts, 4096);
    let poller = tokio::spawn(async move {
        let mut acks = 0usize;
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => acks += 1,
                Ok(_) => {}
                Err(e) => {
                    eprintln!("bench client: {e} after {acks} acks");
                    return acks;
                }
            }
        }
    });
    let topics = Topics::default();
    let session = now.timestamp_millis() as u64;
    let sealed = |i: usize, id: &String| {
        let status = Status {
            v: 1,
            screen_id: id.clone(),
            online: !i.is_multiple_of(23),
            session,
            seq: 1,
            schedule_version: Some(if i.is_multiple_of(17) { 0 } else { 1 }),
            agent_version: "bench".into(),
            player: "headless".into(),
            media_ready: !i.is_multiple_of(11),
            runway_hours: (i % 90) as f64,
            outbox_backlog: (i % 7) as u64,
            last_seq: 100,
            clock_synced: !i.is_multiple_of(13),
            at: Some(now),
            ..Status::default()
        };
        key_of(i).seal(STATUS_KIND, &status)
    };
    // In batches, as a fleet's agents come and go over time: the embedded broker drops
    // messages for a subscriber that falls far behind, so each batch waits until the
    // server holds it, and what it lost is sent again.
    let held = |ids: &[String]| {
        let fleet = handle.shared.fleet.lock().expect("fleet");
        ids.iter().filter(|id| !fleet.contains_key(*id)).count()
    };
    for (b, batch) in ids.chunks(250).enumerate() {
        let mut tries = 0;
        loop {
            let missing: Vec<(usize, &String)> = {
                let fleet = handle.shared.fleet.lock().expect("fleet");
                batch
                    .iter()
                    .enumerate()
                    .filter(|(_, id)| !fleet.contains_key(*id))
                    .map(|(j, id)| (b * 250 + j, id))
                    .collect()
            };
            if missing.is_empty() {
                break;
            }
            tries += 1;
            anyhow::ensure!(
                tries <= 20,
                "batch {b}: {} statuses never arrived",
                missing.len()
            );
            for (i, id) in missing {
                client
                    .publish(topics.status(id), QoS::AtLeastOnce, true, sealed(i, id))
                    .await?;
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while held(batch) > 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    eprintln!(
        "{} signed statuses published and taken in {:.1} s",
        ids.len(),
        t.elapsed().as_secs_f64()
    );
    let _ = client.disconnect().await;
    poller.abort();

    // The API's own latency (a fresh connection pool, warm cache after the first call).
    let http = reqwest::Client::new();
    let district = {
        let page: Value = http
            .get(format!("{base}/api/v1/fleet?limit=1"))
            .bearer_auth(&admin)
            .send()
            .await?
            .json()
            .await?;
        page["districts"][3]
            .as_str()
            .context("a district")?
            .to_owned()
    };
    let mut figures: Vec<(String, f64)> = Vec::new();
    for (what, path) in [
        ("GET /fleet?limit=100", "fleet?limit=100".to_owned()),
        (
            "GET /fleet?district=…&limit=100",
            format!("fleet?district={district}&limit=100"),
        ),
        (
            "GET /fleet?q=…&limit=100",
            "fleet?q=east&limit=100".to_owned(),
        ),
        (
            "GET /fleet?status=offline&limit=100",
            "fleet?status=offline&limit=100".to_owned(),
        ),
        ("GET /fleet/summary", "fleet/summary".to_owned()),
        ("GET /fleet/venues", "fleet/venues".to_owned()),
    ] {
        let mut times = Vec::new();
        for _ in 0..RUNS {
            let t = Instant::now();
            let resp = http
                .get(format!("{base}/api/v1/{path}"))
                .bearer_auth(&admin)
                .send()
                .await?;
            anyhow::ensure!(resp.status().is_success(), "{path}: {}", resp.status());
            let _ = resp.bytes().await?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        figures.push((format!("API {what}"), median(times)));
    }

    // What a request reads from the store: the head (each time), the published versions
    // (each time), the whole catalogue (once per revision, for the index).
    let timed_read = |f: &dyn Fn() -> anyhow::Result<()>| -> anyhow::Result<f64> {
        let mut times = Vec::new();
        for _ in 0..RUNS {
            let t = Instant::now();
            f()?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        Ok(median(times))
    };
    figures.push((
        "store: catalogue head".into(),
        timed_read(&|| Ok(store.head().map(drop)?))?,
    ));
    figures.push((
        "store: published versions".into(),
        timed_read(&|| Ok(store.published().map(drop)?))?,
    ));
    figures.push((
        "store: whole catalogue (once per revision)".into(),
        timed_read(&|| Ok(store.snapshot().map(drop)?))?,
    ));

    // The page in headless Chromium.
    let resp = http
        .post(format!("{base}/api/v1/users"))
        .bearer_auth(&admin)
        .json(&json!({"name": "bench", "roles": ["operator"], "password": PASSWORD}))
        .send()
        .await?;
    anyhow::ensure!(resp.status().is_success(), "add user: {}", resp.status());
    let (_driver, page) = webdriver::start(&tmp.path().join("chromium-bench")).await;
    page.window(1280, 720).await;
    page.goto(&format!("{base}/")).await;
    page.log_in("bench", PASSWORD).await;
    let timed = |script: &str| json!({"script": format!("const done = arguments[arguments.length - 1]; {script}"), "args": []});
    // From another page to the fleet's rows painted (the frame after they are in the DOM).
    let mut open = Vec::new();
    for _ in 0..RUNS {
        page.goto(&format!("{base}/#/emergencies")).await;
        page.wait_js(
            "the emergencies page",
            "return !!document.querySelector('#emergencies')",
        )
        .await;
        let ms = page
            .call(
                reqwest::Method::POST,
                "/execute/async",
                timed(
                    "const t0 = performance.now(); location.hash = '#/fleet'; \
                     const check = () => document.querySelectorAll('#fleet tr[data-screen]').length \
                       ? requestAnimationFrame(() => done(performance.now() - t0)) : requestAnimationFrame(check); \
                     requestAnimationFrame(check);",
                ),
            )
            .await;
        open.push(ms.as_f64().context("a time")?);
    }
    figures.push(("page: open the fleet, rows painted".into(), median(open)));
    // A filter change to the new rows painted.
    let mut change = Vec::new();
    let districts: Vec<String> = serde_json::from_value(
        page.js("return [...document.querySelectorAll('#fleet-filter select[name=district] option')].map(o => o.value).filter(v => v)")
            .await,
    )?;
    for i in 0..RUNS {
        let d = &districts[i % districts.len()];
        let ms = page
            .call(
                reqwest::Method::POST,
                "/execute/async",
                timed(&format!(
                    "const body = document.querySelector('#fleet tbody'); const first = body.firstChild; \
                     const s = document.querySelector('#fleet-filter select[name=district]'); \
                     const t0 = performance.now(); s.value = {}; s.dispatchEvent(new Event('change')); \
                     const check = () => body.firstChild !== first && body.querySelector('tr[data-screen]') \
                       ? requestAnimationFrame(() => done(performance.now() - t0)) : requestAnimationFrame(check); \
                     requestAnimationFrame(check);",
                    json!(d)
                )),
            )
            .await;
        change.push(ms.as_f64().context("a time")?);
    }
    figures.push((
        "page: change the district filter, rows painted".into(),
        median(change),
    ));
    page.close().await;

    println!(
        "\nfleet page, {} screens at {venue_count} venues, median of {RUNS} runs:",
        ids.len()
    );
    for (what, ms) in &figures {
        println!("  {what:<48} {ms:>8.1} ms");
    }
    shutdown.cancel();
    handle.wait().await;
    Ok(())
}
