//! Crontab dayparts as readable text, in English and Chinese: "every minute from 07:00 to
//! 08:59, Monday to Friday" / "周一至周五 07:00至08:59 每分钟". Pure: the expression is
//! parsed by `playlists::cron` (its errors are the ones a save reports) and only valid
//! text is described. No crate describes this dialect (cronie's, with `a/n` and the Vixie
//! day rule) in Chinese, so the few rules live here.

use playlists::cron::{CronError, CronExpr};

/// A daypart in both languages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pub en: String,
    pub zh: String,
}

/// A field of a valid expression: the values it admits, in reading order.
struct Field {
    /// Sorted by [`Field::key`] (weekdays from Monday), no repeats.
    values: Vec<u32>,
    /// Unrestricted: the text begins with `*` and admits every value.
    all: bool,
    /// The text begins with `*` (cronie's test for the day rule).
    star: bool,
    /// `*/n` alone.
    every: Option<u32>,
    weekdays: bool,
}

const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS_EN: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const DAYS_ZH: [&str; 7] = ["周日", "周一", "周二", "周三", "周四", "周五", "周六"];
const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// `expr` in words, or the parser's own error.
pub fn describe(expr: &str) -> Result<Text, CronError> {
    let parsed = CronExpr::parse(expr)?;
    let f: Vec<&str> = parsed.as_str().split_whitespace().collect();
    let minutes = Field::parse(f[0], 0, 59, &[], false);
    let hours = Field::parse(f[1], 0, 23, &[], false);
    let doms = Field::parse(f[2], 1, 31, &[], false);
    let months = Field::parse(f[3], 1, 12, &MONTH_NAMES, false);
    let dows = Field::parse(f[4], 0, 7, &DAY_NAMES, true);
    let (time_en, time_zh) = time(&minutes, &hours);
    let (days_en, days_zh) = days(&doms, &dows);
    let (month_en, month_zh) = month(&months);
    let mut en = time_en;
    for extra in [days_en, month_en] {
        if !extra.is_empty() {
            en.push_str(", ");
            en.push_str(&extra);
        }
    }
    let zh = [month_zh, days_zh, time_zh]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    Ok(Text { en, zh })
}

impl Field {
    /// A field the parser accepted: `*`, `a`, `a-b`, each with an optional `/step`
    /// (`a/n` runs to the maximum), names where the field has them.
    fn parse(text: &str, min: u32, max: u32, names: &[&str], weekdays: bool) -> Field {
        let value = |s: &str| -> u32 {
            names
                .iter()
                .position(|n| n.eq_ignore_ascii_case(s))
                .map(|i| i as u32 + min)
                .unwrap_or_else(|| s.parse().unwrap_or(min))
        };
        let mut values = Vec::new();
        for item in text.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => (r, s.parse::<u32>().unwrap_or(1).max(1)),
                None => (item, 1),
            };
            let (lo, hi) = if range == "*" {
                (min, max)
            } else if let Some((a, b)) = range.split_once('-') {
                (value(a), value(b))
            } else if item.contains('/') {
                (value(range), max)
            } else {
                (value(range), value(range))
            };
            values.extend((lo..=hi).step_by(step as usize));
        }
        if weekdays {
            for v in &mut values {
                *v %= 7;
            }
        }
        let mut field = Field {
            values: Vec::new(),
            all: false,
            star: text.starts_with('*'),
            every: text
                .strip_prefix("*/")
                .filter(|n| !n.contains(','))
                .and_then(|n| n.parse().ok()),
            weekdays,
        };
        values.sort_by_key(|&v| field.key(v));
        values.dedup();
        let span = if weekdays { 7 } else { max - min + 1 };
        field.all = field.star && values.len() == span as usize;
        field.values = values;
        field
    }

    /// The reading order: weekdays from Monday.
    fn key(&self, v: u32) -> u32 {
        if self.weekdays {
            (v + 6) % 7
        } else {
            v
        }
    }

    /// Runs of consecutive values: (first, last).
    fn runs(&self) -> Vec<(u32, u32)> {
        let mut out: Vec<(u32, u32)> = Vec::new();
        for &v in &self.values {
            match out.last_mut() {
                Some((_, last)) if self.key(*last) + 1 == self.key(v) => *last = v,
                _ => out.push((v, v)),
            }
        }
        out
    }

    /// The values in words, runs of three or more as ranges: (en, zh).
    fn say(&self, en: impl Fn(u32) -> String, zh: impl Fn(u32) -> String) -> (String, String) {
        let (mut e, mut z) = (Vec::new(), Vec::new());
        for (a, b) in self.runs() {
            if self.key(b) >= self.key(a) + 2 {
                e.push(format!("{} to {}", en(a), en(b)));
                z.push(format!("{}至{}", zh(a), zh(b)));
            } else {
                for v in self.values.iter().copied() {
                    if self.key(v) >= self.key(a) && self.key(v) <= self.key(b) {
                        e.push(en(v));
                        z.push(zh(v));
                    }
                }
            }
        }
        (join(e, "and", ", "), join(z, "", "、"))
    }
}

