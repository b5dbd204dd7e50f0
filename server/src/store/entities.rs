//! The catalogue's entities as stored: venues, screens, creatives, campaigns (as
//! `scenario.json` writes them, with their lifecycle) and emergencies, and the entities a
//! scenario file describes. Backend-neutral: every store keeps them as JSON.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use playlists::scenario::{
    FileCampaign, FileCreative, FileScreen, FileTarget, FileVenue, FileWindow, Measurement,
};
use playlists::{MediaKind, Sha256};

use super::EntityKind;

/// A venue, as in `scenario.json` (with its time zone).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VenueEntity {
    pub spec: FileVenue,
}

/// A screen; a decommissioned one keeps its history and gets no schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScreenEntity {
    pub spec: FileScreen,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decommissioned_at: Option<DateTime<Utc>>,
}

/// A creative and what was measured of its file; a retired one is in no schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreativeEntity {
    pub spec: FileCreative,
    pub measurement: StoredMeasurement,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<DateTime<Utc>>,
}

/// Where a campaign is in its life. Only `Live` campaigns enter schedule documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CampaignState {
    Draft,
    Live,
    Archived,
}

impl CampaignState {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignState::Draft => "draft",
            CampaignState::Live => "live",
            CampaignState::Archived => "archived",
        }
    }
}

/// A campaign as in `scenario.json`, and its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CampaignEntity {
    pub spec: FileCampaign,
    pub state: CampaignState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived_at: Option<DateTime<Utc>>,
}

/// What was measured of a creative's file, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoredMeasurement {
    pub kind: String,
    pub width: u32,
    pub height: u32,
    pub duration_ms: Option<u64>,
    pub sha256: String,
    pub bytes: u64,
}

impl StoredMeasurement {
    pub fn from_measurement(m: &Measurement) -> StoredMeasurement {
        StoredMeasurement {
            kind: m.kind.as_str().to_owned(),
            width: m.width,
            height: m.height,
            duration_ms: m.duration_ms,
            sha256: m.sha256.to_string(),
            bytes: m.bytes,
        }
    }

    pub fn to_measurement(&self) -> Option<Measurement> {
        Some(Measurement {
            kind: MediaKind::parse(&self.kind)?,
            width: self.width,
            height: self.height,
            duration_ms: self.duration_ms,
            sha256: Sha256::parse(&self.sha256).ok()?,
            bytes: self.bytes,
        })
    }
}

/// An emergency takeover: a campaign of tier `emergency`, weight 1, every daypart, from
/// when the server accepted it until it is ended (or `end`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoredEmergency {
    pub id: String,
    pub name: String,
    pub creatives: Vec<String>,
    /// Scenario targeting keys (`screens`, `venues`, `venue_types`, `districts`, `tags`).
    #[schema(value_type = playlists::scenario::FileTarget)]
    pub target: serde_json::Value,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Set when staff ended it (then `end` is that time).
    #[serde(default)]
    pub ended: bool,
}

impl StoredEmergency {
    /// The campaign as a scenario file would write it, validated with the rest.
    pub fn file_campaign(&self) -> Result<FileCampaign, String> {
        let target: FileTarget = serde_json::from_value(self.target.clone())
            .map_err(|e| format!("emergency {:?} target: {e}", self.id))?;
        Ok(FileCampaign {
            id: self.id.clone(),
            name: self.name.clone(),
            priority: "emergency".into(),
            weight: 1,
            flight: FileWindow {
                start: self.start.to_rfc3339(),
                end: self.end.to_rfc3339(),
            },
            dayparts: vec!["* * * * *".into()],
            target,
            creatives: self.creatives.clone(),
            max_plays_per_hour: None,
        })
    }
}

/// One entity as a change writes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Entity {
    Venue(VenueEntity),
    Screen(ScreenEntity),
    Creative(CreativeEntity),
    Campaign(CampaignEntity),
    Emergency(StoredEmergency),
}

impl Entity {
    pub fn kind(&self) -> EntityKind {
        match self {
            Entity::Venue(_) => EntityKind::Venue,
            Entity::Screen(_) => EntityKind::Screen,
            Entity::Creative(_) => EntityKind::Creative,
            Entity::Campaign(_) => EntityKind::Campaign,
            Entity::Emergency(_) => EntityKind::Emergency,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Entity::Venue(v) => &v.spec.id,
            Entity::Screen(s) => &s.spec.id,
            Entity::Creative(c) => &c.spec.id,
            Entity::Campaign(c) => &c.spec.id,
            Entity::Emergency(e) => &e.id,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        let v = match self {
            Entity::Venue(x) => serde_json::to_value(x),
            Entity::Screen(x) => serde_json::to_value(x),
            Entity::Creative(x) => serde_json::to_value(x),
            Entity::Campaign(x) => serde_json::to_value(x),
            Entity::Emergency(x) => serde_json::to_value(x),
        };
        v.unwrap_or(serde_json::Value::Null)
    }
}

/// The entities a scenario file describes: venues (with the scenario's time zone when they
/// name none), screens, creatives with what was measured of them, live campaigns, and its
/// emergency events as emergencies. Checks only what the conversion needs (a measurement
/// per creative, events that pair up); validation is the catalogue's.
pub fn scenario_entities(
    file: &playlists::scenario::ScenarioFile,
    measured: &HashMap<String, StoredMeasurement>,
) -> Result<Vec<Entity>, String> {
    let mut out = Vec::new();
    for v in &file.venues {
        let mut spec = v.clone();
        spec.timezone.get_or_insert_with(|| file.timezone.clone());
        out.push(Entity::Venue(VenueEntity { spec }));
    }
    for s in &file.screens {
        out.push(Entity::Screen(ScreenEntity {
            spec: s.clone(),
            decommissioned_at: None,
        }));
    }
    for c in &file.creatives {
        let measurement = measured
            .get(&c.id)
            .ok_or_else(|| format!("creative {:?}: its file was not measured", c.id))?;
        out.push(Entity::Creative(CreativeEntity {
            spec: c.clone(),
            measurement: measurement.clone(),
            retired_at: None,
        }));
    }
    for c in &file.campaigns {
        out.push(Entity::Campaign(CampaignEntity {
            spec: c.clone(),
            state: CampaignState::Live,
            archived_at: None,
        }));
    }
    let mut emergencies: BTreeMap<String, StoredEmergency> = BTreeMap::new();
    for e in &file.events {
        let at = DateTime::parse_from_rfc3339(&e.at)
            .map_err(|err| format!("event {:?}: field \"at\": {err}", e.id))?
            .with_timezone(&Utc);
        match e.action.as_str() {
            "emergency_start" => {
                let target = serde_json::to_value(e.target.clone().unwrap_or_default())
                    .unwrap_or_else(|_| serde_json::json!({}));
                emergencies.insert(
                    e.id.clone(),
                    StoredEmergency {
                        id: e.id.clone(),
                        name: e.name.clone().unwrap_or_else(|| e.id.clone()),
                        creatives: e.creatives.clone(),
                        target,
                        start: at,
                        end: at + crate::emergency::OPEN_END,
                        ended: false,
                    },
                );
            }
            "emergency_end" => {
                let Some(em) = emergencies.get_mut(&e.id) else {
                    return Err(format!(
                        "event {:?}: emergency_end without an earlier emergency_start",
                        e.id
                    ));
                };
                em.end = at;
                em.ended = true;
            }
            other => {
                return Err(format!(
                "event {:?}: field \"action\": {other:?} is not emergency_start or emergency_end",
                e.id
            ))
            }
        }
    }
    out.extend(emergencies.into_values().map(Entity::Emergency));
    Ok(out)
}
