//! Emergency takeovers triggered and ended by staff. An emergency is stored as a campaign of
//! tier `emergency` (see `store::StoredEmergency`), so the plan, reports and every
//! schedule republished afterwards include it. Its flight starts when the server accepts
//! the request (the planner makes it eligible from each screen's next slot boundary) and
//! ends at `until`, or when ended. On a start or end the server also sends each targeted
//! screen a signed command, so agents act at their next slot without waiting for the
//! schedule; both reach the agent's same planner.
//!
//! With `emergency_confirm = "two-person"` a started emergency is stored `pending`: it plays
//! nowhere and nothing is announced until a second, different operator confirms it within
//! the set time; its flight starts at the confirmation.
//!
//! Every check runs before anything is stored: a refused request changes nothing. The
//! service returns what to send; the publisher sends it (no MQTT here).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use playlists::wire::Keypair;
use playlists::CampaignId;

mod commands;
use commands::{end_commands, start_commands};

use crate::catalogue::{CatalogueError, CatalogueService};
use crate::store::{Entity, PendingConfirmation, StoreError, StoredEmergency};

/// How long a start or end command is valid for: enough for a reconnecting agent to get
/// it, short enough that a replayed copy is refused.
pub const COMMAND_TTL: TimeDelta = TimeDelta::minutes(5);

/// An emergency without `until` runs until it is ended; its stored end is this far ahead.
pub const OPEN_END: TimeDelta = TimeDelta::days(36_500);

/// `t` rounded up to a whole second. Slot boundaries are whole seconds, so a flight that
/// starts or ends here takes the same slots as one at `t`, and the times read cleanly.
fn whole_second(t: DateTime<Utc>) -> DateTime<Utc> {
    let floor = DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t);
    if floor == t {
        t
    } else {
        floor + TimeDelta::seconds(1)
    }
}

/// Why a request changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum EmergencyError {
    #[error("{0}")]
    Invalid(String),
    #[error("id {0:?} is already used by a campaign or an emergency")]
    Duplicate(String),
    #[error("no emergency {0:?}")]
    Unknown(String),
    #[error("emergency {id:?} already ended at {at}")]
    AlreadyEnded { id: String, at: DateTime<Utc> },
    #[error("{who} started emergency {id:?} and cannot confirm it: a second operator must")]
    OwnStart { id: String, who: String },
    #[error("emergency {0:?} is not waiting for confirmation")]
    NotPending(String),
    #[error("emergency {id:?} could be confirmed until {at}, no longer: start it again")]
    ConfirmExpired { id: String, at: DateTime<Utc> },
    #[error("creative {0:?} is not in the catalogue")]
    UnknownCreative(String),
    #[error("emergency {0:?} targets no screen")]
    NoScreens(String),
    #[error("creative {creative:?} fits none of the {screens} targeted screens")]
    FitsNoScreen { creative: String, screens: usize },
    #[error("until {until} is not after now ({now})")]
    UntilPassed {
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    #[error("the command for {screen} would be {bytes} bytes, over the {max}-byte limit: name fewer creatives")]
    TooLarge {
        screen: String,
        bytes: usize,
        max: usize,
    },
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `POST /api/v1/emergencies`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    pub id: String,
    pub name: String,
    pub creatives: Vec<String>,
    /// Scenario targeting keys; `{}` (or left out) is every screen.
    #[serde(default = "everything")]
    #[schema(value_type = playlists::scenario::FileTarget)]
    pub target: serde_json::Value,
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
}

fn everything() -> serde_json::Value {
    serde_json::json!({})
}

/// What a start or end changed: the stored emergency, the signed command for each targeted
/// screen (to send before the schedules), and the screens whose schedule may change.
#[derive(Debug, Clone)]
pub struct Announcement {
    pub emergency: StoredEmergency,
    pub commands: Vec<(String, Vec<u8>)>,
    pub affected: BTreeSet<String>,
}

/// What a start or end did, as the API answers it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Outcome {
    pub emergency: StoredEmergency,
    /// Screens sent a command.
    pub screens: Vec<String>,
    /// Screens whose schedule was republished with a new version; `null` when another
    /// replica publishes (it sends the commands and schedules within about a second).
    pub schedules_changed: Option<usize>,
}

/// One row of `GET /api/v1/emergencies`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Listed {
    #[serde(flatten)]
    pub emergency: StoredEmergency,
    pub active: bool,
}

