//! Reports: planned (from the planner) against delivered (from the ledger's rollups) per
//! venue, screen, campaign or creative, and the raw plays export.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::{Dimension, LedgerStore, Query, Store};

mod documents;
pub use documents::{
    each_planned, each_tally, in_force, planned_from_documents, schedules_in_force, InForce,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
    Table,
}

/// Why a report window is unusable (the caller's mistake).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WindowError(pub String);

/// The window a report covers. Missing ends come from the last simulated or demo window
/// when there was one, else the window is the 24 hours up to the next whole hour.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

pub const WINDOW_META: &str = "report_window";

/// The longest window one report covers (planned plays are derived slot by slot).
pub const MAX_WINDOW_DAYS: i64 = 366;

impl Window {
    /// Fills missing ends from the stored default window.
    pub fn resolve(&self, store: &dyn Store) -> anyhow::Result<(DateTime<Utc>, DateTime<Utc>)> {
        let stored: Window = store
            .meta(WINDOW_META)?
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let to = self.to.or(stored.to).unwrap_or_else(|| {
            let now = Utc::now().timestamp();
            DateTime::from_timestamp(now.div_euclid(3_600) * 3_600 + 3_600, 0).unwrap_or_default()
        });
        let from = self
            .from
            .or(stored.from)
            .unwrap_or(to - chrono::TimeDelta::hours(24));
        if from >= to {
            return Err(WindowError(format!("from ({from}) must be before to ({to})")).into());
        }
        if to - from > chrono::TimeDelta::days(MAX_WINDOW_DAYS) {
            return Err(WindowError(format!(
                "the window from {from} to {to} is longer than {MAX_WINDOW_DAYS} days: ask for less"
            ))
            .into());
        }
        Ok((from, to))
    }
}

/// Planned against delivered for one venue, screen, campaign or creative.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ReportRow {
    pub id: String,
    /// The venue's OpenOOH type (venue rows) or the screen's venue (screen rows).
    pub detail: String,
    pub planned: u64,
    pub delivered: u64,
    pub partial: u64,
    pub failed: u64,
    pub compliance_pct: f64,
}

fn dim_name(d: Dimension) -> &'static str {
    match d {
        Dimension::Venue => "venue",
        Dimension::Screen => "screen",
        Dimension::Campaign => "campaign",
        Dimension::Creative => "creative",
    }
}

/// Planned plays per key of `dim` over `[from, to)`, optionally for one venue: what the
/// shared planner derives from the schedule documents that were in force (each version
/// from when it took effect to the next version; a screen's first version from the
/// beginning), so no later edit of the catalogue changes the planned figures of the past.
/// A screen that was never published (a store from before documents were kept) is
/// planned from the current catalogue; a decommissioned one up to its decommissioning.
/// Read from the counts kept with the documents where they answer exactly, else planned
/// ([`crate::planned::each_count`]).
pub fn planned(
    store: &dyn Store,
    dim: Dimension,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    venue: Option<&str>,
) -> anyhow::Result<BTreeMap<String, (String, u64)>> {
    let snapshot = store.snapshot()?;
    let mut out: BTreeMap<String, (String, u64)> = BTreeMap::new();
    if dim == Dimension::Venue {
        // Every live venue has a row, as the catalogue lists them.
        for v in snapshot.venues.values() {
            if venue.is_none_or(|x| x == v.spec.id) {
                let t = &v.spec.venue_type;
                let t =
                    playlists::taxonomy::VenueType::parse(t).map_or(t.clone(), |t| t.to_string());
                out.insert(v.spec.id.clone(), (t, 0));
            }
        }
    }
    let keep = |p: &crate::planned::Place| venue.is_none_or(|x| x == p.venue_id);
    crate::planned::each_count(store, &snapshot, from, to, &keep, &mut |place, counts| {
        if dim == Dimension::Screen {
            out.entry(place.screen_id.clone())
                .or_insert_with(|| (place.venue_id.clone(), 0));
        }
        let mut add = |key: &str, n: u64| match out.get_mut(key) {
            Some(e) => e.1 += n,
            None => {
                out.insert(key.to_owned(), (String::new(), n));
            }
        };
        match dim {
            // A key per place: one look-up for the place's sum.
            Dimension::Venue | Dimension::Screen if !counts.totals.is_empty() => {
                let key = if dim == Dimension::Venue {
                    &place.venue_id
                } else {
                    &place.screen_id
                };
                add(key, counts.totals.iter().map(|t| t.2).sum());
            }
            Dimension::Venue | Dimension::Screen => {}
            Dimension::Campaign | Dimension::Creative => {
                for (campaign, creative, n) in &counts.totals {
                    add(
                        if dim == Dimension::Campaign {
                            campaign
                        } else {
                            creative
                        },
                        *n,
                    );
                }
            }
        }
    })?;
    Ok(out)
}

