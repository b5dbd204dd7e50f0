//! Emergency takeovers by command, before the schedule that carries them arrives. An
//! `emergency_start` command brings a campaign (tier `emergency`) and its creatives; an
//! `emergency_end` command an end time. Both become [`Overlays`], persisted in the outbox's
//! state table (they survive SIGKILL) and merged into the held schedule's document, so the
//! shared planner plays the emergency from the first slot starting at or after its flight
//! start, and media fetching, eviction, readiness and runway see it without special cases.
//!
//! An overlay is dropped once the signed schedule carries what it says (the server's
//! document names the campaign, or ends it by the overlay's end), or two days after its
//! flight ended (by then no local day that it touched is still being planned). Which
//! commands are genuine is `accept.rs`'s; the nonce check is the main loop's.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use playlists::wire::schedule::{WireCampaign, WireCreative};
use playlists::wire::{ScheduleDoc, WireError};
use playlists::Priority;
use serde::{Deserialize, Serialize};

use crate::accept::Reject;
use crate::main_loop::MainLoop;
use crate::outbox::{Outbox, OutboxError};
use crate::schedule::HeldSchedule;

/// How long after its flight ended an overlay is still kept.
pub const KEEP_ENDED: chrono::TimeDelta = chrono::TimeDelta::days(2);

/// Why an emergency command changes nothing.
#[derive(Debug, thiserror::Error)]
pub enum EmergencyError {
    #[error("campaign {id:?} has priority {priority:?}; an emergency command must carry priority \"emergency\"")]
    NotEmergency { id: String, priority: String },
    #[error("emergency {id:?}: {source}")]
    Invalid { id: String, source: WireError },
    #[error("emergency {id:?} names creative {creative:?} but does not carry it")]
    MissingCreative { id: String, creative: String },
    #[error("emergency {id:?} carries no creative")]
    NoCreatives { id: String },
    #[error("stored emergency overlays: {0}")]
    Store(#[from] OutboxError),
    #[error("stored emergency overlays are corrupt: {0}")]
    Corrupt(String),
    #[error("emergency overlay task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// An emergency started by command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Started {
    pub campaign: WireCampaign,
    pub creatives: Vec<WireCreative>,
}

/// Every active overlay: what the held schedule does not say yet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Overlays {
    /// Emergencies started by command, by campaign id.
    pub started: BTreeMap<String, Started>,
    /// Ends by command: campaign id to the time from which it no longer plays.
    pub ended: BTreeMap<String, DateTime<Utc>>,
}

impl Overlays {
    /// Adds (or replaces) an emergency after checking that it is one and is complete.
    pub fn start(
        &mut self,
        campaign: WireCampaign,
        creatives: Vec<WireCreative>,
    ) -> Result<(), EmergencyError> {
        let id = campaign.id.clone();
        let invalid = |source| EmergencyError::Invalid {
            id: id.clone(),
            source,
        };
        let domain = campaign.to_campaign().map_err(invalid)?;
        if domain.priority != Priority::Emergency {
            return Err(EmergencyError::NotEmergency {
                id,
                priority: campaign.priority,
            });
        }
        for c in &creatives {
            c.to_creative().map_err(invalid)?;
        }
        if campaign.creatives.is_empty() {
            return Err(EmergencyError::NoCreatives { id });
        }
        if let Some(missing) = campaign
            .creatives
            .iter()
            .find(|name| !creatives.iter().any(|c| &c.id == *name))
        {
            return Err(EmergencyError::MissingCreative {
                id,
                creative: missing.clone(),
            });
        }
        self.started.insert(
            id,
            Started {
                campaign,
                creatives,
            },
        );
        Ok(())
    }

    /// Ends a campaign (an overlay's or the schedule's) from `ends_at` on.
    pub fn end(&mut self, campaign_id: &str, ends_at: DateTime<Utc>) {
        let at = self.ended.entry(campaign_id.to_owned()).or_insert(ends_at);
        *at = (*at).min(ends_at);
    }

    /// Drops what `signed` already says and what ended long before `now`.
    pub fn prune(&mut self, signed: &ScheduleDoc, now: DateTime<Utc>) {
        let carried = |id: &str| signed.body.campaigns.iter().find(|c| c.id == id);
        self.started.retain(|id, _| carried(id).is_none());
        let ended = self.ended.clone();
        self.started.retain(|id, s| {
            let end = ended
                .get(id)
                .map_or(s.campaign.flight_end, |e| (*e).min(s.campaign.flight_end));
            end + KEEP_ENDED > now
        });
        let started = &self.started;
        self.ended.retain(|id, at| match carried(id) {
            Some(c) => c.flight_end > *at,
            None => started.contains_key(id),
        });
    }

