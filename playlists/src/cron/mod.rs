//! Standard five-field crontab expressions (`minute hour day-of-month month
//! day-of-week`, crontab(5) as cronie implements it): parsing with errors that
//! name the field, a bit-test matcher for the planner's hot path, and a
//! translation into the `cron` crate's dialect whose equivalence the tests
//! prove.
//!
//! Dialect: `*`, `n`, `a-b`, lists `a,b,c-d`, steps `*/n`, `a-b/n` and `a/n`
//! (`a` to the field's maximum, as cronie reads it). Months `JAN`-`DEC` and
//! weekdays `SUN`-`SAT` (three letters, any case) wherever a number may stand.
//! Day-of-week is `0`-`7`, both `0` and `7` Sunday. No `?`, `L`, `W`, `#`,
//! seconds, years or `@daily`-style shorthands.
//!
//! Day rule (Vixie): when both day-of-month and day-of-week are restricted, a
//! day matches when EITHER matches; otherwise both must. A field is
//! unrestricted when its text begins with `*`, which is what cronie checks
//! (`DOM_STAR`/`DOW_STAR`); so `*/2` is unrestricted, and `0 0 */2 * MON`
//! fires on odd-numbered days that are Mondays, like cronie. A field such as
//! `1-31` or `1,*` is restricted even though it covers every day.
//!
//! Evaluating an expression in a time zone is the caller's business: this
//! module sees local wall-clock fields only.

use std::fmt;

use chrono::{Datelike, NaiveDateTime, Timelike};

/// A parsed standard five-field crontab expression (minute hour day-of-month
/// month day-of-week).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr {
    /// Bits 0..=59.
    minutes: u64,
    /// Bits 0..=23.
    hours: u32,
    /// Bits 1..=31.
    days: u32,
    /// Bits 1..=12.
    months: u16,
    /// Bits 0..=6, 0 = Sunday (a `7` of the source is folded into bit 0).
    weekdays: u8,
    dom_restricted: bool,
    dow_restricted: bool,
    source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error(
        "cron expression {expr:?}: expected 5 fields \
         (minute hour day-of-month month day-of-week), found {found}"
    )]
    FieldCount { expr: String, found: usize },
    #[error("cron expression {expr:?}: {field} field {value:?}: {reason}")]
    Field {
        expr: String,
        /// "minute", "hour", "day-of-month", "month" or "day-of-week".
        field: &'static str,
        /// The offending list element (or the whole field when it is empty).
        value: String,
        reason: String,
    },
}

/// Static description of one of the five fields.
struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    /// Three-letter names for `min..` in order, if the field has names.
    names: &'static [&'static str],
}

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const FIELDS: [FieldSpec; 5] = [
    FieldSpec::new("minute", 0, 59, &[]),
    FieldSpec::new("hour", 0, 23, &[]),
    FieldSpec::new("day-of-month", 1, 31, &[]),
    FieldSpec::new("month", 1, 12, &MONTH_NAMES),
    // 7 is Sunday again; folded into 0 after parsing.
    FieldSpec::new("day-of-week", 0, 7, &DAY_NAMES),
];

impl FieldSpec {
    const fn new(name: &'static str, min: u32, max: u32, names: &'static [&'static str]) -> Self {
        FieldSpec {
            name,
            min,
            max,
            names,
        }
    }
}

const ALL_MINUTES: u64 = (1 << 60) - 1;
const ALL_HOURS: u32 = (1 << 24) - 1;
const ALL_DAYS: u32 = !1;
const ALL_MONTHS: u16 = 0b1_1111_1111_1110;
const ALL_WEEKDAYS: u8 = 0b111_1111;

impl CronExpr {
    pub fn parse(expr: &str) -> Result<CronExpr, CronError> {
        let source = expr.trim();
        let fields: Vec<&str> = source.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(CronError::FieldCount {
                expr: source.to_owned(),
                found: fields.len(),
            });
        }
        let mut sets = [0u64; 5];
        for ((set, text), spec) in sets.iter_mut().zip(&fields).zip(&FIELDS) {
            *set = parse_field(text, spec).map_err(|(value, reason)| CronError::Field {
                expr: source.to_owned(),
                field: spec.name,
                value,
                reason,
            })?;
        }
        let [minutes, hours, days, months, dow] = sets;
        // Fold day-of-week 7 into 0 (both Sunday).
        let weekdays = (dow | (dow >> 7)) & u64::from(ALL_WEEKDAYS);
        // Truncations are lossless: parse_field never sets a bit above the field's max.
        Ok(CronExpr {
            minutes,
            hours: hours as u32,
            days: days as u32,
            months: months as u16,
            weekdays: weekdays as u8,
            dom_restricted: !fields[2].starts_with('*'),
            dow_restricted: !fields[4].starts_with('*'),
            source: source.to_owned(),
        })
    }