/// Rows of a report over the window.
pub fn rows(
    store: &dyn Store,
    ledger: &dyn LedgerStore,
    dim: Dimension,
    window: &Window,
    venue: Option<&str>,
) -> anyhow::Result<Vec<ReportRow>> {
    let (from, to) = window.resolve(store)?;
    let mut planned = planned(store, dim, from, to, venue)?;
    let got = delivered(ledger, dim, from, to, venue, None)?;
    for key in got.keys() {
        planned.entry(key.clone()).or_default();
    }
    Ok(planned
        .into_iter()
        .map(|(id, (detail, planned))| {
            let (delivered, partial, failed) = got.get(&id).copied().unwrap_or_default();
            let compliance_pct = compliance(planned, delivered);
            ReportRow {
                id,
                detail,
                planned,
                delivered,
                partial,
                failed,
                compliance_pct,
            }
        })
        .collect())
}

/// Delivered as a percentage of planned: 100 when nothing was planned nor delivered, 0
/// when plays were delivered that nothing planned.
pub fn compliance(planned: u64, delivered: u64) -> f64 {
    if planned == 0 {
        if delivered == 0 {
            100.0
        } else {
            0.0
        }
    } else {
        100.0 * delivered as f64 / planned as f64
    }
}

/// Delivered (complete, partial, failed) per key over `[from, to)`: whole hours from the
/// rollups, and only the partial hours at either edge from raw records.
pub(crate) fn delivered(
    ledger: &dyn LedgerStore,
    dim: Dimension,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    venue: Option<&str>,
    screen: Option<&str>,
) -> anyhow::Result<BTreeMap<String, (u64, u64, u64)>> {
    let hour = |t: DateTime<Utc>, up: bool| {
        let s = t.timestamp();
        let h = s.div_euclid(3_600) + i64::from(up && s.rem_euclid(3_600) != 0);
        DateTime::from_timestamp(h * 3_600, 0).unwrap_or(t)
    };
    let (inner_from, inner_to) = (hour(from, true), hour(to, false));
    let mut got: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    let mut edges = Vec::new();
    if inner_from < inner_to {
        let q = Query {
            from: Some(inner_from),
            to: Some(inner_to),
            dimension: dim,
            venue: venue.map(str::to_owned),
            screen: screen.map(str::to_owned),
        };
        for r in ledger.delivered(&q)? {
            got.insert(r.key, (r.complete, r.partial, r.failed));
        }
        edges.extend([(from, inner_from), (inner_to, to)]);
    } else {
        edges.push((from, to));
    }
    for (a, b) in edges.into_iter().filter(|(a, b)| a < b) {
        let q = Query {
            from: Some(a),
            to: Some(b),
            dimension: dim,
            venue: venue.map(str::to_owned),
            screen: screen.map(str::to_owned),
        };
        ledger.plays(&q, &mut |r| {
            let key = match dim {
                Dimension::Venue => &r.venue_id,
                Dimension::Screen => &r.screen_id,
                Dimension::Campaign => &r.campaign_id,
                Dimension::Creative => &r.creative_id,
            };
            let e = got.entry(key.clone()).or_default();
            match r.status {
                playlists::wire::PlayStatus::Complete => e.0 += 1,
                playlists::wire::PlayStatus::Partial => e.1 += 1,
                playlists::wire::PlayStatus::Failed => e.2 += 1,
            }
            Ok(())
        })?;
    }
    Ok(got)
}

/// A report as `signage report` and `GET /api/v1/reports/*` give it: the plays export
/// when `dim` is `None`, else planned against delivered per key of `dim`.
pub fn render(
    store: &dyn Store,
    dim: Option<Dimension>,
    window: &Window,
    venue: Option<&str>,
    format: Format,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let ledger = store.ledger();
    match dim {
        None => write_plays(store, &*ledger, window, venue, format, out).map(|_| ()),
        Some(dim) => {
            let rows = rows(store, &*ledger, dim, window, venue)?;
            write_rows(dim, &rows, format, out)
        }
    }
}

/// Venue rows for the dashboard (stored window).
pub fn venue_rows(
    store: &dyn Store,
    ledger: &dyn LedgerStore,
    window: &Window,
) -> anyhow::Result<Vec<serde_json::Value>> {
    Ok(rows(store, ledger, Dimension::Venue, window, None)?
        .into_iter()
        .map(|r| {
            serde_json::json!({
                "venue_id": r.id, "venue_type": r.detail, "planned": r.planned, "delivered": r.delivered,
                "partial": r.partial, "failed": r.failed, "compliance_pct": r.compliance_pct,
            })
        })
        .collect())
}

/// Prints a summary report.
pub fn write_rows(
    dim: Dimension,
    rows: &[ReportRow],
    format: Format,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let detail = if dim == Dimension::Venue {
        "venue_type"
    } else if dim == Dimension::Screen {
        "venue_id"
    } else {
        "detail"
    };
    write_rows_named(dim_name(dim), detail, rows, format, out)
}