    /// `signed` with the overlays merged into its body: started campaigns appended (with
    /// their creatives, once each), ends applied to flights; a campaign ended before it
    /// started is left out.
    pub fn merge(&self, signed: &ScheduleDoc) -> ScheduleDoc {
        let mut doc = signed.clone();
        let body = &mut doc.body;
        for s in self.started.values() {
            body.campaigns.push(s.campaign.clone());
            for c in &s.creatives {
                if !body.creatives.iter().any(|k| k.id == c.id) {
                    body.creatives.push(c.clone());
                }
            }
        }
        for c in &mut body.campaigns {
            if let Some(at) = self.ended.get(&c.id) {
                c.flight_end = c.flight_end.min(*at);
            }
        }
        body.campaigns.retain(|c| c.flight_end > c.flight_start);
        doc
    }

    pub fn is_empty(&self) -> bool {
        self.started.is_empty() && self.ended.is_empty()
    }

    /// What the outbox holds (none stored: empty).
    pub fn load(outbox: &Outbox) -> Result<Overlays, EmergencyError> {
        match outbox.load_emergencies()? {
            Some(raw) => {
                serde_json::from_slice(&raw).map_err(|e| EmergencyError::Corrupt(e.to_string()))
            }
            None => Ok(Overlays::default()),
        }
    }

    pub fn save(&self, outbox: &Outbox) -> Result<(), EmergencyError> {
        let raw = serde_json::to_vec(self).expect("wire types serialise");
        Ok(outbox.store_emergencies(&raw)?)
    }
}

/// `held`'s signed document with `overlays` merged: the schedule to play.
pub fn apply(held: &HeldSchedule, overlays: &Overlays) -> Result<HeldSchedule, Reject> {
    HeldSchedule::overlaid(held.signed.clone(), overlays.merge(&held.signed))
}

/// The stored overlays, pruned against `signed` (persisting what was dropped); blocking.
pub fn load_pruned(
    outbox: &Outbox,
    signed: &ScheduleDoc,
    now: DateTime<Utc>,
) -> Result<Overlays, EmergencyError> {
    let mut overlays = Overlays::load(outbox)?;
    let before = overlays.clone();
    overlays.prune(signed, now);
    if overlays != before {
        overlays.save(outbox)?;
    }
    Ok(overlays)
}

/// `held` with `overlays` merged; on a failure, `held` as signed (and the reason logged).
pub fn merged(held: HeldSchedule, overlays: Result<Overlays, EmergencyError>) -> HeldSchedule {
    let overlays = match overlays {
        Ok(o) if o.is_empty() => return held,
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "cannot read emergency overlays; playing the schedule as signed");
            return held;
        }
    };
    match apply(&held, &overlays) {
        Ok(h) => {
            tracing::info!(
                started = ?overlays.started.keys().collect::<Vec<_>>(),
                ended = ?overlays.ended,
                "emergency overlays applied"
            );
            h
        }
        Err(e) => {
            tracing::error!(reason = %e, "emergency overlays do not merge; playing the schedule as signed");
            held
        }
    }
}

/// At start-up: the restored schedule with the stored overlays; blocking.
pub fn restore(outbox: &Outbox, held: HeldSchedule, now: DateTime<Utc>) -> HeldSchedule {
    let overlays = load_pruned(outbox, &held.signed, now);
    merged(held, overlays)
}

impl MainLoop {
    /// A newly accepted schedule, with the stored overlays it does not supersede.
    pub(crate) async fn with_overlays(
        &self,
        held: HeldSchedule,
        now: DateTime<Utc>,
    ) -> HeldSchedule {
        let outbox = self.outbox.clone();
        let signed = held.signed.clone();
        let overlays = tokio::task::spawn_blocking(move || load_pruned(&outbox, &signed, now))
            .await
            .map_err(EmergencyError::from)
            .and_then(|r| r);
        merged(held, overlays)
    }

    /// `emergency_start`: fetch its media first, then persist and merge it.
    pub(crate) async fn on_emergency_start(
        &mut self,
        campaign: WireCampaign,
        creatives: Vec<WireCreative>,
        now: DateTime<Utc>,
    ) {
        let id = campaign.id.clone();
        let mut check = Overlays::default();
        if let Err(e) = check.start(campaign.clone(), creatives.clone()) {
            tracing::warn!(reason = %e, "ignoring emergency command");
            return;
        }
        // Stored and merged at once: the merge wakes the fetcher, which fetches what the
        // horizon needs soonest first, so the emergency's creatives are the first download.
        // Should a download miss the next slot boundary, that slot is recorded `failed`
        // rather than showing ordinary content during an emergency.
        let changed = self
            .change_overlays(now, move |o| o.start(campaign, creatives))
            .await;
        if changed {
            tracing::warn!(campaign = %id, "emergency takeover started");
        }
    }