/// Every emergency, with whether it is active at `now` (the scheduling clock).
pub fn list(
    catalogue: &CatalogueService,
    now: DateTime<Utc>,
) -> Result<Vec<Listed>, EmergencyError> {
    let now = whole_second(now);
    let (snapshot, _) = catalogue.current()?;
    Ok(snapshot
        .emergencies
        .values()
        .cloned()
        .map(|e| Listed {
            active: e.pending.is_none() && !e.ended && e.start <= now && now < e.end,
            emergency: e,
        })
        .collect())
}

/// Who asks, and when (the scheduling clock), for a start or an end.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub catalogue: &'a CatalogueService,
    pub key: &'a Keypair,
    pub author: &'a str,
    pub now: DateTime<Utc>,
    /// How long a second operator has to confirm a start; `None`: no confirmation.
    pub confirm_within: Option<TimeDelta>,
    /// Where the renditions already made are found, so commands name each screen's as its
    /// documents do; `None`: commands name the originals.
    pub renditions: Option<(
        &'a crate::renditions::Renditions,
        &'a dyn crate::store::Store,
    )>,
}

/// Checks and stores a new emergency; returns the commands to send.
pub fn start(r: Request<'_>, req: StartRequest) -> Result<Announcement, EmergencyError> {
    let now = whole_second(r.now);
    CampaignId::parse(&req.id).map_err(|e| EmergencyError::Invalid(format!("id: {e}")))?;
    if req.name.trim().is_empty() {
        return Err(EmergencyError::Invalid("name is empty".into()));
    }
    if req.creatives.is_empty() {
        return Err(EmergencyError::Invalid("creatives is empty".into()));
    }
    if !req.target.is_object() {
        return Err(EmergencyError::Invalid(
            "target must be an object of scenario targeting keys".into(),
        ));
    }
    if let Some(until) = req.until.filter(|u| *u <= now) {
        return Err(EmergencyError::UntilPassed { until, now });
    }
    let emergency = StoredEmergency {
        id: req.id.clone(),
        name: req.name,
        creatives: req.creatives,
        target: req.target,
        start: now,
        end: req.until.unwrap_or(now + OPEN_END),
        ended: false,
        pending: r.confirm_within.map(|within| PendingConfirmation {
            started_by: r.author.to_owned(),
            started_at: now,
            confirm_by: now + within,
        }),
    };
    let mut commands = BTreeMap::new();
    let comment = if emergency.pending.is_some() {
        format!(
            "emergency {} started, waiting for a second operator",
            emergency.id
        )
    } else {
        format!("emergency {} started", emergency.id)
    };
    let applied = r.catalogue.change(r.author, &comment, r.now, |snapshot| {
        if snapshot.emergencies.contains_key(&req.id) || snapshot.campaigns.contains_key(&req.id) {
            return Err(EmergencyError::Duplicate(req.id.clone()));
        }
        if let Some(c) = emergency.creatives.iter().find(|c| {
            snapshot
                .creatives
                .get(c.as_str())
                .is_none_or(|k| k.retired_at.is_some())
        }) {
            return Err(EmergencyError::UnknownCreative(c.clone()));
        }
        // Checked as it will play, pending or not.
        let mut playing = snapshot.clone();
        playing.put(Entity::Emergency(StoredEmergency {
            pending: None,
            ..emergency.clone()
        }));
        let signed = start_commands(r.key, &playing, &emergency, r.renditions)?;
        snapshot.put(Entity::Emergency(emergency.clone()));
        if emergency.pending.is_none() {
            commands = signed;
        }
        Ok(())
    })?;
    tracing::warn!(id = %emergency.id, screens = commands.len(), pending = emergency.pending.is_some(),
        "emergency takeover started");
    Ok(Announcement {
        emergency,
        commands: commands.into_iter().collect(),
        affected: applied.affected,
    })
}

