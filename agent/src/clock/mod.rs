//! The agent's one view of time: the system clock in production, a virtual clock that the
//! simulation leader drives over MQTT, or a scaled clock (virtual time running `speed`
//! times faster than the wall clock from a fixed anchor). Only the player sleeps on this
//! clock; network timers (heartbeat, batch resend) are real time and use tokio directly.
//!
//! The scaled clock needs no leader, so it survives what the sim clock cannot: a killed
//! agent restarted with the same `--clock-start`, `--clock-anchor-ms` and `--clock-speed`
//! continues the same timeline, and it keeps running while the broker is away. Its
//! arithmetic is the pure [`Scaled`]; reading the wall clock and sleeping is [`Clock`]'s.
//!
//! The sim clock's protocol (message shapes in `sim.rs`): the leader publishes
//! `{step, now}`; the clock has no time before the first message. Whenever the player is
//! blocked waiting for a time later than `now`, the agent has finished everything due at
//! `now`, so the clock reports `ready {step, next}` through the channel given at
//! construction (the main loop publishes it). It reports once for every step it
//! receives, and again within a step when the time it waits for changes. While the player
//! is working (between two waits) nothing is reported. Exactly one task (the player) may
//! wait on a sim clock at a time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};

use crate::sim::{SimClock, SimReady};

/// What a sim agent without anything scheduled reports as `next`: `now` plus this.
pub const IDLE_STEP: Duration = Duration::from_secs(60);

/// Which clock to run on (the CLI's `--clock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ClockKind {
    #[default]
    System,
    Sim,
    /// Wall-clock driven virtual time: `start + (real - anchor) * speed`.
    Scaled,
}

/// A clock handle; clones share the same time.
#[derive(Clone)]
pub enum Clock {
    System(SystemClock),
    Sim(SimHandle),
    Scaled(ScaledClock),
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Clock::System(_) => f.write_str("Clock::System"),
            Clock::Sim(s) => write!(f, "Clock::Sim({:?})", s.now()),
            Clock::Scaled(c) => write!(f, "Clock::Scaled({:?})", c.scale),
        }
    }
}

impl Clock {
    pub fn system() -> Clock {
        Clock::System(SystemClock {
            origin: tokio::time::Instant::now(),
        })
    }

    /// A clock running `scale.speed` times faster than the wall clock.
    pub fn scaled(scale: Scaled) -> Clock {
        Clock::Scaled(ScaledClock {
            scale,
            origin: tokio::time::Instant::now(),
        })
    }

    /// A sim clock that reports readiness of `screen_id` on `ready`.
    pub fn sim(screen_id: &str, ready: mpsc::UnboundedSender<SimReady>) -> Clock {
        let (changed, _) = watch::channel(0u64);
        Clock::Sim(SimHandle {
            inner: Arc::new(SimInner {
                screen_id: screen_id.to_owned(),
                state: Mutex::new(SimState::default()),
                changed,
                ready,
            }),
        })
    }

    /// The current time; `None` on a sim clock that has not received its first step.
    pub fn now(&self) -> Option<DateTime<Utc>> {
        match self {
            Clock::System(_) => Some(Utc::now()),
            Clock::Sim(s) => s.now(),
            Clock::Scaled(c) => Some(c.scale.virtual_at(Utc::now())),
        }
    }

    /// The current time, waiting for a sim clock's first step.
    pub async fn started(&self) -> DateTime<Utc> {
        match self {
            Clock::System(_) => Utc::now(),
            Clock::Sim(s) => s.started().await,
            Clock::Scaled(c) => c.scale.virtual_at(Utc::now()),
        }
    }

    /// Returns once the clock reads at least `t`.
    pub async fn sleep_until(&self, t: DateTime<Utc>) {
        match self {
            Clock::System(_) => loop {
                let left = (t - Utc::now()).to_std().unwrap_or_default();
                if left.is_zero() {
                    return;
                }
                // Short naps so that a stepped wall clock (NTP, suspend) is noticed.
                tokio::time::sleep(left.min(Duration::from_secs(1))).await;
            },
            Clock::Sim(s) => s.wait(Wait::Until(t)).await,
            Clock::Scaled(c) => loop {
                let real = Utc::now();
                if c.scale.virtual_at(real) >= t {
                    return;
                }
                // At least a microsecond, so that rounding cannot spin.
                let left = (c.scale.real_at(t) - real)
                    .to_std()
                    .unwrap_or_default()
                    .max(Duration::from_micros(1));
                // Short naps so that a stepped wall clock is noticed, as above.
                tokio::time::sleep(left.min(Duration::from_secs(1))).await;
            },
        }
    }

    /// Waits forever; on a sim clock, tells the leader nothing is due for a while.
    pub async fn idle(&self) {
        match self {
            Clock::System(_) | Clock::Scaled(_) => std::future::pending().await,
            Clock::Sim(s) => s.wait(Wait::Idle).await,
        }
    }

