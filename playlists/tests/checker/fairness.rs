//! Invariants 4 and 5 of the checker: share of voice within a local hour and creative
//! rotation within a local day. Eligibility and the per-slot walk live in `mod.rs`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use playlists::Play;

use super::{Checker, HourFacts, SlotTime, Violation};

impl Checker<'_> {
    /// Invariant 4 for one local hour.
    pub(super) fn check_share(&self, facts: &HourFacts) -> Vec<Violation> {
        let Some(set) = &facts.top_set else {
            return vec![];
        };
        if facts.set_changes || set.is_empty() {
            return vec![];
        }
        let capped = set.iter().any(|&c| {
            let played = facts.plays.get(&c).copied().unwrap_or(0);
            self.schedule.campaigns[c]
                .max_plays_per_hour
                .is_some_and(|cap| played >= cap)
        });
        if capped {
            return vec![];
        }
        let weight = |c: usize| i64::from(self.schedule.campaigns[c].weight);
        let total: i64 = set.iter().map(|&c| weight(c)).sum();
        let n = i64::from(facts.slots_with_play);
        let mut out = Vec::new();
        for &c in set {
            let played = i64::from(facts.plays.get(&c).copied().unwrap_or(0));
            // |played - n * w / total| <= 2, in integers.
            if (played * total - n * weight(c)).abs() > 2 * total {
                out.push(self.violation(
                    4,
                    &facts.first,
                    self.ids(set.iter().copied()),
                    format!(
                        "{} played {played} of {n} slots this local hour, share {:.2} (weight {} of {total})",
                        self.schedule.campaigns[c].id,
                        (n * weight(c)) as f64 / total as f64,
                        weight(c)
                    ),
                ));
            }
        }
        out
    }

    /// Invariant 5: balanced creative counts per campaign over each full local day in the
    /// window, and no creative twice in a row within a local day when another fits.
    pub(super) fn check_rotation(
        &self,
        slots: std::ops::Range<i64>,
        by_slot: &BTreeMap<i64, Play>,
    ) -> Vec<Violation> {
        let mut out = Vec::new();
        let first_date = self.time(slots.start).date();
        let last_date = self.time(slots.end - 1).date();
        let mut partial = BTreeSet::new();
        if self.time(slots.start - 1).date() == first_date {
            partial.insert(first_date);
        }
        if self.time(slots.end).date() == last_date {
            partial.insert(last_date);
        }
        // (date, campaign) -> counts per creative, first slot seen; last creative per campaign.
        let mut counts: BTreeMap<(NaiveDate, usize), (BTreeMap<usize, u32>, SlotTime)> =
            BTreeMap::new();
        let mut last: BTreeMap<usize, (NaiveDate, usize)> = BTreeMap::new();
        for p in by_slot.values() {
            if p.campaign >= self.fitting.len() {
                continue;
            }
            let at = self.time(p.slot);
            let date = at.date();
            if self.fitting[p.campaign].len() >= 2
                && last.get(&p.campaign) == Some(&(date, p.creative))
            {
                out.push(self.violation(
                    5,
                    &at,
                    self.ids([p.campaign]),
                    format!(
                        "creative {} twice in a row",
                        self.schedule.creatives[p.creative].id
                    ),
                ));
            }
            last.insert(p.campaign, (date, p.creative));
            counts
                .entry((date, p.campaign))
                .or_insert_with(|| (BTreeMap::new(), at))
                .0
                .entry(p.creative)
                .and_modify(|n| *n += 1)
                .or_insert(1);
        }
        for ((date, c), (per_creative, first)) in &counts {
            if partial.contains(date) {
                continue;
            }
            let fitting = &self.fitting[*c];
            let all: Vec<u32> = fitting
                .iter()
                .map(|k| per_creative.get(k).copied().unwrap_or(0))
                .collect();
            let (lo, hi) = (
                *all.iter().min().unwrap_or(&0),
                *all.iter().max().unwrap_or(&0),
            );
            let total: u32 = all.iter().sum();
            let mean = f64::from(total) / fitting.len().max(1) as f64;
            if f64::from(hi - lo) > (0.1 * mean).max(2.0) {
                out.push(self.violation(
                    5,
                    first,
                    self.ids([*c]),
                    format!(
                        "creative counts {all:?} on {date} differ by {} (mean {mean:.1})",
                        hi - lo
                    ),
                ));
            }
        }
        out
    }
}
