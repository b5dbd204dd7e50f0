//! Scenario files (`signage-scenario/1`, see scenarios/README.md): parsing and validation
//! into the domain. Reading files and measuring media is the caller's job (no IO here):
//! it hands over one `Measurement` per creative.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::catalogue::Catalogue;
use crate::cron::CronExpr;
use crate::ids::{CreativeId, ScreenId, Sha256, VenueId};
use crate::model::{Campaign, Creative, Fit, Flight, MediaKind, Priority, Screen, Target, Venue};
use crate::taxonomy::VenueType;

mod campaign;
mod file;

use campaign::{build_campaign, check_reach};

pub const FORMAT: &str = "signage-scenario/1";

/// What is wrong with a scenario, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScenarioError {
    #[error(
        "scenario.json is not valid JSON for {FORMAT}: {message} (line {line}, column {column})"
    )]
    Json {
        message: String,
        line: usize,
        column: usize,
    },
    #[error("scenario format is {found:?}, expected {FORMAT:?}")]
    Format { found: String },
    #[error("{entity} {id:?}: field {field:?}: {problem}")]
    Invalid {
        entity: &'static str,
        id: String,
        field: String,
        problem: String,
    },
    #[error("{entity} {id:?} appears more than once")]
    Duplicate { entity: &'static str, id: String },
}

fn invalid(
    entity: &'static str,
    id: &str,
    field: impl Into<String>,
    problem: impl ToString,
) -> ScenarioError {
    ScenarioError::Invalid {
        entity,
        id: id.to_owned(),
        field: field.into(),
        problem: problem.to_string(),
    }
}

pub use file::{
    FileCampaign, FileCreative, FileEvent, FileLocation, FileResolution, FileScreen, FileTarget,
    FileVenue, FileWindow, ScenarioFile,
};

/// What the caller measured of one creative's file.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub kind: MediaKind,
    pub width: u32,
    pub height: u32,
    /// Videos only.
    pub duration_ms: Option<u64>,
    pub sha256: Sha256,
    pub bytes: u64,
}

/// A validated scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub window: Flight,
    pub catalogue: Catalogue,
    /// Creative id to its file, relative to the scenario directory.
    pub files: BTreeMap<CreativeId, String>,
}

/// Parses scenario.json text. Checks syntax and the format tag only.
pub fn parse(json: &str) -> Result<ScenarioFile, ScenarioError> {
    let file: ScenarioFile = serde_json::from_str(json).map_err(|e| ScenarioError::Json {
        message: e.to_string(),
        line: e.line(),
        column: e.column(),
    })?;
    if file.format != FORMAT {
        return Err(ScenarioError::Format { found: file.format });
    }
    Ok(file)
}

pub fn parse_time(
    entity: &'static str,
    id: &str,
    field: &str,
    value: &str,
) -> Result<DateTime<Utc>, ScenarioError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            invalid(
                entity,
                id,
                field,
                format_args!("{value:?} is not an RFC 3339 time: {e}"),
            )
        })
}

fn parse_flight(
    entity: &'static str,
    id: &str,
    field: &str,
    w: &FileWindow,
) -> Result<Flight, ScenarioError> {
    let start = parse_time(entity, id, &format!("{field}.start"), &w.start)?;
    let end = parse_time(entity, id, &format!("{field}.end"), &w.end)?;
    Flight::new(start, end).ok_or_else(|| invalid(entity, id, field, "end is not after start"))
}

fn ids<T>(
    entity: &'static str,
    id: &str,
    field: &str,
    values: &[String],
    parse: impl Fn(&str) -> Result<T, crate::ids::IdError>,
) -> Result<Vec<T>, ScenarioError> {
    values
        .iter()
        .map(|v| parse(v).map_err(|e| invalid(entity, id, field, e)))
        .collect()
}