    /// `emergency_end`: the campaign stops at `ends_at`.
    pub(crate) async fn on_emergency_end(
        &mut self,
        campaign_id: String,
        ends_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) {
        let id = campaign_id.clone();
        let changed = self
            .change_overlays(now, move |o| {
                o.end(&campaign_id, ends_at);
                Ok(())
            })
            .await;
        if changed {
            tracing::warn!(campaign = %id, %ends_at, "emergency takeover ended");
        }
    }

    /// Applies `change` to the stored overlays, persists them, and replaces the held
    /// schedule with the merge. Returns whether anything was applied.
    async fn change_overlays(
        &mut self,
        now: DateTime<Utc>,
        change: impl FnOnce(&mut Overlays) -> Result<(), EmergencyError> + Send + 'static,
    ) -> bool {
        let held = self.schedules.borrow().clone();
        let outbox = self.outbox.clone();
        let signed = held.as_ref().map(|h| h.signed.clone());
        let stored = tokio::task::spawn_blocking(move || {
            let mut overlays = Overlays::load(&outbox)?;
            change(&mut overlays)?;
            if let Some(signed) = &signed {
                overlays.prune(signed, now);
            }
            overlays.save(&outbox)?;
            Ok::<_, EmergencyError>(overlays)
        })
        .await
        .map_err(EmergencyError::from)
        .and_then(|r| r);
        let overlays = match stored {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, "cannot store the emergency; ignoring the command");
                return false;
            }
        };
        let Some(held) = held else {
            tracing::info!("emergency stored; it applies once a schedule is held");
            return true;
        };
        match apply(&held, &overlays) {
            Ok(merged) => {
                self.schedules.send_replace(Some(Arc::new(merged)));
                self.publish_status(true);
                true
            }
            Err(e) => {
                tracing::error!(reason = %e, "emergency does not merge into the schedule; ignoring it");
                false
            }
        }
    }
}

/// A test emergency: campaign `alert` (flight from 2023-12-18T08:00:07Z) with one image.
#[cfg(test)]
pub(crate) fn alert(priority: &str) -> (WireCampaign, Vec<WireCreative>) {
    let sha = playlists::Sha256::of(b"alert").to_string();
    let creative = WireCreative {
        id: "alert-1".into(),
        kind: "image".into(),
        url: format!("/media/{sha}"),
        sha256: sha,
        bytes: 5,
        width: 1920,
        height: 1080,
        duration_seconds: 15,
        title: "Alert".into(),
        fit: None,
        background: None,
        any_aspect: false,
        rendition: None,
    };
    let campaign = WireCampaign {
        id: "alert".into(),
        name: "Alert".into(),
        priority: priority.into(),
        weight: 1,
        flight_start: tt("2023-12-18T08:00:07Z"),
        flight_end: tt("2123-12-18T08:00:07Z"),
        dayparts: vec!["* * * * *".into()],
        target: playlists::wire::schedule::WireTarget::default(),
        creatives: vec!["alert-1".into()],
        max_plays_per_hour: None,
    };
    (campaign, vec![creative])
}

