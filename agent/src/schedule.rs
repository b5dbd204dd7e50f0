//! The schedule the agent holds: the accepted document and its domain form, with what the
//! rest of the agent asks of it (media it needs and when, offline runway). Which documents
//! are accepted is `accept.rs`; planning is `playlists`'; emergency overlays merged into it
//! are `emergency.rs`'s.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use playlists::wire::{ScheduleDoc, WireCreative};
use playlists::{Planner, ScreenSchedule};

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
    /// `doc.body.creatives` as this screen downloads them: each with the `sha256`, `bytes`
    /// and `url` of the rendition the document names for the screen, else as it is.
    pub downloads: Vec<WireCreative>,
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
        let downloads = doc
            .body
            .creatives
            .iter()
            .map(|c| {
                let media = c.media();
                WireCreative {
                    sha256: media.sha256.to_owned(),
                    bytes: media.bytes,
                    url: media.url.to_owned(),
                    ..c.clone()
                }
            })
            .collect();
        Ok(HeldSchedule {
            version: doc.version,
            downloads,
            doc,
            schedule,
            signed,
            revision: REVISIONS.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// SHA-256 hex of every file the document has this screen download and play.
    pub fn referenced(&self) -> HashSet<String> {
        self.downloads.iter().map(|c| c.sha256.clone()).collect()
    }

    /// SHA-256 hex of the file played for `schedule.creatives[index]`: its rendition for
    /// this screen, or its original. (`to_schedule` keeps the document's order.)
    pub fn media_sha256(&self, index: usize) -> &str {
        self.downloads.get(index).map_or_else(
            || self.schedule.creatives[index].sha256.as_str(),
            |c| c.sha256.as_str(),
        )
    }

    /// The creatives the plan uses in `[from, to)`, each once (by hash), in the order of
    /// their first play, with that slot's start. The same pure planner that plays the slots
    /// decides, so prefetching follows exactly what will be shown.
    pub fn first_uses(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<FirstUse> {
        let planner = Planner::new(&self.schedule);
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        planner.for_each_day(from, to, |day, first, end| {
            for play in day.plays().filter(|p| (first..end).contains(&p.slot)) {
                let sha = self.media_sha256(play.creative);
                if !seen.contains(sha) {
                    seen.insert(sha.to_owned());
                    out.push(FirstUse {
                        sha256: sha.to_owned(),
                        at: planner.slot_start(play.slot),
                    });
                }
            }
        });
        out
    }
}

/// When a creative is first needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstUse {
    pub sha256: String,
    pub at: DateTime<Utc>,
}

/// Until when the agent can play every slot correctly from what it has cached: the start
/// of the first slot in the window whose creative `cached` lacks, or the window's end.
/// `uses` is [`HeldSchedule::first_uses`] over that window.
pub fn playable_until(
    uses: &[FirstUse],
    window_end: DateTime<Utc>,
    cached: impl Fn(&str) -> bool,
) -> DateTime<Utc> {
    uses.iter()
        .filter(|u| !cached(&u.sha256))
        .map(|u| u.at)
        .min()
        .unwrap_or(window_end)
        .min(window_end)
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
                    fit: None,
                    background: None,
                    any_aspect: false,
                    rendition: None,
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
    }

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// First uses follow the plan (the two creatives alternate on 15 s slots, the flight
    /// ends at midnight); runway stops at the first slot whose creative is missing.
    #[test]
    fn first_uses_and_runway() {
        let held = HeldSchedule::new(doc(3, body(&[b"a", b"b", b"c"], 15))).unwrap();
        let sha = |b: &[u8]| playlists::Sha256::of(b).to_string();
        let (from, to) = (t("2023-12-31T22:00:00Z"), t("2024-01-01T02:00:00Z"));
        let uses = held.first_uses(from, to);
        let mut got: Vec<&str> = uses.iter().map(|u| u.sha256.as_str()).collect();
        got.sort();
        let mut want = [sha(b"a"), sha(b"b"), sha(b"c")];
        want.sort();
        assert_eq!(got, want);
        let starts: Vec<DateTime<Utc>> = uses.iter().map(|u| u.at).collect();
        assert_eq!(
            starts,
            [
                t("2023-12-31T22:00:00Z"),
                t("2023-12-31T22:00:15Z"),
                t("2023-12-31T22:00:30Z")
            ]
        );
        let all = |_: &str| true;
        assert_eq!(playable_until(&uses, to, all), to);
        let lacks_third = |s: &str| s != uses[2].sha256;
        assert_eq!(playable_until(&uses, to, lacks_third), uses[2].at);
        // After the flight ends nothing plays, so nothing is needed.
        assert!(held.first_uses(t("2024-01-01T00:00:00Z"), to).is_empty());
        // A window that starts mid-slot begins at the next slot.
        assert_eq!(
            held.first_uses(t("2023-12-31T22:00:01Z"), to)[0].at,
            t("2023-12-31T22:00:15Z")
        );
    }
}
