//! 72 hours offline: the real server against a real Mosquitto, and one real
//! `signage-agent` (a community screen, 30 s slots) on the scaled clock at 6,000 times real
//! time (`SPEED`). Once it holds its schedule and media the broker goes down for 72 virtual hours
//! (43 s) and comes back on the same port; the server and the agent reconnect by
//! themselves. The agent played the outage's slots (all but the few it woke too late
//! for) into its outbox, and the backlog
//! reaches the ledger in bounded batches: nothing lost, no gap, every play the planner's.

use std::time::Duration;
use tests::store::off_runtime;

use chrono::{DateTime, Utc};
use playlists::wire::pop::MAX_BATCH_RECORDS;
use playlists::{Planner, ScreenId};
use tests::agent_proc::{scaled_args, wait_for, AgentProc};

const SCREEN: &str = "bj-community-jiuxianqiao-s1";
/// 72 hours in 43.2 s; a 30 s slot in 5 ms. The player skips a slot when it wakes more than
/// half a slot (here 2.5 ms) late, so a few may be skipped on a busy machine: at 5,000 a
/// debug build plays 99.7 % of them, at 10,000 only half.
const SPEED: f64 = 6_000.0;
/// The share of the outage's planned plays that must have been played.
const MIN_PLAYED: f64 = 0.95;
const OUTAGE_HOURS: i64 = 72;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seventy_two_hours_offline_lose_nothing() {
    let mut mosquitto = tests::Mosquitto::start();
    let env = tests::TestEnv::spawn(Some(mosquitto.port)).await;
    let (store, handle) = (&env.store, &env.handle);
    let config = env.provision(SCREEN);
    let mut agent = AgentProc::new(&env.tmp.path().join("agent"), &config);

    env.install(SCREEN, &mut agent).await;

    // Play from 05:50 local (the screen opens at 06:00) until the first plays are in.
    let start = t("2023-12-19T05:50:00+08:00");
    let anchor_ms = Utc::now().timestamp_millis();
    let virtual_now = || {
        start
            + chrono::Duration::milliseconds(
                ((Utc::now().timestamp_millis() - anchor_ms) as f64 * SPEED) as i64,
            )
    };
    let mut args = scaled_args(start, anchor_ms, SPEED);
    args.extend(["--durability".into(), "relaxed".into()]);
    agent.spawn(&args);
    let ledger = &handle.shared.ledger;
    let last_seq = || {
        off_runtime(|| ledger.counts())
            .unwrap()
            .last_seq
            .get(SCREEN)
            .copied()
    };
    wait_for(
        "the first acknowledged plays",
        Duration::from_secs(30),
        || last_seq().is_some(),
        || agent.log_tail(),
    )
    .await;

    // The broker goes away for 72 virtual hours.
    mosquitto.stop();
    let down = virtual_now();
    // Batches received before the stop may still be on their way into the ledger.
    let mut before = off_runtime(|| ledger.counts()).unwrap();
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = off_runtime(|| ledger.counts()).unwrap();
        if now == before {
            break;
        }
        before = now;
    }
    tokio::time::sleep(Duration::from_secs_f64(
        (OUTAGE_HOURS * 3600) as f64 / SPEED,
    ))
    .await;
    mosquitto.restart();
    let up = virtual_now();
    assert!(up - down >= chrono::Duration::hours(OUTAGE_HOURS));
    assert_eq!(
        off_runtime(|| ledger.counts()).unwrap().last_seq,
        before.last_seq,
        "records arrived while the broker was down"
    );

    // Both reconnect by themselves; the backlog arrives. Wait for a play from after the
    // outage, then stop the agent and let it drain at night, when the screen is dark.
    let plays_after = |t: DateTime<Utc>| {
        let q = server::ledger::Query {
            from: None,
            to: None,
            dimension: server::ledger::Dimension::Screen,
            venue: None,
            screen: Some(SCREEN.into()),
        };
        let mut n = 0;
        ledger
            .plays(&q, &mut |r| {
                n += u64::from(r.slot_start >= t);
                Ok(())
            })
            .unwrap();
        n
    };
    wait_for(
        "the backlog and a play from after the outage",
        Duration::from_secs(60),
        || plays_after(up) > 0,
        || format!("ledger {:?}\n{}", last_seq(), agent.log_tail()),
    )
    .await;
    agent.terminate().await;
    let night = t("2023-12-27T02:00:00+08:00");
    let drained = env.drain(SCREEN, &mut agent, night).await;

    // Nothing lost, no gap, every play the planner's.
    let records = tests::ledger_check::checked_plays(&**store, &**ledger, SCREEN);
    assert_eq!(records.len() as u64, drained);

    // Every slot of the outage that plans a play was played.
    let catalogue = env.catalogue();
    let schedule = catalogue
        .schedule_for(&ScreenId::parse(SCREEN).unwrap())
        .unwrap();
    let planner = Planner::new(&schedule);
    // Slots within a slot of either edge may belong to the moments the broker stopped or
    // came back.
    let slot = chrono::Duration::seconds(i64::from(schedule.screen.slot_seconds));
    let (from, to) = (down + slot, up - slot);
    let planned = planner.plan_range(from, to).len();
    let during: Vec<_> = records
        .iter()
        .filter(|r| r.slot_start >= from && r.slot_start < to)
        .collect();
    eprintln!(
        "outage {down} .. {up}: {planned} planned, {} played ({} complete); {} records in all",
        during.len(),
        during
            .iter()
            .filter(|r| r.status == playlists::wire::PlayStatus::Complete)
            .count(),
        records.len()
    );
    assert!(planned > 5_000, "{planned} plays planned in the outage");
    assert!(
        during.len() as f64 >= planned as f64 * MIN_PLAYED,
        "only {} of {planned} planned plays during the outage",
        during.len()
    );

    // The backlog went up in bounded batches.
    let per_batch = tests::ledger_check::records_per_batch(&**store, SCREEN);
    let largest = per_batch.values().copied().max().unwrap_or(0);
    eprintln!(
        "{} batches, largest {largest}: {per_batch:?}",
        per_batch.len()
    );
    assert!(
        largest <= MAX_BATCH_RECORDS as u64,
        "a batch of {largest} records"
    );
    let backlog_batches = per_batch
        .range(before.last_batch_seq.get(SCREEN).copied().unwrap_or(0) + 1..)
        .count();
    assert!(
        backlog_batches as u64 >= planned as u64 / MAX_BATCH_RECORDS as u64,
        "{backlog_batches} batches after the outage for {planned} plays"
    );
    assert!(backlog_batches > 1);

    env.stop().await;
}
