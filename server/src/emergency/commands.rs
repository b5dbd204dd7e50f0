//! The signed commands that announce a start or an end to each targeted screen: one per
//! screen, built from that screen's schedule body, so a command carries exactly the
//! campaign and creatives (renditions included) its schedule will.

use std::collections::BTreeMap;

use chrono::Utc;

use playlists::catalogue::CatalogueIndex;
use playlists::wire::schedule::ScheduleBody;
use playlists::wire::status::COMMAND_KIND;
use playlists::wire::{Command, CommandAction, Keypair, MAX_SMALL_BYTES, VERSION};
use playlists::{Catalogue, ScreenId};

use super::{EmergencyError, COMMAND_TTL};
use crate::renditions::RenditionMap;
use crate::store::StoredEmergency;

/// The start command for each screen the emergency (in `snapshot`) targets.
pub(super) fn start_commands(
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

/// The end command for each screen the (ended) emergency in `snapshot` targeted.
pub(super) fn end_commands(
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
