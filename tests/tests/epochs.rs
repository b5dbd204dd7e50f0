//! Proof of play across replaced kiosks: the real server (embedded broker, redb store) and
//! three real `signage-agent` processes on the scaled clock. While they play, one agent's
//! outbox is wiped, another's is overwritten with garbage, and the third screen is
//! re-provisioned twice (its agent restarted on each new key, the first time only after
//! playing on with the old key for a while). Afterwards the ledger holds, for every epoch
//! of every screen, exactly the seqs the agent reported writing in it (its own count, from
//! its status), no slot twice and each play the planner's; `audit verify` is clean and names
//! every epoch and the key rotations; a provision whose `--out` cannot be written leaves the
//! current key as it was.

use std::collections::BTreeMap;
use std::time::Duration;
use tests::store::off_runtime;

use chrono::{DateTime, Utc};
use playlists::wire::PlayRecord;
use tests::agent_proc::{scaled_args, wait_for, AgentProc};
use tests::TestEnv;

const WIPED: &str = "bj-metro-xidan-s1";
const CORRUPT: &str = "bj-bus-daxing-huangcun-s1";
const REKEYED: &str = "bj-community-daxing-xihongmen-s1";
/// 15 s slots in 300 ms of real time.
const SPEED: f64 = 50.0;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The agent's latest status: (epoch, last seq).
fn reported(env: &TestEnv, screen: &str) -> (String, u64) {
    let s = env.status(screen).expect("a status");
    (s.epoch, s.last_seq)
}

/// Waits until `screen`'s agent, in an epoch other than `not_in` (if given), has written
/// `n` more plays than `after` in it.
async fn plays(env: &TestEnv, agent: &AgentProc, screen: &str, not_in: Option<&str>, after: u64) {
    wait_for(
        &format!("{screen} to play"),
        Duration::from_secs(90),
        || {
            env.status(screen).is_some_and(|s| {
                s.online && not_in != Some(s.epoch.as_str()) && s.last_seq >= after + 5
            })
        },
        || format!("{:?}\n{}", env.status(screen), agent.log_tail()),
    )
    .await;
}

/// Every record of `screen` in the ledger, per epoch, by seq.
fn ledger_epochs(env: &TestEnv, screen: &str) -> BTreeMap<String, Vec<PlayRecord>> {
    let mut out: BTreeMap<String, Vec<PlayRecord>> = BTreeMap::new();
    for r in tests::ledger_check::screen_plays(&*env.handle.shared.ledger, screen) {
        out.entry(r.epoch.clone()).or_default().push(r);
    }
    for records in out.values_mut() {
        records.sort_by_key(|r| r.seq);
    }
    out
}

