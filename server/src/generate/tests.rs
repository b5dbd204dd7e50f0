//! The generator against the Beijing scenario: what it writes loads and validates, targets
//! still match, and a seed fixes the bytes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::*;

fn beijing() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/beijing-role-models")
}

fn opts(venues: usize, screens: usize, seed: u64) -> GenerateOptions {
    GenerateOptions {
        venues,
        screens,
        seed,
    }
}

/// Beijing's bounding box, with a little margin.
fn in_beijing(lat: f64, lon: f64) -> bool {
    (39.40..=41.10).contains(&lat) && (115.40..=117.55).contains(&lon)
}

#[test]
fn a_generated_city_loads_and_every_target_still_matches() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("city");
    let summary = generate(&beijing(), &out, &opts(600, 2_000, 7)).unwrap();
    assert_eq!((summary.venues, summary.screens), (600, 2_000));
    assert_eq!((summary.creatives, summary.campaigns), (46, 6));
    assert_eq!(summary.media_files, 46);
    assert_eq!(summary.screens_by_district.len(), 16, "{summary:?}");
    assert_eq!(
        summary.screens_by_district.values().sum::<usize>() + summary.moving_screens,
        2_000
    );

    let loaded = crate::import::load(&out).unwrap();
    let c = &loaded.scenario.catalogue;
    assert_eq!((c.venues.len(), c.screens.len()), (600, 2_000));
    // The emergency of the events is a campaign too.
    assert_eq!((c.creatives.len(), c.campaigns.len()), (46, 7));
    assert_eq!(loaded.file.events.len(), 2);

    // Every screen has something to play, and every campaign somewhere to play.
    let mut targeted = BTreeSet::new();
    for s in &c.screens {
        let schedule = c.schedule_for(&s.id).unwrap();
        assert!(
            schedule.campaigns.iter().any(|k| !k.creatives.is_empty()),
            "screen {} has no campaign with a fitting creative",
            s.id
        );
        for k in schedule
            .campaigns
            .iter()
            .filter(|k| !k.creatives.is_empty())
        {
            targeted.insert(k.id.as_str().to_owned());
        }
    }
    let campaigns: BTreeSet<String> = c
        .campaigns
        .iter()
        .map(|k| k.id.as_str().to_owned())
        .collect();
    assert_eq!(targeted, campaigns);

    let generated: Vec<_> = loaded
        .file
        .venues
        .iter()
        .filter(|v| v.id.starts_with("gen-"))
        .collect();
    assert_eq!(generated.len(), 600 - 42);
    let types: BTreeSet<&str> = generated.iter().map(|v| v.venue_type.as_str()).collect();
    assert_eq!(types.len(), 7, "{types:?}");
    let residential = generated
        .iter()
        .filter(|v| v.venue_type == "residential")
        .count();
    assert!(residential * 2 > generated.len(), "{residential}");
    for v in &generated {
        match (&v.district, &v.location) {
            (Some(_), Some(l)) => assert!(in_beijing(l.lat, l.lon), "{}: {l:?}", v.id),
            (None, None) => assert_eq!(v.venue_type, "transit.subway.interior"),
            _ => panic!("{}: a district and a location go together", v.id),
        }
        // The OpenOOH id is the one the base scenario gives the type.
        let base = loaded.file.venues[..42]
            .iter()
            .find(|b| b.venue_type == v.venue_type)
            .unwrap();
        assert_eq!(v.openooh_id, base.openooh_id, "{}", v.id);
    }
}

#[test]
fn a_seed_fixes_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, seed| {
        let out = dir.path().join(name);
        generate(&beijing(), &out, &opts(300, 900, seed)).unwrap();
        std::fs::read(out.join("scenario.json")).unwrap()
    };
    let a = run("a", 42);
    assert_eq!(a, run("b", 42));
    assert_ne!(a, run("c", 43));
}

#[test]
fn the_districts_are_the_base_scenarios() {
    let text = std::fs::read_to_string(beijing().join("scenario.json")).unwrap();
    let file = scenario::parse(&text).unwrap();
    let base: BTreeSet<&str> = file
        .venues
        .iter()
        .filter_map(|v| v.district.as_deref())
        .collect();
    let ours: BTreeSet<&str> = DISTRICTS.iter().map(|d| d.name).collect();
    assert_eq!(ours, base);
    for d in &DISTRICTS {
        let mut rng = SplitMix64::new(1);
        for _ in 0..100 {
            let l = d.point(&mut rng);
            assert!(in_beijing(l.lat, l.lon), "{}: {} {}", d.name, l.lat, l.lon);
        }
    }
}

#[test]
fn bad_counts_and_a_used_directory_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let check = |o: GenerateOptions, expect: &str| {
        let err = generate(&beijing(), &dir.path().join("x"), &o).unwrap_err();
        assert_eq!(err.to_string(), expect);
    };
    check(
        opts(10, 100, 1),
        "--venues 10: at least 42 needed (the base scenario's venues are all kept, so every campaign target still matches)",
    );
    check(
        opts(100, 100, 1),
        "--screens 100: at least 125 needed for 100 venues (the base scenario's screens and one for every generated venue)",
    );
    check(
        opts(42, 68, 1),
        "--screens 68: more screens than the base scenario's 67 need generated venues to stand in: raise --venues above 42",
    );
    assert!(!dir.path().join("x").exists(), "nothing written");
    std::fs::write(dir.path().join("stray"), b"x").unwrap();
    let err = generate(&beijing(), dir.path(), &opts(42, 67, 1)).unwrap_err();
    assert!(matches!(err, GenerateError::OutNotEmpty { .. }), "{err}");
}

#[test]
fn weighted_picks_follow_their_weights() {
    let mut rng = SplitMix64::new(9);
    let mut counts = [0u32; 3];
    for _ in 0..30_000 {
        counts[rng.weighted(&[1, 0, 2])] += 1;
    }
    assert_eq!(counts[1], 0);
    assert!((9_500..10_500).contains(&counts[0]), "{counts:?}");
}

/// The figure for the README: `cargo test --release -p server city_figures -- --ignored
/// --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn city_figures() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("city");
    let started = Instant::now();
    generate(&beijing(), &out, &opts(2_600, 11_000, 2023)).unwrap();
    let generated = started.elapsed();
    let started = Instant::now();
    let loaded = crate::import::load(&out).unwrap();
    let load = started.elapsed();
    assert_eq!(loaded.scenario.catalogue.screens.len(), 11_000);
    let bytes = std::fs::metadata(out.join("scenario.json")).unwrap().len();
    println!(
        "2,600 venues, 11,000 screens: generated in {generated:.2?} ({bytes} bytes of scenario.json), loaded and validated in {load:.2?}"
    );
}
