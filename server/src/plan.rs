//! Planned plays over a window, as CSV or a table: the same planner the agents play with,
//! run once per distinct schedule (screens that plan identically share one plan,
//! [`crate::shared_plan`]) on all cores (rayon), written in screen then time order.

use std::io::Write;

use chrono::{DateTime, Utc};

use playlists::catalogue::CatalogueIndex;
use playlists::timefmt::push_utc;
use playlists::{Catalogue, Play, ScreenId, ScreenSchedule};
use rayon::prelude::*;

pub const CSV_HEADER: &str = "screen_id,venue_id,slot_start,campaign_id,creative_id\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Table,
}

/// The schedules of the chosen screens (all when `only` is empty), sorted by screen id.
pub fn schedules(catalogue: &Catalogue, only: &[String]) -> anyhow::Result<Vec<ScreenSchedule>> {
    let mut ids: Vec<ScreenId> = if only.is_empty() {
        catalogue.screens.iter().map(|s| s.id.clone()).collect()
    } else {
        only.iter()
            .map(|s| {
                let id = ScreenId::parse(s)?;
                catalogue
                    .screen(&id)
                    .ok_or_else(|| anyhow::anyhow!("unknown screen {s:?}"))?;
                Ok(id)
            })
            .collect::<anyhow::Result<_>>()?
    };
    ids.sort();
    ids.dedup();
    // By index: a city's schedules in one pass, not a search of the catalogue per screen.
    let index = CatalogueIndex::new(catalogue);
    Ok(ids
        .iter()
        .filter_map(|id| index.schedule_for(id.as_str()))
        .collect())
}

/// One screen's `plays` (its own plan or one it shares) as CSV rows (no header).
pub fn screen_csv(schedule: &ScreenSchedule, plays: &[Play]) -> (Vec<u8>, u64) {
    let screen = schedule.screen.id.as_str().as_bytes();
    let venue = schedule.venue.id.as_str().as_bytes();
    let slot = i64::from(schedule.screen.slot_seconds);
    let mut out = Vec::with_capacity(plays.len() * 96);
    for p in plays {
        out.extend_from_slice(screen);
        out.push(b',');
        out.extend_from_slice(venue);
        out.push(b',');
        push_utc(&mut out, p.slot * slot);
        out.push(b',');
        out.extend_from_slice(schedule.campaigns[p.campaign].id.as_str().as_bytes());
        out.push(b',');
        out.extend_from_slice(schedule.creatives[p.creative].id.as_str().as_bytes());
        out.push(b'\n');
    }
    (out, plays.len() as u64)
}

/// Writes the plan of `schedules` over `[from, to)`; returns the number of plays.
pub fn write_plan(
    schedules: &[ScreenSchedule],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    format: Format,
    out: &mut dyn Write,
) -> std::io::Result<u64> {
    let threads = rayon::current_num_threads();
    let mut total = 0;
    if format == Format::Csv {
        out.write_all(CSV_HEADER.as_bytes())?;
    } else {
        writeln!(
            out,
            "{:<34} {:<30} {:<21} {:<22} creative_id",
            "screen_id", "venue_id", "slot_start", "campaign_id"
        )?;
    }
    crate::shared_plan::each_plan(schedules, from, to, threads * 2, |group| {
        let parts: Vec<_> = group
            .par_iter()
            .map(|(s, plays)| screen_csv(s, plays))
            .collect();
        for (bytes, rows) in parts {
            total += rows;
            match format {
                Format::Csv => out.write_all(&bytes)?,
                Format::Table => {
                    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                        let f: Vec<&str> = std::str::from_utf8(line)
                            .unwrap_or_default()
                            .split(',')
                            .collect();
                        writeln!(
                            out,
                            "{:<34} {:<30} {:<21} {:<22} {}",
                            f[0], f[1], f[2], f[3], f[4]
                        )?;
                    }
                }
            }
        }
        Ok(())
    })?;
    out.flush()?;
    Ok(total)
}