/// The ledger holds exactly what the agent reported for each epoch, each play once and as
/// planned.
fn check_screen(env: &TestEnv, screen: &str, expect: &[(String, u64)]) {
    let held = ledger_epochs(env, screen);
    let got: Vec<(String, Vec<u64>)> = held
        .iter()
        .map(|(e, rs)| (e.clone(), rs.iter().map(|r| r.seq).collect()))
        .collect();
    let mut want: Vec<(String, Vec<u64>)> = expect
        .iter()
        .map(|(e, n)| (e.clone(), (1..=*n).collect()))
        .collect();
    want.sort();
    assert_eq!(
        got, want,
        "{screen}: ledger epochs and seqs against the agent's count"
    );
    for (epoch, records) in &held {
        assert!(
            epoch.len() == 32,
            "{screen}: epoch {epoch:?} is not a new one"
        );
        for r in records {
            assert_eq!(
                r.play_id,
                format!("{screen}-{epoch}-{}", r.seq),
                "{screen}: play ids are unique across epochs"
            );
        }
    }
    let mut all: Vec<PlayRecord> = held.into_values().flatten().collect();
    all.sort_by_key(|r| r.slot_start);
    for w in all.windows(2) {
        assert!(
            w[0].slot_start < w[1].slot_start,
            "{screen}: slot {} played twice",
            w[1].slot_start
        );
    }
    tests::ledger_check::check_plan(&*env.store, screen, &all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_kiosks_lose_no_play_and_the_audit_holds() {
    let env = TestEnv::spawn(None).await;
    let day = t("2023-12-20T08:00:00+08:00");
    let night = t("2023-12-21T02:00:00+08:00");
    let mut agents = BTreeMap::new();
    for screen in [WIPED, CORRUPT, REKEYED] {
        let dir = env.tmp.path().join(screen);
        let mut agent = AgentProc::new(&dir, &env.provision(screen));
        env.install(screen, &mut agent).await;
        agents.insert(screen, agent);
    }
    let day_args = scaled_args(day, Utc::now().timestamp_millis(), SPEED);
    for (screen, agent) in agents.iter_mut() {
        agent.spawn(&day_args);
        plays(&env, agent, screen, None, 0).await;
    }
    // Each epoch the agents went through: (epoch, last seq), from their statuses.
    let mut epochs: BTreeMap<&str, Vec<(String, u64)>> = BTreeMap::new();

    // Re-provisioned while it plays: its agent plays on with the old key for a while.
    let second = env.provision(REKEYED);
    let (_, at) = reported(&env, REKEYED);
    plays(&env, &agents[REKEYED], REKEYED, None, at).await;

    // Wiped: everything it wrote reaches the ledger, then its outbox is deleted.
    let agent = agents.get_mut(WIPED).unwrap();
    agent.terminate().await;
    env.drain(WIPED, agent, night).await;
    let before = reported(&env, WIPED);
    std::fs::remove_file(agent.data_dir().join("outbox.redb")).unwrap();
    agent.spawn(&day_args);
    plays(&env, agent, WIPED, Some(&before.0), 0).await;
    epochs.entry(WIPED).or_default().push(before);

    // Corrupt: its outbox file is overwritten with garbage.
    let agent = agents.get_mut(CORRUPT).unwrap();
    agent.terminate().await;
    env.drain(CORRUPT, agent, night).await;
    let before = reported(&env, CORRUPT);
    let garbage = b"\xde\xad\xbe\xef not a redb file ".repeat(4_000);
    std::fs::write(agent.data_dir().join("outbox.redb"), &garbage).unwrap();
    agent.spawn(&day_args);
    plays(&env, agent, CORRUPT, Some(&before.0), 0).await;
    epochs.entry(CORRUPT).or_default().push(before);
    assert!(
        agent.log().contains("moved aside"),
        "the agent says where the damaged outbox went:\n{}",
        agent.log_tail()
    );
    let kept: Vec<Vec<u8>> = std::fs::read_dir(agent.data_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("outbox.redb.damaged-"))
        })
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert_eq!(kept, vec![garbage], "the damaged outbox is kept as it was");

    // The re-provisioned kiosk restarts on its new key, same outbox; then once more.
    let dir = env.tmp.path().join(REKEYED);
    agents.get_mut(REKEYED).unwrap().terminate().await;
    let mut agent = AgentProc::new(&dir, &second);
    agent.spawn(&day_args);
    let (epoch, at) = reported(&env, REKEYED);
    plays(&env, &agent, REKEYED, None, at).await;
    let third = env.provision(REKEYED);
    let (_, at) = reported(&env, REKEYED);
    plays(&env, &agent, REKEYED, None, at).await;
    agent.terminate().await;
    let mut agent = AgentProc::new(&dir, &third);
    agent.spawn(&day_args);
    let (_, at) = reported(&env, REKEYED);
    plays(&env, &agent, REKEYED, None, at).await;
    assert_eq!(
        reported(&env, REKEYED).0,
        epoch,
        "a new key is no new epoch"
    );
    agents.insert(REKEYED, agent);

    // A provision whose --out cannot be written rotates nothing.
    let keys = |env: &TestEnv| off_runtime(|| env.store.screen_keys()).unwrap()[REKEYED].clone();
    let keys_before = keys(&env);
    let token = env.tmp.path().join("token");
    std::fs::write(&token, env.admin_token()).unwrap();
    let out = env.tmp.path().join("no-such-dir").join("agent.toml");
    let (ok, _, stderr) = tests::signage(&[
        "screens",
        "provision",
        REKEYED,
        "--out",
        out.to_str().unwrap(),
        "--server",
        &env.http_url(),
        "--token-file",
        token.to_str().unwrap(),
    ]);
    assert!(!ok, "provisioning to an unwritable --out succeeded");
    assert!(stderr.contains("cannot write"), "{stderr}");
    assert_eq!(
        keys(&env),
        keys_before,
        "the failed provision changed the keys"
    );
    assert_eq!(keys_before.len(), 3);

    // Everything drains at night.
    for (screen, agent) in agents.iter_mut() {
        agent.terminate().await;
        env.drain(screen, agent, night).await;
        epochs
            .entry(*screen)
            .or_default()
            .push(reported(&env, screen));
    }

    for (screen, expect) in &epochs {
        check_screen(&env, screen, expect);
    }
    assert_eq!(epochs[WIPED].len(), 2);
    assert_eq!(epochs[CORRUPT].len(), 2);
    assert_eq!(epochs[REKEYED].len(), 1);

    // `audit verify`: clean, every epoch named with its signers, and the rotations.
    let verdict = off_runtime(|| server::audit::verify(&*env.store)).unwrap();
    let text = verdict.lines();
    assert!(verdict.problems.is_empty(), "{text}");
    let total: u64 = epochs.values().flatten().map(|(_, n)| n).sum();
    assert_eq!(verdict.records, total, "{text}");
    for (screen, expect) in &epochs {
        for (epoch, _) in expect {
            let line = format!("EPOCH screen {screen} epoch {epoch}: ");
            assert!(text.contains(&line), "{line:?} missing from\n{text}");
        }
    }
    let rekeyed = text
        .lines()
        .find(|l| l.starts_with(&format!("EPOCH screen {REKEYED} ")))
        .unwrap();
    for n in 1..=3 {
        assert!(rekeyed.contains(&format!("(key {n} of 3)")), "{rekeyed}");
    }
    assert!(
        text.contains(&format!("KEYS screen {REKEYED}: 3 keys, 2 rotations: ")),
        "{text}"
    );
    assert!(text.contains("ledger verified"), "{text}");

    env.stop().await;
}