/// A second operator confirms a pending emergency: it starts now (its flight begins at
/// the confirmation) and is announced; returns the commands to send.
pub fn confirm(r: Request<'_>, id: &str) -> Result<Announcement, EmergencyError> {
    let now = whole_second(r.now);
    let mut commands = BTreeMap::new();
    let mut confirmed = None;
    let comment = format!("emergency {id} confirmed");
    let applied = r.catalogue.change(r.author, &comment, r.now, |snapshot| {
        let Some(e) = snapshot.emergencies.get(id).cloned() else {
            return Err(EmergencyError::Unknown(id.to_owned()));
        };
        let Some(pending) = e.pending.clone().filter(|_| !e.ended) else {
            return Err(EmergencyError::NotPending(id.to_owned()));
        };
        if pending.started_by == r.author {
            return Err(EmergencyError::OwnStart {
                id: id.to_owned(),
                who: r.author.to_owned(),
            });
        }
        if now > pending.confirm_by {
            return Err(EmergencyError::ConfirmExpired {
                id: id.to_owned(),
                at: pending.confirm_by,
            });
        }
        if e.end <= now {
            return Err(EmergencyError::UntilPassed { until: e.end, now });
        }
        let emergency = StoredEmergency {
            start: now,
            pending: None,
            ..e
        };
        snapshot.put(Entity::Emergency(emergency.clone()));
        commands = start_commands(r.key, snapshot, &emergency, r.renditions)?;
        confirmed = Some(emergency);
        Ok(())
    })?;
    let emergency = confirmed.ok_or_else(|| EmergencyError::Unknown(id.to_owned()))?;
    tracing::warn!(id = %emergency.id, screens = commands.len(), "emergency takeover confirmed");
    Ok(Announcement {
        emergency,
        commands: commands.into_iter().collect(),
        affected: applied.affected,
    })
}

/// Ends an active emergency now; returns the commands to send.
pub fn end(r: Request<'_>, id: &str) -> Result<Announcement, EmergencyError> {
    let now = whole_second(r.now);
    let mut commands = BTreeMap::new();
    let mut ended = None;
    let comment = format!("emergency {id} ended");
    let applied = r.catalogue.change(r.author, &comment, r.now, |snapshot| {
        let Some(e) = snapshot.emergencies.get_mut(id) else {
            return Err(EmergencyError::Unknown(id.to_owned()));
        };
        if e.ended || e.end <= now {
            return Err(EmergencyError::AlreadyEnded {
                id: id.to_owned(),
                at: e.end,
            });
        }
        // Ended before it began (a clock step back): it never plays.
        e.end = now.max(e.start + TimeDelta::seconds(1));
        e.ended = true;
        let emergency = e.clone();
        if emergency.pending.is_some() {
            // Never confirmed: it never played, so there is nothing to announce.
            ended = Some(emergency);
            return Ok(());
        }
        commands = end_commands(r.key, snapshot, &emergency)?;
        ended = Some(emergency);
        Ok(())
    })?;
    let emergency = ended.ok_or_else(|| EmergencyError::Unknown(id.to_owned()))?;
    tracing::warn!(id = %emergency.id, at = %emergency.end, "emergency takeover ended");
    Ok(Announcement {
        emergency,
        commands: commands.into_iter().collect(),
        affected: applied.affected,
    })
}

/// What a change of an emergency from `before` to `after` (as the change log records it)
/// announces, for a replica that did not make it: a start or confirmation sends the start
/// commands while the emergency (as `snapshot`, the current catalogue, has it) still runs
/// at `now`; an end sends the end commands. Returns the commands and when the change takes
/// effect; `None` for a change that announces nothing (a pending start, an edit).
#[allow(
    clippy::type_complexity,
    reason = "the commands and their effective time"
)]
pub fn announced(
    key: &Keypair,
    snapshot: &crate::store::Snapshot,
    before: Option<&StoredEmergency>,
    after: &StoredEmergency,
    now: DateTime<Utc>,
    renditions: Option<(&crate::renditions::Renditions, &dyn crate::store::Store)>,
) -> Result<Option<(Vec<(String, Vec<u8>)>, DateTime<Utc>)>, EmergencyError> {
    let playing = |e: &StoredEmergency| e.pending.is_none() && !e.ended;
    let started = playing(after) && before.is_none_or(|b| b.pending.is_some());
    let ended = after.ended && before.is_some_and(playing);
    if started {
        let Some(current) = snapshot
            .emergencies
            .get(&after.id)
            .filter(|e| playing(e) && e.end > now)
        else {
            return Ok(None);
        };
        let commands = start_commands(key, snapshot, current, renditions)?;
        Ok(Some((commands.into_iter().collect(), after.start)))
    } else if ended {
        let commands = end_commands(key, snapshot, after)?;
        Ok(Some((commands.into_iter().collect(), after.end)))
    } else {
        Ok(None)
    }
}

#[cfg(test)]
mod tests;
