//! The slot planner: which campaign and creative play in each slot of one screen.
//!
//! One pure function of (schedule, slot), shared unchanged by the server (plans, reports,
//! audits) and the agent (what it plays). It owns the rules of design.md's slot model;
//! time zones come from `chrono-tz`, crontab matching from `cron`.
//!
//! How it decides, and why the cost per slot stays flat:
//! - Slots are epoch-aligned. Rules are evaluated at the slot start in the venue's zone.
//! - The unit of planning is a *local day*: the maximal run of consecutive slots whose
//!   local date is the same. A day is planned from its own first slot; nothing before the
//!   day is replayed, so planning any slot costs at most one day of work.
//! - Inside a day, a *local hour* is the run of slots with the same local hour and UTC
//!   offset (a repeated DST hour is two hours). Caps count within it.
//! - Within the top eligible tier, campaigns are chosen by smooth weighted round-robin,
//!   restarted whenever the hour or the tier's eligible set changes. That spreads plays
//!   evenly and keeps each campaign within about one play of its weighted share.
//! - Creatives of a campaign rotate in list order through the day, aligned so the day's
//!   last play is the last creative and its first play is not, so counts within a day
//!   differ by at most one and consecutive days usually meet without a repeat. Known
//!   limit: with exactly two creatives and an odd daily count, or a day with a single
//!   play, the first play of a day may repeat the previous day's last creative.

use chrono::{DateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

use crate::model::{Campaign, Priority, ScreenSchedule};

pub mod shared;
pub use shared::{PlanKey, Tally, TallyEntry};

/// One planned play: the slot and indices into the schedule's campaigns and creatives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Play {
    pub slot: i64,
    pub campaign: usize,
    pub creative: usize,
}

/// The plays of one local day of one screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayPlan {
    first_slot: i64,
    /// One entry per slot of the day; `None` is dark or nothing eligible.
    picks: Vec<Slot>,
}

/// A slot of a day: (campaign index, creative index), or nothing.
type Slot = Option<(u32, u32)>;

impl DayPlan {
    pub fn first_slot(&self) -> i64 {
        self.first_slot
    }
    /// One past the last slot of the day.
    pub fn end_slot(&self) -> i64 {
        self.first_slot + self.picks.len() as i64
    }
    pub fn contains(&self, slot: i64) -> bool {
        (self.first_slot..self.end_slot()).contains(&slot)
    }
    pub fn play(&self, slot: i64) -> Option<Play> {
        let offset = usize::try_from(slot - self.first_slot).ok()?;
        let (campaign, creative) = (*self.picks.get(offset)?)?;
        Some(Play {
            slot,
            campaign: campaign as usize,
            creative: creative as usize,
        })
    }
    pub fn plays(&self) -> impl Iterator<Item = Play> + '_ {
        self.picks.iter().enumerate().filter_map(|(i, p)| {
            p.map(|(campaign, creative)| Play {
                slot: self.first_slot + i as i64,
                campaign: campaign as usize,
                creative: creative as usize,
            })
        })
    }
}

/// A campaign that targets the screen and has at least one fitting creative.
#[derive(Debug)]
pub(crate) struct Prepared<'a> {
    /// Index into the schedule's campaigns.
    pub(crate) index: usize,
    pub(crate) campaign: &'a Campaign,
    /// Fitting creatives, as indices into the schedule's creatives, in rotation order.
    pub(crate) creatives: Vec<usize>,
    flight_start_ms: i64,
    flight_end_ms: i64,
    every_minute: bool,
}

/// Local calendar fields of a slot start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Local {
    /// Seconds since the epoch on the local wall clock.
    pub(crate) secs: i64,
    pub(crate) offset: i32,
    pub(crate) minute: u32,
    pub(crate) hour: u32,
    pub(crate) day: u32,
    pub(crate) month: u32,
    pub(crate) weekday: u32,
}

impl Local {
    pub(crate) fn day_number(&self) -> i64 {
        self.secs.div_euclid(86_400)
    }
    fn hour_key(&self) -> (i64, i32) {
        (self.secs.div_euclid(3_600), self.offset)
    }
}

/// UTC offsets of a zone, cached per 15-minute block (no zone changes offset twice in one).
#[derive(Debug)]
pub(crate) struct Offsets {
    tz: Tz,
    block: i64,
    constant: Option<i32>,
}

impl Offsets {
    pub(crate) fn new(tz: Tz) -> Offsets {
        Offsets {
            tz,
            block: i64::MIN,
            constant: None,
        }
    }

    fn offset_at(&self, secs: i64) -> i32 {
        let t = DateTime::from_timestamp(secs, 0)
            .unwrap_or_default()
            .naive_utc();
        self.tz.offset_from_utc_datetime(&t).fix().local_minus_utc()
    }

