//! Planning and reporting a week at city scale, before and after planning once per
//! distinct schedule. A city is generated from the Beijing scenario (`signage scenario
//! generate`'s generator: `PLAN_SCREENS` screens, default 11,000, at about 3 venues per 11
//! screens), imported into a fresh redb store, and every screen's document issued. Prints:
//! - plan a week: every screen's plays for the week, counted per hour, campaign and
//!   creative, one plan per screen (before) and one per distinct schedule (now);
//! - issuing every screen's document (built, signed and kept, as at start) with planned
//!   counts and, in a second store, without (as before counts were kept), and the store's
//!   size after each;
//! - a report of the week (planned against delivered per venue, as `signage report venues`
//!   computes it): every play of every screen's own plan through a callback (first),
//!   re-planning the documents once per distinct plan (counts not kept), and now from the
//!   stored counts (`report::rows`); the same for a window whose ends cut hours (those
//!   hours planned), six hours, and per district;
//! - `signage plan` of a day as CSV to /dev/null (its output grows with the screens: a
//!   week of 11,000 screens is about 196 million rows).
//!
//! `cargo bench -p server --bench plan_week` (`PLAN_SCREENS=2000` for a district).

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};

use playlists::{Planner, Tally};
use server::drill::{By, Filter};
use server::import::ImportOptions;
use server::report::Window;
use server::store::{Dimension, DocumentStore, IssuedDocument, OpenMode, Published, StoreError};

/// Keeps documents as stores did before planned counts (none kept).
struct WithoutCounts<'a>(&'a dyn DocumentStore);

impl DocumentStore for WithoutCounts<'_> {
    fn published(&self) -> Result<std::collections::HashMap<String, Published>, StoreError> {
        self.0.published()
    }
    fn record_issued(&self, docs: &[IssuedDocument]) -> Result<(), StoreError> {
        self.0.record_issued(docs)
    }
    fn issued(&self, screen: &str) -> Result<Vec<IssuedDocument>, StoreError> {
        self.0.issued(screen)
    }
}

fn file_mib(dir: &std::path::Path) -> f64 {
    std::fs::metadata(dir.join("signage.redb")).map_or(0.0, |m| m.len() as f64 / 1048576.0)
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("time")
        .with_timezone(&Utc)
}

fn best_of<T>(runs: usize, mut f: impl FnMut() -> anyhow::Result<T>) -> anyhow::Result<(T, f64)> {
    let mut best = f64::MAX;
    let mut out = None;
    for _ in 0..runs {
        let start = Instant::now();
        let v = f()?;
        best = best.min(start.elapsed().as_secs_f64());
        out = Some(v);
    }
    Ok((out.expect("at least one run"), best))
}

