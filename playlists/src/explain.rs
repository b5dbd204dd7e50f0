//! Why a slot plays what it plays: every campaign with its verdict (targeting, fit, flight,
//! daypart, cap, tier) and how share of voice and rotation chose. Built from the planner's
//! own trace of the slot, so the explanation cannot disagree with the plan.

use std::fmt;

use chrono::{DateTime, FixedOffset, Utc};

use crate::model::{Priority, ScreenSchedule};
use crate::planner::{Planner, Verdict};

#[derive(Debug, Clone, PartialEq)]
pub struct CampaignVerdict {
    pub campaign_id: String,
    pub priority: Priority,
    pub weight: u32,
    pub eligible: bool,
    /// Eligible, but a higher tier plays.
    pub outranked: bool,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    pub screen_id: String,
    pub venue_id: String,
    pub slot: i64,
    pub slot_start: DateTime<Utc>,
    pub local_start: DateTime<FixedOffset>,
    pub timezone: String,
    pub open: bool,
    pub operating_hours: String,
    pub verdicts: Vec<CampaignVerdict>,
    pub tier: Option<Priority>,
    pub campaign_id: Option<String>,
    pub creative_id: Option<String>,
    /// How share of voice chose among the tier.
    pub share: String,
    /// How rotation chose the creative.
    pub rotation: String,
}

/// Explains slot `slot` of the schedule's screen.
pub fn explain(schedule: &ScreenSchedule, slot: i64) -> Explanation {
    let planner = Planner::new(schedule);
    let (day, trace) = planner.plan_day_traced(slot, Some(slot));
    let trace = trace.expect("the traced slot is inside its own day");
    let play = day.play(slot);
    let slot_start = planner.slot_start(slot);
    let offset = FixedOffset::east_opt(trace.local.offset)
        .unwrap_or(FixedOffset::east_opt(0).expect("zero offset"));
    let screen = &schedule.screen;
    let venue = &schedule.venue;

    let mut verdicts = Vec::new();
    let mut tier = None;
    for (index, c) in schedule.campaigns.iter().enumerate() {
        let prepared = planner.prepared.iter().position(|p| p.index == index);
        let (eligible, reason) = match prepared {
            None => match c.target.mismatch(screen, venue) {
                Some(key) => (
                    false,
                    format!("not targeted: target.{key} does not match this screen"),
                ),
                None => (
                    false,
                    "no creative fits this screen (aspect within 2 %, duration at most the slot)"
                        .to_owned(),
                ),
            },
            Some(_) if !trace.open => (false, "venue closed (operating hours)".to_owned()),
            Some(p) => {
                match trace.verdicts[p] {
                    Verdict::OutsideFlight => (
                        false,
                        format!(
                            "outside flight [{}, {})",
                            c.flight.start().to_rfc3339(),
                            c.flight.end().to_rfc3339()
                        ),
                    ),
                    Verdict::NoDaypart => (
                        false,
                        format!(
                            "no daypart matches (dayparts {:?})",
                            c.dayparts.iter().map(|d| d.as_str()).collect::<Vec<_>>()
                        ),
                    ),
                    Verdict::CapReached { plays, cap } => (
                        false,
                        format!("cap reached: {plays} of {cap} plays this local hour"),
                    ),
                    Verdict::Eligible => {
                        let n = planner.prepared[p].creatives.len();
                        let hour = trace.hour_plays[p];
                        let cap = c
                            .max_plays_per_hour
                            .map(|m| format!(", {hour} of {m} plays this hour"))
                            .unwrap_or_default();
                        (true, format!("eligible: in flight, daypart matches, {n} fitting creative(s){cap}"))
                    }
                }
            }
        };
        if eligible && tier.is_none_or(|t| c.priority > t) {
            tier = Some(c.priority);
        }
        verdicts.push(CampaignVerdict {
            campaign_id: c.id.to_string(),
            priority: c.priority,
            weight: c.weight,
            eligible,
            outranked: false,
            reason,
        });
    }
    for v in &mut verdicts {
        v.outranked = v.eligible && Some(v.priority) != tier;
    }

    let share = match (&trace.pick, trace.candidates.len()) {
        (None, _) => "nothing plays".to_owned(),
        (Some(_), 1) => "the only eligible campaign of its tier".to_owned(),
        (Some(_), _) => {
            let parts: Vec<String> = trace
                .candidates
                .iter()
                .map(|&i| {
                    let c = planner.prepared[i].campaign;
                    format!(
                        "{} weight {} credit {}+{}",
                        c.id, c.weight, trace.credit_before[i], c.weight
                    )
                })
                .collect();
            format!("smooth weighted round-robin within the tier, highest credit wins (ties: campaign id): {}", parts.join("; "))
        }
    };
    let rotation = match (trace.pick, play) {
        (Some(p), Some(play)) => {
            let n = planner.prepared[p].creatives.len();
            let pos = planner.prepared[p]
                .creatives
                .iter()
                .position(|&c| c == play.creative)
                .unwrap_or(0);
            format!(
                "play {} of {} of this campaign today; creative {} of {} in rotation order",
                trace.play_in_day + 1,
                trace.plays_in_day,
                pos + 1,
                n
            )
        }
        _ => String::new(),
    };
    Explanation {
        screen_id: screen.id.to_string(),
        venue_id: venue.id.to_string(),
        slot,
        slot_start,
        local_start: slot_start.with_timezone(&offset),
        timezone: venue.timezone.name().to_owned(),
        open: trace.open,
        operating_hours: venue.operating_hours.as_str().to_owned(),
        verdicts,
        tier: play.map(|p| schedule.campaigns[p.campaign].priority),
        campaign_id: play.map(|p| schedule.campaigns[p.campaign].id.to_string()),
        creative_id: play.map(|p| schedule.creatives[p.creative].id.to_string()),
        share,
        rotation,
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "screen {} (venue {}), slot {}",
            self.screen_id, self.venue_id, self.slot
        )?;
        writeln!(
            f,
            "  starts {} = {} {}",
            self.slot_start.to_rfc3339(),
            self.local_start.to_rfc3339(),
            self.timezone
        )?;
        writeln!(
            f,
            "  operating hours {:?}: {}",
            self.operating_hours,
            if self.open {
                "open"
            } else {
                "closed, the screen is dark"
            }
        )?;
        match (&self.campaign_id, &self.creative_id, self.tier) {
            (Some(c), Some(k), Some(t)) => {
                writeln!(f, "  plays {k} of campaign {c} (tier {})", t.as_str())?
            }
            _ => writeln!(f, "  plays nothing")?,
        }
        writeln!(f, "campaigns:")?;
        for v in &self.verdicts {
            let mark = if v.outranked {
                "outranked by a higher tier"
            } else if v.eligible {
                "ELIGIBLE"
            } else {
                "no"
            };
            writeln!(
                f,
                "  {:<28} {:<9} w{:<3} {:<26} {}",
                v.campaign_id,
                v.priority.as_str(),
                v.weight,
                mark,
                v.reason
            )?;
        }
        writeln!(f, "share of voice: {}", self.share)?;
        if !self.rotation.is_empty() {
            writeln!(f, "rotation: {}", self.rotation)?;
        }
        Ok(())
    }
}
