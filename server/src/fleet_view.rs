//! What operators see of the fleet: an index of the screens in service with their venues
//! (built once per catalogue revision, so a request over 11,000 screens only filters and
//! counts), when each screen's status was last received, and the pure rules of the view:
//! a screen's state, whether it is behind its published schedule, whether it is dark, and
//! the filters of `GET /api/v1/fleet`. The HTTP module (`http::fleet`) authorises and
//! shapes responses; the status worker (`crate::fleet`) records receptions here.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use playlists::taxonomy::VenueType;
use playlists::wire::Status;
use playlists::Catalogue;

use crate::store::Snapshot;

/// A screen's presence as its statuses tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Online,
    /// It never reported since the server started.
    Unknown,
    /// Its last status (often its Last Will) said offline.
    Offline,
}

impl State {
    pub fn of(status: Option<&Status>) -> State {
        match status {
            None => State::Unknown,
            Some(s) if s.online => State::Online,
            Some(_) => State::Offline,
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        match s {
            "online" => Some(State::Online),
            "offline" => Some(State::Offline),
            "unknown" => Some(State::Unknown),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Online => "online",
            State::Offline => "offline",
            State::Unknown => "unknown",
        }
    }
}

/// A venue as the fleet view shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct VenueInfo {
    pub id: String,
    pub name: String,
    pub name_en: Option<String>,
    pub district: Option<String>,
    pub venue_type: VenueType,
    pub location: Option<(f64, f64)>,
    pub timezone: Option<String>,
}

/// A screen in service, its venue (an index into [`FleetIndex::venues`]) and the
/// lower-case text the `q` filter searches (its id, its venue's id and names).
#[derive(Debug, Clone, PartialEq)]
pub struct ScreenInfo {
    pub id: String,
    pub venue: usize,
    haystack: String,
}

/// The screens in service (sorted by id) and their venues at one catalogue revision.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetIndex {
    pub head: u64,
    pub venues: Vec<VenueInfo>,
    pub screens: Vec<ScreenInfo>,
    /// Per venue, its screens (indexes into `screens`).
    pub venue_screens: Vec<Vec<usize>>,
}

impl FleetIndex {
    /// The index of `catalogue` (the screens in service) with names and places from
    /// `snapshot` (the entities it was built from).
    pub fn build(snapshot: &Snapshot, catalogue: &Catalogue) -> FleetIndex {
        let mut venues: Vec<VenueInfo> = catalogue
            .venues
            .iter()
            .map(|v| {
                let spec = snapshot.venues.get(v.id.as_str()).map(|e| &e.spec);
                VenueInfo {
                    id: v.id.to_string(),
                    name: v.name.clone(),
                    name_en: spec.and_then(|s| s.name_en.clone()),
                    district: v.district.clone(),
                    venue_type: v.venue_type,
                    location: spec.and_then(|s| s.location.as_ref().map(|l| (l.lat, l.lon))),
                    timezone: Some(v.timezone.name().to_owned()),
                }
            })
            .collect();
        venues.sort_by(|a, b| a.id.cmp(&b.id));
        let at: HashMap<&str, usize> = venues
            .iter()
            .enumerate()
            .map(|(i, v)| (v.id.as_str(), i))
            .collect();
        let mut screens: Vec<ScreenInfo> = catalogue
            .screens
            .iter()
            .filter_map(|s| {
                let venue = *at.get(s.venue.as_str())?;
                let v = &venues[venue];
                let haystack = format!(
                    "{}\n{}\n{}\n{}",
                    s.id.as_str(),
                    v.id,
                    v.name,
                    v.name_en.as_deref().unwrap_or("")
                )
                .to_lowercase();
                Some(ScreenInfo {
                    id: s.id.to_string(),
                    venue,
                    haystack,
                })
            })
            .collect();
        screens.sort_by(|a, b| a.id.cmp(&b.id));
        let mut venue_screens = vec![Vec::new(); venues.len()];
        for (i, s) in screens.iter().enumerate() {
            venue_screens[s.venue].push(i);
        }
        FleetIndex {
            head: snapshot.head,
            venues,
            screens,
            venue_screens,
        }
    }
}

/// What a fleet request asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub district: Option<String>,
    pub venue_type: Option<VenueType>,
    pub state: Option<State>,
    /// Lower-case text searched in the screen id and the venue's names.
    pub q: Option<String>,
}

