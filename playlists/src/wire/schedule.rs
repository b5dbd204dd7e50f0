//! The schedule document: what a screen needs to plan every slot by itself, offline.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::cron::CronExpr;
use crate::ids::{CampaignId, CreativeId, ScreenId, Sha256, VenueId};
use crate::model::{
    Campaign, Creative, Fit, Flight, MediaKind, Priority, Screen, ScreenSchedule, Target, Venue,
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
    /// `"fit"` (the default, left out) or `"fill"`: see [`Fit`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fit: Option<String>,
    /// `#rrggbb` behind a `"fit"` rendition; left out for black.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<String>,
    /// Plays on screens of any aspect ratio: the planner needs it to agree with the server.
    #[serde(default, skip_serializing_if = "is_false")]
    pub any_aspect: bool,
    /// The file made for this document's screen (its resolution), which the screen
    /// downloads and plays instead of the original; left out when the original is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rendition: Option<WireRendition>,
}

/// A creative made for one screen's resolution, content-addressed like the original.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireRendition {
    pub sha256: String,
    pub bytes: u64,
    pub width: u32,
    pub height: u32,
    /// Path on the server, e.g. `/media/{sha256}`.
    pub url: String,
}

/// What a screen downloads for a creative: its rendition, or else the original.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaRef<'a> {
    pub sha256: &'a str,
    pub bytes: u64,
    pub url: &'a str,
}

impl WireCreative {
    /// The file this screen downloads, verifies and plays.
    pub fn media(&self) -> MediaRef<'_> {
        match &self.rendition {
            Some(r) => MediaRef {
                sha256: &r.sha256,
                bytes: r.bytes,
                url: &r.url,
            },
            None => MediaRef {
                sha256: &self.sha256,
                bytes: self.bytes,
                url: &self.url,
            },
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl ScheduleBody {
    /// The document body of `s`, every creative sent as its original.
    pub fn from_schedule(s: &ScreenSchedule) -> ScheduleBody {
        ScheduleBody::from_schedule_with(s, |_| None)
    }

    /// The document body of `s`, naming for each creative the rendition `rendition` gives
    /// for this screen (`None`: the original is sent).
    pub fn from_schedule_with(
        s: &ScreenSchedule,
        rendition: impl Fn(&Creative) -> Option<WireRendition>,
    ) -> ScheduleBody {
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
                    fit: (c.fit != Fit::default()).then(|| c.fit.name().to_owned()),
                    background: match c.fit {
                        Fit::Contain { .. } if c.fit != Fit::default() => c.fit.background_hex(),
                        _ => None,
                    },
                    any_aspect: c.any_aspect,
                    rendition: rendition(c),
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
            fit: Fit::parse(self.fit.as_deref(), self.background.as_deref())
                .map_err(|(field, e)| bad(&format!("creative {field}"), &e))?,
            any_aspect: self.any_aspect,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn creative() -> WireCreative {
        WireCreative {
            id: "c1".into(),
            kind: "image".into(),
            sha256: "ab".repeat(32),
            bytes: 10,
            width: 3840,
            height: 2160,
            duration_seconds: 10,
            title: String::new(),
            url: format!("/media/{}", "ab".repeat(32)),
            fit: None,
            background: None,
            any_aspect: false,
            rendition: None,
        }
    }

    #[test]
    fn defaults_leave_the_json_as_before_renditions() {
        let json = serde_json::to_string(&creative()).unwrap();
        for absent in ["fit", "background", "any_aspect", "rendition"] {
            assert!(!json.contains(absent), "{json}");
        }
        let domain = creative().to_creative().unwrap();
        assert_eq!((domain.fit, domain.any_aspect), (Fit::default(), false));
        assert_eq!(creative().media().sha256, "ab".repeat(32));
    }

    #[test]
    fn fit_and_rendition_round_trip() {
        let c = WireCreative {
            fit: Some("fit".into()),
            background: Some("#FF0000".into()),
            any_aspect: true,
            rendition: Some(WireRendition {
                sha256: "cd".repeat(32),
                bytes: 5,
                width: 1080,
                height: 1920,
                url: format!("/media/{}", "cd".repeat(32)),
            }),
            ..creative()
        };
        let back: WireCreative = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        let domain = c.to_creative().unwrap();
        assert_eq!(
            domain.fit,
            Fit::Contain {
                background: [255, 0, 0]
            }
        );
        assert!(domain.any_aspect);
        let media = c.media();
        assert_eq!((media.sha256, media.bytes), ("cd".repeat(32).as_str(), 5));
        let bad = WireCreative {
            fit: Some("stretch".into()),
            ..creative()
        };
        assert!(bad
            .to_creative()
            .unwrap_err()
            .to_string()
            .contains("creative fit"));
    }
}
