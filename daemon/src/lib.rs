//! `daemon`: what `signage serve` and `signage-agent` tell their service manager
//! (systemd's `Type=notify` protocol through the `sd-notify` crate): `READY=1` once they
//! serve, `STOPPING=1` when they shut down, and `WATCHDOG=1` at half the `WatchdogSec=`
//! interval, but only while every registered event loop keeps beating. A loop that hangs
//! (a deadlock, a blocking call on the runtime, a wedged store) stops the pings and
//! systemd restarts the service; a blind timer would keep a hung daemon "alive".
//!
//! Everything is a no-op when `NOTIFY_SOCKET` is unset (a terminal, a test, a container):
//! the daemons call it unconditionally. Which loops beat, and when "ready" is, is the
//! daemons' business; this crate only keeps the clock and speaks the protocol.

pub mod memory;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

/// How often a registered loop must beat. Loops add a tick of this period to their
/// `select!` so that an idle loop still beats; a busy one beats on every event too.
pub const BEAT_EVERY: Duration = Duration::from_secs(2);

/// A loop is stale when it has not beaten for this long, or for the watchdog interval
/// when that is longer: a few missed ticks are scheduling noise, not a hang.
const STALE_AFTER_MIN: Duration = Duration::from_secs(10);

/// Tells the service manager the daemon serves. Logs (does not fail) when it cannot.
pub fn ready() {
    send(&[NotifyState::Ready], "READY=1");
}

/// Tells the service manager the daemon is shutting down on purpose.
pub fn stopping() {
    send(&[NotifyState::Stopping], "STOPPING=1");
}

fn send(state: &[NotifyState], what: &str) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, notification = what, "could not notify the service manager");
    }
}

/// The event loops the watchdog vouches for. Cloneable; each loop registers once.
#[derive(Clone, Default, Debug)]
pub struct Liveness {
    loops: Arc<Mutex<Vec<Beat>>>,
}

/// One loop's heartbeat: the time of its last beat (tokio's clock, so tests can pause it).
/// Cheap to clone and to beat.
#[derive(Clone, Debug)]
pub struct Beat {
    name: &'static str,
    last: Arc<Mutex<Instant>>,
}

impl Beat {
    /// The loop is alive now.
    pub fn beat(&self) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn age(&self) -> Duration {
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
    }
}

impl Liveness {
    /// Registers a loop (beaten once now) and returns its heartbeat.
    pub fn register(&self, name: &'static str) -> Beat {
        let beat = Beat {
            name,
            last: Arc::new(Mutex::new(Instant::now())),
        };
        self.loops
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(beat.clone());
        beat
    }

    /// The loops that have not beaten within `stale_after`, by name.
    pub fn stale(&self, stale_after: Duration) -> Vec<&'static str> {
        self.loops
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|b| b.age() > stale_after)
            .map(|b| b.name)
            .collect()
    }
}

/// The watchdog interval systemd asked for (`WATCHDOG_USEC`, for this process), if any.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().filter(|d| !d.is_zero())
}

/// Pings `WATCHDOG=1` every half `interval` while no loop of `liveness` is stale, until
/// `shutdown`. A stale loop is logged once per ping skipped; systemd then kills and
/// restarts the service when the interval passes without a ping.
pub async fn watchdog(liveness: Liveness, interval: Duration, shutdown: CancellationToken) {
    let stale_after = interval.max(STALE_AFTER_MIN);
    let mut tick = tokio::time::interval(interval / 2);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let stale = liveness.stale(stale_after);
        if stale.is_empty() {
            send(&[NotifyState::Watchdog], "WATCHDOG=1");
        } else {
            tracing::error!(loops = ?stale, ?stale_after, "event loops stopped beating; not feeding the watchdog");
        }
    }
}

/// Starts [`watchdog`] on the current runtime when systemd asked for one.
pub fn spawn_watchdog(
    liveness: &Liveness,
    shutdown: &CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    let interval = watchdog_interval()?;
    tracing::info!(?interval, "feeding the systemd watchdog");
    Some(tokio::spawn(watchdog(
        liveness.clone(),
        interval,
        shutdown.clone(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_loop_that_stops_beating_goes_stale() {
        let liveness = Liveness::default();
        let a = liveness.register("a");
        let _b = liveness.register("b");
        assert!(liveness.stale(Duration::from_secs(10)).is_empty());
        tokio::time::sleep(Duration::from_secs(11)).await;
        a.beat();
        assert_eq!(liveness.stale(Duration::from_secs(10)), vec!["b"]);
    }

    /// The protocol on a real socket: `READY=1`, `WATCHDOG=1` from the watchdog only while
    /// its loop beats, `STOPPING=1`. The only test here that sets `NOTIFY_SOCKET`.
    #[tokio::test(start_paused = true)]
    async fn ready_watchdog_and_stopping_reach_the_notify_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let recv = || {
            let mut buf = [0u8; 256];
            let n = socket.recv(&mut buf).unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        };
        std::env::set_var("NOTIFY_SOCKET", &path);
        ready();
        assert_eq!(recv(), "READY=1\n");

        let liveness = Liveness::default();
        let beat = liveness.register("main");
        let shutdown = CancellationToken::new();
        let dog = tokio::spawn(watchdog(
            liveness,
            Duration::from_secs(30),
            shutdown.clone(),
        ));
        // Ticks at 0 s and 15 s (paused time runs to each timer at once).
        tokio::time::sleep(Duration::from_secs(16)).await;
        assert_eq!(recv(), "WATCHDOG=1\n");
        assert_eq!(recv(), "WATCHDOG=1\n");
        // The loop beat last at 0 s: a ping at 30 s (age not over the 30 s interval), none
        // at 45 s or 60 s; a beat at 61 s resumes them at the next tick (75 s).
        tokio::time::sleep(Duration::from_secs(45)).await;
        assert_eq!(recv(), "WATCHDOG=1\n");
        socket.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        assert!(socket.recv(&mut buf).is_err(), "pinged for a stale loop");
        socket.set_nonblocking(false).unwrap();
        beat.beat();
        tokio::time::sleep(Duration::from_secs(15)).await;
        assert_eq!(recv(), "WATCHDOG=1\n");
        shutdown.cancel();
        dog.await.unwrap();
        stopping();
        assert_eq!(recv(), "STOPPING=1\n");
        std::env::remove_var("NOTIFY_SOCKET");
    }
}