/// A list joined as "a, b and c" / "a、b、c".
fn join(items: Vec<String>, and: &str, sep: &str) -> String {
    match items.split_last() {
        Some((last, rest)) if !rest.is_empty() && !and.is_empty() => {
            format!("{} {and} {last}", rest.join(sep))
        }
        _ => items.join(sep),
    }
}

fn time(minutes: &Field, hours: &Field) -> (String, String) {
    // The hours as spans of whole hours: "from 07:00 to 08:59".
    let runs = hours.runs();
    let spans_en = join(
        runs.iter()
            .map(|(a, b)| format!("from {a:02}:00 to {b:02}:59"))
            .collect(),
        "and",
        ", ",
    );
    let spans_zh = join(
        runs.iter()
            .map(|(a, b)| format!("{a:02}:00至{b:02}:59"))
            .collect(),
        "",
        "、",
    );
    if minutes.all {
        return if hours.all {
            ("every minute".into(), "每分钟".into())
        } else {
            (
                format!("every minute {spans_en}"),
                format!("{spans_zh} 每分钟"),
            )
        };
    }
    if let Some(n) = minutes.every {
        return if hours.all {
            (format!("every {n} minutes"), format!("每{n}分钟"))
        } else {
            (
                format!("every {n} minutes {spans_en}"),
                format!("{spans_zh} 每{n}分钟"),
            )
        };
    }
    let m_runs = minutes.runs();
    if let ([h], [(a, b)]) = (hours.values.as_slice(), m_runs.as_slice()) {
        if a < b {
            return (
                format!("every minute from {h:02}:{a:02} to {h:02}:{b:02}"),
                format!("{h:02}:{a:02}至{h:02}:{b:02} 每分钟"),
            );
        }
    }
    if let [m] = minutes.values.as_slice() {
        if hours.all {
            return (
                format!("at minute {m} of every hour"),
                format!("每小时第{m}分"),
            );
        }
        if hours.values.len() <= 12 {
            let at: Vec<String> = hours
                .values
                .iter()
                .map(|h| format!("{h:02}:{m:02}"))
                .collect();
            return (
                format!("at {}", join(at.clone(), "and", ", ")),
                join(at, "", "、"),
            );
        }
    }
    let (m_en, m_zh) = minutes.say(|v| v.to_string(), |v| v.to_string());
    let (h_en, h_zh) = hours.say(|v| format!("{v:02}"), |v| format!("{v}点"));
    let plural = if minutes.values.len() > 1 { "s" } else { "" };
    if hours.all {
        (
            format!("at minute{plural} {m_en} of every hour"),
            format!("每小时第{m_zh}分"),
        )
    } else {
        let hp = if hours.values.len() > 1 { "s" } else { "" };
        (
            format!("at minute{plural} {m_en} past hour{hp} {h_en}"),
            format!("{h_zh} 第{m_zh}分"),
        )
    }
}

fn days(doms: &Field, dows: &Field) -> (String, String) {
    let dom = || {
        let (en, zh) = doms.say(|v| v.to_string(), |v| format!("{v}日"));
        (format!("on day {en} of the month"), format!("每月{zh}"))
    };
    let dow = || {
        dows.say(
            |v| DAYS_EN[(v % 7) as usize].to_owned(),
            |v| DAYS_ZH[(v % 7) as usize].to_owned(),
        )
    };
    match (doms.all, dows.all) {
        (true, true) => ("every day".into(), "每天".into()),
        (false, true) => dom(),
        (true, false) => dow(),
        (false, false) => {
            let ((de, dz), (we, wz)) = (dom(), dow());
            // Vixie: both restricted, either matches; one starting with `*`, both must.
            if doms.star || dows.star {
                (format!("{de}, if a {we}"), format!("{dz}且逢{wz}"))
            } else {
                (format!("{de} or every {we}"), format!("{dz}或{wz}"))
            }
        }
    }
}

fn month(months: &Field) -> (String, String) {
    if months.all {
        return (String::new(), String::new());
    }
    let (en, zh) = months.say(
        |v| MONTHS_EN[(v as usize).clamp(1, 12) - 1].to_owned(),
        |v| format!("{v}月"),
    );
    (format!("in {en}"), zh)
}