impl Filter {
    /// Whether the filter keeps `screen` at `venue` in `state`.
    pub fn keeps(&self, screen: &ScreenInfo, venue: &VenueInfo, state: State) -> bool {
        self.district
            .as_deref()
            .is_none_or(|d| venue.district.as_deref() == Some(d))
            && self
                .venue_type
                .is_none_or(|t| venue.venue_type.is_within(t))
            && self.state.is_none_or(|s| s == state)
            && self
                .q
                .as_deref()
                .is_none_or(|q| screen.haystack.contains(q))
    }
}

/// Whether a screen's applied schedule is older than the one published for it.
pub fn behind(applied: Option<u64>, published: Option<u64>) -> bool {
    match (applied, published) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(a), Some(p)) => a < p,
    }
}

/// How long a screen has been dark at `now`, if at least `threshold`: offline since its
/// last status was received, or online but silent since then. A screen never heard from
/// is unknown, not dark (the server may just have started).
pub fn dark_for(
    state: State,
    received: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    threshold: TimeDelta,
) -> Option<TimeDelta> {
    if state == State::Unknown {
        return None;
    }
    let since = now - received?;
    (since >= threshold).then_some(since)
}

/// How long the published versions read from the store serve requests: a screen's
/// `behind` may show this much later than a publication (statuses come every 30 s anyway),
/// and a request at 11,000 screens does not read them each time.
pub const PUBLISHED_FOR: std::time::Duration = std::time::Duration::from_secs(5);

/// Published versions per screen, as read at an instant.
type PublishedAt = (std::time::Instant, Arc<HashMap<String, u64>>);

/// The fleet view's shared state: when statuses were received, the index cached per
/// catalogue revision, the published versions read at most every [`PUBLISHED_FOR`], and
/// the dark threshold.
#[derive(Debug)]
pub struct FleetView {
    pub received: Mutex<HashMap<String, DateTime<Utc>>>,
    index: Mutex<Option<Arc<FleetIndex>>>,
    published: Mutex<Option<PublishedAt>>,
    pub dark_after: TimeDelta,
}

impl FleetView {
    pub fn new(dark_after: TimeDelta) -> FleetView {
        FleetView {
            received: Mutex::new(HashMap::new()),
            index: Mutex::new(None),
            published: Mutex::new(None),
            dark_after,
        }
    }

    /// The index at revision `head`: the cached one, or one built from what `load` reads
    /// (and kept).
    pub fn index<E>(
        &self,
        head: u64,
        load: impl FnOnce() -> Result<(Arc<Snapshot>, Arc<Catalogue>), E>,
    ) -> Result<Arc<FleetIndex>, E> {
        if let Some(ix) = self.index.lock().ok().and_then(|g| g.clone()) {
            if ix.head == head {
                return Ok(ix);
            }
        }
        let (snapshot, catalogue) = load()?;
        let ix = Arc::new(FleetIndex::build(&snapshot, &catalogue));
        if let Ok(mut g) = self.index.lock() {
            *g = Some(ix.clone());
        }
        Ok(ix)
    }

    /// The published versions: those read less than [`PUBLISHED_FOR`] ago, or what `load`
    /// reads now (and kept).
    pub fn published<E>(
        &self,
        load: impl FnOnce() -> Result<HashMap<String, u64>, E>,
    ) -> Result<Arc<HashMap<String, u64>>, E> {
        if let Some((at, p)) = self.published.lock().ok().and_then(|g| g.clone()) {
            if at.elapsed() < PUBLISHED_FOR {
                return Ok(p);
            }
        }
        let p = Arc::new(load()?);
        if let Ok(mut g) = self.published.lock() {
            *g = Some((std::time::Instant::now(), p.clone()));
        }
        Ok(p)
    }

    /// Records that `screen`'s status arrived at `at`.
    pub fn received(&self, screen: &str, at: DateTime<Utc>) {
        if let Ok(mut r) = self.received.lock() {
            r.insert(screen.to_owned(), at);
        }
    }
}

/// Counts of screens by state (and how many are behind or dark).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StateCounts {
    pub total: usize,
    pub online: usize,
    pub offline: usize,
    pub unknown: usize,
    pub behind: usize,
    pub dark: usize,
}

