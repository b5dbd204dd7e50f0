//! Tests of the crontab parser, matcher and the translation into the `cron` crate.

use std::collections::BTreeSet;
use std::str::FromStr;

use chrono::{Duration, NaiveDate, NaiveDateTime};
use proptest::prelude::*;

use super::*;

/// Parses `expr` and compares a description of the result with `expect`.
/// Sets list their members (`*` when full), day-of-week numbered from 0 =
/// Sunday, ` dom|dow` marking the Vixie either-or rule. Errors read
/// `error: FIELD: REASON` (after checking they carry the trimmed
/// expression) or `error: N fields`.
fn check(expr: &str, expect: &str) {
    let got = match CronExpr::parse(expr) {
        Ok(e) => describe(&e),
        Err(CronError::Field {
            expr: source,
            field,
            reason,
            ..
        }) => {
            assert_eq!(source, expr.trim());
            format!("error: {field}: {reason}")
        }
        Err(CronError::FieldCount {
            expr: source,
            found,
        }) => {
            assert_eq!(source, expr.trim());
            format!("error: {found} fields")
        }
    };
    assert_eq!(got, expect, "parsing {expr:?}");
}

fn describe(e: &CronExpr) -> String {
    let list = |set: u64, min: u32, max: u32| {
        let members: Vec<u32> = (min..=max).filter(|&n| set & (1 << n) != 0).collect();
        assert_eq!(set >> (max + 1), 0, "no bit above {max}");
        if members.len() == (min..=max).count() {
            "*".to_owned()
        } else {
            members
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    format!(
        "min={} hour={} dom={} mon={} dow={}{}",
        list(e.minutes, 0, 59),
        list(e.hours.into(), 0, 23),
        list(e.days.into(), 1, 31),
        list(e.months.into(), 1, 12),
        list(e.weekdays.into(), 0, 6),
        if e.dom_restricted && e.dow_restricted {
            " dom|dow"
        } else {
            ""
        }
    )
}

#[test]
fn parse_forms() {
    #[rustfmt::skip]
    let cases = [
        ("* * * * *", "min=* hour=* dom=* mon=* dow=*"),
        ("  0 12 * * *\t", "min=0 hour=12 dom=* mon=* dow=*"),
        ("*/20 * * * *", "min=0,20,40 hour=* dom=* mon=* dow=*"),
        ("5/15 * * * *", "min=5,20,35,50 hour=* dom=* mon=* dow=*"),
        ("0 1-23/2 * * *", "min=0 hour=1,3,5,7,9,11,13,15,17,19,21,23 dom=* mon=* dow=*"),
        ("0 0 1-30/2 * *", "min=0 hour=0 dom=1,3,5,7,9,11,13,15,17,19,21,23,25,27,29 mon=* dow=*"),
        ("0 0 * * MON-FRI", "min=0 hour=0 dom=* mon=* dow=1,2,3,4,5"),
        ("0 0 * * 1-5", "min=0 hour=0 dom=* mon=* dow=1,2,3,4,5"),
        ("0 0 * * SAT,SUN", "min=0 hour=0 dom=* mon=* dow=0,6"),
        ("0 0 * * sat,Sun", "min=0 hour=0 dom=* mon=* dow=0,6"),
        ("0 0 * * 0", "min=0 hour=0 dom=* mon=* dow=0"),
        ("0 0 * * 7", "min=0 hour=0 dom=* mon=* dow=0"),
        ("0 0 * * 5-7", "min=0 hour=0 dom=* mon=* dow=0,5,6"),
        ("0 0 * * 1/2", "min=0 hour=0 dom=* mon=* dow=0,1,3,5"),
        ("0 0 * * */3", "min=0 hour=0 dom=* mon=* dow=0,3,6"),
        ("0 0 * * MON-FRI/2", "min=0 hour=0 dom=* mon=* dow=1,3,5"),
        ("0 0 * JAN *", "min=0 hour=0 dom=* mon=1 dow=*"),
        ("0 0 * jan-mar,DEC *", "min=0 hour=0 dom=* mon=1,2,3,12 dow=*"),
        ("0 0 * */4 *", "min=0 hour=0 dom=* mon=1,5,9 dow=*"),
        ("0,30 9-17 * * *", "min=0,30 hour=9,10,11,12,13,14,15,16,17 dom=* mon=* dow=*"),
        ("1,2,2,59 23 31 12 *", "min=1,2,59 hour=23 dom=31 mon=12 dow=*"),
        ("0 0 1 * MON", "min=0 hour=0 dom=1 mon=* dow=1 dom|dow"),
        ("0 0 */2 * MON", "min=0 hour=0 dom=1,3,5,7,9,11,13,15,17,19,21,23,25,27,29,31 mon=* dow=1"),
        ("0 0 1-31 * 0-7", "min=0 hour=0 dom=* mon=* dow=* dom|dow"),
        ("0 0 1,* * 1", "min=0 hour=0 dom=* mon=* dow=1 dom|dow"),
        ("0 0 1 * */1", "min=0 hour=0 dom=1 mon=* dow=*"),
        ("7/100 0 31/99 * *", "min=7 hour=0 dom=31 mon=* dow=*"),
        ("0 0 * * 0/99999999999999999999", "min=0 hour=0 dom=* mon=* dow=0"),
        ("00 07 01 01 *", "min=0 hour=7 dom=1 mon=1 dow=*"),
    ];
    for (expr, expect) in cases {
        check(expr, expect);
    }
}

#[test]
fn parse_errors() {
    let quartz = "Quartz syntax (?, L, W, #) is not standard crontab";
    #[rustfmt::skip]
    let cases = [
        ("", "error: 0 fields".to_owned()),
        ("* * * *", "error: 4 fields".into()),
        ("0 * * * * *", "error: 6 fields".into()),
        ("0 0 12 * * ?", "error: 6 fields".into()),
        ("@daily", "error: 1 fields".into()),
        ("60 * * * *", "error: minute: 60 is out of range 0-59".into()),
        ("* 24 * * *", "error: hour: 24 is out of range 0-23".into()),
        ("* * 0 * *", "error: day-of-month: 0 is out of range 1-31".into()),
        ("* * 1-32 * *", "error: day-of-month: 32 is out of range 1-31".into()),
        ("* * * 13 *", "error: month: 13 is out of range 1-12".into()),
        ("* * * 0 *", "error: month: 0 is out of range 1-12".into()),
        ("* * * * 8", "error: day-of-week: 8 is out of range 0-7".into()),
        ("99999999999 * * * *", "error: minute: 99999999999 is out of range 0-59".into()),
        ("5-1 * * * *", "error: minute: range 5-1 is reversed (start after end)".into()),
        ("* * * * FRI-MON", "error: day-of-week: range FRI-MON is reversed (start after end)".into()),
        ("* * * * FRI-SUN", "error: day-of-week: range FRI-SUN is reversed (start after end)".into()),
        ("*/0 * * * *", "error: minute: step must be at least 1".into()),
        ("* 1-5/0 * * *", "error: hour: step must be at least 1".into()),
        ("*/ * * * *", r#"error: minute: step "" is not a number"#.into()),
        ("*/-1 * * * *", r#"error: minute: step "-1" is not a number"#.into()),
        ("*/2/3 * * * *", r#"error: minute: step "2/3" is not a number"#.into()),
        ("1,,2 * * * *", "error: minute: empty list element".into()),
        ("1, * * * *", "error: minute: empty list element".into()),
        ("* ,3 * * *", "error: hour: empty list element".into()),
        ("-5 * * * *", "error: minute: missing value".into()),
        ("1- * * * *", "error: minute: missing value".into()),
        ("1-2-3 * * * *", r#"error: minute: "2-3" is not a number in 0-59"#.into()),
        ("*-5 * * * *", r#"error: minute: "*" is not a number in 0-59"#.into()),
        ("+5 * * * *", r#"error: minute: "+5" is not a number in 0-59"#.into()),
        ("x * * * *", r#"error: minute: "x" is not a number in 0-59"#.into()),
        ("* * MON * *", r#"error: day-of-month: "MON" is not a number in 1-31"#.into()),
        ("* * * * MONDAY", r#"error: day-of-week: "MONDAY" is not a number in 0-7 nor SUN-SAT"#.into()),
        ("* * * * JAN", r#"error: day-of-week: "JAN" is not a number in 0-7 nor SUN-SAT"#.into()),
        ("* * * JANUARY *", r#"error: month: "JANUARY" is not a number in 1-12 nor JAN-DEC"#.into()),
        ("* * ? * MON", format!(r#"error: day-of-month: "?": {quartz}"#)),
        ("* * L * *", format!(r#"error: day-of-month: "L": {quartz}"#)),
        ("* * 15W * *", format!(r#"error: day-of-month: "15W": {quartz}"#)),
        ("* * LW * *", format!(r#"error: day-of-month: "LW": {quartz}"#)),
        ("* * * * 5L", format!(r#"error: day-of-week: "5L": {quartz}"#)),
        ("* * * * 5#3", format!(r#"error: day-of-week: "5#3": {quartz}"#)),
    ];
    for (expr, expect) in cases {
        check(expr, &expect);
    }
}

#[test]
fn error_messages_name_expression_field_and_element() {
    #[rustfmt::skip]
    let cases = [
        ("0 0 * * 8", r#"cron expression "0 0 * * 8": day-of-week field "8": 8 is out of range 0-7"#),
        (" 0 0 1,,2 * * ", r#"cron expression "0 0 1,,2 * *": day-of-month field "": empty list element"#),
        (
            "0 0 0 * * *",
            "cron expression \"0 0 0 * * *\": expected 5 fields \
             (minute hour day-of-month month day-of-week), found 6",
        ),
    ];
    for (expr, expect) in cases {
        assert_eq!(CronExpr::parse(expr).unwrap_err().to_string(), expect);
    }
}

#[test]
fn error_variants_carry_the_field() {
    assert_eq!(
        CronExpr::parse(" 0 0 * * 8 "),
        Err(CronError::Field {
            expr: "0 0 * * 8".into(),
            field: "day-of-week",
            value: "8".into(),
            reason: "8 is out of range 0-7".into(),
        })
    );
    assert_eq!(
        "0 0 0 * * *".parse::<CronExpr>(),
        Err(CronError::FieldCount {
            expr: "0 0 0 * * *".into(),
            found: 6
        })
    );
}

#[test]
fn source_display_and_every_minute() {
    let e = CronExpr::from_str("  0 9-17 * * MON-FRI ").unwrap();
    assert_eq!(e.as_str(), "0 9-17 * * MON-FRI");
    assert_eq!(e.to_string(), "0 9-17 * * MON-FRI");
    assert_eq!(
        CronExpr::every_minute(),
        CronExpr::parse("* * * * *").unwrap()
    );
    let cases = [
        ("* * * * *", true),
        ("*/1 0-23 1-31 JAN-DEC 0-7", true),
        ("* * 1-31 * MON", true),
        ("* * 1 * 0-6", true),
        ("* * * * 0-6", true),
        ("* * */1 * *", true),
        ("* * * * MON", false),
        ("* * 1 * MON", false),
        ("* * */2 * 0-6", false),
        ("0-58 * * * *", false),
        ("* 1-23 * * *", false),
        ("* * * 2-12 *", false),
    ];
    for (expr, every) in cases {
        assert_eq!(
            CronExpr::parse(expr).unwrap().is_every_minute(),
            every,
            "{expr}"
        );
    }
}

fn at(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
}

#[test]
fn matching_and_the_vixie_day_rule() {
    // 2024-01-01 is a Monday.
    let cases = [
        ("0 0 1 * MON", "2024-01-01 00:00", true),
        ("0 0 1 * MON", "2024-02-01 00:00", true), // Thursday the 1st
        ("0 0 1 * MON", "2024-01-08 00:00", true), // a Monday
        ("0 0 1 * MON", "2024-01-02 00:00", false),
        ("0 0 1 * MON", "2024-01-08 00:01", false),
        // `*/2` begins with `*`: unrestricted, so both must match.
        ("0 0 */2 * MON", "2024-01-01 00:00", true),
        ("0 0 */2 * MON", "2024-01-15 00:00", true),
        ("0 0 */2 * MON", "2024-01-08 00:00", false),
        ("0 0 */2 * MON", "2024-01-03 00:00", false),
        ("0 0 * * MON", "2024-01-08 00:00", true),
        ("0 0 * * MON", "2024-01-09 00:00", false),
        ("0 0 1 * *", "2024-03-01 00:00", true),
        ("0 0 1 * *", "2024-03-02 00:00", false),
        ("0 0 1-31 * MON", "2024-01-09 00:00", true),
        ("0 0 * * 7", "2024-01-07 00:00", true),
        ("0 0 * * 0", "2024-01-07 00:00", true),
        ("0 0 * * 7", "2024-01-06 00:00", false),
        ("30 8 * * MON-FRI", "2024-01-05 08:30", true),
        ("30 8 * * MON-FRI", "2024-01-06 08:30", false),
        ("0 0 29 FEB *", "2024-02-29 00:00", true),
        ("*/15 * * * *", "2024-06-30 23:45", true),
        ("*/15 * * * *", "2024-06-30 23:44", false),
    ];
    for (expr, time, expect) in cases {
        let e = CronExpr::parse(expr).unwrap();
        assert_eq!(e.matches(&at(time)), expect, "{expr} at {time}");
    }
}

#[test]
fn matches_fields_rejects_out_of_range_values() {
    let e = CronExpr::every_minute();
    assert!(e.matches_fields(59, 23, 31, 12, 6));
    for (m, h, d, mo, w) in [
        (60, 0, 1, 1, 0),
        (64, 0, 1, 1, 0),
        (0, 24, 1, 1, 0),
        (0, 0, 0, 1, 0),
        (0, 0, 32, 1, 0),
    ] {
        assert!(!e.matches_fields(m, h, d, mo, w), "{m} {h} {d} {mo} {w}");
    }
    for (m, h, d, mo, w) in [
        (0, 0, 1, 0, 0),
        (0, 0, 1, 13, 0),
        (0, 0, 1, 1, 7),
        (u32::MAX, 0, 1, 1, 0),
    ] {
        assert!(!e.matches_fields(m, h, d, mo, w), "{m} {h} {d} {mo} {w}");
    }
}

#[test]
fn cron_crate_translation_text() {
    #[rustfmt::skip]
    let cases = [
        ("* * * * *", vec!["0 * * * * *"]),
        ("*/20 9-11 * * MON-FRI", vec!["0 0,20,40 9,10,11 * * MON,TUE,WED,THU,FRI"]),
        ("0 0 * * 7", vec!["0 0 0 * * SUN"]),
        ("0 0 */10 JAN *", vec!["0 0 0 1,11,21,31 1 *"]),
        ("0 0 1 * MON", vec!["0 0 0 1 * *", "0 0 0 * * MON"]),
        ("0 0 */2 * MON", vec!["0 0 0 1,3,5,7,9,11,13,15,17,19,21,23,25,27,29,31 * MON"]),
    ];
    for (expr, expect) in cases {
        assert_eq!(
            CronExpr::parse(expr).unwrap().to_cron_crate(),
            expect,
            "{expr}"
        );
    }
}

/// The `cron` crate numbers weekdays 1-7 from Sunday; pin that down so a
/// change of the dependency cannot silently shift our names.
#[test]
fn cron_crate_weekday_numbering() {
    let monday = NaiveDate::from_ymd_opt(2024, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let numbered = ::cron::Schedule::from_str("0 0 0 * * 2").unwrap();
    let named = ::cron::Schedule::from_str("0 0 0 * * MON").unwrap();
    assert!(numbered.includes(monday) && named.includes(monday));
    let sunday = monday - Duration::days(1);
    assert!(::cron::Schedule::from_str("0 0 0 * * 1")
        .unwrap()
        .includes(sunday));
    assert!(::cron::Schedule::from_str("0 0 0 * * SUN")
        .unwrap()
        .includes(sunday));
}

/// Union of the translated schedules, as the `cron` crate evaluates it.
fn cron_crate_union(e: &CronExpr) -> Vec<::cron::Schedule> {
    e.to_cron_crate()
        .iter()
        .map(|s| {
            ::cron::Schedule::from_str(s).unwrap_or_else(|err| panic!("{s:?} from {e}: {err}"))
        })
        .collect()
}

fn union_includes(schedules: &[::cron::Schedule], t: NaiveDateTime) -> bool {
    schedules.iter().any(|s| s.includes(t.and_utc()))
}

#[test]
fn cron_crate_agrees_on_every_hour_of_a_leap_year() {
    let exprs = [
        "0 0 1 * MON",
        "0 0 */2 * MON",
        "0 */5 13,31 * FRI",
        "0 9-17 * * MON-FRI",
        "0 0 29 2 *",
        "0 0 1 * 0-7",
        "0 0 */7 * 7",
    ];
    let start = at("2024-01-01 00:00");
    for expr in exprs {
        let e = CronExpr::parse(expr).unwrap();
        let schedules = cron_crate_union(&e);
        for h in 0..366 * 24 {
            let t = start + Duration::hours(h);
            assert_eq!(
                union_includes(&schedules, t),
                e.matches(&t),
                "{expr} at {t}"
            );
        }
    }
}

// ---- Property tests -------------------------------------------------

/// An independent reading of the expression text: each field's set is
/// found by asking, for every candidate value, whether some list element
/// contains it. Names go through chrono's parsers.
struct Naive {
    sets: Vec<BTreeSet<u32>>,
    dom_star: bool,
    dow_star: bool,
}

const RANGES: [(u32, u32); 5] = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];

fn naive_value(text: &str, field: usize) -> u32 {
    if let Ok(n) = text.parse::<u32>() {
        return n;
    }
    match field {
        3 => text.parse::<chrono::Month>().unwrap().number_from_month(),
        4 => text
            .parse::<chrono::Weekday>()
            .unwrap()
            .num_days_from_sunday(),
        _ => panic!("no names in field {field}"),
    }
}

fn naive_contains(element: &str, field: usize, v: u32) -> bool {
    let (min, max) = RANGES[field];
    let (range, step) = match element.split_once('/') {
        Some((r, s)) => (r, Some(s.parse::<u64>().unwrap())),
        None => (element, None),
    };
    let (lo, hi) = if range == "*" {
        (min, max)
    } else if let Some((a, b)) = range.split_once('-') {
        (naive_value(a, field), naive_value(b, field))
    } else {
        let a = naive_value(range, field);
        (a, if step.is_some() { max } else { a })
    };
    lo <= v && v <= hi && u64::from(v - lo) % step.unwrap_or(1) == 0
}

impl Naive {
    fn new(expr: &str) -> Naive {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        assert_eq!(fields.len(), 5);
        let sets = (0..5)
            .map(|i| {
                let (min, max) = RANGES[i];
                (min..=max)
                    .filter(|&v| fields[i].split(',').any(|el| naive_contains(el, i, v)))
                    .collect()
            })
            .collect();
        Naive {
            sets,
            dom_star: fields[2].starts_with('*'),
            dow_star: fields[4].starts_with('*'),
        }
    }

    fn matches(&self, t: &NaiveDateTime) -> bool {
        let w = t.weekday().num_days_from_sunday();
        let dom = self.sets[2].contains(&t.day());
        let dow = self.sets[4].contains(&w) || (w == 0 && self.sets[4].contains(&7));
        let day = if !self.dom_star && !self.dow_star {
            dom || dow
        } else {
            dom && dow
        };
        self.sets[0].contains(&t.minute())
            && self.sets[1].contains(&t.hour())
            && self.sets[3].contains(&t.month())
            && day
    }
}

/// A value of `field`, as a number or (where the field has names) a name in random case.
fn value_text(field: usize) -> BoxedStrategy<(u32, String)> {
    let (min, max) = RANGES[field];
    (min..=max, any::<bool>(), any::<bool>())
        .prop_map(move |(v, use_name, lower)| {
            let name = match field {
                3 => Some(MONTH_NAMES[(v - 1) as usize]),
                4 if v < 7 => Some(DAY_NAMES[v as usize]),
                _ => None,
            };
            let text = match name {
                Some(n) if use_name && lower => n.to_ascii_lowercase(),
                Some(n) if use_name => n.to_owned(),
                _ => v.to_string(),
            };
            (v, text)
        })
        .boxed()
}

fn element(field: usize) -> BoxedStrategy<String> {
    let (_, max) = RANGES[field];
    let step = prop_oneof![1..=max + 1, Just(1000)];
    let pair = (value_text(field), value_text(field)).prop_map(|(a, b)| {
        if a.0 <= b.0 {
            format!("{}-{}", a.1, b.1)
        } else {
            format!("{}-{}", b.1, a.1)
        }
    });
    prop_oneof![
        2 => Just("*".to_owned()),
        2 => step.clone().prop_map(|s| format!("*/{s}")),
        3 => value_text(field).prop_map(|v| v.1),
        2 => pair.clone(),
        2 => (pair, step.clone()).prop_map(|(p, s)| format!("{p}/{s}")),
        1 => (value_text(field), step).prop_map(|(v, s)| format!("{}/{s}", v.1)),
    ]
    .boxed()
}

fn field(i: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(element(i), 1..=3).prop_map(|els| els.join(","))
}

fn expression() -> impl Strategy<Value = String> {
    (
        field(0),
        field(1),
        field(2),
        field(3),
        field(4),
        prop_oneof![Just(" "), Just("  "), Just("\t")],
    )
        .prop_map(|(m, h, dom, mon, dow, sep)| [m, h, dom, mon, dow].join(sep))
}

const YEARS_2000_TO_2040: i64 = 14_975 * 24 * 60; // minutes from 2000-01-01 to 2041-01-01

fn minute_since_2000(offset: i64) -> NaiveDateTime {
    at("2000-01-01 00:00") + Duration::minutes(offset)
}

/// Instants to compare at: random ones, every day of a year at a time of
/// day the expression allows (exercises the day rule), and every minute
/// of a random day (exercises minutes and hours).
fn probes(e: &CronExpr, random: &[i64], year: i32, day: i64) -> Vec<NaiveDateTime> {
    let mut out: Vec<NaiveDateTime> = random.iter().map(|&o| minute_since_2000(o)).collect();
    let minute = e.minutes.trailing_zeros() as i64;
    let hour = e.hours.trailing_zeros() as i64;
    let jan1 = NaiveDate::from_ymd_opt(year, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    out.extend(
        (0..366)
            .map(|d| jan1 + Duration::days(d) + Duration::hours(hour) + Duration::minutes(minute)),
    );
    let midnight = minute_since_2000(day * 24 * 60);
    out.extend((0..24 * 60).map(|m| midnight + Duration::minutes(m)));
    out
}

fn probe_inputs() -> impl Strategy<Value = (Vec<i64>, i32, i64)> {
    (
        prop::collection::vec(0..YEARS_2000_TO_2040, 32),
        2000..=2040i32,
        0..YEARS_2000_TO_2040 / (24 * 60),
    )
}

proptest! {
    #[test]
    fn agrees_with_naive_reading(expr in expression(), (random, year, day) in probe_inputs()) {
        let e = CronExpr::parse(&expr).unwrap();
        let naive = Naive::new(&expr);
        for t in probes(&e, &random, year, day) {
            prop_assert_eq!(e.matches(&t), naive.matches(&t), "{} at {}", expr, t);
        }
    }

    #[test]
    fn cron_crate_union_agrees(expr in expression(), (random, year, day) in probe_inputs()) {
        let e = CronExpr::parse(&expr).unwrap();
        let schedules = cron_crate_union(&e);
        for t in probes(&e, &random, year, day) {
            let union = union_includes(&schedules, t);
            prop_assert_eq!(union, e.matches(&t), "{} as {:?} at {}", expr, e.to_cron_crate(), t);
        }
    }
}

#[test]
fn expressions_that_can_never_match_are_told_apart() {
    for (expr, can) in [
        ("0 0 31 2 *", false),
        ("0 0 30,31 2 *", false),
        ("0 0 31 4,6,9,11 *", false),
        ("0 0 29 2 *", true),
        ("0 0 31 2,3 *", true),
        ("0 0 31 2 MON", true),
        ("*/5 7-9 * * MON-FRI", true),
        ("* * * * *", true),
        ("0 12 */7 * SUN", true),
    ] {
        assert_eq!(CronExpr::parse(expr).unwrap().can_match(), can, "{expr}");
    }
}