    /// `* * * * *`.
    pub fn every_minute() -> CronExpr {
        CronExpr {
            minutes: ALL_MINUTES,
            hours: ALL_HOURS,
            days: ALL_DAYS,
            months: ALL_MONTHS,
            weekdays: ALL_WEEKDAYS,
            dom_restricted: false,
            dow_restricted: false,
            source: "* * * * *".to_owned(),
        }
    }

    /// The source text, trimmed.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the local wall-clock minute matches. `weekday`: 0 = Sunday ..
    /// 6 = Saturday; `day` 1..=31; `month` 1..=12. Out-of-range values never
    /// match. Pure bit tests: this is the planner's hot path.
    #[inline]
    pub fn matches_fields(
        &self,
        minute: u32,
        hour: u32,
        day: u32,
        month: u32,
        weekday: u32,
    ) -> bool {
        if !(bit64(self.minutes, minute)
            && bit64(u64::from(self.hours), hour)
            && bit64(u64::from(self.months), month))
        {
            return false;
        }
        let dom = bit64(u64::from(self.days), day);
        let dow = bit64(u64::from(self.weekdays), weekday);
        if self.dom_restricted && self.dow_restricted {
            dom || dow
        } else {
            dom && dow
        }
    }

    /// Whether the minute of `local` matches (seconds are ignored).
    pub fn matches(&self, local: &NaiveDateTime) -> bool {
        self.matches_fields(
            local.minute(),
            local.hour(),
            local.day(),
            local.month(),
            local.weekday().num_days_from_sunday(),
        )
    }

    /// The same set of minutes in the `cron` crate's dialect (0.15: seconds
    /// first, day-of-week 1-7 from Sunday, both day fields must match): a list
    /// of expressions whose union equals `self`. Built from the parsed sets,
    /// never from the source text: seconds `0`, explicit number lists (or `*`
    /// for a full set), weekdays as names. The Vixie either-or case becomes
    /// two expressions, one per day field.
    pub fn to_cron_crate(&self) -> Vec<String> {
        let minute = numbers(self.minutes, ALL_MINUTES);
        let hour = numbers(u64::from(self.hours), u64::from(ALL_HOURS));
        let dom = numbers(u64::from(self.days), u64::from(ALL_DAYS));
        let month = numbers(u64::from(self.months), u64::from(ALL_MONTHS));
        let dow = if self.weekdays == ALL_WEEKDAYS {
            "*".to_owned()
        } else {
            (0..7)
                .filter(|&d| self.weekdays & (1 << d) != 0)
                .map(|d| DAY_NAMES[d])
                .collect::<Vec<_>>()
                .join(",")
        };
        if self.dom_restricted && self.dow_restricted {
            vec![
                format!("0 {minute} {hour} {dom} {month} *"),
                format!("0 {minute} {hour} * {month} {dow}"),
            ]
        } else {
            vec![format!("0 {minute} {hour} {dom} {month} {dow}")]
        }
    }

    /// Whether any minute of any year can match. `0 0 31 2 *` (February 31st) never does:
    /// with one day field restricted, both must match, so the restricted days of month must
    /// exist in one of the months (February has 29 in leap years). Every weekday falls on
    /// every possible date in some year, so days of week never make an expression empty.
    pub fn can_match(&self) -> bool {
        if self.dom_restricted && self.dow_restricted {
            return true;
        }
        const MAX_DAYS: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        (1..=12u32).any(|m| {
            bit64(u64::from(self.months), m)
                && (1..=MAX_DAYS[m as usize - 1]).any(|d| bit64(u64::from(self.days), d))
        })
    }