    pub(crate) fn offset(&mut self, secs: i64) -> i32 {
        let block = secs.div_euclid(900);
        if block != self.block {
            self.block = block;
            let start = self.offset_at(block * 900);
            let end = self.offset_at(block * 900 + 899);
            self.constant = (start == end).then_some(start);
        }
        self.constant.unwrap_or_else(|| self.offset_at(secs))
    }

    pub(crate) fn local(&mut self, utc_secs: i64) -> Local {
        let offset = self.offset(utc_secs);
        local_fields(utc_secs + i64::from(offset), offset)
    }
}

fn local_fields(secs: i64, offset: i32) -> Local {
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (_, month, day) = civil_from_days(days);
    Local {
        secs,
        offset,
        minute: ((of_day / 60) % 60) as u32,
        hour: (of_day / 3_600) as u32,
        day,
        month,
        // 1970-01-01 was a Thursday.
        weekday: (days + 4).rem_euclid(7) as u32,
    }
}

/// Howard Hinnant's days-to-civil: (year, month 1..=12, day 1..=31).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Why a prepared campaign is or is not eligible in a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Eligible,
    OutsideFlight,
    NoDaypart,
    CapReached { plays: u32, cap: u32 },
}

/// The state of one local hour while a day is planned.
#[derive(Debug)]
pub(crate) struct HourState {
    key: (i64, i32),
    /// Plays per prepared campaign in this hour.
    pub(crate) plays: Vec<u32>,
    /// Smooth weighted round-robin credit per prepared campaign.
    pub(crate) credit: Vec<i64>,
    /// The candidate set the credits belong to.
    pub(crate) candidates: Vec<usize>,
}

/// The planner for one screen's schedule. Cheap to build; plans a day at a time.
#[derive(Debug)]
pub struct Planner<'a> {
    pub(crate) schedule: &'a ScreenSchedule,
    pub(crate) slot_seconds: i64,
    /// Sorted by campaign id, so the choice never depends on document order.
    pub(crate) prepared: Vec<Prepared<'a>>,
}

impl<'a> Planner<'a> {
    pub fn new(schedule: &'a ScreenSchedule) -> Planner<'a> {
        let screen = &schedule.screen;
        let mut prepared: Vec<Prepared<'a>> = schedule
            .campaigns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.target.matches(screen, &schedule.venue))
            .map(|(index, campaign)| Prepared {
                index,
                campaign,
                creatives: fitting_creatives(schedule, campaign),
                flight_start_ms: ceil_millis(campaign.flight.start()),
                flight_end_ms: ceil_millis(campaign.flight.end()),
                every_minute: campaign.dayparts.iter().any(|d| d.is_every_minute()),
            })
            .filter(|p| !p.creatives.is_empty())
            .collect();
        prepared.sort_by(|a, b| a.campaign.id.cmp(&b.campaign.id));
        Planner {
            schedule,
            slot_seconds: i64::from(screen.slot_seconds.max(1)),
            prepared,
        }
    }

