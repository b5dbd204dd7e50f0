//! The spine end to end: a real server (embedded rumqttd, or a Mosquitto this test starts),
//! its redb store and HTTP, and three real `signage-agent` processes (a subway platform, a
//! bus shelter that gets the emergency, a community screen with 30 s slots) on the
//! lock-step virtual clock for an hour; the ledger must equal the plan, play by play. Then
//! the CLI's reports and retention on that store, and (once) on a copy of it in PostgreSQL.

use chrono::{DateTime, Utc};
use server::sim::{simulate, SimOptions};
use tokio_util::sync::CancellationToken;

const SCREENS: [&str; 3] = [
    "bj-metro-xidan-s1",
    "bj-bus-daxing-huangcun-s1",
    "bj-community-daxing-xihongmen-s1",
];

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn run_hour(mqtt_url: Option<String>) {
    let tmp = tempfile::tempdir().unwrap();
    // 08:30-09:30 local: rush-hour caps, then the emergency from 09:00 in Daxing.
    let data: std::path::PathBuf = std::env::var_os("E2E_DIR")
        .map(Into::into)
        .unwrap_or_else(|| tmp.path().join("data"));
    let mut opts = SimOptions::new(
        tests::beijing(),
        t("2023-12-20T08:30:00+08:00"),
        t("2023-12-20T09:30:00+08:00"),
        data.clone(),
        tests::agent_bin(),
    );
    opts.screens = SCREENS.iter().map(|s| s.to_string()).collect();
    // The two runs go in parallel: their own topics keep them apart even on one broker.
    let run = if mqtt_url.is_some() {
        "mosquitto"
    } else {
        "embedded"
    };
    opts.topics = playlists::wire::Topics::new(&format!("e2e-{run}/v1"));
    opts.mqtt_url = mqtt_url;
    let outcome = simulate(opts, CancellationToken::new())
        .await
        .expect("simulation");
    // 240 + 240 + 120 slots, every one of them open and playing something.
    assert_eq!(outcome.planned, 600, "planned plays");
    assert_eq!(outcome.delivered, outcome.planned, "delivered");
    assert!(
        outcome.ledger_equals_plan,
        "ledger differs from the plan: {} missing, {} unexpected",
        outcome.missing, outcome.unexpected
    );

    let ledger = outcome.store.ledger();
    let keys = server::store::key_rings(&*outcome.store).unwrap();
    let key_of = |s: &str| keys.get(s).cloned().unwrap_or_default();
    let audit = ledger.audit(&key_of).unwrap();
    assert!(
        audit.problems.is_empty(),
        "audit problems: {:?}",
        audit.problems
    );
    assert_eq!(audit.records, 600);

    // The emergency reached the Daxing screens from 09:00 and only them.
    let mut emergency = std::collections::BTreeMap::<String, u64>::new();
    let q = server::ledger::Query {
        from: None,
        to: None,
        dimension: server::ledger::Dimension::Screen,
        venue: None,
        screen: None,
    };
    ledger
        .plays(&q, &mut |r| {
            if r.campaign_id == "alert-epidemic-2023-12-20" {
                assert!(r.slot_start >= t("2023-12-20T09:00:00+08:00"));
                *emergency.entry(r.screen_id.clone()).or_default() += 1;
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(emergency.get("bj-bus-daxing-huangcun-s1"), Some(&120));
    assert_eq!(emergency.get("bj-community-daxing-xihongmen-s1"), Some(&60));
    assert_eq!(emergency.get("bj-metro-xidan-s1"), None);
    drop(ledger);
    check_history(
        &outcome.store,
        t("2023-12-20T08:30:00+08:00"),
        t("2023-12-20T09:30:00+08:00"),
    );
    drop(outcome);
    check_cli_reports(&data, run == "embedded");
}

/// What was planned stays planned: after the plays, staff change a campaign's weight and
/// new documents are issued; the planned figures of the simulated hour do not move and the
/// audit stays clean, though the edited catalogue would plan that hour differently.
fn check_history(store: &server::store::SharedStore, from: DateTime<Utc>, to: DateTime<Utc>) {
    use server::store::Dimension;
    let ledger = store.ledger();
    let window = server::report::Window {
        from: Some(from),
        to: Some(to),
    };
    let rows = || {
        server::report::rows(&**store, &*ledger, Dimension::Campaign, &window, None)
            .expect("campaign report")
    };
    let before = rows();
    let service = server::catalogue::CatalogueService::new(store.clone());
    let applied = service
        .change(
            "staff-test",
            "weight edit after the plays",
            Utc::now(),
            |s| {
                let c = s.campaigns.get_mut("rm2023-annual").expect("campaign");
                let mut spec = c.spec.clone();
                spec.weight = 9;
                // Approved at once: the edit is what plays from now on.
                let by = server::approval::Actor {
                    name: "staff-test",
                    at: Utc::now(),
                };
                server::approval::edit_campaign(c, spec, true, by).expect("an edit");
                Ok::<(), server::catalogue::CatalogueError>(())
            },
        )
        .expect("edit");
    assert!(applied.revision.is_some());
    let key = server::keys::server_key(store.dir()).expect("server key");
    let issued = server::publisher::build(
        &**store,
        &applied.catalogue,
        None,
        &key,
        Utc::now(),
        chrono::TimeDelta::hours(168),
        Utc::now(),
        &server::renditions::RenditionMap::default(),
    )
    .expect("new documents");
    assert!(
        issued.iter().any(|d| d.changed),
        "the edit issued no document"
    );
    assert_eq!(
        rows(),
        before,
        "an edit moved the planned figures of the past"
    );

    // Independently: the edited catalogue plans the simulated screens' hour differently
    // from what they delivered (which was the plan then), so the check above can fail.
    let mut today: std::collections::BTreeMap<String, u64> = Default::default();
    for screen in SCREENS {
        let schedule = applied
            .catalogue
            .schedule_for(&playlists::ScreenId::parse(screen).unwrap())
            .expect("schedule");
        for p in playlists::Planner::new(&schedule).plan_range(from, to) {
            *today
                .entry(schedule.campaigns[p.campaign].id.to_string())
                .or_default() += 1;
        }
    }
    let delivered: std::collections::BTreeMap<String, u64> = before
        .iter()
        .filter(|r| r.delivered > 0)
        .map(|r| (r.id.clone(), r.delivered))
        .collect();
    assert_ne!(
        today, delivered,
        "the weight edit changes nothing: pick another"
    );
    let verdict = server::audit::verify(&**store).expect("audit");
    assert!(verdict.problems.is_empty(), "{:?}", verdict.problems);
}

/// What `signage ARGS` prints, once it has succeeded.
fn signage(args: &[&str]) -> String {
    let out = std::process::Command::new(tests::signage_bin())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "signage {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The operator's view through the real binary: exports, venue compliance, audit.
fn check_cli_reports(data: &std::path::Path, on_postgres_too: bool) {
    let run = |args: &[&str]| signage(&[args, &["--data-dir", data.to_str().unwrap()]].concat());
    let plays = run(&["report", "plays", "--format", "csv"]);
    let mut lines = plays.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    for column in [
        "screen_id",
        "venue_id",
        "slot_start",
        "campaign_id",
        "creative_id",
        "status",
        "play_id",
        "seq",
    ] {
        assert!(
            header.contains(&column),
            "plays export lacks {column}: {header:?}"
        );
    }
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 600);
    assert!(rows.iter().all(|r| r.contains(",complete,")));

    let venues = run(&[
        "report",
        "venues",
        "--format",
        "csv",
        "--venue",
        "bj-bus-daxing-huangcun",
    ]);
    assert_eq!(
        venues.lines().collect::<Vec<_>>(),
        [
            "venue_id,venue_type,planned,delivered,partial,failed,compliance_pct",
            "bj-bus-daxing-huangcun,outdoor.bus_shelter,240,240,0,0,100.00"
        ]
    );
    // Half an hour that does not start on the hour still counts exactly.
    let half = run(&[
        "report",
        "venues",
        "--format",
        "json",
        "--venue",
        "bj-community-daxing-xihongmen",
        "--from",
        "2023-12-20T08:45:00+08:00",
        "--to",
        "2023-12-20T09:15:00+08:00",
    ]);
    let v: serde_json::Value = serde_json::from_str(&half).unwrap();
    assert_eq!(
        (v[0]["planned"].as_u64(), v[0]["delivered"].as_u64()),
        (Some(60), Some(60)),
        "{half}"
    );
    let campaigns = run(&["report", "campaigns", "--format", "table"]);
    assert!(
        campaigns.contains("alert-epidemic-2023-12-20"),
        "{campaigns}"
    );

    let audit = run(&["audit", "verify"]);
    assert!(audit.contains("ledger verified"), "{audit}");

    // Retention through the binary: the hour archived into its UTC day's file, the reports
    // the same, and the archive verified (signatures, chains, each play against its plan).
    let report = run(&["report", "venues", "--format", "csv"]);
    let plays = run(&["report", "plays", "--format", "csv"]);
    if on_postgres_too {
        archive_on_postgres(data, &report, &plays);
    }
    let archived = run(&["ledger", "archive", "--before", "2023-12-21"]);
    assert!(
        archived.starts_with("archived 2023-12-20: ") && archived.contains(", 600 records into "),
        "{archived}"
    );
    let file = data.join("archive").join("ledger-2023-12-20.zst");
    assert!(file.is_file(), "{archived}");
    assert_eq!(run(&["report", "venues", "--format", "csv"]), report);
    assert_eq!(
        run(&["report", "plays", "--format", "csv"]),
        plays,
        "the raw export reads archived plays from the files"
    );
    let archive = data.join("archive");
    let archive = archive.to_str().unwrap();
    let audit = run(&["audit", "verify", "--archive", archive]);
    assert!(
        audit.contains("ledger verified")
            && audit.contains(" files, ")
            && audit.contains(", 600 records"),
        "{audit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_agents_one_hour_embedded_broker() {
    run_hour(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_agents_one_hour_mosquitto() {
    let mosquitto = tests::Mosquitto::start();
    run_hour(Some(mosquitto.url())).await;
}

/// The same retention through the binary on PostgreSQL (`--store`): the store copied into a
/// fresh database, its hour archived, the reports and the plays export the same as before,
/// and `audit verify --archive` clean.
fn archive_on_postgres(data: &std::path::Path, report: &str, plays: &str) {
    let db = tests::TestStore::postgres();
    let url = db.url().unwrap();
    // The machine's directory stays `data` (the server's key, which signed the documents);
    // the archive goes elsewhere.
    let elsewhere = tempfile::tempdir().unwrap();
    let archive = elsewhere.path().join("archive");
    let archive = archive.to_str().unwrap();
    signage(&[
        "store",
        "copy",
        "--from",
        data.to_str().unwrap(),
        "--to",
        &url,
    ]);
    let run = |args: &[&str]| {
        signage(
            &[
                args,
                &["--data-dir", data.to_str().unwrap(), "--store", &url],
            ]
            .concat(),
        )
    };
    assert_eq!(run(&["report", "venues", "--format", "csv"]), report);
    let archived = run(&[
        "ledger",
        "archive",
        "--before",
        "2023-12-21",
        "--dir",
        archive,
    ]);
    assert!(
        archived.starts_with("archived 2023-12-20: ") && archived.contains(", 600 records into "),
        "{archived}"
    );
    let file = elsewhere.path().join("archive/ledger-2023-12-20.zst");
    assert!(file.is_file(), "{archived}");
    assert_eq!(run(&["report", "venues", "--format", "csv"]), report);
    assert_eq!(
        run(&["report", "plays", "--format", "csv"]),
        plays,
        "the raw export reads archived plays from the files"
    );
    let audit = run(&["audit", "verify", "--archive", archive]);
    assert!(
        audit.contains("ledger verified")
            && audit.contains(" files, ")
            && audit.contains(", 600 records"),
        "{audit}"
    );
}
