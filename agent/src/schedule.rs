//! The schedule the agent holds: the accepted document and its domain form, with what the
//! rest of the agent asks of it (media it needs, offline runway). Which documents are
//! accepted is `accept.rs`; planning is `playlists`'; emergency overlays merged into it are
//! `emergency.rs`'s.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use playlists::wire::ScheduleDoc;
use playlists::ScreenSchedule;

use crate::accept::Reject;

/// Gives every built [`HeldSchedule`] its own revision.
static REVISIONS: AtomicU64 = AtomicU64::new(1);

/// The schedule the agent plays: the accepted document and its domain form.
#[derive(Debug)]
pub struct HeldSchedule {
    pub version: u64,
    /// The accepted document with the active emergency overlays merged into its body, so
    /// that planning, media fetching, eviction, readiness and runway all see them.
    pub doc: ScheduleDoc,
    /// `doc.body` in domain form: what the planner plans with.
    pub schedule: ScreenSchedule,
    /// The document exactly as the server signed it, before any overlay.
    pub signed: Arc<ScheduleDoc>,
    /// Differs between any two held schedules, also of one version (an overlay changes
    /// what plays without a new version): what the player's cached day plan is keyed on.
    pub revision: u64,
}

impl HeldSchedule {
    /// From a document that [`crate::accept::accept_schedule`] let through.
    pub fn new(doc: ScheduleDoc) -> Result<HeldSchedule, Reject> {
        let signed = Arc::new(doc.clone());
        HeldSchedule::overlaid(signed, doc)
    }

    /// `doc` is `signed` with overlays merged into its body; it is validated again.
    pub fn overlaid(signed: Arc<ScheduleDoc>, doc: ScheduleDoc) -> Result<HeldSchedule, Reject> {
        let schedule = doc.body.to_schedule()?;
        Ok(HeldSchedule {
            version: doc.version,
            doc,
            schedule,
            signed,
            revision: REVISIONS.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// SHA-256 hex of every creative the document lists.
    pub fn referenced(&self) -> HashSet<String> {
        self.doc
            .body
            .creatives
            .iter()
            .map(|c| c.sha256.clone())
            .collect()
    }

    /// Hours it can keep playing offline from `now`: until the last flight ends. 0 when
    /// the media are not all cached or nothing is scheduled any more.
    pub fn runway_hours(&self, now: DateTime<Utc>, media_ready: bool) -> f64 {
        if !media_ready {
            return 0.0;
        }
        let end = self.schedule.campaigns.iter().map(|c| c.flight.end()).max();
        end.map(|e| ((e - now).num_seconds().max(0) as f64) / 3600.0)
            .unwrap_or(0.0)
    }
}

#[cfg(test)]
pub(crate) mod fixture {
    //! A small valid schedule for tests: one every-minute campaign in UTC.
    use super::*;
    use playlists::wire::schedule::{
        self, ScheduleBody, WireCampaign, WireScreen, WireTarget, WireVenue,
    };
    use playlists::wire::{Keypair, WireCreative};
    use playlists::{ScreenId, Sha256};

    pub fn server_key() -> Keypair {
        Keypair::from_secret([9; 32])
    }

    pub fn screen() -> ScreenId {
        ScreenId::parse("scr-1").unwrap()
    }

    pub fn body(creatives: &[&[u8]], slot_seconds: u32) -> ScheduleBody {
        let creatives: Vec<WireCreative> = creatives
            .iter()
            .enumerate()
            .map(|(i, bytes)| {
                let sha = Sha256::of(bytes).to_string();
                WireCreative {
                    id: format!("cr-{i}"),
                    kind: "image".into(),
                    url: format!("/media/{sha}"),
                    sha256: sha,
                    bytes: bytes.len() as u64,
                    width: 1920,
                    height: 1080,
                    duration_seconds: slot_seconds,
                    title: format!("creative {i}"),
                }
            })
            .collect();
        ScheduleBody {
            screen: WireScreen {
                id: "scr-1".into(),
                width: 1920,
                height: 1080,
                slot_seconds,
            },
            venue: WireVenue {
                id: "ven-1".into(),
                name: "Venue".into(),
                venue_type: 10502,
                district: Some("xicheng".into()),
                tags: vec![],
                timezone: "UTC".into(),
                operating_hours: "* * * * *".into(),
            },
            campaigns: vec![WireCampaign {
                id: "camp-1".into(),
                name: "Campaign".into(),
                priority: "normal".into(),
                weight: 1,
                flight_start: "2023-12-01T00:00:00Z".parse().unwrap(),
                flight_end: "2024-01-01T00:00:00Z".parse().unwrap(),
                dayparts: vec!["* * * * *".into()],
                target: WireTarget::default(),
                creatives: creatives.iter().map(|c| c.id.clone()).collect(),
                max_plays_per_hour: None,
            }],
            creatives,
        }
    }

    pub fn doc(version: u64, body: ScheduleBody) -> ScheduleDoc {
        ScheduleDoc::new(
            &screen(),
            version,
            "2023-12-17T00:00:00Z".parse().unwrap(),
            "2100-01-01T00:00:00Z".parse().unwrap(),
            body,
        )
    }

    /// The signed bytes of a schedule with the given version.
    pub fn signed(version: u64, creatives: &[&[u8]]) -> Vec<u8> {
        server_key().seal(schedule::KIND, &doc(version, body(creatives, 15)))
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::*;
    use super::*;

    #[test]
    fn held_schedule() {
        let held = HeldSchedule::new(doc(3, body(&[b"a", b"b"], 15))).unwrap();
        assert_eq!(held.version, 3);
        assert_eq!(held.referenced().len(), 2);
        let now = "2023-12-31T22:00:00Z".parse().unwrap();
        assert_eq!(held.runway_hours(now, true), 2.0);
        assert_eq!(held.runway_hours(now, false), 0.0);
    }
}
