//! The schedule document: what a screen needs to plan every slot by itself, offline.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::cron::CronExpr;
use crate::ids::{CampaignId, CreativeId, ScreenId, Sha256, VenueId};
use crate::model::{
    Campaign, Creative, Flight, MediaKind, Priority, Screen, ScreenSchedule, Target, Venue,
};
use crate::taxonomy::VenueType;

use super::{WireError, VERSION};

pub const KIND: &str = "schedule";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleDoc {
    pub v: u32,
    pub screen_id: String,
    /// Increases with every change of this screen's body.
    pub version: u64,
    pub issued_at: DateTime<Utc>,
    /// After this instant an agent no longer accepts the document as new (the broker may
    /// replay an old retained copy). A schedule an agent already holds keeps playing past
    /// it: kiosks run offline for days. The server re-signs well before it.
    pub expires_at: DateTime<Utc>,
    pub body: ScheduleBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleBody {
    pub screen: WireScreen,
    pub venue: WireVenue,
    pub campaigns: Vec<WireCampaign>,
    pub creatives: Vec<WireCreative>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireScreen {
    pub id: String,
    pub width: u32,
    pub height: u32,
    pub slot_seconds: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireVenue {
    pub id: String,
    pub name: String,
    pub venue_type: u32,
    pub district: Option<String>,
    pub tags: Vec<String>,
    pub timezone: String,
    pub operating_hours: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireCampaign {
    pub id: String,
    pub name: String,
    pub priority: String,
    pub weight: u32,
    pub flight_start: DateTime<Utc>,
    pub flight_end: DateTime<Utc>,
    pub dayparts: Vec<String>,
    pub target: WireTarget,
    pub creatives: Vec<String>,
    pub max_plays_per_hour: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireTarget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screens: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub venues: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub venue_types: Option<Vec<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub districts: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireCreative {
    pub id: String,
    pub kind: String,
    pub sha256: String,
    pub bytes: u64,
    pub width: u32,
    pub height: u32,
    pub duration_seconds: u32,
    pub title: String,
    /// Path on the server, e.g. `/media/{sha256}`.
    pub url: String,
}

impl ScheduleBody {
    pub fn from_schedule(s: &ScreenSchedule) -> ScheduleBody {
        let t = |t: &Target| WireTarget {
            screens: t
                .screens
                .as_ref()
                .map(|v| v.iter().map(|x| x.to_string()).collect()),
            venues: t
                .venues
                .as_ref()
                .map(|v| v.iter().map(|x| x.to_string()).collect()),
            venue_types: t
                .venue_types
                .as_ref()
                .map(|v| v.iter().map(|x| x.id()).collect()),
            districts: t.districts.clone(),
            tags: t.tags.clone(),
        };
        ScheduleBody {
            screen: WireScreen {
                id: s.screen.id.to_string(),
                width: s.screen.width,
                height: s.screen.height,
                slot_seconds: s.screen.slot_seconds,
            },
            venue: WireVenue {
                id: s.venue.id.to_string(),
                name: s.venue.name.clone(),
                venue_type: s.venue.venue_type.id(),
                district: s.venue.district.clone(),
                tags: s.venue.tags.clone(),
                timezone: s.venue.timezone.name().to_owned(),
                operating_hours: s.venue.operating_hours.as_str().to_owned(),
            },
            campaigns: s
                .campaigns
                .iter()
                .map(|c| WireCampaign {
                    id: c.id.to_string(),
                    name: c.name.clone(),
                    priority: c.priority.as_str().to_owned(),
                    weight: c.weight,
                    flight_start: c.flight.start(),
                    flight_end: c.flight.end(),
                    dayparts: c.dayparts.iter().map(|d| d.as_str().to_owned()).collect(),
                    target: t(&c.target),
                    creatives: c.creatives.iter().map(|x| x.to_string()).collect(),
                    max_plays_per_hour: c.max_plays_per_hour,
                })
                .collect(),
            creatives: s
                .creatives
                .iter()
                .map(|c| WireCreative {
                    id: c.id.to_string(),
                    kind: c.kind.as_str().to_owned(),
                    sha256: c.sha256.to_string(),
                    bytes: c.bytes,
                    width: c.width,
                    height: c.height,
                    duration_seconds: c.duration_seconds,
                    title: c.title.clone(),
                    url: format!("/media/{}", c.sha256),
                })
                .collect(),
        }
    }

    /// SHA-256 of the body's JSON: equal bodies, equal hashes (field order is fixed).
    pub fn content_hash(&self) -> Sha256 {
        Sha256::of(&serde_json::to_vec(self).expect("wire types serialise"))
    }

    /// Back to the domain, validating everything as the scenario loader does.
    pub fn to_schedule(&self) -> Result<ScreenSchedule, WireError> {
        let screen = Screen {
            id: ScreenId::parse(&self.screen.id).map_err(|e| bad("screen.id", &e))?,
            venue: VenueId::parse(&self.venue.id).map_err(|e| bad("venue.id", &e))?,
            width: self.screen.width,
            height: self.screen.height,
            slot_seconds: self.screen.slot_seconds,
        };
        if screen.slot_seconds == 0 || screen.width == 0 || screen.height == 0 {
            return Err(bad("screen", &"zero slot or size"));
        }
        let venue = Venue {
            id: screen.venue.clone(),
            name: self.venue.name.clone(),
            venue_type: VenueType::from_id(self.venue.venue_type)
                .map_err(|e| bad("venue.venue_type", &e))?,
            district: self.venue.district.clone(),
            tags: self.venue.tags.clone(),
            timezone: self
                .venue
                .timezone
                .parse()
                .map_err(|e| bad("venue.timezone", &e))?,
            operating_hours: CronExpr::parse(&self.venue.operating_hours)
                .map_err(|e| bad("venue.operating_hours", &e))?,
        };
        let creatives = self
            .creatives
            .iter()
            .map(WireCreative::to_creative)
            .collect::<Result<Vec<_>, WireError>>()?;
        let campaigns = self
            .campaigns
            .iter()
            .map(WireCampaign::to_campaign)
            .collect::<Result<Vec<_>, WireError>>()?;
        Ok(ScreenSchedule {
            screen,
            venue,
            campaigns,
            creatives,
        })
    }
}

fn bad(what: &str, e: &dyn std::fmt::Display) -> WireError {
    WireError::Malformed(format!("schedule {what}: {e}"))
}

impl WireCreative {
    /// Back to the domain, validating ids, kind and hash.
    pub fn to_creative(&self) -> Result<Creative, WireError> {
        Ok(Creative {
            id: CreativeId::parse(&self.id).map_err(|e| bad("creative id", &e))?,
            kind: MediaKind::parse(&self.kind).ok_or_else(|| bad("creative kind", &self.kind))?,
            sha256: Sha256::parse(&self.sha256).map_err(|e| bad("creative sha256", &e))?,
            bytes: self.bytes,
            width: self.width,
            height: self.height,
            duration_seconds: self.duration_seconds,
            title: self.title.clone(),
        })
    }
}

impl WireCampaign {
    /// Back to the domain, validating everything as the scenario loader does.
    pub fn to_campaign(&self) -> Result<Campaign, WireError> {
        let c = self;
        Ok(Campaign {
            id: CampaignId::parse(&c.id).map_err(|e| bad("campaign id", &e))?,
            name: c.name.clone(),
            priority: Priority::parse(&c.priority)
                .ok_or_else(|| bad("campaign priority", &c.priority))?,
            weight: c.weight.max(1),
            flight: Flight::new(c.flight_start, c.flight_end)
                .ok_or_else(|| bad("campaign flight", &c.id))?,
            dayparts: c
                .dayparts
                .iter()
                .map(|d| CronExpr::parse(d).map_err(|e| bad("campaign daypart", &e)))
                .collect::<Result<_, _>>()?,
            target: Target {
                screens: c
                    .target
                    .screens
                    .as_ref()
                    .map(|v| {
                        v.iter()
                            .map(|x| ScreenId::parse(x))
                            .collect::<Result<_, _>>()
                    })
                    .transpose()
                    .map_err(|e| bad("target", &e))?,
                venues: c
                    .target
                    .venues
                    .as_ref()
                    .map(|v| {
                        v.iter()
                            .map(|x| VenueId::parse(x))
                            .collect::<Result<_, _>>()
                    })
                    .transpose()
                    .map_err(|e| bad("target", &e))?,
                venue_types: c
                    .target
                    .venue_types
                    .as_ref()
                    .map(|v| {
                        v.iter()
                            .map(|x| VenueType::from_id(*x))
                            .collect::<Result<_, _>>()
                    })
                    .transpose()
                    .map_err(|e| bad("target", &e))?,
                districts: c.target.districts.clone(),
                tags: c.target.tags.clone(),
            },
            creatives: c
                .creatives
                .iter()
                .map(|x| CreativeId::parse(x).map_err(|e| bad("campaign creative", &e)))
                .collect::<Result<_, _>>()?,
            max_plays_per_hour: c.max_plays_per_hour,
        })
    }
}

impl ScheduleDoc {
    pub fn new(
        screen: &ScreenId,
        version: u64,
        issued_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        body: ScheduleBody,
    ) -> ScheduleDoc {
        ScheduleDoc {
            v: VERSION,
            screen_id: screen.to_string(),
            version,
            issued_at,
            expires_at,
            body,
        }
    }
}
