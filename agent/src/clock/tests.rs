//! Tests of `clock`.

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
    // The agent's own time is the last instant it waited for, not the horizon.
    assert_eq!(
        clock.mono_ms(),
        t("2023-12-18T08:00:15Z").timestamp_millis()
    );
}

#[tokio::test]
async fn a_far_horizon_is_walked_slot_by_slot() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let clock = Clock::sim("s1", tx);
    let sim = clock.as_sim().unwrap().clone();
    sim.advance(&step(1, "2023-12-18T08:00:00Z")).unwrap();
    sim.advance(&step(2, "2023-12-18T08:05:00Z")).unwrap();
    for secs in [15, 30, 45, 300] {
        let target = t("2023-12-18T08:00:00Z") + chrono::Duration::seconds(secs);
        let mut sleep = pin!(clock.sleep_until(target));
        assert_eq!(poll_once(sleep.as_mut()), Poll::Ready(()));
        assert_eq!(clock.now(), Some(target));
    }
    let mut beyond = pin!(clock.sleep_until(t("2023-12-18T08:05:15Z")));
    assert!(poll_once(beyond.as_mut()).is_pending());
    assert_eq!(drain(&mut rx), vec![(2, "08:05:15".into())]);
    assert_eq!(clock.now(), Some(t("2023-12-18T08:05:00Z")));
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

fn check_scaled(start: &str, anchor_ms: i64, speed: f64, real: &str, expect: &str) {
    let scale = Scaled::new(t(start), anchor_ms, speed).unwrap();
    let v = scale.virtual_at(t(real));
    assert_eq!(v, t(expect), "virtual time at {real}");
    // The inverse: the earliest real time reading `expect`, and not a microsecond earlier.
    let r = scale.real_at(v);
    assert!(r <= t(real), "{r} after {real}");
    assert!(scale.virtual_at(r) >= v);
    let before = r - chrono::Duration::microseconds(1);
    assert!(scale.virtual_at(before) < v);
}

#[test]
fn scaled_clock_arithmetic() {
    // 2023-11-14T22:13:20Z is 1_700_000_000_000 ms.
    let anchor = 1_700_000_000_000;
    let start = "2023-12-20T08:00:00+08:00";
    // At the anchor: the start.
    check_scaled(start, anchor, 100.0, "2023-11-14T22:13:20Z", start);
    // One real second later at speed 100: 100 s later.
    check_scaled(
        start,
        anchor,
        100.0,
        "2023-11-14T22:13:21Z",
        "2023-12-20T08:01:40+08:00",
    );
    // 150 ms real at speed 100 is one 15 s slot.
    check_scaled(
        start,
        anchor,
        100.0,
        "2023-11-14T22:13:20.150Z",
        "2023-12-20T08:00:15+08:00",
    );
    // A microsecond of real time at speed 10,000 is 10 ms of virtual time.
    check_scaled(
        start,
        anchor,
        10_000.0,
        "2023-11-14T22:13:20.000001Z",
        "2023-12-20T08:00:00.010+08:00",
    );
    // 25.92 s real at 10,000 is 72 hours.
    check_scaled(
        start,
        anchor,
        10_000.0,
        "2023-11-14T22:13:45.920Z",
        "2023-12-23T08:00:00+08:00",
    );
    // Fractional speeds, and before the anchor.
    check_scaled(
        start,
        anchor,
        0.5,
        "2023-11-14T22:13:22Z",
        "2023-12-20T08:00:01+08:00",
    );
    check_scaled(
        start,
        anchor,
        2.0,
        "2023-11-14T22:13:19Z",
        "2023-12-20T07:59:58+08:00",
    );
    // A restart with the same arguments is on the same timeline.
    let a = Scaled::new(t(start), anchor, 300.0).unwrap();
    let b = Scaled::new(t(start), anchor, 300.0).unwrap();
    let real = t("2023-11-14T22:14:00.123456Z");
    assert_eq!(a.virtual_at(real), b.virtual_at(real));
    // Real spans scale for durations.
    assert_eq!(
        a.scale_real(Duration::from_millis(50)).num_milliseconds(),
        15_000
    );

    assert_eq!(
        Scaled::new(t(start), anchor, 0.0),
        Err(ScaledError::Speed(0.0))
    );
    assert!(Scaled::new(t(start), anchor, f64::NAN).is_err());
    assert!(Scaled::new(t(start), anchor, -1.0).is_err());
    assert!(Scaled::new(t(start), i64::MAX, 1.0).is_err());
}

#[tokio::test]
async fn scaled_clock_sleeps_the_scaled_real_duration() {
    let anchor = Utc::now().timestamp_millis();
    let scale = Scaled::new(t("2023-12-20T08:00:00+08:00"), anchor, 1_000.0).unwrap();
    let clock = Clock::scaled(scale);
    let now = clock.now().unwrap();
    assert!(clock.synced());
    assert!(clock.started().await >= now);
    // 30 virtual seconds at speed 1,000: 30 ms real.
    let target = now + chrono::Duration::seconds(30);
    let real = std::time::Instant::now();
    clock.sleep_until(target).await;
    assert!(clock.now().unwrap() >= target);
    let took = real.elapsed();
    assert!(took >= Duration::from_millis(25), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[tokio::test]
async fn system_clock_sleeps_until_a_wall_time() {
    let clock = Clock::system();
    let target = Utc::now() + chrono::Duration::milliseconds(30);
    clock.sleep_until(target).await;
    assert!(Utc::now() >= target);
    assert!(clock.now().is_some());
}

#[test]
fn kernel_verdict_from_the_timex_result() {
    // TIME_OK 0, TIME_INS 1, TIME_ERROR 5; STA_PLL 0x1, STA_UNSYNC 0x40 (adjtimex(2)).
    let check = |state: i32, status: i32, expect: bool| {
        assert_eq!(
            synced_from_timex(state, status),
            expect,
            "{state} {status:#x}"
        );
    };
    check(0, 0, true);
    check(1, 0x1, true);
    check(0, 0x40, false);
    check(0, 0x41, false);
    check(5, 0, false);
    check(5, 0x1, false);
    check(-1, 0, false);
    #[cfg(target_os = "linux")]
    {
        assert_eq!(libc::TIME_ERROR, 5);
        assert_eq!(libc::STA_UNSYNC, 0x40);
    }
}

#[test]
fn only_the_system_clock_asks_the_kernel() {
    assert_eq!(Clock::system().synced(), kernel_synced());
}
