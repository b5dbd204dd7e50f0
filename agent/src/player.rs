//! The player loop: plays every slot of the schedule held, on the agent's clock, offline or
//! not, and writes proof of play. At each slot boundary, in one outbox transaction, it
//! completes the play that ends and starts the one that begins. What plays in a slot is
//! the shared `playlists` planner's answer (one cached `DayPlan` per local day); the
//! player only walks the slots. A creative missing from the cache gives a `failed` record;
//! dark or empty slots give nothing.
//!
//! Slots are started at their boundary; a wake-up later than half a slot (a suspended
//! machine, a stepped clock) skips the slots missed, with a warning. A new schedule takes
//! effect at the next slot boundary; a play in progress finishes under the old one.
//!
//! With the web player the loop also tells the kiosk page what plays (`web::Link`), and at
//! a slot's end takes the page's report of when it really showed the play as the record's
//! start and end; without a believable report it keeps its own times and says so.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use playlists::wire::{PlayRecord, PlayStatus};
use playlists::{DayPlan, Planner, Play};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::cache::{Cache, CacheError};
use crate::clock::Clock;
use crate::outbox::{Completion, NewPlay, Outbox, OutboxError};
use crate::schedule::HeldSchedule;
use crate::uploader::UploaderMsg;
use crate::web;

/// How far from the slot's start and length a play may be and still be `complete`.
pub const COMPLETE_WITHIN_MS: i64 = 500;

#[derive(Debug, thiserror::Error)]
pub enum PlayerError {
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("player task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Which player renders (the CLI's `--player`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PlayerKind {
    /// Renders nothing: loads the media and keeps time, for kiosks under test and simulations.
    #[default]
    Headless,
    /// Serves a kiosk page on loopback for a full-screen browser (see `web`).
    Web,
}

impl PlayerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PlayerKind::Headless => "headless",
            PlayerKind::Web => "web",
        }
    }
}

/// `complete` when the play started within 500 ms of its slot and lasted the slot's
/// length within 500 ms; otherwise `partial`.
pub fn play_status(slot_ms: i64, start_late_ms: i64, duration_ms: i64) -> PlayStatus {
    if start_late_ms.abs() <= COMPLETE_WITHIN_MS
        && (duration_ms - slot_ms).abs() <= COMPLETE_WITHIN_MS
    {
        PlayStatus::Complete
    } else {
        PlayStatus::Partial
    }
}

/// A play on screen now.
#[derive(Debug, Clone)]
struct Running {
    seq: u64,
    creative_id: String,
    slot_start: DateTime<Utc>,
    slot_end: DateTime<Utc>,
    started_at: DateTime<Utc>,
    started_mono: i64,
}

/// Where the walk through the slots stands.
enum Next {
    /// The next slot with a play (its start may be now).
    Play(Play, DateTime<Utc>),
    /// Nothing more to play this local day: look again at this time.
    Horizon(DateTime<Utc>),
}

pub struct Player {
    pub clock: Clock,
    pub schedules: watch::Receiver<Option<Arc<HeldSchedule>>>,
    pub outbox: Arc<Outbox>,
    pub cache: Arc<Cache>,
    pub screen_id: String,
    pub uploader: mpsc::Sender<UploaderMsg>,
    pub now_playing: watch::Sender<Option<String>>,
    /// The kiosk page's link, with `--player web`.
    pub web: Option<web::Link>,
}

/// The walk's state between iterations.
#[derive(Default)]
struct Walk {
    running: Option<Running>,
    /// The next slot to consider; `None` to start from the clock.
    cursor: Option<i64>,
    /// No slot starting before this may be played (the end of the last one started).
    not_before: Option<DateTime<Utc>>,
    /// The plan of the local day being played, with the schedule it came from.
    day: Option<(Arc<HeldSchedule>, DayPlan)>,
}

