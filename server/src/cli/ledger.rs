//! `signage ledger archive` (retention: moves old proof-of-play batches out of the live
//! ledger into daily compressed files) and `signage audit verify --archive DIR`. Both work
//! on the store directly (`--data-dir`, with `--store` for PostgreSQL): the archive files
//! are the server machine's. A redb store must be stopped; PostgreSQL replicas may keep
//! running (archiving steps and the archive audit take turns on a database lock).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{NaiveDate, Utc};

use super::state::State;

/// The archive directory used when none is given: `DATA_DIR/archive`.
pub fn default_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("archive")
}

/// A `--before` day: `YYYY-MM-DD`, said so when it is not one.
pub(crate) fn parse_day(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|e| format!("expected a day as YYYY-MM-DD (such as 2026-01-31): {e}"))
}

/// The first day kept live: `before`, or today (UTC) less `keep_days`.
pub fn cut_off(
    before: Option<NaiveDate>,
    keep_days: Option<u32>,
    today: NaiveDate,
) -> anyhow::Result<NaiveDate> {
    match (before, keep_days) {
        (Some(d), None) => Ok(d),
        (None, Some(days)) => today
            .checked_sub_days(chrono::Days::new(days.into()))
            .ok_or_else(|| anyhow::anyhow!("--keep-days {days} reaches before the calendar")),
        _ => anyhow::bail!("say which records to archive: --before YYYY-MM-DD or --keep-days N"),
    }
}

fn store_of<'a>(state: &'a State, what: &str) -> anyhow::Result<&'a crate::store::SharedStore> {
    match state {
        State::Store(store) => Ok(store),
        State::Api(_) => anyhow::bail!(
            "{what} works on the store directly: give --data-dir DIR (with the server stopped), and --store URL for PostgreSQL"
        ),
    }
}

pub fn archive(
    state: &State,
    before: Option<NaiveDate>,
    keep_days: Option<u32>,
    dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let store = store_of(state, "ledger archive")?;
    let before = cut_off(before, keep_days, Utc::now().date_naive())?;
    let dir = dir.unwrap_or_else(|| default_dir(store.dir()));
    let summary = store.ledger().archive(&dir, before)?;
    if summary.days.is_empty() {
        println!("nothing to archive before {before}");
    }
    for d in &summary.days {
        println!(
            "archived {}: {} batches, {} records into {} ({} bytes)",
            d.day,
            d.batches,
            d.records,
            d.file.display(),
            d.file_bytes
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn audit_with_archive(state: &State, dir: &Path) -> anyhow::Result<ExitCode> {
    let store = store_of(state, "audit verify --archive")?;
    let verdict = crate::audit::verify_with_archive(&**store, dir)?;
    print!("{}", verdict.lines());
    Ok(if verdict.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 3, d).unwrap()
    }

    #[test]
    fn cut_off_from_a_date_or_days_kept() {
        assert_eq!(cut_off(Some(day(2)), None, day(9)).unwrap(), day(2));
        assert_eq!(cut_off(None, Some(7), day(9)).unwrap(), day(2));
        assert_eq!(cut_off(None, Some(0), day(9)).unwrap(), day(9));
        let e = parse_day("notadate").unwrap_err();
        assert!(e.contains("YYYY-MM-DD"), "{e}");
        assert_eq!(
            parse_day("2026-01-31"),
            Ok(NaiveDate::from_ymd_opt(2026, 1, 31).unwrap())
        );
        for (before, keep) in [(None, None), (Some(day(2)), Some(3))] {
            let e = cut_off(before, keep, day(9)).unwrap_err().to_string();
            assert!(e.contains("--before YYYY-MM-DD or --keep-days N"), "{e}");
        }
    }
}
