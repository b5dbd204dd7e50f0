//! Reports from stored counts equal reports from re-planning the documents in force
//! ([`crate::report::planned_from_documents`], the way reports were made before counts
//! were kept): on the Beijing scenario and a generated city, for windows whose ends cut
//! hours, across a superseding document issued inside an hour and an emergency, past the
//! counted validity, and on a store whose first documents were issued without counts.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, TimeDelta, Utc};

use playlists::wire::Keypair;

use crate::catalogue::CatalogueService;
use crate::drill::{By, Filter, Places};
use crate::emergency::{Request, StartRequest};
use crate::report::Window;
use crate::store::{
    Dimension, DocumentStore, IssuedDocument, PlannedChange, Published, SharedStore, StoreError,
};

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

struct Env {
    _dir: tempfile::TempDir,
    store: SharedStore,
    service: CatalogueService,
    key: Keypair,
}

/// The Beijing scenario, or a city generated from it with `screens` screens.
fn env(screens: Option<usize>) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let base =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/beijing-role-models");
    let scenario = match screens {
        None => base,
        Some(n) => {
            let city = dir.path().join("city");
            crate::generate::generate(
                &base,
                &city,
                &crate::generate::GenerateOptions {
                    venues: n / 3,
                    screens: n,
                    seed: 11,
                },
            )
            .unwrap();
            city
        }
    };
    let data = dir.path().join("data");
    let store = crate::store::open(&data, crate::store::OpenMode::Create).unwrap();
    let service = CatalogueService::new(store.clone());
    crate::import::import(&service, &scenario, &crate::import::ImportOptions::admin()).unwrap();
    let key = crate::keys::server_key(&data).unwrap();
    Env {
        _dir: dir,
        store,
        service,
        key,
    }
}

/// A store that keeps documents as stores did before planned counts (none kept).
struct WithoutCounts<'a>(&'a dyn DocumentStore);

impl DocumentStore for WithoutCounts<'_> {
    fn published(&self) -> Result<HashMap<String, Published>, StoreError> {
        self.0.published()
    }
    fn record_issued(&self, docs: &[IssuedDocument]) -> Result<(), StoreError> {
        self.0.record_issued(docs)
    }
    fn issued(&self, screen: &str) -> Result<Vec<IssuedDocument>, StoreError> {
        self.0.issued(screen)
    }
}

impl Env {
    /// Issues the documents of `screens` (all when `None`) at `at`, valid for `ttl`.
    fn publish(
        &self,
        screens: Option<&BTreeSet<String>>,
        at: DateTime<Utc>,
        ttl: TimeDelta,
        counts: bool,
    ) -> usize {
        let catalogue = self.service.catalogue().unwrap();
        let without = WithoutCounts(&*self.store);
        let store: &dyn DocumentStore = if counts { &*self.store } else { &without };
        let out = crate::publisher::build(
            store,
            &catalogue,
            screens,
            &self.key,
            at,
            ttl,
            at,
            &crate::renditions::RenditionMap::default(),
        )
        .unwrap();
        out.iter().filter(|o| o.changed).count()
    }

    /// An emergency on the screens of `district` from `at` to `until`; its screens'
    /// documents issued at `at`.
    fn emergency(&self, district: &str, at: DateTime<Utc>, until: DateTime<Utc>) -> usize {
        let r = Request {
            catalogue: &self.service,
            key: &self.key,
            author: "olga",
            now: at,
            confirm_within: None,
            renditions: None,
        };
        let a = crate::emergency::start(
            r,
            StartRequest {
                id: format!("alert-{district}"),
                name: "drill".into(),
                creatives: vec!["alert-epidemic-l".into()],
                target: serde_json::json!({ "districts": [district] }),
                until: Some(until),
            },
        )
        .unwrap();
        assert!(!a.affected.is_empty());
        self.publish(Some(&a.affected), at, TimeDelta::hours(24), true)
    }

