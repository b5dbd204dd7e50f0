//! Planned plays over a window, as CSV or a table: the same planner the agents play with,
//! run per screen on all cores (rayon), written in screen then time order.

use std::io::Write;

use chrono::{DateTime, Utc};

use playlists::timefmt::push_utc;
use playlists::{Catalogue, Planner, ScreenId, ScreenSchedule};
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
    Ok(ids
        .iter()
        .filter_map(|id| catalogue.schedule_for(id))
        .collect())
}

/// One screen's plays in `[from, to)` as CSV rows (no header).
pub fn screen_csv(
    schedule: &ScreenSchedule,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> (Vec<u8>, u64) {
    let planner = Planner::new(schedule);
    let screen = schedule.screen.id.as_str().as_bytes();
    let venue = schedule.venue.id.as_str().as_bytes();
    let slot = i64::from(schedule.screen.slot_seconds);
    let mut out = Vec::with_capacity(1 << 20);
    let mut rows = 0u64;
    planner.for_each_day(from, to, |day, first, end| {
        for p in day.plays().filter(|p| (first..end).contains(&p.slot)) {
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
            rows += 1;
        }
    });
    (out, rows)
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
    for group in schedules.chunks(threads * 2) {
        let parts: Vec<_> = group.par_iter().map(|s| screen_csv(s, from, to)).collect();
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
    }
    out.flush()?;
    Ok(total)
}