    pub fn schedule(&self) -> &'a ScreenSchedule {
        self.schedule
    }

    /// The slot whose interval contains `t`.
    pub fn slot_at(&self, t: DateTime<Utc>) -> i64 {
        t.timestamp().div_euclid(self.slot_seconds)
    }

    pub fn slot_start(&self, slot: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(slot * self.slot_seconds, 0).unwrap_or_default()
    }

    /// The first slot starting at or after `t`.
    pub fn first_slot_from(&self, t: DateTime<Utc>) -> i64 {
        let ms = ceil_millis(t);
        let len = self.slot_seconds * 1_000;
        ms.div_euclid(len) + i64::from(ms.rem_euclid(len) != 0)
    }

    /// What plays in `slot`, if anything.
    pub fn plan_slot(&self, slot: i64) -> Option<Play> {
        self.plan_day(slot).play(slot)
    }

    /// Every play whose slot starts in `[from, to)`, in time order.
    pub fn plan_range(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Play> {
        let mut out = Vec::new();
        self.for_each_day(from, to, |day, first, end| {
            out.extend(day.plays().filter(|p| (first..end).contains(&p.slot)));
        });
        out
    }

    /// Calls `f` with each local day overlapping `[from, to)` and the slot range wanted.
    pub fn for_each_day(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        mut f: impl FnMut(&DayPlan, i64, i64),
    ) {
        let first = self.first_slot_from(from);
        let end = self.first_slot_from(to);
        let mut slot = first;
        while slot < end {
            let day = self.plan_day(slot);
            f(&day, first, end);
            slot = day.end_slot();
        }
    }

    /// The plan of the local day that contains `slot`.
    pub fn plan_day(&self, slot: i64) -> DayPlan {
        self.plan_day_traced(slot, None).0
    }

    /// The first slot of the local day containing `slot`, and that day's number.
    pub(crate) fn day_start(&self, offsets: &mut Offsets, slot: i64) -> (i64, i64) {
        let s = self.slot_seconds;
        let local = offsets.local(slot * s);
        let day = local.day_number();
        let into_day = local.secs - day * 86_400;
        let mut first = (slot * s - into_day).div_euclid(s);
        // Adjust for slots that straddle midnight and for offset changes near it.
        while first < slot && offsets.local(first * s).day_number() != day {
            first += 1;
        }
        while offsets.local((first - 1) * s).day_number() == day {
            first -= 1;
        }
        (first, day)
    }

    /// Plans the day containing `slot`; with `trace`, also records how that slot was decided.
    pub(crate) fn plan_day_traced(
        &self,
        slot: i64,
        trace: Option<i64>,
    ) -> (DayPlan, Option<SlotTrace>) {
        let tz = self.schedule.venue.timezone;
        let mut offsets = Offsets::new(tz);
        let (first_slot, day) = self.day_start(&mut offsets, slot);
        let n = self.prepared.len();
        let mut hour = HourState {
            key: (i64::MIN, 0),
            plays: vec![0; n],
            credit: vec![0; n],
            candidates: Vec::new(),
        };
        let mut picks: Vec<Option<u32>> =
            Vec::with_capacity((86_400 / self.slot_seconds) as usize + 8);
        let mut eligible: Vec<usize> = Vec::with_capacity(n);
        let mut verdicts = vec![Verdict::Eligible; n];
        let mut traced = None;
        let hours = &self.schedule.venue.operating_hours;
        let always_open = hours.is_every_minute();
        let mut k = first_slot;
        loop {
            let utc = k * self.slot_seconds;
            let local = offsets.local(utc);
            if local.day_number() != day {
                break;
            }
            if local.hour_key() != hour.key {
                hour.key = local.hour_key();
                hour.plays.iter_mut().for_each(|p| *p = 0);
                hour.candidates.clear();
            }
            let open = always_open
                || hours.matches_fields(
                    local.minute,
                    local.hour,
                    local.day,
                    local.month,
                    local.weekday,
                );
            let pick = if open {
                self.eligible(utc * 1_000, &local, &hour, &mut verdicts, &mut eligible);
                let before = (Some(k) == trace).then(|| {
                    (
                        hour.plays.clone(),
                        hour.credit.clone(),
                        hour.candidates.clone(),
                    )
                });
                let pick = choose(&self.prepared, &eligible, &mut hour);
                if let Some((plays, credit, candidates)) = before {
                    traced = Some(SlotTrace {
                        local,
                        open,
                        verdicts: verdicts.clone(),
                        hour_plays: plays,
                        credit_before: if candidates == hour.candidates {
                            credit
                        } else {
                            vec![0; n]
                        },
                        candidates: hour.candidates.clone(),
                        pick,
                        play_in_day: 0,
                        plays_in_day: 0,
                    });
                }
                pick
            } else {
                if Some(k) == trace {
                    traced = Some(SlotTrace::dark(local, n));
                }
                None
            };
            if let Some(p) = pick {
                hour.plays[p] += 1;
            }
            picks.push(pick.map(|p| p as u32));
            k += 1;
        }
        let (picks, rotation) = self.assign_creatives(&picks, trace.map(|t| t - first_slot));
        if let (Some(t), Some((i, m))) = (traced.as_mut(), rotation) {
            t.play_in_day = i;
            t.plays_in_day = m;
        }
        (DayPlan { first_slot, picks }, traced)
    }

    /// Fills `eligible` with the prepared campaigns eligible at this slot, of the top tier.
    fn eligible(
        &self,
        utc_ms: i64,
        local: &Local,
        hour: &HourState,
        verdicts: &mut [Verdict],
        eligible: &mut Vec<usize>,
    ) {
        eligible.clear();
        let mut top = Priority::Filler;
        for (i, p) in self.prepared.iter().enumerate() {
            let verdict = if utc_ms < p.flight_start_ms || utc_ms >= p.flight_end_ms {
                Verdict::OutsideFlight
            } else if !(p.every_minute
                || p.campaign.dayparts.iter().any(|d| {
                    d.matches_fields(
                        local.minute,
                        local.hour,
                        local.day,
                        local.month,
                        local.weekday,
                    )
                }))
            {
                Verdict::NoDaypart
            } else {
                match p.campaign.max_plays_per_hour {
                    Some(cap) if hour.plays[i] >= cap => Verdict::CapReached {
                        plays: hour.plays[i],
                        cap,
                    },
                    _ => Verdict::Eligible,
                }
            };
            verdicts[i] = verdict;
            if verdict == Verdict::Eligible {
                let tier = p.campaign.priority;
                if eligible.is_empty() || tier > top {
                    eligible.clear();
                    top = tier;
                }
                if tier == top {
                    eligible.push(i);
                }
            }
        }
    }

    /// Turns the day's campaign picks into (campaign, creative) pairs, rotating each
    /// campaign's creatives. Also returns, for `traced`, (its play number, plays that day).
    fn assign_creatives(
        &self,
        picks: &[Option<u32>],
        traced: Option<i64>,
    ) -> (Vec<Slot>, Option<(u32, u32)>) {
        let mut counts = vec![0u32; self.prepared.len()];
        for p in picks.iter().flatten() {
            counts[*p as usize] += 1;
        }
        let mut seen = vec![0u32; self.prepared.len()];
        let mut rotation = None;
        let out = picks
            .iter()
            .enumerate()
            .map(|(at, pick)| {
                let p = (*pick)? as usize;
                let prepared = &self.prepared[p];
                let i = seen[p];
                seen[p] += 1;
                if traced == Some(at as i64) {
                    rotation = Some((i, counts[p]));
                }
                let creative = prepared.creatives
                    [rotation_index(i, counts[p], prepared.creatives.len() as u32) as usize];
                Some((prepared.index as u32, creative as u32))
            })
            .collect();
        (out, rotation)
    }
}

