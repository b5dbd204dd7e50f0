//! Campaigns of a scenario: each validated on its own (priority, weight, flight, dayparts,
//! targeting, creatives, cap), then checked for reach against the venues and screens.

use std::collections::HashMap;

use super::{build_target, invalid, parse_flight, FileCampaign, ScenarioError};
use crate::cron::CronExpr;
use crate::ids::{CampaignId, CreativeId, VenueId};
use crate::model::{Campaign, Creative, Priority, Screen, Venue};

/// A campaign must be able to play somewhere: every daypart names minutes that exist, its
/// target matches a screen, and one of its creatives fits one of those screens.
pub(super) fn check_reach(
    c: &Campaign,
    venues: &HashMap<&VenueId, &Venue>,
    screens: &[Screen],
    creatives: &[Creative],
) -> Result<(), ScenarioError> {
    let id = c.id.as_str();
    if let Some(i) = c.dayparts.iter().position(|d| !d.can_match()) {
        return Err(invalid(
            "campaign",
            id,
            format!("dayparts[{i}]"),
            format_args!("{:?} can never match: no such date", c.dayparts[i].as_str()),
        ));
    }
    let targeted: Vec<&Screen> = screens
        .iter()
        .filter(|s| venues.get(&s.venue).is_some_and(|v| c.target.matches(s, v)))
        .collect();
    if targeted.is_empty() {
        return Err(invalid("campaign", id, "target", "matches no screen"));
    }
    let fits = creatives
        .iter()
        .filter(|k| c.creatives.contains(&k.id))
        .any(|k| targeted.iter().any(|s| k.fits(s)));
    if !fits {
        return Err(invalid(
            "campaign",
            id,
            "creatives",
            format_args!(
                "none fits any of the {} targeted screens (aspect within 2 %, duration at most the slot)",
                targeted.len()
            ),
        ));
    }
    Ok(())
}

pub(super) fn build_campaign(
    c: &FileCampaign,
    creatives: &[Creative],
) -> Result<Campaign, ScenarioError> {
    let id = CampaignId::parse(&c.id).map_err(|e| invalid("campaign", &c.id, "id", e))?;
    let priority = Priority::parse(&c.priority).ok_or_else(|| {
        invalid(
            "campaign",
            &c.id,
            "priority",
            format_args!("{:?} is not emergency, high, normal or filler", c.priority),
        )
    })?;
    if c.weight == 0 {
        return Err(invalid("campaign", &c.id, "weight", "must be at least 1"));
    }
    let flight = parse_flight("campaign", &c.id, "flight", &c.flight)?;
    if c.dayparts.is_empty() {
        return Err(invalid(
            "campaign",
            &c.id,
            "dayparts",
            "is empty: use [\"* * * * *\"] for all day",
        ));
    }
    let dayparts = c
        .dayparts
        .iter()
        .enumerate()
        .map(|(i, d)| {
            CronExpr::parse(d).map_err(|e| invalid("campaign", &c.id, format!("dayparts[{i}]"), e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let target = build_target("campaign", &c.id, &c.target)?;
    if c.creatives.is_empty() {
        return Err(invalid("campaign", &c.id, "creatives", "is empty"));
    }
    let mut ids_out = Vec::new();
    for (i, name) in c.creatives.iter().enumerate() {
        let cid = CreativeId::parse(name)
            .map_err(|e| invalid("campaign", &c.id, format!("creatives[{i}]"), e))?;
        if !creatives.iter().any(|k| k.id == cid) {
            return Err(invalid(
                "campaign",
                &c.id,
                format!("creatives[{i}]"),
                format_args!("no creative {name:?} in the scenario"),
            ));
        }
        if ids_out.contains(&cid) {
            return Err(invalid(
                "campaign",
                &c.id,
                format!("creatives[{i}]"),
                format_args!("{name:?} is listed twice"),
            ));
        }
        ids_out.push(cid);
    }
    if c.max_plays_per_hour == Some(0) {
        return Err(invalid(
            "campaign",
            &c.id,
            "max_plays_per_hour",
            "must be at least 1 (leave it out for no cap)",
        ));
    }
    Ok(Campaign {
        id,
        name: c.name.clone(),
        priority,
        weight: c.weight,
        flight,
        dayparts,
        target,
        creatives: ids_out,
        max_plays_per_hour: c.max_plays_per_hour,
    })
}
