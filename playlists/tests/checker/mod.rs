//! An independent checker of the slot planner's invariants (design.md, "Scheduling: the
//! slot model", invariants 1 to 6), written from the design and not from `planner.rs`.
//!
//! It owns its own reading of the rules: local time from `chrono-tz` per slot, fit in exact
//! integer arithmetic, eligibility recomputed per slot, caps counted from the plan's own
//! earlier plays in the same local hour (same local date, hour and UTC offset, so a
//! repeated DST hour is two hours). It trusts `CronExpr::matches` (tested with the cron
//! module) and `Target::matches` (tested with the model). This file walks the slots and
//! checks invariants 1 to 3; `fairness` checks 4 and 5, `agreement` 6. Building fixtures is
//! left to `fixtures`; choosing scenarios to the test files.

#![allow(
    dead_code,
    reason = "each test crate uses a different part of the checker"
)]

mod agreement;
mod fairness;
pub mod fixtures;

#[allow(unused_imports, reason = "not every test crate plans whole screens")]
pub use agreement::{check_document, check_screen};

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use playlists::{Play, Priority, ScreenSchedule};

/// One broken invariant at one slot.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// 1 to 6, as numbered in design.md.
    pub invariant: u8,
    pub slot: i64,
    pub utc: DateTime<Utc>,
    /// Local wall-clock time and offset of the slot start.
    pub local: String,
    pub campaigns: Vec<String>,
    pub what: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invariant {}: slot {} at {} (local {}) campaigns [{}]: {}",
            self.invariant,
            self.slot,
            self.utc.to_rfc3339(),
            self.local,
            self.campaigns.join(", "),
            self.what
        )
    }
}

/// Formats violations for an assertion message (the first 20).
pub fn report(violations: &[Violation]) -> String {
    let mut out: Vec<String> = violations.iter().take(20).map(|v| v.to_string()).collect();
    if violations.len() > 20 {
        out.push(format!("... and {} more", violations.len() - 20));
    }
    out.join("\n")
}

/// The local view of one slot start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotTime {
    pub slot: i64,
    pub utc: DateTime<Utc>,
    pub local: NaiveDateTime,
    /// Seconds east of UTC.
    pub offset: i32,
}

impl SlotTime {
    /// A local clock hour: the same local date and hour and the same UTC offset.
    pub fn hour_key(&self) -> (NaiveDate, u32, i32) {
        (self.local.date(), self.local.hour(), self.offset)
    }
    pub fn date(&self) -> NaiveDate {
        self.local.date()
    }
    fn describe(&self) -> String {
        let sign = if self.offset < 0 { '-' } else { '+' };
        let abs = self.offset.abs();
        format!(
            "{} {}{:02}:{:02}",
            self.local,
            sign,
            abs / 3600,
            abs % 3600 / 60
        )
    }
}

/// Why a campaign is or is not eligible at a slot, as the checker reads the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Eligible,
    NotTargeted,
    NoFittingCreative,
    OutsideFlight,
    NoDaypart,
    CapReached(u32),
}

/// The checker for one screen's schedule.
#[derive(Debug)]
pub struct Checker<'a> {
    pub schedule: &'a ScreenSchedule,
    slot_seconds: i64,
    /// Per schedule campaign: the distinct schedule creatives that fit, in list order.
    fitting: Vec<Vec<usize>>,
    targeted: Vec<bool>,
}

/// Exact fit: aspect ratio within 2 % of the screen's and duration at most the slot.
pub fn fits(cw: u32, ch: u32, secs: u32, sw: u32, sh: u32, slot: u32) -> bool {
    if ch == 0 || sh == 0 || secs > slot {
        return false;
    }
    // |cw/ch - sw/sh| / (sw/sh) <= 2/100  <=>  50 |cw*sh - sw*ch| <= sw*ch
    let (a, b) = (
        u128::from(cw) * u128::from(sh),
        u128::from(sw) * u128::from(ch),
    );
    50 * a.abs_diff(b) <= b
}