impl Player {
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), PlayerError> {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = self.clock.started() => {}
        }
        let mut walk = Walk::default();
        loop {
            let held = self.schedules.borrow_and_update().clone();
            let now = self.clock.now().unwrap_or_default();
            let next = match &held {
                Some(h) => Some(self.next(&mut walk, h, now).await?),
                None => None,
            };
            let complete = walk
                .running
                .as_ref()
                .filter(|r| now >= r.slot_end)
                .map(|r| self.completion(r, now));
            let start = match (&next, &held) {
                (Some(Next::Play(p, at)), Some(h))
                    if *at <= now && (walk.running.is_none() || complete.is_some()) =>
                {
                    Some((h, *p))
                }
                _ => None,
            };
            if complete.is_some() || start.is_some() {
                self.boundary(&mut walk, complete, start, now).await?;
                continue;
            }
            let wake = [
                walk.running.as_ref().map(|r| r.slot_end),
                next.map(|n| match n {
                    Next::Play(_, at) | Next::Horizon(at) => at,
                }),
            ]
            .into_iter()
            .flatten()
            .min();
            let changed = tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = sleep_or_idle(&self.clock, wake) => false,
                changed = self.schedules.changed() => {
                    if changed.is_err() { break; }
                    true
                }
            };
            if changed {
                walk.cursor = None;
            }
        }
        if let Some(r) = walk.running.take() {
            let now = self.clock.now().unwrap_or(r.started_at);
            let c = self.completion(&r, now);
            self.write(Some(c), None).await?;
            tracing::info!(seq = r.seq, "play cut short by shutdown");
        }
        Ok(())
    }

    /// Walks from the cursor to the next slot with a play, skipping dark days and slots
    /// missed by more than half a slot.
    async fn next(
        &self,
        walk: &mut Walk,
        held: &Arc<HeldSchedule>,
        now: DateTime<Utc>,
    ) -> Result<Next, PlayerError> {
        let planner = Planner::new(&held.schedule);
        let slot_ms = i64::from(held.schedule.screen.slot_seconds.max(1)) * 1_000;
        loop {
            let cursor = *walk.cursor.get_or_insert_with(|| {
                let from = planner.first_slot_from(now);
                walk.not_before
                    .map_or(from, |t| from.max(planner.first_slot_from(t)))
            });
            // A new revision with what the planner reads unchanged (the document that
            // carries an emergency its command announced) plans the same day: kept.
            let fresh = walk.day.as_ref().is_some_and(|(h, d)| {
                d.contains(cursor) && (h.revision == held.revision || h.schedule == held.schedule)
            });
            if !fresh {
                let h = held.clone();
                let plan =
                    tokio::task::spawn_blocking(move || Planner::new(&h.schedule).plan_day(cursor))
                        .await?;
                walk.day = Some((held.clone(), plan));
            }
            let (_, day) = walk.day.as_ref().expect("planned above");
            match (cursor..day.end_slot()).find_map(|s| day.play(s)) {
                Some(p) => {
                    let at = planner.slot_start(p.slot);
                    let late = (now - at).num_milliseconds();
                    if late > slot_ms / 2 {
                        let resume = planner.first_slot_from(now).max(p.slot + 1);
                        tracing::warn!(from = %at, to = %planner.slot_start(resume), "clock jumped: slots missed");
                        walk.cursor = Some(resume);
                        walk.not_before = Some(planner.slot_start(resume));
                        continue;
                    }
                    return Ok(Next::Play(p, at));
                }
                None => {
                    let end = day.end_slot();
                    if planner.slot_start(end) > now {
                        return Ok(Next::Horizon(planner.slot_start(end)));
                    }
                    walk.cursor = Some(end.max(planner.slot_at(now)));
                }
            }
        }
    }

    fn completion(&self, r: &Running, now: DateTime<Utc>) -> Completion {
        let slot_ms = (r.slot_end - r.slot_start).num_milliseconds();
        if let Some(link) = &self.web {
            let shown = link
                .report_for(r.slot_start, &r.creative_id)
                .and_then(|rep| web::screen_times(&rep, r.slot_end, now));
            match shown {
                Some((started_at, ended_at)) => {
                    let duration_ms = (ended_at - started_at).num_milliseconds().max(0);
                    let late_ms = (started_at - r.slot_start).num_milliseconds();
                    tracing::info!(seq = r.seq, creative = %r.creative_id, %started_at, %ended_at, "play times from the screen");
                    return Completion {
                        seq: r.seq,
                        started_at: Some(started_at),
                        ended_at,
                        duration_ms: duration_ms as u64,
                        status: play_status(slot_ms, late_ms, duration_ms),
                    };
                }
                None => {
                    tracing::warn!(seq = r.seq, creative = %r.creative_id, slot = %r.slot_start, "no report from the screen for this slot; keeping the player's times");
                }
            }
        }
        let duration_ms = (self.clock.mono_ms() - r.started_mono).max(0);
        let late_ms = (r.started_at - r.slot_start).num_milliseconds();
        Completion {
            seq: r.seq,
            started_at: None,
            ended_at: now,
            duration_ms: duration_ms as u64,
            status: play_status(slot_ms, late_ms, duration_ms),
        }
    }

    /// One slot boundary: completes the play that ended and starts `start`, in one
    /// transaction.
    async fn boundary(
        &self,
        walk: &mut Walk,
        complete: Option<Completion>,
        start: Option<(&Arc<HeldSchedule>, Play)>,
        now: DateTime<Utc>,
    ) -> Result<(), PlayerError> {
        let finished_one = complete.is_some();
        let mut new = None;
        let mut label = None;
        let mut showing = None;
        if let Some((held, play)) = start {
            let planner = Planner::new(&held.schedule);
            let (slot_start, slot_end) = (
                planner.slot_start(play.slot),
                planner.slot_start(play.slot + 1),
            );
            let campaign = &held.schedule.campaigns[play.campaign];
            let creative = &held.schedule.creatives[play.creative];
            let sha = creative.sha256.to_string();
            // The file played: the rendition named for this screen, or the original.
            let media_sha = held.media_sha256(play.creative).to_owned();
            let cache = self.cache.clone();
            let playable = {
                let media_sha = media_sha.clone();
                tokio::task::spawn_blocking(move || cache.playable(&media_sha)).await??
            };
            if !playable {
                tracing::warn!(creative = %creative.id, slot = %slot_start, "creative not in the cache: play failed");
            }
            let record = PlayRecord {
                play_id: String::new(),
                screen_id: self.screen_id.clone(),
                epoch: String::new(),
                seq: 0,
                venue_id: held.schedule.venue.id.to_string(),
                campaign_id: campaign.id.to_string(),
                creative_id: creative.id.to_string(),
                creative_sha256: sha,
                schedule_version: held.version,
                slot_start,
                started_at: now,
                ended_at: now,
                duration_ms: 0,
                status: if playable {
                    PlayStatus::Partial
                } else {
                    PlayStatus::Failed
                },
                clock_synced: self.clock.synced(),
                media_sha256: Some(media_sha.clone()),
            };
            new = Some((
                NewPlay {
                    record,
                    in_progress: playable,
                },
                slot_start,
                slot_end,
            ));
            label = playable.then(|| format!("{}/{}", campaign.id, creative.id));
            showing = playable.then(|| {
                web::NowPlay::new(
                    slot_start,
                    campaign.id.to_string(),
                    creative.id.to_string(),
                    media_sha,
                    creative.kind.as_str(),
                )
            });
            walk.cursor = Some(play.slot + 1);
            walk.not_before = Some(slot_end);
        }
        let started_mono = self.clock.mono_ms();
        let seq = self
            .write(complete, new.as_ref().map(|(n, _, _)| n.clone()))
            .await?;
        walk.running = match (seq, new) {
            (Some(seq), Some((n, slot_start, slot_end))) if n.in_progress => Some(Running {
                seq,
                creative_id: n.record.creative_id,
                slot_start,
                slot_end,
                started_at: now,
                started_mono,
            }),
            _ => None,
        };
        let failed_one = seq.is_some() && walk.running.is_none();
        if finished_one || failed_one {
            let _ = self.uploader.try_send(UploaderMsg::Finalized);
        }
        self.now_playing.send_replace(label);
        if let Some(link) = &self.web {
            link.show(showing.filter(|_| walk.running.is_some()));
        }
        Ok(())
    }

    async fn write(
        &self,
        complete: Option<Completion>,
        start: Option<NewPlay>,
    ) -> Result<Option<u64>, PlayerError> {
        let outbox = self.outbox.clone();
        Ok(
            tokio::task::spawn_blocking(move || outbox.boundary(complete.as_ref(), start))
                .await??,
        )
    }
}

async fn sleep_or_idle(clock: &Clock, wake: Option<DateTime<Utc>>) {
    match wake {
        Some(t) => clock.sleep_until(t).await,
        None => clock.idle().await,
    }
}

#[cfg(test)]
mod tests;
