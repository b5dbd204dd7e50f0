//! The broker is untrusted: another client publishes forged, unsigned, oversized and
//! replayed retained schedules to a screen's topic on a real Mosquitto. The real agent
//! ignores them all (and says so in its log), keeps running, and still applies the next
//! genuine schedule.

use std::time::{Duration, Instant};

use playlists::wire::schedule::{ScheduleBody, KIND};
use playlists::wire::{Keypair, ScheduleDoc, Topics};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use server::app::{self};

const SCREEN: &str = "bj-metro-xidan-s1";

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_replayed_schedules_are_ignored() {
    let mosquitto = tests::Mosquitto::start();
    let env = tests::TestEnv::spawn(Some(mosquitto.port)).await;
    let (store, handle, tmp) = (&env.store, &env.handle, &env.tmp);
    let config = env.provision(SCREEN);
    let agent_dir = tmp.path().join("agent");
    std::fs::create_dir_all(agent_dir.join("data")).unwrap();
    std::fs::write(agent_dir.join("agent.toml"), config).unwrap();
    let log_path = agent_dir.join("agent.log");
    let mut agent = tokio::process::Command::new(tests::agent_bin())
        .arg("--config")
        .arg(agent_dir.join("agent.toml"))
        .arg("--data-dir")
        .arg(agent_dir.join("data"))
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&log_path).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let version = |h: &app::Handle| {
        h.shared
            .fleet
            .lock()
            .unwrap()
            .get(SCREEN)
            .and_then(|s| s.online.then_some(s.schedule_version).flatten())
    };
    wait_for("the agent to apply schedule version 1", || {
        version(handle) == Some(1)
    })
    .await;

    // The forger: any client of the broker.
    let mut options = MqttOptions::new("forger", "127.0.0.1", mosquitto.port);
    options.set_max_packet_size(8 << 20, 8 << 20);
    let (forger, mut events) = AsyncClient::new(options, 64);
    let forger_task = tokio::spawn(async move { while events.poll().await.is_ok() {} });
    let topic = Topics::default().schedule(SCREEN);
    let catalogue = env.catalogue();
    let mut schedule = catalogue
        .schedule_for(&playlists::ScreenId::parse(SCREEN).unwrap())
        .unwrap();
    schedule
        .campaigns
        .retain(|c| c.id.as_str() == "house-filler");
    let doc = ScheduleDoc::new(
        &schedule.screen.id,
        99,
        chrono::Utc::now(),
        chrono::Utc::now() + chrono::Duration::days(7),
        ScheduleBody::from_schedule(&schedule),
    );
    let forged = Keypair::from_secret([42; 32]).seal(KIND, &doc);
    let unsigned = serde_json::to_vec(&doc).unwrap();
    let oversized = vec![b' '; 3 << 20];
    for payload in [forged, unsigned, oversized] {
        forger
            .publish(topic.clone(), QoS::AtLeastOnce, true, payload)
            .await
            .unwrap();
    }

    // A genuine change: the server publishes version 2 (after the forgeries, on the same topic).
    let changed = tests::copy_beijing(tmp.path());
    tests::edit_scenario(&changed, |v| {
        let c = v["campaigns"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|c| c["id"] == "house-filler")
            .unwrap();
        c["weight"] = 2.into();
    });
    tests::store::off_runtime(|| {
        server::import::import(
            &handle.shared.catalogue,
            &changed,
            &server::import::ImportOptions::admin(),
        )
    })
    .unwrap();
    assert!(handle.publish_schedules(false).await.unwrap() > 0);
    wait_for("the agent to apply schedule version 2", || {
        version(handle) == Some(2)
    })
    .await;

    // Replay the old genuine version 1 (validly signed, but older): ignored too.
    let replay = {
        let key = server::keys::server_key(store.dir()).unwrap();
        let body = ScheduleBody::from_schedule(
            &catalogue
                .schedule_for(&playlists::ScreenId::parse(SCREEN).unwrap())
                .unwrap(),
        );
        key.seal(
            KIND,
            &ScheduleDoc::new(
                &playlists::ScreenId::parse(SCREEN).unwrap(),
                1,
                chrono::Utc::now(),
                chrono::Utc::now() + chrono::Duration::days(7),
                body,
            ),
        )
    };
    forger
        .publish(topic.clone(), QoS::AtLeastOnce, true, replay)
        .await
        .unwrap();
    // Probe: once this third forged message is logged, the replay before it was handled.
    forger
        .publish(topic.clone(), QoS::AtLeastOnce, true, b"{\"v\":1}".to_vec())
        .await
        .unwrap();
    wait_for("the agent to log four rejected schedules", || {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        log.lines()
            .filter(|l| l.contains("schedule") && (l.contains("reject") || l.contains("ignor")))
            .count()
            >= 5
    })
    .await;
    assert_eq!(
        version(handle),
        Some(2),
        "a forged or replayed schedule was applied"
    );
    assert!(agent.try_wait().unwrap().is_none(), "the agent died");

    forger_task.abort();
    let _ = agent.start_kill();
    env.stop().await;
}
