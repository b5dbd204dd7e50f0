//! Planning and reporting a week at city scale, before and after planning once per
//! distinct schedule. A city is generated from the Beijing scenario (`signage scenario
//! generate`'s generator: `PLAN_SCREENS` screens, default 11,000, at about 3 venues per 11
//! screens), imported into a fresh redb store, and every screen's document issued. Prints:
//! - plan a week: every screen's plays for the week, counted per hour, campaign and
//!   creative, one plan per screen (before) and one per distinct schedule (now);
//! - a report of the week (planned against delivered per venue, as `signage report venues`
//!   computes it): the previous way (every play of every screen's own plan through a
//!   callback) and now (`report::rows`);
//! - `signage plan` of a day as CSV to /dev/null (its output grows with the screens: a
//!   week of 11,000 screens is about 196 million rows).
//!
//! `cargo bench -p server --bench plan_week` (`PLAN_SCREENS=2000` for a district).

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};

use playlists::{Planner, Tally};
use server::import::ImportOptions;
use server::store::{Dimension, OpenMode};

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
    let data = tmp.path().join("data");
    let store = server::store::open(&data, OpenMode::Create)?;
    let service = server::catalogue::CatalogueService::new(store.clone());
    let loaded = server::import::load(&city)?;
    server::import::import_loaded(&service, &loaded, &ImportOptions::admin())?;
    let (from, to) = (
        t("2023-12-17T00:00:00+08:00"),
        t("2023-12-24T00:00:00+08:00"),
    );
    let catalogue = service.catalogue()?;
    let key = server::keys::server_key(&data)?;
    server::publisher::build(
        &*store,
        &catalogue,
        None,
        &key,
        from,
        TimeDelta::hours(24 * 30),
        from,
        &server::renditions::RenditionMap::default(),
    )?;
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
    }
    println!(
        "  report of the week per venue ({} rows): every play through a callback {before:.2} s; shared plans' tallies {now:.3} s",
        rows.len()
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