/// Validates a target; `known_*` catch references to things that do not exist.
pub fn build_target(
    entity: &'static str,
    id: &str,
    t: &FileTarget,
) -> Result<Target, ScenarioError> {
    fn nonempty<T>(
        entity: &'static str,
        id: &str,
        key: &str,
        v: Option<Vec<T>>,
    ) -> Result<Option<Vec<T>>, ScenarioError> {
        match v {
            Some(v) if v.is_empty() => Err(invalid(
                entity,
                id,
                format!("target.{key}"),
                "is empty: it would match nothing; leave the key out to match everything",
            )),
            v => Ok(v),
        }
    }
    let screens = t
        .screens
        .as_deref()
        .map(|v| ids(entity, id, "target.screens", v, ScreenId::parse))
        .transpose()?;
    let venues = t
        .venues
        .as_deref()
        .map(|v| ids(entity, id, "target.venues", v, VenueId::parse))
        .transpose()?;
    let venue_types = t
        .venue_types
        .as_deref()
        .map(|vs| {
            vs.iter()
                .map(|v| {
                    let text = match v {
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Number(n) => n.to_string(),
                        other => other.to_string(),
                    };
                    VenueType::parse(&text)
                        .map_err(|e| invalid(entity, id, "target.venue_types", e))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    Ok(Target {
        screens: nonempty(entity, id, "screens", screens)?,
        venues: nonempty(entity, id, "venues", venues)?,
        venue_types: nonempty(entity, id, "venue_types", venue_types)?,
        districts: nonempty(entity, id, "districts", t.districts.clone())?,
        tags: nonempty(entity, id, "tags", t.tags.clone())?,
    })
}

impl ScenarioFile {
    /// Every creative id with its file path, for the caller to measure.
    pub fn media_files(&self) -> Vec<(String, String)> {
        self.creatives
            .iter()
            .map(|c| (c.id.clone(), c.file.clone()))
            .collect()
    }

    /// Validates everything against the measurements. Nothing is partially accepted.
    pub fn build(
        &self,
        measured: &HashMap<String, Measurement>,
    ) -> Result<Scenario, ScenarioError> {
        let tz: Tz = self.timezone.parse().map_err(|_| {
            invalid(
                "scenario",
                &self.name,
                "timezone",
                format_args!("{:?} is not an IANA time zone", self.timezone),
            )
        })?;
        let window = parse_flight("scenario", &self.name, "window", &self.window)?;

        let mut venues = Vec::new();
        let mut seen = HashSet::new();
        for v in &self.venues {
            let tz = match &v.timezone {
                None => tz,
                Some(name) => name.parse().map_err(|_| {
                    invalid(
                        "venue",
                        &v.id,
                        "timezone",
                        format_args!("{name:?} is not an IANA time zone"),
                    )
                })?,
            };
            venues.push(build_venue(v, tz)?);
            if !seen.insert(v.id.clone()) {
                return Err(ScenarioError::Duplicate {
                    entity: "venue",
                    id: v.id.clone(),
                });
            }
        }

        let venue_ids: HashSet<&VenueId> = venues.iter().map(|v| &v.id).collect();
        let mut screens = Vec::new();
        let mut seen = HashSet::new();
        for s in &self.screens {
            let venue =
                VenueId::parse(&s.venue).map_err(|e| invalid("screen", &s.id, "venue", e))?;
            if !venue_ids.contains(&venue) {
                return Err(invalid(
                    "screen",
                    &s.id,
                    "venue",
                    format_args!("no venue {:?} in the scenario", s.venue),
                ));
            }
            if s.resolution.width == 0 || s.resolution.height == 0 {
                return Err(invalid(
                    "screen",
                    &s.id,
                    "resolution",
                    "width and height must be positive",
                ));
            }
            if !(1..=3_600).contains(&s.slot_seconds) {
                return Err(invalid(
                    "screen",
                    &s.id,
                    "slot_seconds",
                    format_args!("{} is not in 1..=3600", s.slot_seconds),
                ));
            }
            screens.push(Screen {
                id: ScreenId::parse(&s.id).map_err(|e| invalid("screen", &s.id, "id", e))?,
                venue,
                width: s.resolution.width,
                height: s.resolution.height,
                slot_seconds: s.slot_seconds,
            });
            if !seen.insert(s.id.clone()) {
                return Err(ScenarioError::Duplicate {
                    entity: "screen",
                    id: s.id.clone(),
                });
            }
        }

        let mut creatives = Vec::new();
        let mut files = BTreeMap::new();
        for c in &self.creatives {
            let creative = build_creative(c, measured)?;
            if files.insert(creative.id.clone(), c.file.clone()).is_some() {
                return Err(ScenarioError::Duplicate {
                    entity: "creative",
                    id: c.id.clone(),
                });
            }
            creatives.push(creative);
        }

        let by_id: HashMap<&VenueId, &Venue> = venues.iter().map(|v| (&v.id, v)).collect();
        let mut campaigns = Vec::new();
        for c in &self.campaigns {
            let campaign = build_campaign(c, &creatives)?;
            if campaign.priority != Priority::Emergency {
                check_reach(&campaign, &by_id, &screens, &creatives)?;
            }
            campaigns.push(campaign);
        }
        campaigns.extend(self.emergencies(&creatives)?);
        let mut seen = HashSet::new();
        for c in &campaigns {
            if !seen.insert(c.id.clone()) {
                return Err(ScenarioError::Duplicate {
                    entity: "campaign",
                    id: c.id.to_string(),
                });
            }
        }
        Ok(Scenario {
            name: self.name.clone(),
            window,
            catalogue: Catalogue {
                venues,
                screens,
                creatives,
                campaigns,
            },
            files,
        })
    }

    /// Emergency events become campaigns of tier `emergency`, weight 1, every daypart,
    /// from their start event to their end event.
    fn emergencies(&self, creatives: &[Creative]) -> Result<Vec<Campaign>, ScenarioError> {
        let mut out: Vec<Campaign> = Vec::new();
        let far = |t: DateTime<Utc>| t + chrono::Duration::days(36_500);
        for e in &self.events {
            let at = parse_time("event", &e.id, "at", &e.at)?;
            match e.action.as_str() {
                "emergency_start" => {
                    let file = FileCampaign {
                        id: e.id.clone(),
                        name: e.name.clone().unwrap_or_else(|| e.id.clone()),
                        priority: "emergency".into(),
                        weight: 1,
                        flight: FileWindow {
                            start: e.at.clone(),
                            end: far(at).to_rfc3339(),
                        },
                        dayparts: vec!["* * * * *".into()],
                        target: e.target.clone().unwrap_or_default(),
                        creatives: e.creatives.clone(),
                        max_plays_per_hour: None,
                    };
                    if out.iter().any(|c| c.id.as_str() == e.id) {
                        return Err(invalid(
                            "event",
                            &e.id,
                            "id",
                            "emergency_start appears twice",
                        ));
                    }
                    out.push(build_campaign(&file, creatives).map_err(|err| match err {
                        ScenarioError::Invalid { field, problem, .. } => {
                            invalid("event", &e.id, field, problem)
                        }
                        other => other,
                    })?);
                }
                "emergency_end" => {
                    let Some(c) = out.iter_mut().find(|c| c.id.as_str() == e.id) else {
                        return Err(invalid(
                            "event",
                            &e.id,
                            "id",
                            "emergency_end without an earlier emergency_start",
                        ));
                    };
                    c.flight = Flight::new(c.flight.start(), at).ok_or_else(|| {
                        invalid("event", &e.id, "at", "emergency ends before it starts")
                    })?;
                }
                other => {
                    return Err(invalid(
                        "event",
                        &e.id,
                        "action",
                        format_args!("{other:?} is not emergency_start or emergency_end"),
                    ))
                }
            }
        }
        Ok(out)
    }
}

fn build_venue(v: &FileVenue, tz: Tz) -> Result<Venue, ScenarioError> {
    let id = VenueId::parse(&v.id).map_err(|e| invalid("venue", &v.id, "id", e))?;
    let venue_type =
        VenueType::parse(&v.venue_type).map_err(|e| invalid("venue", &v.id, "type", e))?;
    if let Some(n) = v.openooh_id {
        let by_id = VenueType::from_id(n).map_err(|e| invalid("venue", &v.id, "openooh_id", e))?;
        if by_id != venue_type {
            return Err(invalid(
                "venue",
                &v.id,
                "openooh_id",
                format_args!("{n} is {by_id}, but type says {venue_type}"),
            ));
        }
    }
    let operating_hours = CronExpr::parse(&v.operating_hours)
        .map_err(|e| invalid("venue", &v.id, "operating_hours", e))?;
    Ok(Venue {
        id,
        name: v.name.clone(),
        venue_type,
        district: v.district.clone(),
        tags: v.tags.clone(),
        timezone: tz,
        operating_hours,
    })
}

fn build_creative(
    c: &FileCreative,
    measured: &HashMap<String, Measurement>,
) -> Result<Creative, ScenarioError> {
    let id = CreativeId::parse(&c.id).map_err(|e| invalid("creative", &c.id, "id", e))?;
    let kind = MediaKind::parse(&c.kind).ok_or_else(|| {
        invalid(
            "creative",
            &c.id,
            "kind",
            format_args!("{:?} is not image or video", c.kind),
        )
    })?;
    let sha256 = Sha256::parse(&c.sha256).map_err(|e| invalid("creative", &c.id, "sha256", e))?;
    let m = measured
        .get(&c.id)
        .ok_or_else(|| invalid("creative", &c.id, "file", "was not measured"))?;
    if m.sha256 != sha256 {
        return Err(invalid(
            "creative",
            &c.id,
            "sha256",
            format_args!(
                "file {} has sha256 {}, the scenario says {}",
                c.file, m.sha256, sha256
            ),
        ));
    }
    if m.bytes != c.bytes {
        return Err(invalid(
            "creative",
            &c.id,
            "bytes",
            format_args!(
                "file {} has {} bytes, the scenario says {}",
                c.file, m.bytes, c.bytes
            ),
        ));
    }
    if m.kind != kind {
        return Err(invalid(
            "creative",
            &c.id,
            "kind",
            format_args!(
                "file {} is {}, the scenario says {}",
                c.file,
                m.kind.as_str(),
                kind.as_str()
            ),
        ));
    }
    if c.duration_seconds == 0 {
        return Err(invalid(
            "creative",
            &c.id,
            "duration_seconds",
            "must be at least 1",
        ));
    }
    if let Some(ms) = m.duration_ms {
        let measured_s = (ms + 500) / 1_000;
        if measured_s.abs_diff(u64::from(c.duration_seconds)) > 1 {
            return Err(invalid(
                "creative",
                &c.id,
                "duration_seconds",
                format_args!(
                    "the video lasts {ms} ms, the scenario says {} s",
                    c.duration_seconds
                ),
            ));
        }
    }
    let fit = Fit::parse(c.fit.as_deref(), c.background.as_deref())
        .map_err(|(field, problem)| invalid("creative", &c.id, field, problem))?;
    Ok(Creative {
        id,
        kind,
        sha256,
        bytes: c.bytes,
        width: m.width,
        height: m.height,
        duration_seconds: c.duration_seconds,
        title: c.title.clone(),
        fit,
        any_aspect: c.any_aspect,
    })
}