impl<'a> Checker<'a> {
    pub fn new(schedule: &'a ScreenSchedule) -> Checker<'a> {
        let screen = &schedule.screen;
        let fitting = schedule
            .campaigns
            .iter()
            .map(|c| {
                let mut out: Vec<usize> = Vec::new();
                for id in &c.creatives {
                    let Some(i) = schedule.creatives.iter().position(|k| k.id == *id) else {
                        continue;
                    };
                    let k = &schedule.creatives[i];
                    if fits(
                        k.width,
                        k.height,
                        k.duration_seconds,
                        screen.width,
                        screen.height,
                        screen.slot_seconds,
                    ) && !out.contains(&i)
                    {
                        out.push(i);
                    }
                }
                out
            })
            .collect();
        let targeted = schedule
            .campaigns
            .iter()
            .map(|c| c.target.matches(screen, &schedule.venue))
            .collect();
        Checker {
            schedule,
            slot_seconds: i64::from(screen.slot_seconds),
            fitting,
            targeted,
        }
    }

    pub fn fitting(&self, campaign: usize) -> &[usize] {
        &self.fitting[campaign]
    }

    pub fn slot_start(&self, slot: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(slot * self.slot_seconds, 0).expect("slot start in range")
    }

    /// The first slot whose start is at or after `t` (exact, sub-second parts included).
    pub fn first_slot_at_or_after(&self, t: DateTime<Utc>) -> i64 {
        let k = t.timestamp().div_euclid(self.slot_seconds);
        if self.slot_start(k) < t {
            k + 1
        } else {
            k
        }
    }

    /// The slots whose start lies in `[from, to)`.
    pub fn slots(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> std::ops::Range<i64> {
        self.first_slot_at_or_after(from)
            ..self
                .first_slot_at_or_after(to)
                .max(self.first_slot_at_or_after(from))
    }

    pub fn time(&self, slot: i64) -> SlotTime {
        let utc = self.slot_start(slot);
        let local = self
            .schedule
            .venue
            .timezone
            .from_utc_datetime(&utc.naive_utc());
        SlotTime {
            slot,
            utc,
            local: local.naive_local(),
            offset: local.offset().fix().local_minus_utc(),
        }
    }

    /// The start of the first slot of the local day (local date) of the first slot at or
    /// after `t`.
    pub fn local_day_start(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let mut k = self.first_slot_at_or_after(t);
        let date = self.time(k).date();
        // Step back an hour at a time, then a slot at a time.
        let per_hour = (3_600 / self.slot_seconds).max(1);
        while self.time(k - per_hour).date() == date {
            k -= per_hour;
        }
        while self.time(k - 1).date() == date {
            k -= 1;
        }
        self.slot_start(k)
    }

    pub fn open(&self, at: &SlotTime) -> bool {
        self.schedule.venue.operating_hours.matches(&at.local)
    }

    /// Whether campaign `c` is eligible at `at`, given its plays so far in that local hour.
    pub fn why(&self, c: usize, at: &SlotTime, plays_this_hour: u32) -> Why {
        let campaign = &self.schedule.campaigns[c];
        if !self.targeted[c] {
            Why::NotTargeted
        } else if self.fitting[c].is_empty() {
            Why::NoFittingCreative
        } else if !campaign.flight.contains(at.utc) {
            Why::OutsideFlight
        } else if !campaign.dayparts.iter().any(|d| d.matches(&at.local)) {
            Why::NoDaypart
        } else if campaign
            .max_plays_per_hour
            .is_some_and(|cap| plays_this_hour >= cap)
        {
            Why::CapReached(plays_this_hour)
        } else {
            Why::Eligible
        }
    }

    fn ids(&self, campaigns: impl IntoIterator<Item = usize>) -> Vec<String> {
        campaigns
            .into_iter()
            .map(|c| self.schedule.campaigns[c].id.to_string())
            .collect()
    }

    fn violation(
        &self,
        invariant: u8,
        at: &SlotTime,
        campaigns: Vec<String>,
        what: String,
    ) -> Violation {
        Violation {
            invariant,
            slot: at.slot,
            utc: at.utc,
            local: at.describe(),
            campaigns,
            what,
        }
    }

    /// Checks invariants 1 to 5 on `plays`, the plan of `[from, to)`. The window must start
    /// at a local hour (so that caps can be counted from the plan itself); invariant 5's
    /// counts are checked over the full local days inside the window only.
    pub fn check_plan(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        plays: &[Play],
    ) -> Vec<Violation> {
        let slots = self.slots(from, to);
        let mut out = Vec::new();
        if slots.is_empty() {
            for p in plays {
                out.push(self.violation(
                    1,
                    &self.time(p.slot),
                    vec![],
                    "play in an empty window".into(),
                ));
            }
            return out;
        }
        assert_ne!(
            self.time(slots.start - 1).hour_key(),
            self.time(slots.start).hour_key(),
            "check_plan needs a window that starts at a local hour; {from} does not"
        );

        // The plan by slot; duplicates, disorder and strays break invariant 1.
        let mut by_slot: BTreeMap<i64, Play> = BTreeMap::new();
        for (i, p) in plays.iter().enumerate() {
            let at = self.time(p.slot);
            if !slots.contains(&p.slot) {
                out.push(self.violation(
                    1,
                    &at,
                    vec![],
                    format!("play outside the window [{from}, {to})"),
                ));
            }
            if i > 0 && plays[i - 1].slot >= p.slot {
                out.push(self.violation(
                    1,
                    &at,
                    vec![],
                    "plays not in strictly increasing slot order".into(),
                ));
            }
            if p.campaign >= self.schedule.campaigns.len()
                || p.creative >= self.schedule.creatives.len()
            {
                out.push(self.violation(
                    2,
                    &at,
                    vec![],
                    format!("play {p:?} indexes outside the schedule"),
                ));
                continue;
            }
            if by_slot.insert(p.slot, *p).is_some() {
                out.push(self.violation(
                    1,
                    &at,
                    self.ids([p.campaign]),
                    "two plays in one slot".into(),
                ));
            }
        }

        let n = self.schedule.campaigns.len();
        // Per local hour: plays per campaign so far, and the facts invariant 4 needs.
        let mut hour_key = None;
        let mut hour_plays = vec![0u32; n];
        let mut hours: Vec<HourFacts> = Vec::new();
        for slot in slots.clone() {
            let at = self.time(slot);
            if hour_key != Some(at.hour_key()) {
                hour_key = Some(at.hour_key());
                hour_plays.iter_mut().for_each(|p| *p = 0);
                hours.push(HourFacts {
                    first: at,
                    ..HourFacts::default()
                });
            }
            let facts = hours.last_mut().expect("pushed above");
            let play = by_slot.get(&slot);
            let open = self.open(&at);
            let whys: Vec<Why> = (0..n).map(|c| self.why(c, &at, hour_plays[c])).collect();
            let eligible: Vec<usize> = (0..n).filter(|&c| whys[c] == Why::Eligible).collect();
            let top = eligible
                .iter()
                .map(|&c| self.schedule.campaigns[c].priority)
                .max();
            let top_set: Vec<usize> = eligible
                .iter()
                .copied()
                .filter(|&c| Some(self.schedule.campaigns[c].priority) == top)
                .collect();

            match (open, play) {
                (false, Some(p)) => out.push(self.violation(
                    1,
                    &at,
                    self.ids([p.campaign]),
                    "play outside operating hours".into(),
                )),
                (true, None) if !eligible.is_empty() => out.push(self.violation(
                    1,
                    &at,
                    self.ids(top_set.iter().copied()),
                    "no play although campaigns are eligible".into(),
                )),
                (true, Some(p)) if eligible.is_empty() => out.push(self.violation(
                    1,
                    &at,
                    self.ids([p.campaign]),
                    format!(
                        "play although nothing is eligible (played campaign: {:?})",
                        whys[p.campaign]
                    ),
                )),
                (true, Some(p)) => {
                    let c = p.campaign;
                    if whys[c] != Why::Eligible {
                        out.push(self.violation(
                            2,
                            &at,
                            self.ids([c]),
                            format!("played campaign is not eligible: {:?}", whys[c]),
                        ));
                    } else if !top_set.contains(&c) {
                        out.push(self.violation(
                            2,
                            &at,
                            self.ids([c]),
                            format!(
                                "tier {} played while tier {} is eligible ({})",
                                self.schedule.campaigns[c].priority.as_str(),
                                top.map_or("-", Priority::as_str),
                                self.ids(top_set.iter().copied()).join(", ")
                            ),
                        ));
                    }
                    if !self.fitting[c].contains(&p.creative) {
                        out.push(self.violation(
                            2,
                            &at,
                            self.ids([c]),
                            format!(
                                "creative {} is not a fitting creative of the campaign",
                                self.schedule.creatives[p.creative].id
                            ),
                        ));
                    }
                }
                _ => {}
            }
            if let Some(p) = play {
                hour_plays[p.campaign] += 1;
                if let Some(cap) = self.schedule.campaigns[p.campaign].max_plays_per_hour {
                    if hour_plays[p.campaign] > cap {
                        out.push(self.violation(
                            3,
                            &at,
                            self.ids([p.campaign]),
                            format!(
                                "play {} in this local hour, cap {cap}",
                                hour_plays[p.campaign]
                            ),
                        ));
                    }
                }
                facts.slots_with_play += 1;
                *facts.plays.entry(p.campaign).or_default() += 1;
                match &facts.top_set {
                    None => facts.top_set = Some(top_set),
                    Some(s) if *s != top_set => facts.set_changes = true,
                    Some(_) => {}
                }
            }
        }
        for facts in &hours {
            out.extend(self.check_share(facts));
        }
        out.extend(self.check_rotation(slots, &by_slot));
        out
    }
}

/// Facts about one local hour of a plan.
#[derive(Debug, Clone)]
struct HourFacts {
    first: SlotTime,
    slots_with_play: u32,
    plays: BTreeMap<usize, u32>,
    /// The top tier's eligible set at the first slot with a play.
    top_set: Option<Vec<usize>>,
    set_changes: bool,
}

impl Default for HourFacts {
    fn default() -> Self {
        let utc = DateTime::<Utc>::UNIX_EPOCH;
        HourFacts {
            first: SlotTime {
                slot: 0,
                utc,
                local: utc.naive_utc(),
                offset: 0,
            },
            slots_with_play: 0,
            plays: BTreeMap::new(),
            top_set: None,
            set_changes: false,
        }
    }
}
