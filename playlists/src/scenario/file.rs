//! The `signage-scenario/1` file as written on disk: serde types only, validated into the
//! domain by the parent module.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    pub format: String,
    pub name: String,
    pub timezone: String,
    pub window: FileWindow,
    pub venues: Vec<FileVenue>,
    pub screens: Vec<FileScreen>,
    pub creatives: Vec<FileCreative>,
    pub campaigns: Vec<FileCampaign>,
    #[serde(default)]
    pub events: Vec<FileEvent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FileWindow {
    pub start: String,
    pub end: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FileVenue {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_en: Option<String>,
    #[serde(rename = "type")]
    pub venue_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openooh_id: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub district: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<FileLocation>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub operating_hours: String,
    /// The venue's IANA time zone; the scenario's `timezone` when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FileLocation {
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FileScreen {
    pub id: String,
    pub venue: String,
    pub resolution: FileResolution,
    #[serde(default = "default_slot")]
    pub slot_seconds: u32,
}

fn default_slot() -> u32 {
    15
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FileResolution {
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FileCreative {
    pub id: String,
    pub file: String,
    pub kind: String,
    pub duration_seconds: u32,
    #[serde(default)]
    pub title: String,
    pub sha256: String,
    pub bytes: u64,
    /// How renditions meet a screen of another aspect ratio: `"fit"` (the default: inside,
    /// on `background`) or `"fill"` (a centre crop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fit: Option<String>,
    /// `#rrggbb` behind a `"fit"` rendition; black when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<String>,
    /// Plays on screens of any aspect ratio, not only within 2 % of its own.
    #[serde(default, skip_serializing_if = "is_false")]
    pub any_aspect: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FileCampaign {
    pub id: String,
    pub name: String,
    pub priority: String,
    pub weight: u32,
    pub flight: FileWindow,
    pub dayparts: Vec<String>,
    #[serde(default)]
    pub target: FileTarget,
    pub creatives: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_plays_per_hour: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FileTarget {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub screens: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub venues: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub venue_types: Option<Vec<serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub districts: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FileEvent {
    pub at: String,
    pub action: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<FileTarget>,
    #[serde(default)]
    pub creatives: Vec<String>,
}