    /// Every report over `[from, to)` from stored counts equals the one re-planned from the
    /// documents; returns how the window was answered.
    fn check(&self, from: &str, to: &str) -> crate::planned::Answered {
        let (from, to) = (t(from), t(to));
        let store = &*self.store;
        let mut total = 0;
        for dim in [
            Dimension::Venue,
            Dimension::Screen,
            Dimension::Campaign,
            Dimension::Creative,
        ] {
            let stored = crate::report::planned(store, dim, from, to, None).unwrap();
            let planned =
                crate::report::planned_from_documents(store, dim, from, to, None).unwrap();
            assert_eq!(stored, planned, "{dim:?} over {from}..{to}");
            // The drill-down's rows of the same dimension, whole and narrowed to each
            // campaign (its rows then sum to the campaign's total).
            let window = Window {
                from: Some(from),
                to: Some(to),
            };
            let drill = |filter: &Filter| -> BTreeMap<String, u64> {
                crate::drill::rows(store, &*store.ledger(), By::Dim(dim), &window, filter)
                    .unwrap()
                    .into_iter()
                    .map(|r| (r.id, r.planned))
                    .collect()
            };
            let whole: BTreeMap<String, u64> =
                planned.iter().map(|(k, (_, n))| (k.clone(), *n)).collect();
            assert_eq!(drill(&Filter::default()), whole, "drill {dim:?}");
            if dim == Dimension::Campaign {
                for (campaign, n) in &whole {
                    for by in [Dimension::Venue, Dimension::Screen, Dimension::Creative] {
                        let narrowed = crate::drill::rows(
                            store,
                            &*store.ledger(),
                            By::Dim(by),
                            &window,
                            &Filter {
                                campaign: Some(campaign.clone()),
                                ..Filter::default()
                            },
                        )
                        .unwrap();
                        let sum: u64 = narrowed.iter().map(|r| r.planned).sum();
                        assert_eq!(sum, *n, "{campaign} by {by:?} over {from}..{to}");
                    }
                }
            }
            if dim == Dimension::Venue {
                total = planned.values().map(|v| v.1).sum::<u64>();
                // Narrowed to one venue.
                let venue = planned.iter().find(|v| v.1 .1 > 0).unwrap().0.clone();
                assert_eq!(
                    crate::report::planned(store, dim, from, to, Some(&venue)).unwrap(),
                    crate::report::planned_from_documents(store, dim, from, to, Some(&venue))
                        .unwrap(),
                    "venue {venue}"
                );
                // Per district, from the venues' districts.
                let places = Places::of(&store.snapshot().unwrap());
                let mut districts: BTreeMap<String, u64> = BTreeMap::new();
                for (v, (_, n)) in &planned {
                    let d = places.district.get(v).cloned().unwrap_or("(none)".into());
                    *districts.entry(d).or_default() += n;
                }
                let window = Window {
                    from: Some(from),
                    to: Some(to),
                };
                let rows = crate::drill::rows(
                    store,
                    &*store.ledger(),
                    By::District,
                    &window,
                    &Filter::default(),
                )
                .unwrap();
                let got: BTreeMap<String, u64> =
                    rows.into_iter().map(|r| (r.id, r.planned)).collect();
                assert_eq!(got, districts, "districts over {from}..{to}");
            }
        }
        assert!(total > 0, "nothing planned over {from}..{to}");
        crate::planned::each_count(
            store,
            &store.snapshot().unwrap(),
            from,
            to,
            &|_| true,
            &mut |_, _| {},
        )
        .unwrap()
    }

    /// The distinct plans of the parts overlapping `[from, to)`.
    fn plans_over(&self, from: &str, to: &str) -> usize {
        let ps = self.store.planned_store().unwrap();
        let parts = ps.planned_parts(None, t(from), t(to)).unwrap();
        parts.iter().map(|p| p.plan).collect::<BTreeSet<_>>().len()
    }

    /// Keeps every plan again without its source document, as plans were kept before
    /// sources (its parts renamed to the plan's new id).
    fn forget_sources(&self) {
        let ps = self.store.planned_store().unwrap();
        let parts = ps
            .planned_parts(None, DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC)
            .unwrap();
        let mut change = PlannedChange::default();
        let mut renamed: HashMap<u64, u64> = HashMap::new();
        for mut part in parts {
            change.remove.push((part.screen_id.clone(), part.from));
            let id = *renamed.entry(part.plan).or_insert_with(|| {
                let mut plan = ps
                    .plan_counts(part.plan, i64::MIN, i64::MAX)
                    .unwrap()
                    .unwrap();
                assert!(plan.source.is_some(), "a plan kept without its source");
                plan.source = None;
                let id = crate::store::plan_id(&serde_json::to_vec(&plan).unwrap());
                change.plans.push((id, plan));
                id
            });
            part.plan = id;
            change.parts.push(part);
        }
        ps.record_issued_planned(&[], &change).unwrap();
    }
}

