//! The catalogue: every venue, screen, creative and campaign, and the per-screen view the
//! planner and the schedule documents are built from.

use std::collections::HashMap;

use crate::ids::{ScreenId, VenueId};
use crate::model::{Campaign, Creative, Screen, ScreenSchedule, Venue};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Catalogue {
    pub venues: Vec<Venue>,
    pub screens: Vec<Screen>,
    pub creatives: Vec<Creative>,
    pub campaigns: Vec<Campaign>,
}

impl Catalogue {
    pub fn screen(&self, id: &ScreenId) -> Option<&Screen> {
        self.screens.iter().find(|s| s.id == *id)
    }

    pub fn venue(&self, id: &VenueId) -> Option<&Venue> {
        self.venues.iter().find(|v| v.id == *id)
    }

    /// The zone most venues keep (the first such zone in venue order on a tie; UTC
    /// without venues): what a page shows times in when no venue is at hand.
    pub fn main_zone(&self) -> chrono_tz::Tz {
        let mut count: Vec<(chrono_tz::Tz, usize)> = Vec::new();
        for v in &self.venues {
            match count.iter_mut().find(|(z, _)| *z == v.timezone) {
                Some((_, n)) => *n += 1,
                None => count.push((v.timezone, 1)),
            }
        }
        let most = count.iter().map(|(_, n)| *n).max().unwrap_or(0);
        count
            .into_iter()
            .find(|(_, n)| *n == most)
            .map_or(chrono_tz::UTC, |(z, _)| z)
    }

    /// What a screen's schedule document carries: the campaigns that target it, with
    /// their fitting creatives (a campaign with none is kept, so it can be explained).
    pub fn schedule_for(&self, id: &ScreenId) -> Option<ScreenSchedule> {
        let screen = self.screen(id)?.clone();
        let venue = self.venue(&screen.venue)?.clone();
        let campaigns: Vec<Campaign> = self
            .campaigns
            .iter()
            .filter(|c| c.target.matches(&screen, &venue))
            .map(|c| {
                let mut c = c.clone();
                c.creatives.retain(|id| {
                    self.creatives
                        .iter()
                        .any(|k| k.id == *id && k.fits(&screen))
                });
                c
            })
            .collect();
        let creatives = self
            .creatives
            .iter()
            .filter(|k| campaigns.iter().any(|c| c.creatives.contains(&k.id)))
            .cloned()
            .collect();
        Some(ScreenSchedule {
            screen,
            venue,
            campaigns,
            creatives,
        })
    }

    /// Every campaign and creative, for explaining why a campaign does not play here.
    pub fn full_schedule_for(&self, id: &ScreenId) -> Option<ScreenSchedule> {
        let screen = self.screen(id)?.clone();
        let venue = self.venue(&screen.venue)?.clone();
        Some(ScreenSchedule {
            screen,
            venue,
            campaigns: self.campaigns.clone(),
            creatives: self.creatives.clone(),
        })
    }
}

/// Lookups by id for work over many screens (publishing a city's documents): building one
/// is linear, each schedule after that costs only the campaigns it checks.
#[derive(Debug)]
pub struct CatalogueIndex<'a> {
    catalogue: &'a Catalogue,
    screens: HashMap<&'a str, &'a Screen>,
    venues: HashMap<&'a str, &'a Venue>,
    creatives: HashMap<&'a str, &'a Creative>,
}

impl<'a> CatalogueIndex<'a> {
    pub fn new(catalogue: &'a Catalogue) -> CatalogueIndex<'a> {
        CatalogueIndex {
            catalogue,
            screens: catalogue
                .screens
                .iter()
                .map(|s| (s.id.as_str(), s))
                .collect(),
            venues: catalogue
                .venues
                .iter()
                .map(|v| (v.id.as_str(), v))
                .collect(),
            creatives: catalogue
                .creatives
                .iter()
                .map(|k| (k.id.as_str(), k))
                .collect(),
        }
    }

    pub fn screen(&self, id: &str) -> Option<&'a Screen> {
        self.screens.get(id).copied()
    }

    pub fn venue(&self, id: &str) -> Option<&'a Venue> {
        self.venues.get(id).copied()
    }

    /// The same as [`Catalogue::schedule_for`].
    pub fn schedule_for(&self, id: &str) -> Option<ScreenSchedule> {
        let screen = self.screen(id)?;
        let venue = self.venue(screen.venue.as_str())?;
        let campaigns: Vec<Campaign> = self
            .catalogue
            .campaigns
            .iter()
            .filter(|c| c.target.matches(screen, venue))
            .map(|c| {
                let mut c = c.clone();
                c.creatives.retain(|id| {
                    self.creatives
                        .get(id.as_str())
                        .is_some_and(|k| k.fits(screen))
                });
                c
            })
            .collect();
        let creatives = self
            .catalogue
            .creatives
            .iter()
            .filter(|k| campaigns.iter().any(|c| c.creatives.contains(&k.id)))
            .cloned()
            .collect();
        Some(ScreenSchedule {
            screen: screen.clone(),
            venue: venue.clone(),
            campaigns,
            creatives,
        })
    }

    /// The screens a campaign's target matches.
    pub fn targeted<'b>(&'b self, campaign: &'b Campaign) -> impl Iterator<Item = &'a Screen> + 'b {
        self.catalogue.screens.iter().filter(move |s| {
            self.venue(s.venue.as_str())
                .is_some_and(|v| campaign.target.matches(s, v))
        })
    }
}
