//! The auditor's drill-down: reports narrowed to a district, venue, screen or campaign, and
//! a report per district. Planned comes from the same schedule documents as
//! [`crate::report`], delivered from the same ledger: the rollups when they can answer
//! (no district or campaign filter), else one pass over the raw records. The window and
//! the output formats are `report`'s; HTTP lives in `http/reports.rs`.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use chrono::{DateTime, Utc};

use playlists::wire::{PlayRecord, PlayStatus};
use playlists::ScreenSchedule;

use crate::report::{compliance, Format, ReportRow, Window};
use crate::store::{Dimension, LedgerStore, Query, Snapshot, Store};

/// The key of a venue without a district in district rows and filters.
pub const NO_DISTRICT: &str = "(none)";

/// What a report covers besides its window; `None` everywhere is everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub district: Option<String>,
    pub venue: Option<String>,
    pub screen: Option<String>,
    pub campaign: Option<String>,
}

/// How rows are keyed: per district, or per key of a ledger dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    District,
    Dim(Dimension),
}

impl By {
    /// The key column is `{name}_id`.
    pub fn name(self) -> &'static str {
        match self {
            By::District => "district",
            By::Dim(Dimension::Venue) => "venue",
            By::Dim(Dimension::Screen) => "screen",
            By::Dim(Dimension::Campaign) => "campaign",
            By::Dim(Dimension::Creative) => "creative",
        }
    }

    /// The detail column: a venue's type, a screen's venue, a district's number of venues.
    pub fn detail(self) -> &'static str {
        match self {
            By::District => "venues",
            By::Dim(Dimension::Venue) => "venue_type",
            By::Dim(Dimension::Screen) => "venue_id",
            By::Dim(_) => "detail",
        }
    }
}

/// Where each venue and screen is, from the stored entities (decommissioned screens
/// included: their plays stay in the ledger).
#[derive(Debug, Default)]
pub struct Places {
    /// venue id -> district (or [`NO_DISTRICT`]).
    pub district: HashMap<String, String>,
    /// screen id -> venue id.
    pub venue: HashMap<String, String>,
}

impl Places {
    pub fn of(snapshot: &Snapshot) -> Places {
        Places {
            district: snapshot
                .venues
                .values()
                .map(|v| {
                    let d = v.spec.district.as_deref().unwrap_or(NO_DISTRICT);
                    (v.spec.id.clone(), d.to_owned())
                })
                .collect(),
            venue: snapshot
                .screens
                .values()
                .map(|s| (s.spec.id.clone(), s.spec.venue.clone()))
                .collect(),
        }
    }

    fn district_of(&self, venue: &str) -> &str {
        self.district.get(venue).map_or(NO_DISTRICT, String::as_str)
    }
}

impl Filter {
    /// Whether a venue is inside the filter's places.
    pub fn keeps_venue(&self, places: &Places, venue: &str) -> bool {
        self.venue.as_deref().is_none_or(|v| v == venue)
            && self
                .district
                .as_deref()
                .is_none_or(|d| d == places.district_of(venue))
            && self
                .screen
                .as_deref()
                .is_none_or(|s| places.venue.get(s).is_some_and(|v| v == venue))
    }

    /// Whether a screen's schedule is inside the filter's places.
    pub fn keeps_schedule(&self, s: &ScreenSchedule) -> bool {
        self.venue
            .as_deref()
            .is_none_or(|v| v == s.venue.id.as_str())
            && self
                .screen
                .as_deref()
                .is_none_or(|x| x == s.screen.id.as_str())
            && self
                .district
                .as_deref()
                .is_none_or(|d| d == s.venue.district.as_deref().unwrap_or(NO_DISTRICT))
    }

    /// Whether a screen's planned plays (where its document placed it) are inside the
    /// filter's places.
    pub fn keeps_place(&self, p: &crate::planned::Place) -> bool {
        self.venue.as_deref().is_none_or(|v| v == p.venue_id)
            && self.screen.as_deref().is_none_or(|x| x == p.screen_id)
            && self
                .district
                .as_deref()
                .is_none_or(|d| d == p.district.as_deref().unwrap_or(NO_DISTRICT))
    }