#[cfg(test)]
fn tt(s: &str) -> DateTime<Utc> {
    s.parse().expect("test time")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::fixture;
    use playlists::Sha256;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn plays(held: &HeldSchedule, from: &str, slots: i64) -> Vec<String> {
        let planner = playlists::Planner::new(&held.schedule);
        let from = t(from);
        planner
            .plan_range(from, from + chrono::Duration::seconds(15 * slots))
            .into_iter()
            .map(|p| held.schedule.creatives[p.creative].id.to_string())
            .collect()
    }

    #[test]
    fn refuses_what_is_not_a_complete_emergency() {
        let mut o = Overlays::default();
        let (c, k) = alert("high");
        let e = o.start(c, k).unwrap_err().to_string();
        assert!(e.contains("priority \"high\""), "{e}");
        let (mut c, k) = alert("emergency");
        c.creatives.push("ghost".into());
        let e = o.start(c, k).unwrap_err().to_string();
        assert!(e.contains("\"ghost\""), "{e}");
        let (mut c, k) = alert("emergency");
        c.flight_end = c.flight_start;
        assert!(o.start(c, k).unwrap_err().to_string().contains("flight"));
        let (c, mut k) = alert("emergency");
        k[0].sha256 = "nope".into();
        assert!(o.start(c, k).is_err());
        assert!(o.is_empty(), "nothing refused is kept");
    }

    #[test]
    fn plays_from_the_next_slot_until_its_end() {
        let held = HeldSchedule::new(fixture::doc(1, fixture::body(&[b"a", b"b"], 15))).unwrap();
        let mut o = Overlays::default();
        let (c, k) = alert("emergency");
        o.start(c, k).unwrap();
        let merged = apply(&held, &o).unwrap();
        assert_eq!(merged.version, 1);
        assert_ne!(merged.revision, held.revision);
        assert!(merged
            .referenced()
            .contains(&Sha256::of(b"alert").to_string()));
        // Flight start 08:00:07: the slot at 08:00:00 is normal, every later one the alert.
        assert_eq!(
            plays(&merged, "2023-12-18T07:59:45Z", 4),
            ["cr-1", "cr-0", "alert-1", "alert-1"]
        );
        // Ended at 08:00:31: the slot starting at 08:00:30 is still the alert's.
        o.end("alert", t("2023-12-18T08:00:31Z"));
        let ended = apply(&held, &o).unwrap();
        assert_eq!(
            plays(&ended, "2023-12-18T08:00:00Z", 4),
            ["cr-0", "alert-1", "alert-1", "cr-1"]
        );
        // Ending a schedule campaign works the same way; one ended before it started goes.
        o.end("camp-1", t("2023-12-18T08:00:00Z"));
        o.end("alert", t("2023-12-18T08:00:00Z"));
        let dark = apply(&held, &o).unwrap();
        let ids: Vec<_> = dark
            .schedule
            .campaigns
            .iter()
            .map(|c| c.id.as_str())
            .collect();
        assert_eq!(ids, ["camp-1"]);
        assert!(plays(&dark, "2023-12-18T08:00:00Z", 4).is_empty());
    }

    #[test]
    fn pruned_once_the_signed_schedule_says_it() {
        let (c, k) = alert("emergency");
        let mut o = Overlays::default();
        o.start(c.clone(), k.clone()).unwrap();
        o.end("camp-1", t("2023-12-19T00:00:00Z"));
        let now = t("2023-12-18T09:00:00Z");
        let plain = fixture::doc(1, fixture::body(&[b"a"], 15));
        let mut same = o.clone();
        same.prune(&plain, now);
        assert_eq!(same, o, "the schedule says neither yet");
        // The server's schedule now carries the alert: the start overlay goes; the end of
        // camp-1 stays until the schedule ends camp-1 by then.
        let mut carried = plain.clone();
        carried.body.campaigns.push(c.clone());
        carried.body.creatives.extend(k);
        o.prune(&carried, now);
        assert!(o.started.is_empty());
        assert_eq!(o.ended.len(), 1);
        carried.body.campaigns[0].flight_end = t("2023-12-19T00:00:00Z");
        o.prune(&carried, now);
        assert!(o.is_empty());
        // Two days after its flight ended an overlay goes too.
        let (c, k) = alert("emergency");
        o.start(c, k).unwrap();
        o.end("alert", t("2023-12-18T10:00:00Z"));
        o.prune(&plain, t("2023-12-20T09:59:59Z"));
        assert_eq!((o.started.len(), o.ended.len()), (1, 1));
        o.prune(&plain, t("2023-12-20T10:00:00Z"));
        assert!(o.is_empty());
    }

    #[test]
    fn survives_in_the_outbox() {
        let dir = tempfile::tempdir().unwrap();
        let (outbox, _) =
            crate::outbox::Outbox::open(dir.path(), crate::outbox::Durability::Relaxed).unwrap();
        assert!(Overlays::load(&outbox).unwrap().is_empty());
        let (c, k) = alert("emergency");
        let mut o = Overlays::default();
        o.start(c, k).unwrap();
        o.save(&outbox).unwrap();
        drop(outbox);
        let (outbox, _) =
            crate::outbox::Outbox::open(dir.path(), crate::outbox::Durability::Relaxed).unwrap();
        assert_eq!(Overlays::load(&outbox).unwrap(), o);
        let held = HeldSchedule::new(fixture::doc(1, fixture::body(&[b"a"], 15))).unwrap();
        let restored = restore(&outbox, held, t("2023-12-18T09:00:00Z"));
        assert_eq!(restored.schedule.campaigns.len(), 2);
    }
}