    /// Milliseconds on a monotonic scale, for measuring durations: real elapsed time on the
    /// system clock, virtual time on a sim clock, real elapsed time times the speed on a
    /// scaled clock.
    pub fn mono_ms(&self) -> i64 {
        match self {
            Clock::System(c) => c.origin.elapsed().as_millis() as i64,
            Clock::Scaled(c) => c.scale.scale_real(c.origin.elapsed()).num_milliseconds(),
            Clock::Sim(s) => s.now().map(|t| t.timestamp_millis()).unwrap_or(0),
        }
    }

    /// Whether this clock is believed to be right: for the system clock the kernel's own
    /// verdict ([`kernel_synced`]); the sim and scaled clocks are right by definition.
    pub fn synced(&self) -> bool {
        match self {
            Clock::System(_) => kernel_synced(),
            Clock::Sim(_) | Clock::Scaled(_) => true,
        }
    }

    pub fn as_sim(&self) -> Option<&SimHandle> {
        match self {
            Clock::Sim(s) => Some(s),
            Clock::System(_) | Clock::Scaled(_) => None,
        }
    }
}

#[derive(Clone)]
pub struct SystemClock {
    origin: tokio::time::Instant,
}

#[derive(Clone)]
pub struct ScaledClock {
    scale: Scaled,
    /// For [`Clock::mono_ms`].
    origin: tokio::time::Instant,
}

/// Why a scaled clock cannot be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScaledError {
    #[error("clock speed {0} must be a positive finite number")]
    Speed(f64),
    #[error("clock anchor {0} ms is not a representable time")]
    Anchor(i64),
}

/// The scaled clock's arithmetic, pure: virtual time `start + (real - anchor) * speed`,
/// to the microsecond.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scaled {
    start: DateTime<Utc>,
    anchor: DateTime<Utc>,
    speed: f64,
}

impl Scaled {
    /// `anchor_ms` is the real Unix time (milliseconds) at which virtual time is `start`.
    pub fn new(start: DateTime<Utc>, anchor_ms: i64, speed: f64) -> Result<Scaled, ScaledError> {
        if !(speed.is_finite() && speed > 0.0) {
            return Err(ScaledError::Speed(speed));
        }
        let anchor =
            DateTime::from_timestamp_millis(anchor_ms).ok_or(ScaledError::Anchor(anchor_ms))?;
        Ok(Scaled {
            start,
            anchor,
            speed,
        })
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// A real span stretched by the speed, to the microsecond.
    pub fn scale_real(&self, real: Duration) -> chrono::Duration {
        chrono::Duration::microseconds((real.as_micros() as f64 * self.speed) as i64)
    }

    /// Virtual time at real (wall-clock) time `real`; before the anchor it runs backwards
    /// from `start` the same way.
    pub fn virtual_at(&self, real: DateTime<Utc>) -> DateTime<Utc> {
        let real_us = (real - self.anchor).num_microseconds().unwrap_or(i64::MAX);
        let virt_us = (real_us as f64 * self.speed).floor();
        self.start + chrono::Duration::microseconds(virt_us as i64)
    }

    /// The earliest real time (to the microsecond) at which virtual time reads at least `t`.
    pub fn real_at(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let virt_us = (t - self.start).num_microseconds().unwrap_or(i64::MAX);
        let mut real_us = (virt_us as f64 / self.speed).ceil() as i64;
        // Float rounding may leave it a microsecond short.
        let reads_t =
            |us: i64| self.virtual_at(self.anchor + chrono::Duration::microseconds(us)) >= t;
        while !reads_t(real_us) {
            real_us += 1;
        }
        while reads_t(real_us - 1) {
            real_us -= 1;
        }
        self.anchor + chrono::Duration::microseconds(real_us)
    }
}

/// What the one waiting task waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    Until(DateTime<Utc>),
    Idle,
}

#[derive(Debug, Default)]
struct SimState {
    /// The leader's horizon: time may run up to here.
    horizon: Option<DateTime<Utc>>,
    /// This agent's own time: the horizon's first value, then each instant the player
    /// waited for once the horizon reached it. Plays are stamped with it, so they start and
    /// end exactly on their slot boundaries however far ahead the leader lets time run.
    local: Option<DateTime<Utc>>,
    step: u64,
    waiting: Option<Wait>,
    last_ready: Option<(u64, DateTime<Utc>)>,
}

impl SimState {
    /// The time the waiter needs next, if it is waiting for a time after `now`.
    fn next(&self) -> Option<DateTime<Utc>> {
        let now = self.horizon?;
        match self.waiting? {
            Wait::Until(t) if t > now => Some(t),
            Wait::Until(_) => None,
            Wait::Idle => Some(now + IDLE_STEP),
        }
    }
}

