//! An emergency takeover end to end: the real server (embedded broker, redb store with the
//! Beijing scenario) and one real `signage-agent` process, both on the same scaled timeline
//! (2023-12-20 10:00 Beijing time, five times real speed: a 15 s slot lasts 3 s). Staff start
//! an emergency for the agent's screen through the HTTP API, with a creative the agent does
//! not hold, a second into a slot, and end it a second into a later slot. The ledger's
//! proof of play must show the emergency creative in every slot from the first boundary
//! after the flight start up to the end, the slot the start fell in and every slot after
//! the end playing the normal rotation, and be exactly the server's plan (which includes
//! the emergency) from the first emergency slot on.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use playlists::wire::PlayRecord;
use playlists::{Planner, ScreenId};
use serde_json::json;
use server::app::Options;
use server::clock::ServerClock;
use tests::agent_proc::{scaled_args, wait_for, AgentProc};
use tests::ledger_check::screen_plays;
use tests::TestEnv;

const SCREEN: &str = "bj-metro-xidan-s1";
const START: &str = "2023-12-20T10:00:00+08:00";
const SPEED: f64 = 5.0;
const SLOT: TimeDelta = TimeDelta::seconds(15);
const EMERGENCY: &str = "alert-e2e";
const CREATIVE: &str = "alert-epidemic-l";

fn floor_slot(t: DateTime<Utc>) -> DateTime<Utc> {
    let ms = SLOT.num_milliseconds();
    DateTime::from_timestamp_millis(t.timestamp_millis().div_euclid(ms) * ms).expect("time")
}

fn ceil_slot(t: DateTime<Utc>) -> DateTime<Utc> {
    let f = floor_slot(t);
    if f == t {
        f
    } else {
        f + SLOT
    }
}

/// Sleeps (real time) until the shared timeline is one virtual second into a slot.
async fn just_into_a_slot(clock: &ServerClock) {
    let now = clock.now();
    let target = floor_slot(now) + SLOT + TimeDelta::seconds(1);
    sleep_until(clock, target).await;
}

async fn sleep_until(clock: &ServerClock, virtual_time: DateTime<Utc>) {
    let left = (virtual_time - clock.now()).num_milliseconds().max(0);
    tokio::time::sleep(Duration::from_millis((left as f64 / SPEED) as u64)).await;
}

