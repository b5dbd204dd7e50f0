//! Reports: planned (from the planner) against delivered (from the ledger's rollups) per
//! venue, screen, campaign or creative, and the raw plays export.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use playlists::wire::ScheduleDoc;
use playlists::{Planner, Play, ScreenSchedule};

use crate::store::{Dimension, LedgerStore, Query, Store};

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
/// Each distinct plan is made once ([`crate::shared_plan`]) and counted per screen.
pub fn planned(
    store: &dyn Store,
    dim: Dimension,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    venue: Option<&str>,
) -> anyhow::Result<BTreeMap<String, (String, u64)>> {
    let snapshot = store.snapshot()?;
    let catalogue = crate::catalogue::build(&snapshot)?;
    let mut out: BTreeMap<String, (String, u64)> = BTreeMap::new();
    for v in &catalogue.venues {
        if dim == Dimension::Venue && venue.is_none_or(|x| x == v.id.as_str()) {
            out.insert(v.id.to_string(), (v.venue_type.to_string(), 0));
        }
    }
    let keep = |s: &ScreenSchedule| venue.is_none_or(|x| x == s.venue.id.as_str());
    let items = in_force_with(store, &snapshot, &catalogue, from, to, &keep)?;
    let (tallies, _) = crate::shared_plan::tallies(&items);
    let mut each = |schedule: &ScreenSchedule, tally: &playlists::Tally| {
        if dim == Dimension::Screen {
            out.entry(schedule.screen.id.to_string())
                .or_insert_with(|| (schedule.venue.id.to_string(), 0));
        }
        for ((campaign, creative), n) in tally.totals() {
            let key = match dim {
                Dimension::Venue => schedule.venue.id.to_string(),
                Dimension::Screen => schedule.screen.id.to_string(),
                Dimension::Campaign => schedule.campaigns[campaign as usize].id.to_string(),
                Dimension::Creative => schedule.creatives[creative as usize].id.to_string(),
            };
            out.entry(key).or_default().1 += n;
        }
    };
    for ((schedule, _, _), tally) in items.iter().zip(&tallies) {
        each(schedule, tally);
    }
    Ok(out)
}

/// The schedules in force over parts of `[from, to)` on the screens whose schedules
/// `keep` accepts, each with its part: every issued document of a published screen (a
/// decommissioned screen's up to its decommissioning), and the current catalogue's
/// schedule of a screen never published. In screen order.
pub fn schedules_in_force(
    store: &dyn Store,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    keep: &dyn Fn(&ScreenSchedule) -> bool,
) -> anyhow::Result<Vec<InForce>> {
    let snapshot = store.snapshot()?;
    let catalogue = crate::catalogue::build(&snapshot)?;
    in_force_with(store, &snapshot, &catalogue, from, to, keep)
}

/// [`schedules_in_force`] with the snapshot and its catalogue already at hand (building the
/// catalogue of a city takes a good part of a second).
fn in_force_with(
    store: &dyn Store,
    snapshot: &crate::store::Snapshot,
    catalogue: &playlists::Catalogue,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    keep: &dyn Fn(&ScreenSchedule) -> bool,
) -> anyhow::Result<Vec<InForce>> {
    let server_key = crate::keys::server_key(store.dir())?.public();
    let mut out = Vec::new();
    let published = store.published()?;
    let mut screens: Vec<&String> = published.keys().collect();
    screens.sort();
    let mut read = Vec::with_capacity(screens.len());
    for screen in screens {
        // A decommissioned screen is planned nothing from then on.
        let to = snapshot
            .screens
            .get(screen.as_str())
            .and_then(|s| s.decommissioned_at)
            .map_or(to, |t| t.min(to));
        read.push((screen, to, store.issued(screen)?));
    }
    use rayon::prelude::*;
    let opened: Vec<anyhow::Result<Vec<InForce>>> = read
        .par_iter()
        .map(|(screen, to, docs)| open_in_force(&server_key, screen, docs, from, *to))
        .collect();
    for part in opened {
        out.extend(part?.into_iter().filter(|(s, a, b)| a < b && keep(s)));
    }
    let index = playlists::catalogue::CatalogueIndex::new(catalogue);
    for screen in &catalogue.screens {
        if !published.contains_key(screen.id.as_str()) {
            if let Some(schedule) = index.schedule_for(screen.id.as_str()) {
                if from < to && keep(&schedule) {
                    out.push((schedule, from, to));
                }
            }
        }
    }
    Ok(out)
}

/// Calls `f` with every schedule in force over part of `[from, to)` (as
/// [`schedules_in_force`] finds them) and the tally of its plays over that part, each
/// distinct plan made once.
pub fn each_tally(
    store: &dyn Store,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    keep: &dyn Fn(&ScreenSchedule) -> bool,
    f: &mut dyn FnMut(&ScreenSchedule, &playlists::Tally),
) -> anyhow::Result<()> {
    let items = schedules_in_force(store, from, to, keep)?;
    let (tallies, _) = crate::shared_plan::tallies(&items);
    for ((schedule, _, _), tally) in items.iter().zip(&tallies) {
        f(schedule, tally);
    }
    Ok(())
}

/// Calls `f` with every play planned over `[from, to)` on the screens whose schedules
/// `keep` accepts (as [`planned`] counts them), and once with `None` for each schedule
/// in force over part of the window (so a screen planned nothing still shows).
pub fn each_planned(
    store: &dyn Store,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    keep: &dyn Fn(&ScreenSchedule) -> bool,
    f: &mut dyn FnMut(&ScreenSchedule, Option<&Play>),
) -> anyhow::Result<()> {
    for (schedule, a, b) in schedules_in_force(store, from, to, keep)? {
        f(&schedule, None);
        Planner::new(&schedule).for_each_day(a, b, |day, first, end| {
            for p in day.plays().filter(|p| (first..end).contains(&p.slot)) {
                f(&schedule, Some(&p));
            }
        });
    }
    Ok(())
}

/// A schedule and the part of a window it was in force for, `[start, end)`.
pub type InForce = (ScreenSchedule, DateTime<Utc>, DateTime<Utc>);

/// The schedules of `screen`'s issued documents with the part of `[from, to)` each was in
/// force for. Each document's signature is checked with the server's key.
pub fn in_force(
    store: &dyn Store,
    server_key: &ed25519_dalek::VerifyingKey,
    screen: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> anyhow::Result<Vec<InForce>> {
    open_in_force(server_key, screen, &store.issued(screen)?, from, to)
}

/// [`in_force`] of documents already read: pure, so a city's documents are opened (their
/// signatures checked, their bodies parsed) on all cores.
fn open_in_force(
    server_key: &ed25519_dalek::VerifyingKey,
    screen: &str,
    docs: &[crate::store::IssuedDocument],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> anyhow::Result<Vec<InForce>> {
    let mut out = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        let start = if i == 0 {
            from
        } else {
            d.in_force_from.max(from)
        };
        let end = docs
            .get(i + 1)
            .map_or(to, |next| next.in_force_from.min(to));
        if start >= end {
            continue;
        }
        let doc: ScheduleDoc = playlists::wire::signed::open(
            d.signed.as_bytes(),
            playlists::wire::schedule::KIND,
            server_key,
            playlists::wire::MAX_SCHEDULE_BYTES,
        )
        .map_err(|e| anyhow::anyhow!("document {screen} v{}: {e}", d.version))?;
        let schedule = doc
            .body
            .to_schedule()
            .map_err(|e| anyhow::anyhow!("document {screen} v{}: {e}", d.version))?;
        out.push((schedule, start, end));
    }
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
