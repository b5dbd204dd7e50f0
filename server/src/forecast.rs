//! What a draft campaign would deliver before anyone submits it: the shared planner run
//! over the campaign's flight on the screens it targets, with and without it, counted per
//! venue, district and campaign, and which campaigns would lose plays to it. Pure: two
//! catalogues in, counts out. Screens that plan alike share one plan
//! ([`crate::shared_plan`]).

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use playlists::catalogue::CatalogueIndex;
use playlists::Catalogue;

/// The longest stretch of a flight a forecast plans.
pub const MAX_DAYS: i64 = 31;

/// Plays with and without the draft.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Counts {
    pub id: String,
    pub without: u64,
    pub with: u64,
    /// Of `with`, the plays of the forecast campaign itself.
    pub campaign: u64,
}

/// A campaign that would play less.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Displaced {
    pub campaign: String,
    pub lost: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Forecast {
    pub campaign: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// True when the flight was longer than the forecast window.
    pub truncated: bool,
    pub screens: usize,
    pub by_venue: Vec<Counts>,
    pub by_district: Vec<Counts>,
    pub by_campaign: Vec<Counts>,
    pub displaced: Vec<Displaced>,
}

/// Forecasts `campaign` (present in `with`, absent or different in `without`) over its
/// flight, at most [`MAX_DAYS`] of it.
pub fn forecast(without: &Catalogue, with: &Catalogue, campaign: &str) -> Option<Forecast> {
    let c = with.campaigns.iter().find(|c| c.id.as_str() == campaign)?;
    let from = c.flight.start();
    let to = c.flight.end().min(from + TimeDelta::days(MAX_DAYS));
    let index_with = CatalogueIndex::new(with);
    let index_without = CatalogueIndex::new(without);
    let screens: Vec<String> = index_with.targeted(c).map(|s| s.id.to_string()).collect();
    type Table = BTreeMap<String, (u64, u64, u64)>;
    let (mut venues, mut districts, mut campaigns) = (Table::new(), Table::new(), Table::new());
    // Every screen without and with the draft; screens that plan alike share a plan.
    let mut items = Vec::with_capacity(screens.len() * 2);
    let mut sides = Vec::with_capacity(screens.len() * 2);
    for screen in &screens {
        for (which, index) in [(0, &index_without), (1, &index_with)] {
            if let Some(schedule) = index.schedule_for(screen) {
                items.push((schedule, from, to));
                sides.push(which);
            }
        }
    }
    let (tallies, _) = crate::shared_plan::tallies(&items);
    for (((schedule, _, _), which), tally) in items.iter().zip(sides).zip(&tallies) {
        let district = schedule.venue.district.clone().unwrap_or_default();
        let venue = schedule.venue.id.to_string();
        for ((c, _), n) in tally.totals() {
            let name = schedule.campaigns[c as usize].id.to_string();
            let ours = name == campaign;
            for (table, key) in [
                (&mut venues, &venue),
                (&mut districts, &district),
                (&mut campaigns, &name),
            ] {
                let e = table.entry(key.clone()).or_default();
                if which == 0 {
                    e.0 += n;
                } else {
                    e.1 += n;
                    e.2 += if ours { n } else { 0 };
                }
            }
        }
    }
    let rows = |t: Table| -> Vec<Counts> {
        t.into_iter()
            .map(|(id, (without, with, ours))| Counts {
                id,
                without,
                with,
                campaign: ours,
            })
            .collect()
    };
    let by_campaign = rows(campaigns);
    let displaced = by_campaign
        .iter()
        .filter(|r| r.id != campaign && r.with < r.without)
        .map(|r| Displaced {
            campaign: r.id.clone(),
            lost: r.without - r.with,
        })
        .collect();
    Some(Forecast {
        campaign: campaign.to_owned(),
        from,
        to,
        truncated: to < c.flight.end(),
        screens: screens.len(),
        by_venue: rows(venues),
        by_district: rows(districts),
        by_campaign,
        displaced,
    })
}
