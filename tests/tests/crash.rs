//! Never lose a play: the real server (embedded broker, redb store) and one real
//! `signage-agent` on the scaled clock (15 s slots in 300 ms), SIGKILLed at random moments
//! over two dozen times and restarted each time with the same arguments, so its timeline
//! runs on through the crashes. Afterwards the ledger holds every record the agent ever
//! wrote: seqs 1..=N without a gap, no slot twice, each play the planner's, complete, or
//! partial only where a kill cut it short, and the audit finds nothing.

use std::time::Duration;
use tests::store::off_runtime;

use chrono::{DateTime, Utc};
use playlists::wire::PlayStatus;
use tests::agent_proc::{scaled_args, AgentProc, Rng};

const SCREEN: &str = "bj-metro-xidan-s1";
/// 15 s slots in 300 ms of real time. A play is `complete` when it starts within 500 ms of
/// virtual time of its slot: 10 ms of real time at this speed, which a debug build starting
/// up beside the others can still miss (see below).
const SPEED: f64 = 50.0;
const KILLS: usize = 24;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_never_loses_or_repeats_a_play() {
    let env = tests::TestEnv::spawn(None).await;
    let (store, handle) = (&env.store, &env.handle);
    let config = env.provision(SCREEN);
    let mut agent = AgentProc::new(&env.tmp.path().join("agent"), &config);

    env.install(SCREEN, &mut agent).await;

    // The crashes, on one timeline from 08:00 local.
    let seed = Rng::seed();
    eprintln!("crash test seed {seed} (TEST_SEED to repeat)");
    let mut rng = Rng::new(seed);
    let anchor_ms = Utc::now().timestamp_millis();
    let mut args = scaled_args(t("2023-12-20T08:00:00+08:00"), anchor_ms, SPEED);
    args.extend(["--durability".into(), "immediate".into()]);
    for _ in 0..KILLS {
        agent.spawn(&args);
        tokio::time::sleep(Duration::from_millis(rng.range(200, 1_500))).await;
        agent.kill().await;
    }
    // A longer run, and the last crash.
    agent.spawn(&args);
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    agent.kill().await;
    let ended = (t("2023-12-20T08:00:00+08:00")
        + chrono::Duration::milliseconds(
            ((Utc::now().timestamp_millis() - anchor_ms) as f64 * SPEED) as i64,
        ))
    .with_timezone(&chrono_tz::Asia::Shanghai);

    // Back at night, when the station is closed: nothing plays, the outbox drains.
    let night = t("2023-12-21T02:00:00+08:00");
    let drained = env.drain(SCREEN, &mut agent, night).await;
    let ledger = &handle.shared.ledger;

    let records = tests::ledger_check::checked_plays(&**store, &**ledger, SCREEN);
    let n = records.len() as u64;
    assert_eq!(n, drained);
    // A play cut short by a kill is what the outbox held while it ran: partial, ended as
    // it began. Every other play covers its own slot; a few may be partial because the
    // process woke late (500 ms virtual is only 10 ms real at this speed, and this test
    // shares the machine with others), never because a play was lost or repeated.
    let crashed = |r: &playlists::wire::PlayRecord| {
        r.status == PlayStatus::Partial && r.duration_ms == 0 && r.ended_at == r.started_at
    };
    let (mut cut, mut late) = (0, 0);
    for r in &records {
        if crashed(r) {
            cut += 1;
        } else if r.status == PlayStatus::Partial {
            let slot = chrono::Duration::seconds(15);
            assert!(
                r.started_at >= r.slot_start
                    && r.started_at - r.slot_start < chrono::Duration::seconds(5)
                    && r.ended_at >= r.slot_start + slot - chrono::Duration::seconds(5),
                "play {} is partial and does not cover its slot: {r:?}",
                r.seq
            );
            late += 1;
        }
    }
    assert!(
        cut <= KILLS + 1,
        "{cut} plays cut short by {} kills",
        KILLS + 1
    );
    // The plays went on between the crashes (about one slot per 300 ms of uptime).
    assert!(n >= 30, "only {n} plays");
    let partial_from_log = agent.log().matches("plays interrupted by a crash").count();
    assert_eq!(
        cut, partial_from_log,
        "partial plays against the agent's recoveries"
    );
    eprintln!(
        "{} kills: {n} plays up to {ended}, {cut} cut short, {late} woke late, {} batches",
        KILLS + 1,
        off_runtime(|| ledger.counts()).unwrap().batches
    );

    env.stop().await;
}