/// The creative (position in the campaign's fitting list) of play `i` of `m` in a day,
/// with `n` creatives. Plain rotation aligned so that play `m - 1` is creative `n - 1`,
/// so that consecutive days meet without repeating; when that would start the day on
/// creative `n - 1` too, the first two plays swap.
pub(crate) fn rotation_index(i: u32, m: u32, n: u32) -> u32 {
    if n <= 1 {
        return 0;
    }
    if m == 1 {
        return 0;
    }
    let start = (n - m % n) % n;
    let plain = |i: u32| (start + i) % n;
    if start == n - 1 && n >= 3 && i < 2 {
        return plain(1 - i);
    }
    if n == 2 && start == 1 {
        // Two creatives and an odd count: start on the first, end on it too.
        return i % 2;
    }
    plain(i)
}

/// Smooth weighted round-robin over the eligible candidates; restarts when they change.
fn choose(prepared: &[Prepared<'_>], eligible: &[usize], hour: &mut HourState) -> Option<usize> {
    if eligible.is_empty() {
        return None;
    }
    if hour.candidates != eligible {
        hour.candidates.clear();
        hour.candidates.extend_from_slice(eligible);
        hour.credit.iter_mut().for_each(|c| *c = 0);
    }
    let mut total = 0i64;
    let mut best = eligible[0];
    for &i in eligible {
        let w = i64::from(prepared[i].campaign.weight.max(1));
        total += w;
        hour.credit[i] += w;
        if hour.credit[i] > hour.credit[best] {
            best = i;
        }
    }
    hour.credit[best] -= total;
    Some(best)
}

/// Milliseconds since the epoch, rounded up. Slot starts are whole seconds, so a slot
/// starts at or after `t` exactly when its millisecond count is at least this (rounding
/// down would let a slot start a fraction of a millisecond before `t`).
fn ceil_millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis() + i64::from(!t.timestamp_subsec_nanos().is_multiple_of(1_000_000))
}

fn fitting_creatives(schedule: &ScreenSchedule, campaign: &Campaign) -> Vec<usize> {
    campaign
        .creatives
        .iter()
        .filter_map(|id| schedule.creatives.iter().position(|c| c.id == *id))
        .filter(|&i| schedule.creatives[i].fits(&schedule.screen))
        .collect()
}

/// How one slot was decided, for `explain`.
#[derive(Debug, Clone)]
pub(crate) struct SlotTrace {
    pub(crate) local: Local,
    pub(crate) open: bool,
    /// Per prepared campaign.
    pub(crate) verdicts: Vec<Verdict>,
    pub(crate) hour_plays: Vec<u32>,
    pub(crate) credit_before: Vec<i64>,
    pub(crate) candidates: Vec<usize>,
    pub(crate) pick: Option<usize>,
    pub(crate) play_in_day: u32,
    pub(crate) plays_in_day: u32,
}

impl SlotTrace {
    fn dark(local: Local, n: usize) -> SlotTrace {
        SlotTrace {
            local,
            open: false,
            verdicts: vec![Verdict::Eligible; n],
            hour_plays: vec![0; n],
            credit_before: vec![0; n],
            candidates: Vec::new(),
            pick: None,
            play_in_day: 0,
            plays_in_day: 0,
        }
    }
}

#[cfg(test)]
mod tests;
