//! Planning once per distinct schedule: the [`PlanKey`] of a screen's schedule is
//! everything the planner's output depends on, so screens with equal keys have equal plans
//! and share one.
//!
//! Does the plan depend on the screen's own id? Not directly: nothing in the planner is
//! seeded by it (campaigns are ordered by campaign id, the round-robin and the creative
//! rotation start from each local day's first slot). The screen and venue enter only
//! through targeting (ids, venue type, district, tags), creative fit (resolution, slot
//! length), the venue's time zone and operating hours. The key therefore holds what those
//! decide, resolved: the slot length, the zone, the hours, and for each campaign the
//! planner keeps (targeting matched, at least one fitting creative) its place in the
//! schedule, the fields eligibility and sharing read (id, priority, weight, flight,
//! dayparts, cap) and its fitting creatives (place and id). Two screens with equal keys
//! build identical prepared campaigns and so identical [`DayPlan`]s, whose campaign and
//! creative indices name the same ids in both schedules. Names, titles, media hashes and
//! campaigns that do not play on the screen are left out: they cannot change a pick.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{DayPlan, Planner};
use crate::model::Priority;

/// What a screen's plan depends on (see the module doc). Equal keys, equal plans.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PlanKey {
    slot_seconds: i64,
    timezone: &'static str,
    hours: String,
    campaigns: Vec<KeyCampaign>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct KeyCampaign {
    index: usize,
    id: String,
    priority: Priority,
    weight: u32,
    flight_start_ms: i64,
    flight_end_ms: i64,
    dayparts: Vec<String>,
    cap: Option<u32>,
    /// Fitting creatives in rotation order: index into the schedule's creatives, and id.
    creatives: Vec<(usize, String)>,
}

impl PlanKey {
    pub fn of(planner: &Planner<'_>) -> PlanKey {
        let schedule = planner.schedule;
        PlanKey {
            slot_seconds: planner.slot_seconds,
            timezone: schedule.venue.timezone.name(),
            hours: schedule.venue.operating_hours.as_str().to_owned(),
            campaigns: planner
                .prepared
                .iter()
                .map(|p| KeyCampaign {
                    index: p.index,
                    id: p.campaign.id.to_string(),
                    priority: p.campaign.priority,
                    weight: p.campaign.weight,
                    flight_start_ms: p.flight_start_ms,
                    flight_end_ms: p.flight_end_ms,
                    dayparts: p
                        .campaign
                        .dayparts
                        .iter()
                        .map(|d| d.as_str().to_owned())
                        .collect(),
                    cap: p.campaign.max_plays_per_hour,
                    creatives: p
                        .creatives
                        .iter()
                        .map(|&i| (i, schedule.creatives[i].id.to_string()))
                        .collect(),
                })
                .collect(),
        }
    }
}

/// Plays of one hour, campaign and creative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TallyEntry {
    /// The UTC hour, as seconds since the epoch of its start.
    pub hour: i64,
    /// Index into the schedule's campaigns.
    pub campaign: u32,
    /// Index into the schedule's creatives.
    pub creative: u32,
    pub plays: u32,
}

/// A plan over a window, counted per UTC hour, campaign and creative: what reports and
/// forecasts need of a plan, a few thousand entries for a week where the plan is tens of
/// thousands of slots. Sorted by (hour, campaign, creative).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub entries: Vec<TallyEntry>,
}

impl Tally {
    /// The plays of `planner` whose slots start in `[from, to)`, counted.
    pub fn of(planner: &Planner<'_>, from: DateTime<Utc>, to: DateTime<Utc>) -> Tally {
        let mut counts: BTreeMap<(i64, u32, u32), u32> = BTreeMap::new();
        let slot = planner.slot_seconds;
        planner.for_each_day(from, to, |day, first, end| {
            add_day(&mut counts, day, first, end, slot);
        });
        Tally {
            entries: counts
                .into_iter()
                .map(|((hour, campaign, creative), plays)| TallyEntry {
                    hour,
                    campaign,
                    creative,
                    plays,
                })
                .collect(),
        }
    }

    /// Plays per (campaign, creative) over the whole window.
    pub fn totals(&self) -> BTreeMap<(u32, u32), u64> {
        let mut out = BTreeMap::new();
        for e in &self.entries {
            *out.entry((e.campaign, e.creative)).or_default() += u64::from(e.plays);
        }
        out
    }

    /// Every play counted.
    pub fn plays(&self) -> u64 {
        self.entries.iter().map(|e| u64::from(e.plays)).sum()
    }
}

fn add_day(
    counts: &mut BTreeMap<(i64, u32, u32), u32>,
    day: &DayPlan,
    first: i64,
    end: i64,
    slot_seconds: i64,
) {
    // Plays come in time order: count a run of equal keys before touching the map.
    let mut run: Option<((i64, u32, u32), u32)> = None;
    for p in day.plays().filter(|p| (first..end).contains(&p.slot)) {
        let key = (
            (p.slot * slot_seconds).div_euclid(3_600) * 3_600,
            p.campaign as u32,
            p.creative as u32,
        );
        match &mut run {
            Some((k, n)) if *k == key => *n += 1,
            _ => {
                if let Some((k, n)) = run.take() {
                    *counts.entry(k).or_default() += n;
                }
                run = Some((key, 1));
            }
        }
    }
    if let Some((k, n)) = run {
        *counts.entry(k).or_default() += n;
    }
}
