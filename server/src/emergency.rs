//! Emergency takeovers triggered and ended by staff. An emergency is stored as a campaign of
//! tier `emergency` (see `store::StoredEmergency`), so the plan, reports and every
//! schedule republished afterwards include it. Its flight starts when the server accepts
//! the request (the planner makes it eligible from each screen's next slot boundary) and
//! ends at `until`, or when ended. On a start or end the server also sends each targeted
//! screen a signed command, so agents act at their next slot without waiting for the
//! schedule; both reach the agent's same planner.
//!
//! Every check runs before anything is stored: a refused request changes nothing.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use rumqttc::QoS;
use serde::{Deserialize, Serialize};

use playlists::wire::schedule::ScheduleBody;
use playlists::wire::status::COMMAND_KIND;
use playlists::wire::{Command, CommandAction, MAX_SMALL_BYTES, VERSION};
use playlists::{CampaignId, Catalogue, ScreenId};

use crate::app::Shared;
use crate::store::{StoreError, StoredEmergency};

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
    Store(#[from] StoreError),
}

/// `POST /api/emergencies`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    pub id: String,
    pub name: String,
    pub creatives: Vec<String>,
    /// Scenario targeting keys; `{}` (or left out) is every screen.
    #[serde(default = "everything")]
    pub target: serde_json::Value,
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
}

fn everything() -> serde_json::Value {
    serde_json::json!({})
}

/// What a start or end did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub emergency: StoredEmergency,
    /// Screens sent a command.
    pub screens: Vec<String>,
    /// Screens whose schedule was republished with a new version.
    pub schedules_changed: usize,
}

/// One row of `GET /api/emergencies`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Listed {
    #[serde(flatten)]
    pub emergency: StoredEmergency,
    pub active: bool,
}

/// Every emergency, with whether it is active at the server's `now`.
pub fn list(shared: &Shared) -> Result<Vec<Listed>, EmergencyError> {
    let now = whole_second(shared.clock.now());
    Ok(shared
        .store
        .emergencies()?
        .into_iter()
        .map(|e| Listed {
            active: !e.ended && e.start <= now && now < e.end,
            emergency: e,
        })
        .collect())
}

/// Checks, stores and announces a new emergency.
pub async fn start(shared: &Shared, req: StartRequest) -> Result<Outcome, EmergencyError> {
    let _one_at_a_time = shared.emergencies.lock().await;
    let now = whole_second(shared.clock.now());
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
    let mut stored = shared.store.emergencies()?;
    let catalogue = shared.store.catalogue()?;
    if stored.iter().any(|e| e.id == req.id)
        || catalogue.campaigns.iter().any(|c| c.id.as_str() == req.id)
    {
        return Err(EmergencyError::Duplicate(req.id));
    }
    if let Some(c) = req.creatives.iter().find(|c| {
        !catalogue
            .creatives
            .iter()
            .any(|k| k.id.as_str() == c.as_str())
    }) {
        return Err(EmergencyError::UnknownCreative(c.clone()));
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
    };
    stored.push(emergency.clone());
    let with = shared
        .store
        .catalogue_with(&stored)?
        .map_err(EmergencyError::Invalid)?;
    let targeted = targeted_screens(&with, &emergency)?;
    let commands = sealed_commands(shared, &with, &targeted, &emergency.id, |body| {
        let campaign = body
            .campaigns
            .iter()
            .find(|c| c.id == emergency.id)?
            .clone();
        let creatives = body
            .creatives
            .iter()
            .filter(|k| campaign.creatives.contains(&k.id))
            .cloned()
            .collect();
        Some(CommandAction::EmergencyStart {
            campaign: Box::new(campaign),
            creatives,
        })
    })?;
    shared.store.put_emergency(&emergency)?;
    tracing::warn!(id = %emergency.id, screens = commands.len(), "emergency takeover started");
    announce(shared, emergency, commands).await
}