/// The screen's plays in the ledger, by slot.
fn ledger_plays(env: &TestEnv) -> Vec<PlayRecord> {
    let mut out = screen_plays(&*env.handle.shared.ledger, SCREEN);
    out.sort_by_key(|r| r.slot_start);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emergency_takes_over_from_the_next_slot_until_its_end() {
    let anchor_ms = Utc::now().timestamp_millis();
    let clock = ServerClock::Scaled {
        start: DateTime::parse_from_rfc3339(START)
            .expect("start")
            .with_timezone(&Utc),
        anchor: DateTime::from_timestamp_millis(anchor_ms).expect("anchor"),
        speed: SPEED,
    };
    let env = TestEnv::spawn_with(
        None,
        Options {
            clock,
            ..Options::default()
        },
    )
    .await;
    let mut agent = AgentProc::new(&env.tmp.path().join("agent"), &env.provision(SCREEN));
    env.install(SCREEN, &mut agent).await;
    agent.spawn(&scaled_args(
        clock.at(DateTime::from_timestamp_millis(anchor_ms).expect("anchor")),
        anchor_ms,
        SPEED,
    ));
    env.wait_media_ready(SCREEN, &agent).await;

    // Start, a second into a slot: the rest of that slot stays normal.
    just_into_a_slot(&clock).await;
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/emergencies", env.http_url());
    let resp = http
        .post(&url)
        .bearer_auth(env.admin_token())
        .body(
            json!({"id": EMERGENCY, "name": "E2E alert", "creatives": [CREATIVE],
                   "target": {"screens": [SCREEN]}})
            .to_string(),
        )
        .send()
        .await
        .expect("start");
    let status = resp.status().as_u16();
    let started: serde_json::Value = resp.json_or_text().await;
    assert_eq!(status, 201, "{started}");
    let start: DateTime<Utc> =
        serde_json::from_value(started["emergency"]["start"].clone()).expect("start time");
    assert_eq!(started["screens"], json!([SCREEN]));

    // Five emergency slots, then end it a second into a slot.
    sleep_until(&clock, ceil_slot(start) + SLOT * 5).await;
    just_into_a_slot(&clock).await;
    let resp = http
        .post(format!("{url}/{EMERGENCY}/end"))
        .bearer_auth(env.admin_token())
        .send()
        .await
        .expect("end");
    let status = resp.status().as_u16();
    let ended: serde_json::Value = resp.json_or_text().await;
    assert_eq!(status, 200, "{ended}");
    let end: DateTime<Utc> =
        serde_json::from_value(ended["emergency"]["end"].clone()).expect("end time");

    // Three normal slots after the end must be in the ledger.
    let first = ceil_slot(start);
    let resume = ceil_slot(end);
    let last = resume + SLOT * 2;
    wait_for(
        "the ledger to hold the plays up to three slots after the end",
        Duration::from_secs(30),
        || ledger_plays(&env).iter().any(|r| r.slot_start >= last),
        || agent.log_tail(),
    )
    .await;
    agent.terminate().await;
    // The agent acted on the signed commands (not only on the republished schedules).
    let log = agent.log();
    for line in ["emergency takeover started", "emergency takeover ended"] {
        assert!(
            log.contains(line),
            "the agent never logged {line:?}:\n{log}"
        );
    }

    let plays: BTreeMap<DateTime<Utc>, (String, String)> = ledger_plays(&env)
        .into_iter()
        .map(|r| (r.slot_start, (r.campaign_id, r.creative_id)))
        .collect();
    // The slot the start fell in began before the flight: normal.
    let before = floor_slot(start);
    assert!(before < start, "the start was a second into its slot");
    let in_start_slot = plays.get(&before).expect("a play in the start's slot");
    assert_ne!(
        in_start_slot.0, EMERGENCY,
        "slot {before} began before the flight"
    );

    // Every slot from the first boundary after the start up to the end: the emergency;
    // every slot after: the normal rotation.
    let mut slot = first;
    while slot <= last {
        let (campaign, creative) = plays
            .get(&slot)
            .unwrap_or_else(|| panic!("no play in slot {slot}:\n{}", agent.log_tail()));
        if slot < resume {
            assert_eq!(
                (campaign.as_str(), creative.as_str()),
                (EMERGENCY, CREATIVE),
                "slot {slot} during the emergency"
            );
        } else {
            assert_ne!(campaign, EMERGENCY, "slot {slot} after the end at {end}");
        }
        slot += SLOT;
    }
    assert!(
        (resume - first).num_seconds() / 15 >= 5,
        "at least five emergency slots"
    );

    // The ledger is the server's plan (which carries the ended emergency) over the window.
    let catalogue = env.catalogue();
    let schedule = catalogue
        .schedule_for(&ScreenId::parse(SCREEN).expect("screen"))
        .expect("schedule");
    assert!(schedule
        .campaigns
        .iter()
        .any(|c| c.id.as_str() == EMERGENCY && c.flight.end() == end));
    let planner = Planner::new(&schedule);
    let planned: BTreeMap<DateTime<Utc>, (String, String)> = planner
        .plan_range(first, last + SLOT)
        .into_iter()
        .map(|p| {
            (
                planner.slot_start(p.slot),
                (
                    schedule.campaigns[p.campaign].id.to_string(),
                    schedule.creatives[p.creative].id.to_string(),
                ),
            )
        })
        .collect();
    let delivered: BTreeMap<_, _> = plays
        .range(first..=last)
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    assert_eq!(delivered, planned);
    env.stop().await;
}

/// A response body as JSON, or a panic that shows the text.
trait JsonOrText {
    async fn json_or_text(self) -> serde_json::Value;
}

impl JsonOrText for reqwest::Response {
    async fn json_or_text(self) -> serde_json::Value {
        let text = self.text().await.expect("body");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }
}