/// The Beijing scenario: documents issued on the hour, superseded inside an hour by an
/// emergency's, then counted past their validity.
#[test]
fn beijing_reports_from_counts_equal_replanned_reports() {
    let e = env(None);
    assert!(e.publish(None, t("2023-12-20T00:00:00Z"), TimeDelta::hours(24), true) > 0);
    assert!(
        e.emergency(
            "xicheng",
            t("2023-12-20T03:17:30Z"),
            t("2023-12-20T05:41:10Z")
        ) > 0
    );

    // Whole hours inside the counted validity: the store answers alone.
    let a = e.check("2023-12-20T01:00:00Z", "2023-12-20T09:00:00Z");
    assert!(a.stored > 0 && a.planned == 0, "{a:?}");
    // Ends inside hours, across the emergency's document and its flight: the cut hours
    // planned from the plans' sources, one document per plan at most.
    let a = e.check("2023-12-20T00:20:07Z", "2023-12-20T05:43:31Z");
    assert!(a.stored > 0 && a.planned > 0, "{a:?}");
    assert!(
        a.documents > 0
            && a.documents <= e.plans_over("2023-12-20T00:20:07Z", "2023-12-20T05:43:31Z"),
        "{a:?}"
    );
    e.check("2023-12-20T03:10:00Z", "2023-12-20T03:20:00Z");
    // The emergency plays from its start to its end only.
    let campaign = |from: &str, to: &str| {
        crate::report::planned(&*e.store, Dimension::Campaign, t(from), t(to), None)
            .unwrap()
            .get("alert-xicheng")
            .map_or(0, |v| v.1)
    };
    assert!(campaign("2023-12-20T03:17:30Z", "2023-12-20T03:20:00Z") > 0);
    assert_eq!(campaign("2023-12-20T00:00:00Z", "2023-12-20T03:17:30Z"), 0);
    assert_eq!(campaign("2023-12-20T05:42:00Z", "2023-12-20T09:00:00Z"), 0);
    // Before the first documents (a first version counts from the beginning) and past
    // the counted validity of every document.
    let a = e.check("2023-12-19T21:00:00Z", "2023-12-21T06:30:00Z");
    assert!(a.stored > 0 && a.planned > 0, "{a:?}");
}

/// A generated city of 240 screens in 16 districts, republished inside an hour.
#[test]
fn city_reports_from_counts_equal_replanned_reports() {
    let e = env(Some(240));
    e.publish(None, t("2023-12-20T00:00:00Z"), TimeDelta::hours(12), true);
    let district = {
        let snapshot = e.store.snapshot().unwrap();
        snapshot
            .venues
            .values()
            .find_map(|v| v.spec.district.clone())
            .unwrap()
    };
    assert!(
        e.emergency(
            &district,
            t("2023-12-20T02:40:00Z"),
            t("2023-12-20T04:05:00Z")
        ) > 0
    );
    let a = e.check("2023-12-20T01:00:00Z", "2023-12-20T08:00:00Z");
    assert!(a.planned == 0 && a.documents == 0, "{a:?}");
    // Ends inside hours: every screen's two cut hours planned from a document per plan,
    // not from the 240 screens' documents.
    let (from, to) = ("2023-12-20T01:20:00Z", "2023-12-20T07:40:00Z");
    let a = e.check(from, to);
    let plans = e.plans_over(from, to);
    assert!(a.planned >= 480, "{a:?}");
    assert!(
        a.documents > 0 && a.documents <= plans && plans < 120,
        "{a:?}: {plans} plans"
    );
    // Past the counted validity every screen's documents are read.
    let a = e.check("2023-12-20T01:59:59Z", "2023-12-20T14:00:01Z");
    assert!(a.documents >= 240, "{a:?}");

    // Plans kept before sources were: the cut hours planned from every screen's documents,
    // with the same answers.
    e.forget_sources();
    let a = e.check(from, to);
    assert!(a.documents >= 240, "{a:?}");
}

/// A store whose documents were issued before counts were kept reports by planning them;
/// documents issued afterwards are counted, and the two join exactly.
#[test]
fn documents_issued_without_counts_are_planned() {
    let e = env(None);
    e.publish(None, t("2023-12-20T00:00:00Z"), TimeDelta::hours(24), false);
    let a = e.check("2023-12-20T01:00:00Z", "2023-12-20T07:00:00Z");
    assert!(a.stored == 0 && a.planned > 0, "{a:?}");
    assert!(
        e.emergency(
            "xicheng",
            t("2023-12-20T03:17:30Z"),
            t("2023-12-20T05:41:10Z")
        ) > 0
    );
    let a = e.check("2023-12-20T01:00:00Z", "2023-12-20T07:00:00Z");
    assert!(a.stored > 0 && a.planned > 0, "{a:?}");
    e.check("2023-12-20T02:30:00Z", "2023-12-20T04:30:00Z");
}
