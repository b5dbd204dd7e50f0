//! The fleet simulator in CI: 2,000 real agents (the agent library's code, each with its
//! own MQTT connection, key, outbox and player) in this process, on a real server with the
//! embedded broker, on one scaled timeline. Every agent must connect and hold the version
//! published for its screen; a campaign edit for one district must reach every agent whose
//! document it changed, and no screen outside the district; an all-city emergency must
//! play on every screen; after the fleet stops, the ledger must hold exactly the plays the
//! agents recorded (seqs 1..=k per screen, once each, the rest still in their outboxes).
//! The figures are printed, never asserted. `FLEET_SCREENS` changes the size.

use tests::fleet_sim::{deliver, run, SimOptions};

#[test]
fn two_thousand_agents_in_one_process() {
    let screens = std::env::var("FLEET_SCREENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let opts = SimOptions::new(screens);
    // A runtime of its own, as a fleet host has: two workers, room for the agents'
    // blocking outbox writes.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (figures, check) = rt.block_on(run(&opts)).expect("the simulation ran");
    eprintln!("{figures}");
    eprintln!(
        "  ledger check: {} records, {} written, {} still in outboxes, {} screens played the emergency, {} problems",
        check.records,
        check.written,
        check.unsent,
        check.emergency_screens.len(),
        check.problems.len()
    );

    assert_eq!(figures.screens, screens);
    // The edit changed documents in its district only, and each reached its agent (the
    // simulator waits for every one; a spread over all of them says none was left out).
    assert!(figures.edit_targets > 0, "the edit changed no document");
    assert_eq!(
        figures.edit_outside, 0,
        "documents outside the district changed"
    );
    assert!(figures.edit_targets <= figures.edit_district.1);
    assert_eq!(figures.edit.count, figures.edit_targets);
    assert_eq!(figures.edit_status_confirmed, figures.edit_targets);
    // The emergency played on every screen it named (seen by the player hook, and in
    // the proof of play written by the agents).
    assert!(figures.emergency_targets > 0);
    assert_eq!(figures.emergency.count, figures.emergency_targets);
    assert_eq!(check.emergency_screens.len(), figures.emergency_targets);
    // Proof of play: nothing lost, nothing twice; every play finished in the measured
    // window reached the ledger.
    assert!(
        check.problems.is_empty(),
        "{:#?}",
        &check.problems[..check.problems.len().min(20)]
    );
    assert_eq!(check.records + check.unsent, check.written);
    assert!(check.records > 0);
    assert!(figures.ingest_lag.count > 0);
    assert_eq!(
        figures.ingest_pending, 0,
        "plays not in the ledger a minute after the window"
    );
}

/// The emergency's delivery alone (`fleet_sim::deliver`): with a thin subscriber per
/// screen on Mosquitto, every screen the emergency targets holds its command, signed by the
/// server for that screen and in date by the agent's own check, and no command fails it.
#[test]
fn every_targeted_subscriber_holds_a_verified_command() {
    let mut opts = SimOptions::new(300);
    opts.fd_light = true;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let d = rt.block_on(deliver(&opts)).expect("the delivery ran");
    eprintln!("{d}");
    assert_eq!(d.screens, 300);
    assert!(
        d.targets > 250,
        "an all-city emergency targets the city: {d}"
    );
    assert_eq!(d.delivered.count, d.targets, "{d}");
    assert_eq!(d.refused, 0, "{d}");
}
