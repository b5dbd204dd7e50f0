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

/// A creative and what was measured of its file; a retired one is in no schedule. Only an
/// approved creative plays in a campaign (creatives are never edited, so the approved
/// one is the one stored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreativeEntity {
    pub spec: FileCreative,
    pub measurement: StoredMeasurement,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<DateTime<Utc>>,
    /// Its review; absent in stores written before approval existed: approved.
    #[serde(default = "Approval::before_approval")]
    pub approval: Approval,
    /// What ingest's media checks found (gate, transcoding, loudness, flashes…), in
    /// the order they ran; empty in stores written before the checks existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<MediaCheck>,
    /// SHA-256 of the file as uploaded, when what is stored (`spec.sha256`) is not it
    /// (a video transcoded into the kiosk gate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_sha256: Option<String>,
    /// SHA-256 of its stored thumbnail (a JPEG of at most 320 px a side; a video's
    /// poster frame), made at upload; absent for creatives stored before thumbnails
    /// were kept and for imported ones, whose thumbnail is made on first request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_sha256: Option<String>,
}

/// One media check's verdict on an uploaded creative.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MediaCheck {
    /// Which check: `gate`, `transcode`, `loudness`, `flash`, …
    pub check: String,
    pub outcome: CheckOutcome,
    /// What was found, in words (figures included): shown to staff and approvers.
    pub detail: String,
}

/// How a check ended. A `Refused` verdict is never stored (the upload fails with it);
/// it exists for answers that report every check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckOutcome {
    /// Within bounds; nothing changed.
    Passed,
    /// The file was changed to pass (transcoded, normalised).
    Changed,
    /// Outside bounds, kept because the configuration says warn.
    Warning,
    Refused,
}

/// Where a campaign is in its life: `Draft` until a version of it is approved, `Live`
/// while an approved version plays (its working `spec` may be a newer draft), `Archived`
/// once it plays nowhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CampaignState {
    Draft,
    Live,
    Archived,
}

/// Where the working version of a campaign or creative is in its review (design.md,
/// "Approval").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    Draft,
    Submitted,
    Approved,
    Rejected,
}

impl ApprovalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Draft => "draft",
            ApprovalStatus::Submitted => "submitted",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Rejected => "rejected",
        }
    }
}

/// The review of a working version: its status, who submitted it and when, and who
/// approved or rejected it, when, and why (a rejection).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Approval {
    pub status: ApprovalStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_at: Option<DateTime<Utc>>,
    /// Who approved or rejected it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
    /// Why it was rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Approval {
    /// A new working version, not yet submitted.
    pub fn draft() -> Approval {
        Approval {
            status: ApprovalStatus::Draft,
            submitted_by: None,
            submitted_at: None,
            decided_by: None,
            decided_at: None,
            reason: None,
        }
    }

    /// Approved at once by `who` (approval off, or an admin's import).
    pub fn approved_by(who: &str, at: DateTime<Utc>) -> Approval {
        Approval {
            status: ApprovalStatus::Approved,
            decided_by: Some(who.to_owned()),
            decided_at: Some(at),
            ..Approval::draft()
        }
    }

    /// What a store written before approval existed holds: approved, by nobody named.
    pub fn before_approval() -> Approval {
        Approval {
            status: ApprovalStatus::Approved,
            ..Approval::draft()
        }
    }
}

/// The approved version of a campaign: what plays while a newer draft is reviewed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApprovedCampaign {
    pub spec: FileCampaign,
    /// Absent for a campaign stored before approval existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<DateTime<Utc>>,
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

/// A campaign: its working version (`spec`, as in `scenario.json`) and that version's
/// review, the approved version that plays (if any), and its state. Only the approved
/// version of a campaign that is not archived enters schedule documents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(from = "StoredCampaign")]
pub struct CampaignEntity {
    pub spec: FileCampaign,
    pub state: CampaignState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived_at: Option<DateTime<Utc>>,
    pub approval: Approval,
    /// The version that plays (kept after archiving: it is what played).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved: Option<Box<ApprovedCampaign>>,
}

impl CampaignEntity {
    /// The version that enters schedule documents: the approved one, unless archived.
    pub fn live_spec(&self) -> Option<&FileCampaign> {
        match self.state {
            CampaignState::Archived => None,
            _ => self.approved.as_ref().map(|a| &a.spec),
        }
    }
}

/// A campaign as stored, before or after approval existed: one written before has no
/// `approval`, and every campaign that was not a draft then was live, so approved.
#[derive(Deserialize)]
struct StoredCampaign {
    spec: FileCampaign,
    state: CampaignState,
    #[serde(default)]
    archived_at: Option<DateTime<Utc>>,
    #[serde(default)]
    approval: Option<Approval>,
    #[serde(default)]
    approved: Option<Box<ApprovedCampaign>>,
}

impl From<StoredCampaign> for CampaignEntity {
    fn from(s: StoredCampaign) -> CampaignEntity {
        let (approval, approved) = match s.approval {
            Some(a) => (a, s.approved),
            None if s.state == CampaignState::Draft => (Approval::draft(), None),
            None => (
                Approval::before_approval(),
                Some(Box::new(ApprovedCampaign {
                    spec: s.spec.clone(),
                    approved_by: None,
                    approved_at: None,
                })),
            ),
        };
        CampaignEntity {
            spec: s.spec,
            state: s.state,
            archived_at: s.archived_at,
            approval,
            approved,
        }
    }
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
    /// Set while it waits for a second operator's confirmation (`emergency_confirm =
    /// "two-person"`): it plays nowhere and nothing is announced until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingConfirmation>,
}

/// Who started an emergency that waits for a second operator, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PendingConfirmation {
    pub started_by: String,
    pub started_at: DateTime<Utc>,
    /// After this, it can no longer be confirmed (start it again).
    pub confirm_by: DateTime<Utc>,
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
/// name none), screens, creatives with what was measured of them, live campaigns (approved,
/// by nobody named: an import decides who and whether, see `crate::approval`), and its
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
            approval: Approval::before_approval(),
            checks: Vec::new(),
            source_sha256: None,
            thumbnail_sha256: None,
        }));
    }
    for c in &file.campaigns {
        out.push(Entity::Campaign(CampaignEntity {
            spec: c.clone(),
            state: CampaignState::Live,
            archived_at: None,
            approval: Approval::before_approval(),
            approved: Some(Box::new(ApprovedCampaign {
                spec: c.clone(),
                approved_by: None,
                approved_at: None,
            })),
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
                        pending: None,
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