fn main() -> anyhow::Result<()> {
    let screens: usize = std::env::var("PLAN_SCREENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(11_000);
    let venues = (screens * 3 / 11).max(42);
    let base =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/beijing-role-models");
    let tmp = tempfile::tempdir()?;
    let city = tmp.path().join("city");
    server::generate::generate(
        &base,
        &city,
        &server::generate::GenerateOptions {
            venues,
            screens,
            seed: 1,
        },
    )?;
    let (from, to) = (
        t("2023-12-17T00:00:00+08:00"),
        t("2023-12-24T00:00:00+08:00"),
    );
    let loaded = server::import::load(&city)?;
    // Every document issued at the week's start, valid for the default week: with counts
    // (the store reports read) and, in a second store, without.
    let issue = |name: &str, counts: bool| -> anyhow::Result<_> {
        let data = tmp.path().join(name);
        let store = server::store::open(&data, OpenMode::Create)?;
        let service = server::catalogue::CatalogueService::new(store.clone());
        server::import::import_loaded(&service, &loaded, &ImportOptions::admin())?;
        let catalogue = service.catalogue()?;
        let key = server::keys::server_key(&data)?;
        let without = WithoutCounts(&*store);
        let docs: &dyn DocumentStore = if counts { &*store } else { &without };
        let start = Instant::now();
        server::publisher::build(
            docs,
            &catalogue,
            None,
            &key,
            from,
            TimeDelta::hours(168),
            from,
            &server::renditions::RenditionMap::default(),
        )?;
        let took = start.elapsed().as_secs_f64();
        Ok((store, catalogue, took, file_mib(&data)))
    };
    let (bare, _, bare_took, bare_mib) = issue("bare", false)?;
    let (store, catalogue, took, mib) = issue("data", true)?;
    println!(
        "  issue every document: without counts {bare_took:.2} s, store {bare_mib:.0} MiB; with counts {took:.2} s, store {mib:.0} MiB"
    );
    let schedules = server::plan::schedules(&catalogue, &[])?;
    println!(
        "plan_week bench: {} screens at {} venues, the week from {from}",
        schedules.len(),
        catalogue.venues.len()
    );

    // Plan a week, counted.
    let (plays_before, before) = best_of(1, || {
        use rayon::prelude::*;
        Ok(schedules
            .par_iter()
            .map(|s| Tally::of(&Planner::new(s), from, to).plays())
            .sum::<u64>())
    })?;
    let items: Vec<_> = schedules.iter().map(|s| (s.clone(), from, to)).collect();
    let ((plays_now, sharing), now) = best_of(3, || {
        let (tallies, sharing) = server::shared_plan::tallies(&items);
        Ok((tallies.iter().map(|t| t.plays()).sum::<u64>(), sharing))
    })?;
    assert_eq!(plays_before, plays_now, "shared plans count the same plays");
    println!(
        "  plan a week: {plays_now} plays; one plan per screen {before:.2} s; one per distinct schedule ({} plans for {} screens) {now:.3} s",
        sharing.planned, sharing.items
    );

    // A report of the week, per venue.
    let window = server::report::Window {
        from: Some(from),
        to: Some(to),
    };
    let ledger = store.ledger();
    let (old, before) = best_of(1, || {
        let mut out: BTreeMap<String, u64> = BTreeMap::new();
        server::report::each_planned(&*store, from, to, &|_| true, &mut |s, p| {
            if p.is_some() {
                *out.entry(s.venue.id.to_string()).or_default() += 1;
            }
        })?;
        Ok(out)
    })?;
    let (replanned, _) = best_of(1, || {
        server::report::planned_from_documents(&*bare, Dimension::Venue, from, to, None)
    })?;
    let (_, replan) = best_of(3, || {
        server::report::rows(&*bare, &*bare.ledger(), Dimension::Venue, &window, None)
    })?;
    let (rows, now) = best_of(3, || {
        server::report::rows(&*store, &*ledger, Dimension::Venue, &window, None)
    })?;
    for r in &rows {
        assert_eq!(
            old.get(&r.id).copied().unwrap_or(0),
            r.planned,
            "venue {}",
            r.id
        );
        assert_eq!(
            replanned.get(&r.id).map_or(0, |v| v.1),
            r.planned,
            "venue {}",
            r.id
        );
    }
    println!(
        "  report of the week per venue ({} rows): every play through a callback {before:.2} s; re-planning the documents {replan:.3} s; from stored counts {now:.3} s",
        rows.len()
    );
    // Windows whose ends cut hours (those hours are planned), six hours, per district.
    for (name, a, b) in [
        (
            "the week less 20m07s and 13m",
            from + TimeDelta::seconds(1207),
            to - TimeDelta::minutes(13),
        ),
        (
            "six hours",
            from + TimeDelta::hours(30),
            from + TimeDelta::hours(36),
        ),
    ] {
        let w = Window {
            from: Some(a),
            to: Some(b),
        };
        let (stored, now) = best_of(3, || {
            server::report::rows(&*store, &*ledger, Dimension::Venue, &w, None)
        })?;
        let (again, replan) = best_of(1, || {
            server::report::rows(&*bare, &*bare.ledger(), Dimension::Venue, &w, None)
        })?;
        assert_eq!(stored, again, "{name}");
        println!("  report of {name} per venue: re-planning {replan:.3} s; from stored counts {now:.3} s");
    }
    let (districts, now) = best_of(3, || {
        server::drill::rows(&*store, &*ledger, By::District, &window, &Filter::default())
    })?;
    let (again, replan) = best_of(1, || {
        server::drill::rows(
            &*bare,
            &*bare.ledger(),
            By::District,
            &window,
            &Filter::default(),
        )
    })?;
    assert_eq!(districts, again, "districts");
    println!(
        "  report of the week per district ({} rows): re-planning {replan:.3} s; from stored counts {now:.3} s",
        districts.len()
    );

    // `signage plan` of a day as CSV.
    let day = from + TimeDelta::days(1);
    let (rows, csv) = best_of(1, || {
        let mut sink =
            std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create("/dev/null")?);
        Ok(server::plan::write_plan(
            &schedules,
            from,
            day,
            server::plan::Format::Csv,
            &mut sink,
        )?)
    })?;
    println!("  signage plan of a day as CSV to /dev/null: {rows} rows, {csv:.2} s");
    Ok(())
}