struct SimInner {
    screen_id: String,
    state: Mutex<SimState>,
    /// Bumped on every step, to wake the waiter.
    changed: watch::Sender<u64>,
    ready: mpsc::UnboundedSender<SimReady>,
}

/// Why a clock message was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("step {got} is older than the current step {current}")]
    OldStep { got: u64, current: u64 },
    #[error("time {got} of step {step} goes back from {current}")]
    Backwards {
        step: u64,
        got: DateTime<Utc>,
        current: DateTime<Utc>,
    },
}

/// The sim clock: the main loop [`advance`](SimHandle::advance)s it, the player waits on it.
#[derive(Clone)]
pub struct SimHandle {
    inner: Arc<SimInner>,
}

impl SimHandle {
    pub fn now(&self) -> Option<DateTime<Utc>> {
        self.lock().local
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SimState> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies the leader's step. A re-delivered current step is answered again.
    pub fn advance(&self, msg: &SimClock) -> Result<(), SimError> {
        {
            let mut st = self.lock();
            if st.horizon.is_some() && msg.step < st.step {
                return Err(SimError::OldStep {
                    got: msg.step,
                    current: st.step,
                });
            }
            if let Some(current) = st.horizon.filter(|c| msg.now < *c) {
                return Err(SimError::Backwards {
                    step: msg.step,
                    got: msg.now,
                    current,
                });
            }
            st.step = msg.step;
            st.horizon = Some(msg.now);
            st.local.get_or_insert(msg.now);
            if let Some(next) = st.next() {
                self.report(&mut st, next);
            }
        }
        self.inner.changed.send_modify(|g| *g = g.wrapping_add(1));
        Ok(())
    }

    /// The last ready report, to publish again after a reconnect.
    pub fn last_ready(&self) -> Option<SimReady> {
        let st = self.lock();
        let (step, next) = st.last_ready?;
        (step == st.step && st.next() == Some(next)).then(|| self.ready_msg(step, next))
    }

    async fn started(&self) -> DateTime<Utc> {
        let mut rx = self.inner.changed.subscribe();
        loop {
            if let Some(now) = self.now() {
                return now;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    async fn wait(&self, wait: Wait) {
        let mut rx = self.inner.changed.subscribe();
        let _guard = WaitGuard(self);
        loop {
            {
                let mut st = self.lock();
                if let (Wait::Until(t), Some(now)) = (wait, st.horizon) {
                    if now >= t {
                        st.local = Some(st.local.map_or(t, |l| l.max(t)));
                        st.waiting = None;
                        return;
                    }
                }
                st.waiting = Some(wait);
                if let Some(next) = st.next() {
                    if st.last_ready != Some((st.step, next)) {
                        self.report(&mut st, next);
                    }
                }
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    fn report(&self, st: &mut SimState, next: DateTime<Utc>) {
        st.last_ready = Some((st.step, next));
        // The receiver only goes away at shutdown.
        let _ = self.inner.ready.send(self.ready_msg(st.step, next));
    }

    fn ready_msg(&self, step: u64, next: DateTime<Utc>) -> SimReady {
        SimReady {
            v: playlists::wire::VERSION,
            screen_id: self.inner.screen_id.clone(),
            step,
            next,
            last_seq: None,
        }
    }
}

/// Clears the registration when a wait ends or is cancelled.
struct WaitGuard<'a>(&'a SimHandle);

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.0.lock().waiting = None;
    }
}

#[cfg(test)]
mod tests;

/// Whether the kernel believes the system clock synchronised (an NTP daemon disciplines
/// it): `adjtimex` in read-only mode (`modes = 0`). Unsynchronised when the call fails.
#[cfg(target_os = "linux")]
#[allow(unsafe_code, reason = "adjtimex(2) has no safe wrapper")]
pub fn kernel_synced() -> bool {
    // SAFETY: a zeroed `timex` is a valid argument; with `modes = 0` the call only reads the
    // kernel's clock state into it.
    let mut t: libc::timex = unsafe { std::mem::zeroed() };
    t.modes = 0;
    let state = unsafe { libc::adjtimex(&mut t) };
    synced_from_timex(state, t.status)
}

/// Elsewhere the operating system's clock is trusted.
#[cfg(not(target_os = "linux"))]
pub fn kernel_synced() -> bool {
    true
}

/// The verdict from `adjtimex`'s return value and the `status` it filled in:
/// unsynchronised on an error (-1), on `TIME_ERROR` (5), or with `STA_UNSYNC` set.
pub fn synced_from_timex(state: i32, status: i32) -> bool {
    /// `TIME_ERROR`: the clock is not synchronised.
    const TIME_ERROR: i32 = 5;
    /// `STA_UNSYNC` in `status`.
    const STA_UNSYNC: i32 = 0x0040;
    state >= 0 && state != TIME_ERROR && status & STA_UNSYNC == 0
}
