//! Player tests on a sim clock driven step by step, with a real outbox and cache in a
//! temp dir: what it records must be what the planner plans.

use std::time::Duration;

use playlists::wire::PlayStatus;
use playlists::{Planner, Sha256};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::outbox::Durability;
use crate::schedule::fixture;
use crate::sim::{SimClock, SimReady};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

struct Rig {
    _dir: tempfile::TempDir,
    clock: Clock,
    ready: mpsc::UnboundedReceiver<SimReady>,
    schedules: watch::Sender<Option<Arc<HeldSchedule>>>,
    outbox: Arc<Outbox>,
    uploader: mpsc::Receiver<UploaderMsg>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), PlayerError>>,
    step: u64,
}

impl Rig {
    /// A player whose cache holds `cached` only.
    fn new(held: Option<HeldSchedule>, cached: &[&[u8]]) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let (outbox, _) = Outbox::open(dir.path(), Durability::Relaxed).unwrap();
        let (cache, _) = Cache::open(dir.path(), 1 << 20, 0).unwrap();
        for bytes in cached {
            cache.put(Sha256::of(bytes).as_str(), bytes, 0).unwrap();
        }
        let (ready_tx, ready) = mpsc::unbounded_channel();
        let clock = Clock::sim("scr-1", ready_tx);
        let (schedules, rx) = watch::channel(held.map(Arc::new));
        let (up_tx, uploader) = mpsc::channel(16);
        let outbox = Arc::new(outbox);
        let shutdown = CancellationToken::new();
        let player = Player {
            clock: clock.clone(),
            schedules: rx,
            outbox: outbox.clone(),
            cache: Arc::new(cache),
            screen_id: "scr-1".into(),
            uploader: up_tx,
            now_playing: watch::channel(None).0,
            web: None,
        };
        let task = tokio::spawn(player.run(shutdown.clone()));
        Rig {
            _dir: dir,
            clock,
            ready,
            schedules,
            outbox,
            uploader,
            shutdown,
            task,
            step: 0,
        }
    }

    /// Publishes the next step at `now` and returns the `next` the agent reports.
    async fn step(&mut self, now: &str) -> DateTime<Utc> {
        self.step += 1;
        let msg = SimClock {
            v: 1,
            step: self.step,
            now: t(now),
        };
        self.clock.as_sim().unwrap().advance(&msg).unwrap();
        self.ready_for(self.step).await
    }

    async fn ready_for(&mut self, step: u64) -> DateTime<Utc> {
        loop {
            let r = tokio::time::timeout(Duration::from_secs(10), self.ready.recv())
                .await
                .expect("ready in time")
                .unwrap();
            assert_eq!(r.screen_id, "scr-1");
            if r.step == step {
                // Drain duplicates for the same step so the next call sees fresh ones.
                return r.next;
            }
            assert!(r.step < step, "ready for a future step {r:?}");
        }
    }

    fn records(&self) -> Vec<(char, PlayRecord)> {
        self.outbox.dump().unwrap()
    }

    async fn stop(self) -> Vec<(char, PlayRecord)> {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
        self.outbox.dump().unwrap()
    }
}

fn held(version: u64, creatives: &[&[u8]], operating_hours: &str) -> HeldSchedule {
    let mut body = fixture::body(creatives, 15);
    body.venue.operating_hours = operating_hours.into();
    HeldSchedule::new(fixture::doc(version, body)).unwrap()
}

#[test]
fn statuses() {
    assert_eq!(play_status(15_000, 0, 15_000), PlayStatus::Complete);
    assert_eq!(play_status(15_000, 500, 14_500), PlayStatus::Complete);
    assert_eq!(play_status(15_000, 501, 15_000), PlayStatus::Partial);
    assert_eq!(play_status(15_000, 0, 14_499), PlayStatus::Partial);
    assert_eq!(play_status(15_000, 0, 15_501), PlayStatus::Partial);
}