impl StateCounts {
    pub fn add(&mut self, state: State, behind: bool, dark: bool) {
        self.total += 1;
        match state {
            State::Online => self.online += 1,
            State::Offline => self.offline += 1,
            State::Unknown => self.unknown += 1,
        }
        self.behind += usize::from(behind);
        self.dark += usize::from(dark);
    }

    /// The worst state among the counted screens (offline, then unknown, then online).
    pub fn worst(&self) -> State {
        if self.offline > 0 {
            State::Offline
        } else if self.unknown > 0 {
            State::Unknown
        } else {
            State::Online
        }
    }
}

/// Counts per district (`""` for venues without one), sorted by district.
pub type ByDistrict = BTreeMap<String, StateCounts>;

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn dark_screens() {
        let now = t("2026-01-01T12:00:00Z");
        let q = TimeDelta::minutes(15);
        let check = |state, received: Option<&str>, expect: Option<i64>| {
            assert_eq!(
                dark_for(state, received.map(t), now, q),
                expect.map(TimeDelta::minutes),
                "{state:?} {received:?}"
            );
        };
        check(State::Online, Some("2026-01-01T11:59:00Z"), None);
        check(State::Online, Some("2026-01-01T11:40:00Z"), Some(20));
        check(State::Offline, Some("2026-01-01T11:50:00Z"), None);
        check(State::Offline, Some("2026-01-01T11:45:00Z"), Some(15));
        check(State::Unknown, None, None);
        check(State::Offline, None, None);
    }

    #[test]
    fn published_versions_are_read_once_a_while() {
        let view = FleetView::new(TimeDelta::minutes(15));
        let reads = std::cell::Cell::new(0);
        let load = || {
            reads.set(reads.get() + 1);
            Ok::<_, ()>(HashMap::from([("s1".to_owned(), 3)]))
        };
        assert_eq!(view.published(load).unwrap()["s1"], 3);
        assert_eq!(view.published(load).unwrap()["s1"], 3);
        assert_eq!(
            reads.get(),
            1,
            "the second request within {PUBLISHED_FOR:?}"
        );
    }

    #[test]
    fn behind_and_worst() {
        assert!(!behind(Some(3), Some(3)));
        assert!(behind(Some(2), Some(3)));
        assert!(behind(None, Some(3)));
        assert!(!behind(None, None));
        let mut c = StateCounts::default();
        c.add(State::Online, false, false);
        assert_eq!(c.worst(), State::Online);
        c.add(State::Unknown, true, false);
        assert_eq!(c.worst(), State::Unknown);
        c.add(State::Offline, false, true);
        assert_eq!(c.worst(), State::Offline);
        assert_eq!((c.total, c.behind, c.dark), (3, 1, 1));
    }

    #[test]
    fn filters() {
        let venue = VenueInfo {
            id: "v1".into(),
            name: "天安门东站".into(),
            name_en: Some("Tian'anmen East Station".into()),
            district: Some("dongcheng".into()),
            venue_type: VenueType::parse("transit.subway.platform").unwrap(),
            location: None,
            timezone: None,
        };
        let screen = ScreenInfo {
            id: "bj-s1".into(),
            venue: 0,
            haystack: "bj-s1\n天安门东站\ntian'anmen east station".into(),
        };
        let keeps = |f: Filter, state| f.keeps(&screen, &venue, state);
        assert!(keeps(Filter::default(), State::Online));
        let district = |d: &str| Filter {
            district: Some(d.into()),
            ..Filter::default()
        };
        assert!(keeps(district("dongcheng"), State::Online));
        assert!(!keeps(district("xicheng"), State::Online));
        let vt = |v: &str| Filter {
            venue_type: Some(VenueType::parse(v).unwrap()),
            ..Filter::default()
        };
        assert!(keeps(vt("transit"), State::Online));
        assert!(!keeps(vt("outdoor"), State::Online));
        let state = |s| Filter {
            state: Some(s),
            ..Filter::default()
        };
        assert!(keeps(state(State::Offline), State::Offline));
        assert!(!keeps(state(State::Online), State::Offline));
        let q = |s: &str| Filter {
            q: Some(s.into()),
            ..Filter::default()
        };
        assert!(keeps(q("天安门"), State::Online));
        assert!(keeps(q("east"), State::Online));
        assert!(keeps(q("bj-s"), State::Online));
        assert!(!keeps(q("xidan"), State::Online));
    }
}