/// Prints a summary report whose key column is `{name}_id` and detail column `detail`.
pub fn write_rows_named(
    name: &str,
    detail: &str,
    rows: &[ReportRow],
    format: Format,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    match format {
        Format::Csv => {
            writeln!(
                out,
                "{name}_id,{detail},planned,delivered,partial,failed,compliance_pct"
            )?;
            for r in rows {
                writeln!(
                    out,
                    "{},{},{},{},{},{},{:.2}",
                    r.id, r.detail, r.planned, r.delivered, r.partial, r.failed, r.compliance_pct
                )?;
            }
        }
        Format::Json => {
            let v: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| {
                    serde_json::json!({
                        format!("{name}_id"): r.id, detail: r.detail, "planned": r.planned, "delivered": r.delivered,
                        "partial": r.partial, "failed": r.failed, "compliance_pct": r.compliance_pct,
                    })
                })
                .collect();
            serde_json::to_writer_pretty(&mut *out, &v)?;
            writeln!(out)?;
        }
        Format::Table => {
            writeln!(
                out,
                "{:<36} {:<40} {:>9} {:>9} {:>7} {:>6} {:>8}",
                format!("{name}_id"),
                detail,
                "planned",
                "delivered",
                "partial",
                "failed",
                "compl."
            )?;
            for r in rows {
                writeln!(
                    out,
                    "{:<36} {:<40} {:>9} {:>9} {:>7} {:>6} {:>7.1}%",
                    r.id, r.detail, r.planned, r.delivered, r.partial, r.failed, r.compliance_pct
                )?;
            }
            let (p, d): (u64, u64) = rows
                .iter()
                .fold((0, 0), |(p, d), r| (p + r.planned, d + r.delivered));
            writeln!(out, "{:<36} {:<40} {:>9} {:>9}", "total", "", p, d)?;
        }
    }
    Ok(())
}

/// The plays export's columns. `epoch` (appended: earlier columns keep their places) is the
/// outbox epoch `seq` counts in; empty for the legacy epoch.
pub const PLAYS_HEADER: &str = "play_id,screen_id,seq,venue_id,slot_start,campaign_id,creative_id,creative_sha256,schedule_version,started_at,ended_at,duration_ms,status,clock_synced,epoch";

/// The raw plays export, one row per play.
pub fn write_plays(
    store: &dyn Store,
    ledger: &dyn LedgerStore,
    window: &Window,
    venue: Option<&str>,
    format: Format,
    out: &mut dyn Write,
) -> anyhow::Result<u64> {
    write_plays_where(store, ledger, window, venue, None, &|_| true, format, out)
}

/// The plays export of one venue or screen (when given), only the records `keep` accepts;
/// returns how many were written.
#[allow(
    clippy::too_many_arguments,
    reason = "the export's filters, each optional"
)]
pub fn write_plays_where(
    store: &dyn Store,
    ledger: &dyn LedgerStore,
    window: &Window,
    venue: Option<&str>,
    screen: Option<&str>,
    keep: &dyn Fn(&playlists::wire::PlayRecord) -> bool,
    format: Format,
    out: &mut dyn Write,
) -> anyhow::Result<u64> {
    let (from, to) = window
        .resolve(store)
        .map(|(f, t)| (Some(f), Some(t)))
        .unwrap_or((window.from, window.to));
    let q = Query {
        from,
        to,
        dimension: Dimension::Screen,
        venue: venue.map(str::to_owned),
        screen: screen.map(str::to_owned),
    };
    let mut first = true;
    let mut written = 0;
    match format {
        Format::Csv => writeln!(out, "{PLAYS_HEADER}")?,
        Format::Json => write!(out, "[")?,
        Format::Table => writeln!(
            out,
            "{:<34} {:<21} {:<22} {:<28} status",
            "screen_id", "slot_start", "campaign_id", "creative_id"
        )?,
    }
    ledger.plays(&q, &mut |r| {
        if !keep(r) {
            return Ok(());
        }
        written += 1;
        let t = |d: DateTime<Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let res = match format {
            Format::Csv => writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                r.play_id,
                r.screen_id,
                r.seq,
                r.venue_id,
                r.slot_start
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                r.campaign_id,
                r.creative_id,
                r.creative_sha256,
                r.schedule_version,
                t(r.started_at),
                t(r.ended_at),
                r.duration_ms,
                r.status.as_str(),
                r.clock_synced,
                r.epoch
            ),
            Format::Json => {
                let sep = if first { "" } else { "," };
                first = false;
                write!(
                    out,
                    "{sep}\n{}",
                    serde_json::to_string(r).unwrap_or_default()
                )
            }
            Format::Table => writeln!(
                out,
                "{:<34} {:<21} {:<22} {:<28} {}",
                r.screen_id,
                r.slot_start
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                r.campaign_id,
                r.creative_id,
                r.status.as_str()
            ),
        };
        res.map_err(|e| crate::ledger::LedgerError::Io(e.to_string()))
    })?;
    if format == Format::Json {
        writeln!(out, "\n]")?;
    }
    Ok(written)
}