    /// True when every minute matches (lets the planner skip work).
    pub fn is_every_minute(&self) -> bool {
        let all_doms = self.days == ALL_DAYS;
        let all_dows = self.weekdays == ALL_WEEKDAYS;
        let all_days = if self.dom_restricted && self.dow_restricted {
            all_doms || all_dows
        } else {
            all_doms && all_dows
        };
        self.minutes == ALL_MINUTES
            && self.hours == ALL_HOURS
            && self.months == ALL_MONTHS
            && all_days
    }
}

#[inline]
fn bit64(set: u64, n: u32) -> bool {
    set.checked_shr(n).unwrap_or(0) & 1 != 0
}

/// `*` for a full set, else the members as a comma-separated list.
fn numbers(set: u64, all: u64) -> String {
    if set == all {
        return "*".to_owned();
    }
    (0..64)
        .filter(|&n| set & (1 << n) != 0)
        .map(|n: u32| n.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The set of a field as bits, or `(offending text, reason)`.
fn parse_field(text: &str, spec: &FieldSpec) -> Result<u64, (String, String)> {
    let mut set = 0u64;
    for element in text.split(',') {
        set |= parse_element(element, spec).map_err(|reason| (element.to_owned(), reason))?;
    }
    Ok(set)
}

/// One list element: `*`, `n`, `a-b`, each optionally `/step`.
fn parse_element(element: &str, spec: &FieldSpec) -> Result<u64, String> {
    if element.is_empty() {
        return Err("empty list element".to_owned());
    }
    let (range, step) = match element.split_once('/') {
        Some((range, step)) => (range, Some(parse_step(step)?)),
        None => (element, None),
    };
    let (lo, hi) = if range == "*" {
        (spec.min, spec.max)
    } else if let Some((a, b)) = range.split_once('-') {
        let (lo, hi) = (parse_value(a, spec)?, parse_value(b, spec)?);
        if lo > hi {
            return Err(format!("range {a}-{b} is reversed (start after end)"));
        }
        (lo, hi)
    } else {
        let lo = parse_value(range, spec)?;
        // `a/n` means `a-max/n`, as in cronie.
        (lo, if step.is_some() { spec.max } else { lo })
    };
    let step = step.unwrap_or(1);
    Ok((lo..=hi).step_by(step).fold(0, |set, n| set | 1 << n))
}

fn parse_step(text: &str) -> Result<usize, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("step {text:?} is not a number"));
    }
    match text.parse::<usize>() {
        Ok(0) => Err("step must be at least 1".to_owned()),
        Ok(step) => Ok(step),
        // Larger than any range: selects the start only.
        Err(_) => Ok(usize::MAX),
    }
}

fn parse_value(text: &str, spec: &FieldSpec) -> Result<u32, String> {
    let range = || format!("{}-{}", spec.min, spec.max);
    if text.is_empty() {
        return Err("missing value".to_owned());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u32>() {
            Ok(n) if (spec.min..=spec.max).contains(&n) => Ok(n),
            _ => Err(format!("{text} is out of range {}", range())),
        };
    }
    if let Some(i) = spec
        .names
        .iter()
        .position(|name| name.eq_ignore_ascii_case(text))
    {
        return Ok(spec.min + i as u32);
    }
    let upper = text.to_ascii_uppercase();
    let quartz = upper.contains(['?', '#'])
        || upper == "L"
        || upper == "LW"
        || (upper.len() > 1
            && upper.ends_with(['L', 'W'])
            && upper[..upper.len() - 1].bytes().all(|b| b.is_ascii_digit()));
    if quartz {
        return Err(format!(
            "{text:?}: Quartz syntax (?, L, W, #) is not standard crontab"
        ));
    }
    match (spec.names.first(), spec.names.last()) {
        (Some(first), Some(last)) => Err(format!(
            "{text:?} is not a number in {} nor {first}-{last}",
            range()
        )),
        _ => Err(format!("{text:?} is not a number in {}", range())),
    }
}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl std::str::FromStr for CronExpr {
    type Err = CronError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CronExpr::parse(s)
    }
}

#[cfg(test)]
mod tests;