    /// Whether a play record is inside the filter.
    pub fn keeps_record(&self, places: &Places, r: &PlayRecord) -> bool {
        self.venue.as_deref().is_none_or(|v| v == r.venue_id)
            && self.screen.as_deref().is_none_or(|s| s == r.screen_id)
            && self.campaign.as_deref().is_none_or(|c| c == r.campaign_id)
            && self
                .district
                .as_deref()
                .is_none_or(|d| d == places.district_of(&r.venue_id))
    }

    /// The ledger query for the filter's venue and screen (the rest is checked per record).
    pub fn query(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Query {
        Query {
            from: Some(from),
            to: Some(to),
            dimension: Dimension::Screen,
            venue: self.venue.clone(),
            screen: self.screen.clone(),
        }
    }
}

/// Rows per `by` over the window inside `filter`.
pub fn rows(
    store: &dyn Store,
    ledger: &dyn LedgerStore,
    by: By,
    window: &Window,
    filter: &Filter,
) -> anyhow::Result<Vec<ReportRow>> {
    let (from, to) = window.resolve(store)?;
    let snapshot = store.snapshot()?;
    let places = Places::of(&snapshot);
    let planned = planned(store, &snapshot, &places, by, from, to, filter)?;
    let got = delivered(ledger, &places, by, from, to, filter)?;
    let mut out = planned;
    for key in got.keys() {
        out.entry(key.clone()).or_default();
    }
    Ok(out
        .into_iter()
        .map(|(id, (detail, planned))| {
            let (delivered, partial, failed) = got.get(&id).copied().unwrap_or_default();
            ReportRow {
                compliance_pct: compliance(planned, delivered),
                id,
                detail,
                planned,
                delivered,
                partial,
                failed,
            }
        })
        .collect())
}

/// Planned per key of `by`, with the detail column; every venue (district) inside the
/// filter has a row even when nothing was planned there.
fn planned(
    store: &dyn Store,
    snapshot: &Snapshot,
    places: &Places,
    by: By,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    filter: &Filter,
) -> anyhow::Result<BTreeMap<String, (String, u64)>> {
    let mut out: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let live = snapshot
        .venues
        .values()
        .filter(|v| filter.campaign.is_none() && filter.keeps_venue(places, &v.spec.id));
    match by {
        By::District => {
            let mut venues: BTreeMap<&str, u64> = BTreeMap::new();
            for v in live {
                *venues.entry(places.district_of(&v.spec.id)).or_default() += 1;
            }
            for (d, n) in venues {
                out.insert(d.to_owned(), (n.to_string(), 0));
            }
        }
        By::Dim(Dimension::Venue) => {
            for v in live {
                out.insert(v.spec.id.clone(), (v.spec.venue_type.clone(), 0));
            }
        }
        By::Dim(_) => {}
    }
    let keep = |p: &crate::planned::Place| filter.keeps_place(p);
    crate::planned::each_count(store, snapshot, from, to, &keep, &mut |place, counts| {
        if by == By::Dim(Dimension::Screen) && filter.campaign.is_none() {
            out.entry(place.screen_id.clone())
                .or_insert_with(|| (place.venue_id.clone(), 0));
        }
        let wanted = counts.totals.iter().filter(|(campaign, _, _)| {
            filter
                .campaign
                .as_deref()
                .is_none_or(|want| want == &**campaign)
        });
        let mut add = |key: &str, detail: &str, n: u64| match out.get_mut(key) {
            Some(e) => e.1 += n,
            None => {
                out.insert(key.to_owned(), (detail.to_owned(), n));
            }
        };
        // A key per place: one look-up for the place's sum (a city has tens of thousands of
        // keys, and a place dozens of totals).
        let per_place = match by {
            By::District => Some((place.district.as_deref().unwrap_or(NO_DISTRICT), "")),
            By::Dim(Dimension::Venue) => Some((place.venue_id.as_str(), place.venue_type.as_str())),
            By::Dim(Dimension::Screen) => Some((place.screen_id.as_str(), place.venue_id.as_str())),
            By::Dim(Dimension::Campaign | Dimension::Creative) => None,
        };
        match per_place {
            Some((key, detail)) => {
                let mut sum = None;
                for (_, _, n) in wanted {
                    *sum.get_or_insert(0) += n;
                }
                if let Some(n) = sum {
                    add(key, detail, n);
                }
            }
            None => {
                for (campaign, creative, n) in wanted {
                    let key = if by == By::Dim(Dimension::Campaign) {
                        campaign
                    } else {
                        creative
                    };
                    add(key, "", *n);
                }
            }
        }
    })?;
    Ok(out)
}

/// Delivered (complete, partial, failed) per key of `by` inside the filter.
fn delivered(
    ledger: &dyn LedgerStore,
    places: &Places,
    by: By,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    filter: &Filter,
) -> anyhow::Result<BTreeMap<String, (u64, u64, u64)>> {
    let rollups = filter.district.is_none() && filter.campaign.is_none();
    if rollups {
        let (venue, screen) = (filter.venue.as_deref(), filter.screen.as_deref());
        return Ok(match by {
            By::Dim(dim) => crate::report::delivered(ledger, dim, from, to, venue, screen)?,
            By::District => {
                let mut out: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
                let per_venue =
                    crate::report::delivered(ledger, Dimension::Venue, from, to, venue, screen)?;
                for (v, (c, p, f)) in per_venue {
                    let e = out.entry(places.district_of(&v).to_owned()).or_default();
                    *e = (e.0 + c, e.1 + p, e.2 + f);
                }
                out
            }
        });
    }
    let mut out: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    ledger.plays(&filter.query(from, to), &mut |r| {
        if !filter.keeps_record(places, r) {
            return Ok(());
        }
        let key = match by {
            By::District => places.district_of(&r.venue_id),
            By::Dim(Dimension::Venue) => &r.venue_id,
            By::Dim(Dimension::Screen) => &r.screen_id,
            By::Dim(Dimension::Campaign) => &r.campaign_id,
            By::Dim(Dimension::Creative) => &r.creative_id,
        };
        let e = out.entry(key.to_owned()).or_default();
        match r.status {
            PlayStatus::Complete => e.0 += 1,
            PlayStatus::Partial => e.1 += 1,
            PlayStatus::Failed => e.2 += 1,
        }
        Ok(())
    })?;
    Ok(out)
}

/// A report as `GET /api/v1/reports/{kind}` gives it: the plays export when `by` is
/// `None`, else planned against delivered per key of `by`, inside `filter`.
pub fn render(
    store: &dyn Store,
    by: Option<By>,
    window: &Window,
    filter: &Filter,
    format: Format,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let ledger = store.ledger();
    match by {
        None => {
            let places = Places::of(&*store.snapshot()?);
            let keep = |r: &PlayRecord| filter.keeps_record(&places, r);
            crate::report::write_plays_where(
                store,
                &*ledger,
                window,
                filter.venue.as_deref(),
                filter.screen.as_deref(),
                &keep,
                format,
                out,
            )
            .map(|_| ())
        }
        Some(by) => {
            let rows = rows(store, &*ledger, by, window, filter)?;
            crate::report::write_rows_named(by.name(), by.detail(), &rows, format, out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::redb::ledger::testkit::{at, key_ring, ledger, Agent};
    use crate::store::redb::ledger::{Incoming, Ledger};

    /// Venues v1 (district d1: screens s1, s2) and v2 (d2: s3); campaigns c1 everywhere,
    /// c2 at v1; one partial play. The plays of 09:00 to 12:59.
    fn fleet() -> (tempfile::TempDir, Ledger, Places) {
        let (dir, l) = ledger();
        let mut s1 = Agent::new(1, "s1", "v1");
        let mut s2 = Agent::new(2, "s2", "v1");
        let mut s3 = Agent::new(3, "s3", "v2");
        let b1 = vec![
            s1.play("c1", "k1", at(9, 0)),
            s1.play("c2", "k2", at(9, 30)),
            PlayRecord {
                status: PlayStatus::Partial,
                ..s1.play("c1", "k1", at(10, 59))
            },
        ];
        let b2 = vec![s2.play("c2", "k2", at(10, 15))];
        let b3 = vec![
            s3.play("c1", "k1", at(10, 5)),
            s3.play("c1", "k1", at(12, 0)),
        ];
        let incoming = [
            ("s1", s1.batch(b1)),
            ("s2", s2.batch(b2)),
            ("s3", s3.batch(b3)),
        ]
        .map(|(s, raw)| Incoming {
            topic_screen: s.into(),
            raw,
        });
        l.ingest(&incoming, &key_ring(&[&s1, &s2, &s3])).unwrap();
        let places = Places {
            district: [("v1", "d1"), ("v2", "d2")]
                .map(|(v, d)| (v.to_owned(), d.to_owned()))
                .into(),
            venue: [("s1", "v1"), ("s2", "v1"), ("s3", "v2")]
                .map(|(s, v)| (s.to_owned(), v.to_owned()))
                .into(),
        };
        (dir, l, places)
    }

    /// Delivered per key as `(key, complete, partial)`.
    fn check(l: &Ledger, places: &Places, by: By, filter: Filter, expect: &[(&str, u64, u64)]) {
        let got: Vec<(String, u64, u64)> = delivered(l, places, by, at(9, 0), at(13, 0), &filter)
            .unwrap()
            .into_iter()
            .map(|(k, (c, p, _))| (k, c, p))
            .collect();
        let expect: Vec<(String, u64, u64)> = expect
            .iter()
            .map(|(k, c, p)| (k.to_string(), *c, *p))
            .collect();
        assert_eq!(got, expect, "{by:?} {filter:?}");
    }

    fn only(district: Option<&str>, screen: Option<&str>, campaign: Option<&str>) -> Filter {
        Filter {
            district: district.map(str::to_owned),
            venue: None,
            screen: screen.map(str::to_owned),
            campaign: campaign.map(str::to_owned),
        }
    }

    #[test]
    fn districts_from_the_rollups_and_from_the_records_agree() {
        let (_dir, l, places) = fleet();
        // Rollups (no filter) per district.
        check(
            &l,
            &places,
            By::District,
            Filter::default(),
            &[("d1", 3, 1), ("d2", 2, 0)],
        );
        // Records (a district filter) per district, venue and screen.
        check(
            &l,
            &places,
            By::District,
            only(Some("d1"), None, None),
            &[("d1", 3, 1)],
        );
        check(
            &l,
            &places,
            By::Dim(Dimension::Venue),
            only(Some("d2"), None, None),
            &[("v2", 2, 0)],
        );
        check(
            &l,
            &places,
            By::Dim(Dimension::Screen),
            only(Some("d1"), None, None),
            &[("s1", 2, 1), ("s2", 1, 0)],
        );
    }

    #[test]
    fn a_campaign_filter_counts_only_its_plays() {
        let (_dir, l, places) = fleet();
        check(
            &l,
            &places,
            By::District,
            only(None, None, Some("c2")),
            &[("d1", 2, 0)],
        );
        check(
            &l,
            &places,
            By::Dim(Dimension::Screen),
            only(None, Some("s1"), Some("c1")),
            &[("s1", 1, 1)],
        );
        // A screen filter alone stays on the rollups.
        check(
            &l,
            &places,
            By::Dim(Dimension::Campaign),
            only(None, Some("s1"), None),
            &[("c1", 1, 1), ("c2", 1, 0)],
        );
    }

    #[test]
    fn a_venue_without_a_district_is_named_none() {
        let places = Places::default();
        assert_eq!(places.district_of("anywhere"), NO_DISTRICT);
        let f = only(Some(NO_DISTRICT), None, None);
        assert!(f.keeps_venue(&places, "anywhere"));
        assert!(!only(Some("d1"), None, None).keeps_venue(&places, "anywhere"));
    }
}
