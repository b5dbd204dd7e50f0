//! The agent's one view of time: the system clock in production, or a virtual clock that
//! the simulation leader drives over MQTT. Only the player sleeps on this clock; network
//! timers (heartbeat, batch resend) are real time and use tokio directly.
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
}

/// A clock handle; clones share the same time.
#[derive(Clone)]
pub enum Clock {
    System(SystemClock),
    Sim(SimHandle),
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Clock::System(_) => f.write_str("Clock::System"),
            Clock::Sim(s) => write!(f, "Clock::Sim({:?})", s.now()),
        }
    }
}

impl Clock {
    pub fn system() -> Clock {
        Clock::System(SystemClock {
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
        }
    }

    /// The current time, waiting for a sim clock's first step.
    pub async fn started(&self) -> DateTime<Utc> {
        match self {
            Clock::System(_) => Utc::now(),
            Clock::Sim(s) => s.started().await,
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
        }
    }

    /// Waits forever; on a sim clock, tells the leader nothing is due for a while.
    pub async fn idle(&self) {
        match self {
            Clock::System(_) => std::future::pending().await,
            Clock::Sim(s) => s.wait(Wait::Idle).await,
        }
    }

    /// Milliseconds on a monotonic scale, for measuring durations: real elapsed time on the
    /// system clock, virtual time on a sim clock.
    pub fn mono_ms(&self) -> i64 {
        match self {
            Clock::System(c) => c.origin.elapsed().as_millis() as i64,
            Clock::Sim(s) => s.now().map(|t| t.timestamp_millis()).unwrap_or(0),
        }
    }

    /// Whether this clock is believed to be right. The system clock is trusted (NTP is the
    /// operating system's job); the sim clock is right by definition.
    pub fn synced(&self) -> bool {
        true
    }

    pub fn as_sim(&self) -> Option<&SimHandle> {
        match self {
            Clock::Sim(s) => Some(s),
            Clock::System(_) => None,
        }
    }
}

#[derive(Clone)]
pub struct SystemClock {
    origin: tokio::time::Instant,
}

/// What the one waiting task waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    Until(DateTime<Utc>),
    Idle,
}

#[derive(Debug, Default)]
struct SimState {
    now: Option<DateTime<Utc>>,
    step: u64,
    waiting: Option<Wait>,
    last_ready: Option<(u64, DateTime<Utc>)>,
}

impl SimState {
    /// The time the waiter needs next, if it is waiting for a time after `now`.
    fn next(&self) -> Option<DateTime<Utc>> {
        let now = self.now?;
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
        self.lock().now
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SimState> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies the leader's step. A re-delivered current step is answered again.
    pub fn advance(&self, msg: &SimClock) -> Result<(), SimError> {
        {
            let mut st = self.lock();
            if st.now.is_some() && msg.step < st.step {
                return Err(SimError::OldStep {
                    got: msg.step,
                    current: st.step,
                });
            }
            if let Some(current) = st.now.filter(|c| msg.now < *c) {
                return Err(SimError::Backwards {
                    step: msg.step,
                    got: msg.now,
                    current,
                });
            }
            st.step = msg.step;
            st.now = Some(msg.now);
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
                if let (Wait::Until(t), Some(now)) = (wait, st.now) {
                    if now >= t {
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
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn step(n: u64, now: &str) -> SimClock {
        SimClock {
            v: 1,
            step: n,
            now: t(now),
        }
    }

    fn poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    fn drain(rx: &mut mpsc::UnboundedReceiver<SimReady>) -> Vec<(u64, String)> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|r| (r.step, r.next.format("%H:%M:%S").to_string()))
            .collect()
    }

    #[tokio::test]
    async fn ready_only_while_waiting_for_a_later_time() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let clock = Clock::sim("s1", tx);
        let sim = clock.as_sim().unwrap().clone();
        assert_eq!(clock.now(), None);

        // No time yet: the player cannot start; nothing reported.
        let mut started = pin!(clock.started());
        assert!(poll_once(started.as_mut()).is_pending());
        sim.advance(&step(0, "2023-12-18T08:00:00Z")).unwrap();
        assert_eq!(
            poll_once(started.as_mut()),
            Poll::Ready(t("2023-12-18T08:00:00Z"))
        );
        // Not waiting (the player is busy): no ready.
        assert_eq!(drain(&mut rx), vec![]);

        {
            let mut sleep = pin!(clock.sleep_until(t("2023-12-18T08:00:15Z")));
            assert!(poll_once(sleep.as_mut()).is_pending());
            assert_eq!(drain(&mut rx), vec![(0, "08:00:15".into())]);
            // Polled again within the step: no duplicate.
            assert!(poll_once(sleep.as_mut()).is_pending());
            assert_eq!(drain(&mut rx), vec![]);
            // A step that is not yet the awaited time: ready again at once.
            sim.advance(&step(1, "2023-12-18T08:00:10Z")).unwrap();
            assert_eq!(drain(&mut rx), vec![(1, "08:00:15".into())]);
            assert!(poll_once(sleep.as_mut()).is_pending());
            assert_eq!(drain(&mut rx), vec![]);
            // The same step re-delivered (a reconnect): answered again.
            sim.advance(&step(1, "2023-12-18T08:00:10Z")).unwrap();
            assert_eq!(drain(&mut rx), vec![(1, "08:00:15".into())]);
            assert!(sim.last_ready().is_some());
            // The awaited time: the sleep ends and no ready is sent (work is due).
            sim.advance(&step(2, "2023-12-18T08:00:15Z")).unwrap();
            assert_eq!(drain(&mut rx), vec![]);
            assert_eq!(poll_once(sleep.as_mut()), Poll::Ready(()));
        }
        // Nobody waits between steps: no ready, and last_ready is stale.
        assert_eq!(sim.last_ready(), None);
        {
            let mut idle = pin!(clock.idle());
            assert!(poll_once(idle.as_mut()).is_pending());
            assert_eq!(drain(&mut rx), vec![(2, "08:01:15".into())]);
        }
        // A cancelled wait (dropped) no longer counts as waiting.
        sim.advance(&step(3, "2023-12-18T08:00:20Z")).unwrap();
        assert_eq!(drain(&mut rx), vec![]);
        // Old or backwards steps are refused.
        assert!(matches!(
            sim.advance(&step(2, "2023-12-18T08:00:30Z")),
            Err(SimError::OldStep { .. })
        ));
        assert!(matches!(
            sim.advance(&step(4, "2023-12-18T08:00:00Z")),
            Err(SimError::Backwards { .. })
        ));
        assert_eq!(
            clock.mono_ms(),
            t("2023-12-18T08:00:20Z").timestamp_millis()
        );
    }

    #[tokio::test]
    async fn a_time_already_reached_does_not_wait_or_report() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let clock = Clock::sim("s1", tx);
        clock
            .as_sim()
            .unwrap()
            .advance(&step(0, "2023-12-18T08:00:30Z"))
            .unwrap();
        let mut sleep = pin!(clock.sleep_until(t("2023-12-18T08:00:15Z")));
        assert_eq!(poll_once(sleep.as_mut()), Poll::Ready(()));
        assert_eq!(drain(&mut rx), vec![]);
    }

    #[tokio::test]
    async fn system_clock_sleeps_until_a_wall_time() {
        let clock = Clock::system();
        let target = Utc::now() + chrono::Duration::milliseconds(30);
        clock.sleep_until(target).await;
        assert!(Utc::now() >= target);
        assert!(clock.now().is_some());
    }
}