/// Ends an active emergency now.
pub async fn end(shared: &Shared, id: &str) -> Result<Outcome, EmergencyError> {
    let _one_at_a_time = shared.emergencies.lock().await;
    let now = whole_second(shared.clock.now());
    let mut stored = shared.store.emergencies()?;
    let Some(e) = stored.iter_mut().find(|e| e.id == id) else {
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
    let with = shared
        .store
        .catalogue_with(&stored)?
        .map_err(EmergencyError::Invalid)?;
    let targeted = targeted_screens(&with, &emergency)?;
    let commands = sealed_commands(shared, &with, &targeted, &emergency.id, |_| {
        Some(CommandAction::EmergencyEnd {
            campaign_id: emergency.id.clone(),
            ends_at: emergency.end,
        })
    })?;
    shared.store.put_emergency(&emergency)?;
    tracing::warn!(id = %emergency.id, at = %emergency.end, "emergency takeover ended");
    announce(shared, emergency, commands).await
}

/// The screens the emergency targets on which at least one of its creatives fits; refuses
/// an emergency that targets nothing or names a creative that fits no targeted screen.
fn targeted_screens(
    catalogue: &Catalogue,
    e: &StoredEmergency,
) -> Result<Vec<ScreenId>, EmergencyError> {
    let campaign = catalogue
        .campaigns
        .iter()
        .find(|c| c.id.as_str() == e.id)
        .ok_or_else(|| EmergencyError::Invalid(format!("emergency {:?} did not build", e.id)))?;
    let targeted: Vec<_> = catalogue
        .screens
        .iter()
        .filter(|s| {
            catalogue
                .venue(&s.venue)
                .is_some_and(|v| campaign.target.matches(s, v))
        })
        .collect();
    if targeted.is_empty() {
        return Err(EmergencyError::NoScreens(e.id.clone()));
    }
    let creatives: Vec<_> = catalogue
        .creatives
        .iter()
        .filter(|k| campaign.creatives.contains(&k.id))
        .collect();
    for k in &creatives {
        if !targeted.iter().any(|s| k.fits(s)) {
            return Err(EmergencyError::FitsNoScreen {
                creative: k.id.to_string(),
                screens: targeted.len(),
            });
        }
    }
    Ok(targeted
        .into_iter()
        .filter(|s| creatives.iter().any(|k| k.fits(s)))
        .map(|s| s.id.clone())
        .collect())
}

/// One signed command per screen, built from that screen's schedule body (so the command
/// carries exactly the campaign and creatives its schedule will), each within the limit.
fn sealed_commands(
    shared: &Shared,
    catalogue: &Catalogue,
    screens: &[ScreenId],
    id: &str,
    action: impl Fn(&ScheduleBody) -> Option<CommandAction>,
) -> Result<BTreeMap<String, Vec<u8>>, EmergencyError> {
    let issued_at = Utc::now();
    let mut out = BTreeMap::new();
    for screen in screens {
        let Some(schedule) = catalogue.schedule_for(screen) else {
            continue;
        };
        let body = ScheduleBody::from_schedule(&schedule);
        let Some(action) = action(&body) else {
            continue;
        };
        let cmd = Command {
            v: VERSION,
            screen_id: screen.to_string(),
            id: nonce(id)?,
            issued_at,
            expires_at: issued_at + COMMAND_TTL,
            action,
        };
        let bytes = shared.key.seal(COMMAND_KIND, &cmd);
        if bytes.len() > MAX_SMALL_BYTES {
            return Err(EmergencyError::TooLarge {
                screen: screen.to_string(),
                bytes: bytes.len(),
                max: MAX_SMALL_BYTES,
            });
        }
        out.insert(screen.to_string(), bytes);
    }
    Ok(out)
}

/// A command id never used before: the emergency's id and 16 random bytes.
fn nonce(id: &str) -> Result<String, EmergencyError> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| EmergencyError::Invalid(format!("no randomness for a nonce: {e}")))?;
    Ok(format!("{id}-{}", hex::encode(bytes)))
}

/// Publishes the commands (QoS 1, not retained) and the changed schedules. The change is
/// stored already; a publishing failure is logged (agents get the schedule on reconnect).
async fn announce(
    shared: &Shared,
    emergency: StoredEmergency,
    commands: BTreeMap<String, Vec<u8>>,
) -> Result<Outcome, EmergencyError> {
    let mut screens = Vec::new();
    for (screen, bytes) in commands {
        match shared
            .client
            .publish(
                shared.topics.command(&screen),
                QoS::AtLeastOnce,
                false,
                bytes,
            )
            .await
        {
            Ok(()) => screens.push(screen),
            Err(e) => tracing::warn!(screen, error = %e, "emergency command not queued"),
        }
    }
    let schedules_changed = match crate::app::publish_schedules(shared, &shared.client, false).await
    {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(error = %e, "republishing schedules after an emergency failed");
            0
        }
    };
    Ok(Outcome {
        emergency,
        screens,
        schedules_changed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flights_start_and_end_on_whole_seconds() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(
            whole_second(t("2026-11-22T07:58:34.492270405Z")),
            t("2026-11-22T07:58:35Z")
        );
        assert_eq!(
            whole_second(t("2026-11-22T07:58:34Z")),
            t("2026-11-22T07:58:34Z")
        );
    }
}
