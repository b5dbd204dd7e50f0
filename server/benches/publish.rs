//! Publishing at city scale: the Beijing scenario's venues and screens repeated until there
//! are `PUBLISH_SCREENS` screens (default 11,000; same campaigns and media, the 16
//! districts kept), imported into a fresh redb store. Prints the seconds to build, sign
//! and keep every screen's document at start, to rebuild them all unchanged (a
//! reconnect's resend), and for a campaign edit that targets one district: the screens
//! the catalogue service names as touched, how many got a new version, and the time,
//! against a full rebuild after an edit of the same size; and an all-city emergency: its
//! signed commands, then the documents it changes.
//!
//! `cargo bench -p server --bench publish` (`PUBLISH_SCREENS=2000` for a district).

use std::collections::HashMap;
use std::time::Instant;

use chrono::{TimeDelta, Utc};

use playlists::wire::Keypair;
use server::catalogue::CatalogueService;
use server::import::ImportOptions;
use server::store::{Entity, OpenMode};

fn main() -> anyhow::Result<()> {
    let target: usize = std::env::var("PUBLISH_SCREENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(11_000);
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/beijing-role-models");
    let text = std::fs::read_to_string(dir.join("scenario.json"))?;
    let mut v: serde_json::Value = serde_json::from_str(&text)?;
    let venues = v["venues"].as_array().cloned().unwrap_or_default();
    let screens = v["screens"].as_array().cloned().unwrap_or_default();
    let copies = target.div_ceil(screens.len());
    let (mut all_venues, mut all_screens) = (Vec::new(), Vec::new());
    for i in 0..copies {
        for venue in &venues {
            let mut x = venue.clone();
            x["id"] = format!("{}-c{i}", venue["id"].as_str().unwrap_or_default()).into();
            all_venues.push(x);
        }
        for screen in &screens {
            if all_screens.len() == target {
                break;
            }
            let mut x = screen.clone();
            x["id"] = format!("{}-c{i}", screen["id"].as_str().unwrap_or_default()).into();
            x["venue"] = format!("{}-c{i}", screen["venue"].as_str().unwrap_or_default()).into();
            all_screens.push(x);
        }
    }
    v["venues"] = all_venues.into();
    v["screens"] = all_screens.into();
    // Screen-id targets name the original screens: keep such campaigns out.
    if let Some(cs) = v["campaigns"].as_array_mut() {
        cs.retain(|c| c["target"].get("screens").is_none() && c["target"].get("venues").is_none());
    }
    let mut files = HashMap::new();
    for c in v["creatives"].as_array().cloned().unwrap_or_default() {
        let rel = c["file"].as_str().unwrap_or_default().to_owned();
        files.insert(rel.clone(), std::fs::read(dir.join(&rel))?);
    }
    let tmp = tempfile::tempdir()?;
    let store = server::store::open(tmp.path(), OpenMode::Create)?;
    let catalogue = CatalogueService::new(store.clone());
    let t = Instant::now();
    let loaded = server::import::load_parts(
        std::path::Path::new("city.json"),
        &serde_json::to_string(&v)?,
        files,
    )?;
    server::import::import_loaded(&catalogue, &loaded, &ImportOptions::admin())?;
    let import_s = t.elapsed().as_secs_f64();
    let key = Keypair::from_secret([7; 32]);
    let ttl = TimeDelta::hours(168);
    let build = |screens: Option<&std::collections::BTreeSet<String>>| -> anyhow::Result<(usize, usize, f64)> {
        let cat = catalogue.catalogue()?;
        let t = Instant::now();
        let out = server::publisher::build(
            &*store,
            &cat,
            screens,
            &key,
            Utc::now(),
            ttl,
            Utc::now(),
            &server::renditions::RenditionMap::default(),
        )?;
        let changed = out.iter().filter(|o| o.changed).count();
        Ok((out.len(), changed, t.elapsed().as_secs_f64()))
    };
    let n = catalogue.catalogue()?.screens.len();
    println!(
        "publish bench: {n} screens, {} venues (import and validation {import_s:.2} s)",
        catalogue.catalogue()?.venues.len()
    );
    let (built, changed, s) = build(None)?;
    println!("  start: {built} documents built, {changed} new versions signed and kept: {s:.2} s");
    let (built, changed, s) = build(None)?;
    println!("  resend after a reconnect: {built} documents, {changed} changed: {s:.2} s");

    // A campaign for one district: the service names the screens it touches.
    let edit = |id: &str, district: &str| -> anyhow::Result<(usize, f64)> {
        let t = Instant::now();
        let spec: playlists::scenario::FileCampaign = serde_json::from_value(serde_json::json!({
            "id": id, "name": id, "priority": "high", "weight": 1,
            "flight": {"start": "2023-12-20T00:00:00+08:00", "end": "2023-12-27T00:00:00+08:00"},
            "dayparts": ["* 7-9 * * *"], "target": {"districts": [district]},
            "creatives": ["rm2023-w51-1"]
        }))?;
        let applied = catalogue.change("bench", "bench edit", Utc::now(), |s| {
            let by = server::approval::Actor {
                name: "bench",
                at: Utc::now(),
            };
            s.put(Entity::Campaign(server::approval::new_campaign(
                spec, true, by,
            )));
            Ok::<(), server::catalogue::CatalogueError>(())
        })?;
        Ok((applied.affected.len(), t.elapsed().as_secs_f64()))
    };
    let (touched, change_s) = edit("bench-xicheng", "xicheng")?;
    let affected = {
        let cat = catalogue.catalogue()?;
        cat.screens
            .iter()
            .filter(|s| {
                cat.venue(&s.venue)
                    .is_some_and(|v| v.district.as_deref() == Some("xicheng"))
            })
            .map(|s| s.id.to_string())
            .collect::<std::collections::BTreeSet<_>>()
    };
    let (built, changed, s) = build(Some(&affected))?;
    println!(
        "  one-district edit: catalogue change {change_s:.2} s ({touched} screens touched); {built} documents rebuilt, {changed} new versions: {s:.2} s"
    );
    let (_, full_change_s) = edit("bench-dongcheng", "dongcheng")?;
    let (built, changed, full_s) = build(None)?;
    println!(
        "  the same edit with a full rebuild: catalogue change {full_change_s:.2} s; {built} documents rebuilt, {changed} new versions: {full_s:.2} s ({:.0}x the targeted rebuild)",
        full_s / s.max(1e-9)
    );

    // An all-city emergency: the signed start command for every screen, then the rebuild
    // of the documents it touches (the commands go out first).
    // As the server runs it: the renditions already made are looked up for the commands.
    let renditions = server::renditions::Renditions::default();
    let t = Instant::now();
    let started = server::emergency::start(
        server::emergency::Request {
            catalogue: &catalogue,
            key: &key,
            author: "bench",
            now: Utc::now(),
            confirm_within: None,
            renditions: Some((&renditions, &*store)),
        },
        server::emergency::StartRequest {
            id: "bench-alert".into(),
            name: "bench alert".into(),
            creatives: vec!["alert-epidemic-l".into(), "alert-epidemic-p".into()],
            target: serde_json::json!({}),
            until: Some(Utc::now() + TimeDelta::hours(1)),
        },
    )?;
    let commands_s = t.elapsed().as_secs_f64();
    let (built, changed, s) = build(Some(&started.affected))?;
    println!(
        "  all-city emergency: {} signed commands in {commands_s:.2} s; then {built} documents rebuilt, {changed} new versions: {s:.2} s",
        started.commands.len()
    );
    Ok(())
}