#[cfg(test)]
mod tests {
    use super::describe;

    fn check(expr: &str, en: &str, zh: &str) {
        let t = describe(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert_eq!((t.en.as_str(), t.zh.as_str()), (en, zh), "{expr}");
    }

    #[test]
    fn the_scenarios_dayparts() {
        check("* * * * *", "every minute, every day", "每天 每分钟");
        check(
            "* 7-8 * * 1-5",
            "every minute from 07:00 to 08:59, Monday to Friday",
            "周一至周五 07:00至08:59 每分钟",
        );
        check(
            "30-59 17 * * 1-5",
            "every minute from 17:30 to 17:59, Monday to Friday",
            "周一至周五 17:30至17:59 每分钟",
        );
        check(
            "* 18 * * 1-5",
            "every minute from 18:00 to 18:59, Monday to Friday",
            "周一至周五 18:00至18:59 每分钟",
        );
    }

    #[test]
    fn times() {
        check(
            "0 9,17 * * *",
            "at 09:00 and 17:00, every day",
            "每天 09:00、17:00",
        );
        check(
            "15 * * * *",
            "at minute 15 of every hour, every day",
            "每天 每小时第15分",
        );
        check(
            "*/15 * * * *",
            "every 15 minutes, every day",
            "每天 每15分钟",
        );
        check(
            "*/10 6-9,16-19 * * *",
            "every 10 minutes from 06:00 to 09:59 and from 16:00 to 19:59, every day",
            "每天 06:00至09:59、16:00至19:59 每10分钟",
        );
        check(
            "0-29 */6 * * *",
            "at minutes 0 to 29 past hours 00, 06, 12 and 18, every day",
            "每天 0点、6点、12点、18点 第0至29分",
        );
        // `a/n` runs from a to the field's maximum, as cronie reads it.
        check(
            "3/20 22/1 * * *",
            "at minutes 3, 23 and 43 past hours 22 and 23, every day",
            "每天 22点、23点 第3、23、43分",
        );
    }

    #[test]
    fn days_and_months() {
        check(
            "* * * * SAT,SUN",
            "every minute, Saturday and Sunday",
            "周六、周日 每分钟",
        );
        check("* * * * 7", "every minute, Sunday", "周日 每分钟");
        check(
            "0 8 1,15 DEC *",
            "at 08:00, on day 1 and 15 of the month, in December",
            "12月 每月1日、15日 08:00",
        );
        check(
            "0 8 1 * MON",
            "at 08:00, on day 1 of the month or every Monday",
            "每月1日或周一 08:00",
        );
        check(
            "* * * 11-12 *",
            "every minute, every day, in November and December",
            "11月、12月 每天 每分钟",
        );
    }

    /// Every combination of these fields that parses is described in both languages.
    #[test]
    fn whatever_parses_has_words() {
        let minutes = ["*", "0", "5,35", "10-20", "*/7", "3/20", "0-30/10"];
        let hours = ["*", "9", "7-8,17-18", "*/3", "22/1", "8-20/4"];
        let doms = ["*", "1", "1-15", "*/2", "31"];
        let months = ["*", "DEC", "jan-mar", "2,4", "*/6"];
        let dows = ["*", "0", "7", "MON-FRI", "sat,SUN", "*/2", "1-5/2"];
        let mut n = 0;
        for m in minutes {
            for h in hours {
                for d in doms {
                    for mo in months {
                        for w in dows {
                            let expr = format!("{m} {h} {d} {mo} {w}");
                            let t = describe(&expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
                            assert!(!t.en.is_empty() && !t.zh.is_empty(), "{expr}");
                            n += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(n, 7 * 6 * 5 * 5 * 7);
    }

    #[test]
    fn the_day_rule() {
        // One day field starting with `*`: both must match.
        check(
            "0 0 */10 * MON",
            "at 00:00, on day 1, 11, 21 and 31 of the month, if a Monday",
            "每月1日、11日、21日、31日且逢周一 00:00",
        );
        check(
            "0 12 * * */2",
            "at 12:00, Tuesday, Thursday, Saturday and Sunday",
            "周二、周四、周六、周日 12:00",
        );
    }

    #[test]
    fn errors_are_the_parsers() {
        let e = describe("* 25 * * *").unwrap_err().to_string();
        assert!(e.contains("hour field"), "{e}");
        let e = describe("* * *").unwrap_err().to_string();
        assert!(e.contains("expected 5 fields"), "{e}");
    }
}
