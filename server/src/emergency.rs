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

use playlists::catalogue::CatalogueIndex;
use playlists::wire::schedule::ScheduleBody;
use playlists::wire::status::COMMAND_KIND;
use playlists::wire::{Command, CommandAction, Keypair, MAX_SMALL_BYTES, VERSION};
use playlists::{CampaignId, Catalogue, ScreenId};

use crate::catalogue::{CatalogueError, CatalogueService};
use crate::renditions::RenditionMap;
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

/// The start command for each screen the emergency (in `snapshot`) targets.
fn start_commands(
    key: &Keypair,
    snapshot: &crate::store::Snapshot,
    emergency: &StoredEmergency,
    renditions: Option<(&crate::renditions::Renditions, &dyn crate::store::Store)>,
) -> Result<BTreeMap<String, Vec<u8>>, EmergencyError> {
    let with =
        crate::catalogue::build(snapshot).map_err(|e| EmergencyError::Invalid(e.to_string()))?;
    let targeted = targeted_screens(&with, emergency)?;
    let map = match renditions {
        Some((r, store)) => {
            let screens = targeted.iter().map(|s| s.to_string()).collect();
            r.known(store, &with, &screens).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "renditions unreadable: commands name the originals");
                RenditionMap::default()
            })
        }
        None => RenditionMap::default(),
    };
    sealed_commands(key, &with, &targeted, &emergency.id, &map, |body| {
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

/// The end command for each screen the (ended) emergency in `snapshot` targeted.
fn end_commands(
    key: &Keypair,
    snapshot: &crate::store::Snapshot,
    emergency: &StoredEmergency,
) -> Result<BTreeMap<String, Vec<u8>>, EmergencyError> {
    let with =
        crate::catalogue::build(snapshot).map_err(|e| EmergencyError::Invalid(e.to_string()))?;
    let targeted = targeted_screens(&with, emergency)?;
    let none = RenditionMap::default();
    sealed_commands(key, &with, &targeted, &emergency.id, &none, |_| {
        Some(CommandAction::EmergencyEnd {
            campaign_id: emergency.id.clone(),
            ends_at: emergency.end,
        })
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
    let index = CatalogueIndex::new(catalogue);
    let targeted: Vec<_> = catalogue
        .screens
        .iter()
        .filter(|s| {
            index
                .venue(s.venue.as_str())
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
    key: &Keypair,
    catalogue: &Catalogue,
    screens: &[ScreenId],
    id: &str,
    renditions: &RenditionMap,
    action: impl Fn(&ScheduleBody) -> Option<CommandAction>,
) -> Result<BTreeMap<String, Vec<u8>>, EmergencyError> {
    let issued_at = Utc::now();
    let index = CatalogueIndex::new(catalogue);
    let mut out = BTreeMap::new();
    for screen in screens {
        let Some(schedule) = index.schedule_for(screen.as_str()) else {
            continue;
        };
        let body =
            ScheduleBody::from_schedule_with(&schedule, |c| renditions.wire(c, &schedule.screen));
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
        let bytes = key.seal(COMMAND_KIND, &cmd);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Two-person confirmation: the starter cannot confirm; a second operator can, within
    /// the window only; until then nothing plays and nothing is announced.
    #[test]
    fn a_second_operator_confirms_in_time_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(dir.path(), crate::store::OpenMode::Create).unwrap();
        let catalogue = CatalogueService::new(store);
        let scenario = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scenarios/beijing-role-models");
        crate::import::import(
            &catalogue,
            &scenario,
            &crate::import::ImportOptions::admin(),
        )
        .unwrap();
        let key = Keypair::from_secret([1; 32]);
        let t0: DateTime<Utc> = "2026-11-29T12:00:00Z".parse().unwrap();
        let minutes = TimeDelta::minutes;
        let r = |who: &'static str, now| Request {
            catalogue: &catalogue,
            key: &key,
            author: who,
            now,
            confirm_within: Some(minutes(10)),
            renditions: None,
        };
        let req = |id: &str| StartRequest {
            id: id.into(),
            name: "drill".into(),
            creatives: vec!["alert-epidemic-l".into()],
            target: serde_json::json!({ "districts": ["xicheng"] }),
            until: None,
        };
        let plays = |id: &str| {
            catalogue
                .catalogue()
                .unwrap()
                .campaigns
                .iter()
                .any(|c| c.id.as_str() == id)
        };

        let a = start(r("olga", t0), req("drill-1")).unwrap();
        assert!(a.commands.is_empty() && a.affected.is_empty(), "{a:?}");
        assert_eq!(
            a.emergency.pending.as_ref().unwrap().confirm_by,
            t0 + minutes(10)
        );
        assert!(!plays("drill-1"));
        let own = confirm(r("olga", t0 + minutes(1)), "drill-1").unwrap_err();
        assert_eq!(
            own.to_string(),
            "olga started emergency \"drill-1\" and cannot confirm it: a second operator must"
        );
        let c = confirm(r("otto", t0 + minutes(5)), "drill-1").unwrap();
        assert!(!c.commands.is_empty() && !c.affected.is_empty());
        assert_eq!(c.emergency.start, t0 + minutes(5));
        assert!(c.emergency.pending.is_none());
        assert!(plays("drill-1"));
        assert!(matches!(
            confirm(r("otto", t0 + minutes(6)), "drill-1"),
            Err(EmergencyError::NotPending(_))
        ));

        start(r("olga", t0), req("drill-2")).unwrap();
        let late = confirm(r("otto", t0 + minutes(11)), "drill-2").unwrap_err();
        assert!(
            matches!(late, EmergencyError::ConfirmExpired { .. }),
            "{late}"
        );
        assert!(!plays("drill-2"));
        let ended = end(r("olga", t0 + minutes(12)), "drill-2").unwrap();
        assert!(ended.commands.is_empty() && ended.affected.is_empty());
        assert!(ended.emergency.ended);
    }

    /// What a replica that did not make a change announces for it: a start (or a
    /// confirmation) the start commands while it runs, an end the end commands, a pending
    /// start nothing.
    #[test]
    fn another_replicas_changes_announce_as_their_own_would() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(dir.path(), crate::store::OpenMode::Create).unwrap();
        let catalogue = CatalogueService::new(store);
        let scenario = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scenarios/beijing-role-models");
        let admin = crate::import::ImportOptions::admin();
        crate::import::import(&catalogue, &scenario, &admin).unwrap();
        let key = Keypair::from_secret([1; 32]);
        let t0: DateTime<Utc> = "2026-11-29T12:00:00Z".parse().unwrap();
        let r = |now, confirm_within| Request {
            catalogue: &catalogue,
            key: &key,
            author: "olga",
            now,
            confirm_within,
            renditions: None,
        };
        let req = |id: &str| StartRequest {
            id: id.into(),
            name: "drill".into(),
            creatives: vec!["alert-epidemic-l".into()],
            target: serde_json::json!({ "districts": ["xicheng"] }),
            until: None,
        };
        let told = |before: Option<&StoredEmergency>, after: &StoredEmergency, now| {
            let (snapshot, _) = catalogue.current().unwrap();
            announced(&key, &snapshot, before, after, now, None).unwrap()
        };

        let started = start(r(t0, None), req("drill-1")).unwrap();
        let (commands, at) = told(None, &started.emergency, t0).expect("a start is announced");
        let screens: Vec<_> = commands.iter().map(|(s, _)| s.clone()).collect();
        let theirs: Vec<_> = started.commands.iter().map(|(s, _)| s.clone()).collect();
        assert_eq!(screens, theirs);
        assert_eq!(at, started.emergency.start);

        let later = t0 + TimeDelta::minutes(1);
        let ended = end(r(later, None), "drill-1").unwrap();
        let (commands, at) =
            told(Some(&started.emergency), &ended.emergency, later).expect("an end is announced");
        assert_eq!(commands.len(), ended.commands.len());
        assert_eq!(at, ended.emergency.end);
        assert!(
            told(None, &started.emergency, later).is_none(),
            "an ended emergency's start is not sent again"
        );

        let pending = start(r(t0, Some(TimeDelta::minutes(10))), req("drill-2")).unwrap();
        assert!(told(None, &pending.emergency, t0).is_none());
    }

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