#[tokio::test]
async fn plays_what_the_planner_plans_and_reports_ready_after_each_boundary() {
    let (one, two): (&[u8], &[u8]) = (b"creative one", b"creative two");
    let h = held(1, &[one, two], "* * * * *");
    let expected: Vec<(DateTime<Utc>, String)> = {
        let planner = Planner::new(&h.schedule);
        planner
            .plan_range(t("2023-12-18T08:00:15Z"), t("2023-12-18T08:01:30Z"))
            .iter()
            .map(|p| {
                (
                    planner.slot_start(p.slot),
                    h.schedule.creatives[p.creative].id.to_string(),
                )
            })
            .collect()
    };
    assert_eq!(expected.len(), 5);
    let mut rig = Rig::new(Some(h), &[one]);

    // Mid-slot: the first boundary at or after now is 08:00:15.
    assert_eq!(
        rig.step("2023-12-18T08:00:07Z").await,
        t("2023-12-18T08:00:15Z")
    );
    assert!(rig.records().is_empty());
    // A step short of the boundary: ready again at once, same next.
    assert_eq!(
        rig.step("2023-12-18T08:00:10Z").await,
        t("2023-12-18T08:00:15Z")
    );
    for (i, at) in [
        "08:00:15", "08:00:30", "08:00:45", "08:01:00", "08:01:15", "08:01:30",
    ]
    .iter()
    .enumerate()
    {
        let next = rig.step(&format!("2023-12-18T{at}Z")).await;
        let slot_end = t(&format!("2023-12-18T{at}Z")) + chrono::Duration::seconds(15);
        assert_eq!(next, slot_end);
        // Ready means the boundary's work is already in the outbox.
        assert_eq!(rig.records().len(), i + 1);
    }
    assert!(matches!(
        rig.uploader.try_recv(),
        Ok(UploaderMsg::Finalized)
    ));
    let records = rig.stop().await;
    // Five full slots, plus the sixth cut short by the shutdown.
    assert_eq!(records.len(), 6);
    assert_eq!(records[5].1.creative_id, "cr-0");
    let got: Vec<(DateTime<Utc>, String)> = records[..5]
        .iter()
        .map(|(_, r)| (r.slot_start, r.creative_id.clone()))
        .collect();
    assert_eq!(got, expected);
    for (i, (tag, r)) in records.iter().enumerate() {
        assert_eq!(*tag, 'F');
        assert_eq!(
            (r.seq, r.play_id.clone()),
            (i as u64 + 1, format!("scr-1-{}-{}", r.epoch, i + 1))
        );
        assert_eq!(
            (
                r.venue_id.as_str(),
                r.campaign_id.as_str(),
                r.schedule_version
            ),
            ("ven-1", "camp-1", 1)
        );
        assert_eq!(r.started_at, r.slot_start);
        assert!(r.clock_synced);
        let expect = match (i, r.creative_id.as_str()) {
            (_, "cr-1") => PlayStatus::Failed,
            (5, _) => PlayStatus::Partial,
            _ => PlayStatus::Complete,
        };
        assert_eq!(r.status, expect, "record {r:?}");
        if expect == PlayStatus::Complete {
            assert_eq!(
                (r.duration_ms, r.ended_at),
                (15_000, r.slot_start + chrono::Duration::seconds(15))
            );
            assert_eq!(r.creative_sha256, Sha256::of(one).to_string());
        }
    }
}

#[tokio::test]
async fn dark_hours_no_schedule_and_a_new_schedule() {
    let one: &[u8] = b"only";
    let mut rig = Rig::new(None, &[one]);
    // Nothing held: idle, a minute at a time.
    assert_eq!(
        rig.step("2023-12-18T07:59:50Z").await,
        t("2023-12-18T08:00:50Z")
    );
    // A schedule open from 09:00: the agent sleeps straight to 09:00.
    rig.schedules
        .send_replace(Some(Arc::new(held(1, &[one], "* 9-17 * * *"))));
    assert_eq!(rig.ready_for(1).await, t("2023-12-18T09:00:00Z"));
    assert_eq!(
        rig.step("2023-12-18T09:00:00Z").await,
        t("2023-12-18T09:00:15Z")
    );
    assert_eq!(rig.records().len(), 1);
    // A new version mid-slot: the running play finishes, the next slot uses version 2.
    rig.schedules
        .send_replace(Some(Arc::new(held(2, &[one], "* * * * *"))));
    assert_eq!(
        rig.step("2023-12-18T09:00:15Z").await,
        t("2023-12-18T09:00:30Z")
    );
    // The leader's horizon moves an hour ahead: the agent walks every slot boundary up
    // to it (each play complete, on its own slot times) and waits for the next one.
    assert_eq!(
        rig.step("2023-12-18T10:00:05Z").await,
        t("2023-12-18T10:00:15Z")
    );
    let records = rig.stop().await;
    let versions: Vec<(u64, PlayStatus)> = records
        .iter()
        .map(|(_, r)| (r.schedule_version, r.status))
        .collect();
    let mut expected = vec![(1, PlayStatus::Complete)];
    // 09:00:15 to 09:59:45 complete; the 10:00:00 play is still running at the stop.
    expected.extend(std::iter::repeat_n((2, PlayStatus::Complete), 239));
    expected.push((2, PlayStatus::Partial));
    assert_eq!(versions, expected);
}
