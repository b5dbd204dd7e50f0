//! `cargo bench -p tests --bench fleet_sim`: the fleet simulator at city size (11,000
//! agents by default) — see `tests/src/fleet_sim.rs` for what each figure measures, and
//! README "Fleet simulator". Figures only; the ledger check is printed, not asserted (the
//! CI test `fleet_scale` asserts it at 2,000 agents).
//!
//! `FLEET_SCREENS` (default 11,000), `FLEET_SPEED` (virtual seconds per real second,
//! default 2), `FLEET_PLAY_S` (seconds of play measured for ingest, default 30) and
//! `FLEET_PHASE_LIMIT_S` change the run. Above 5,000 agents (or with `FLEET_FD_LIGHT=1`;
//! `0` turns it off) the run is fd-light: Mosquitto as the broker, outboxes in memory, so
//! 11,000 agents fit this process's 20,000 file descriptors.
//!
//! `FLEET_DELIVERY=1` runs the same city with a thin subscriber per screen instead of an
//! agent (`tests::fleet_sim::deliver`: the server's and the broker's part of an emergency,
//! up to each screen's connection holding its verified command), fd-light.

use std::time::Duration;

use tests::fleet_sim::{deliver, run, SimOptions};

/// `name`'s value, or `default` when unset; a value that does not parse is an error naming
/// the variable (a typo must not silently run another bench).
fn env<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}={v:?} is not a {}", std::any::type_name::<T>())),
    }
}

fn main() -> anyhow::Result<()> {
    let mut opts = SimOptions::new(env("FLEET_SCREENS", 11_000)?);
    opts.speed = env("FLEET_SPEED", 2.0)?;
    opts.play_for = Duration::from_secs(env("FLEET_PLAY_S", 30)?);
    let delivery = match env("FLEET_DELIVERY", 0u8)? {
        0 => false,
        1 => true,
        n => anyhow::bail!("FLEET_DELIVERY is 0 or 1, not {n}"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if delivery {
        opts.fd_light = true;
        println!("{}", runtime.block_on(deliver(&opts))?);
        return Ok(());
    }
    let (figures, check) = runtime.block_on(run(&opts))?;
    println!("{figures}");
    println!(
        "  ledger check: {} records, {} written by the agents, {} still in outboxes at the stop, \
         {} screens played the emergency, {} problems",
        check.records,
        check.written,
        check.unsent,
        check.emergency_screens.len(),
        check.problems.len()
    );
    for p in check.problems.iter().take(20) {
        println!("    {p}");
    }
    Ok(())
}
