//! The catalogue: every venue, screen, creative and campaign, and the per-screen view the
//! planner and the schedule documents are built from.

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
