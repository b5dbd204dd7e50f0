//! Builders for test catalogues: venues, screens, creatives and campaigns with defaults, so
//! a test states only what it is about. No rules live here; the checker owns those.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use playlists::cron::CronExpr;
use playlists::taxonomy::VenueType;
use playlists::{
    Campaign, CampaignId, Catalogue, Creative, CreativeId, Flight, MediaKind, Priority, Screen,
    ScreenId, ScreenSchedule, Sha256, Target, Venue, VenueId,
};

/// An RFC 3339 instant.
pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s:?}: {e}"))
        .with_timezone(&Utc)
}

pub fn cron(s: &str) -> CronExpr {
    CronExpr::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

/// A `transit.subway.platform` venue with no district or tags.
pub fn venue(id: &str, tz: Tz, hours: &str) -> Venue {
    Venue {
        id: VenueId::parse(id).expect("venue id"),
        name: id.to_owned(),
        venue_type: VenueType::parse("transit.subway.platform").expect("venue type"),
        district: None,
        tags: Vec::new(),
        timezone: tz,
        operating_hours: cron(hours),
    }
}

pub fn screen(id: &str, venue: &str, width: u32, height: u32, slot_seconds: u32) -> Screen {
    Screen {
        id: ScreenId::parse(id).expect("screen id"),
        venue: VenueId::parse(venue).expect("venue id"),
        width,
        height,
        slot_seconds,
    }
}

pub fn creative(id: &str, width: u32, height: u32, duration_seconds: u32) -> Creative {
    Creative {
        id: CreativeId::parse(id).expect("creative id"),
        kind: MediaKind::Image,
        sha256: Sha256::of(id.as_bytes()),
        bytes: 1_000,
        width,
        height,
        duration_seconds,
        title: id.to_owned(),
        fit: playlists::Fit::default(),
        any_aspect: false,
    }
}

/// A campaign for every screen with no cap.
pub fn campaign(
    id: &str,
    priority: Priority,
    weight: u32,
    flight: (DateTime<Utc>, DateTime<Utc>),
    dayparts: &[&str],
    creatives: &[&str],
) -> Campaign {
    Campaign {
        id: CampaignId::parse(id).expect("campaign id"),
        name: id.to_owned(),
        priority,
        weight,
        flight: Flight::new(flight.0, flight.1).expect("flight end after start"),
        dayparts: dayparts.iter().map(|d| cron(d)).collect(),
        target: Target::default(),
        creatives: creatives
            .iter()
            .map(|c| CreativeId::parse(c).expect("creative id"))
            .collect(),
        max_plays_per_hour: None,
    }
}

/// The whole catalogue as one screen's schedule (campaigns that do not target it and
/// creatives that do not fit included), the way `explain` sees it.
pub fn full_schedule(catalogue: &Catalogue, screen: &str) -> ScreenSchedule {
    catalogue
        .full_schedule_for(&ScreenId::parse(screen).expect("screen id"))
        .expect("screen in catalogue")
}

/// A flight covering 2023 and 2024.
pub fn year() -> (DateTime<Utc>, DateTime<Utc>) {
    (t("2023-01-01T00:00:00Z"), t("2025-01-01T00:00:00Z"))
}

/// One venue `v` in `tz`, one 1920x1080 screen `s` with `slot` seconds, three landscape
/// creatives `k1` (10 s), `k2` (5 s), `k3` (10 s), and the given campaigns.
pub fn one_screen(tz: Tz, hours: &str, slot: u32, campaigns: Vec<Campaign>) -> Catalogue {
    Catalogue {
        venues: vec![venue("v", tz, hours)],
        screens: vec![screen("s", "v", 1920, 1080, slot)],
        creatives: vec![
            creative("k1", 1920, 1080, 10),
            creative("k2", 1280, 720, 5),
            creative("k3", 3840, 2160, 10),
        ],
        campaigns,
    }
}
