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

/// One element of a field's list: `a`, `a-b`, with an optional step; `*` is `lo..=hi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Part {
    lo: u32,
    hi: u32,
    step: u32,
    star: bool,
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
    let minutes = parts(f[0], 0, 59, &[]);
    let hours = parts(f[1], 0, 23, &[]);
    let doms = parts(f[2], 1, 31, &[]);
    let months = parts(f[3], 1, 12, &MONTH_NAMES);
    let dows = parts(f[4], 0, 7, &DAY_NAMES);
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

/// The list elements of a valid field.
fn parts(text: &str, min: u32, max: u32, names: &[&str]) -> Vec<Part> {
    let value = |s: &str| -> u32 {
        names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(s))
            .map(|i| i as u32 + min)
            .unwrap_or_else(|| s.parse().unwrap_or(min))
    };
    text.split(',')
        .map(|item| {
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => (r, s.parse().unwrap_or(1)),
                None => (item, 1),
            };
            let star = range == "*";
            let (lo, hi) = if star {
                (min, max)
            } else if let Some((a, b)) = range.split_once('-') {
                (value(a), value(b))
            } else if step > 1 {
                (value(range), max)
            } else {
                let v = value(range);
                (v, v)
            };
            Part { lo, hi, step, star }
        })
        .collect()
}

fn is_all(p: &[Part]) -> bool {
    p.len() == 1 && p[0].star && p[0].step == 1
}

fn single(p: &[Part]) -> Option<u32> {
    (p.len() == 1 && p[0].lo == p[0].hi).then_some(p[0].lo)
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

/// A field's list in words with `name` for a value: (en, zh).
fn list(
    p: &[Part],
    name_en: impl Fn(u32) -> String,
    name_zh: impl Fn(u32) -> String,
) -> (String, String) {
    let en = p
        .iter()
        .map(|x| match (x.lo == x.hi, x.step) {
            (true, _) => name_en(x.lo),
            (false, 1) => format!("{} to {}", name_en(x.lo), name_en(x.hi)),
            (false, n) => format!("every {n} from {} to {}", name_en(x.lo), name_en(x.hi)),
        })
        .collect();
    let zh = p
        .iter()
        .map(|x| match (x.lo == x.hi, x.step) {
            (true, _) => name_zh(x.lo),
            (false, 1) => format!("{}至{}", name_zh(x.lo), name_zh(x.hi)),
            (false, n) => format!("{}至{}每隔{n}", name_zh(x.lo), name_zh(x.hi)),
        })
        .collect();
    (join(en, "and", ", "), join(zh, "", "、"))
}

fn time(minutes: &[Part], hours: &[Part]) -> (String, String) {
    let hour_spans = || -> Option<(Vec<String>, Vec<String>)> {
        // Whole hours (no steps): "from 07:00 to 08:59".
        if hours.iter().any(|h| h.step != 1) {
            return None;
        }
        let en = hours
            .iter()
            .map(|h| format!("from {:02}:00 to {:02}:59", h.lo, h.hi))
            .collect();
        let zh = hours
            .iter()
            .map(|h| format!("{:02}:00至{:02}:59", h.lo, h.hi))
            .collect();
        Some((en, zh))
    };
    if is_all(minutes) {
        if is_all(hours) {
            return ("every minute".into(), "每分钟".into());
        }
        if let Some((en, zh)) = hour_spans() {
            return (
                format!("every minute {}", join(en, "and", ", ")),
                format!("{} 每分钟", join(zh, "", "、")),
            );
        }
    }
    if minutes.len() == 1 && minutes[0].star && minutes[0].step > 1 {
        let n = minutes[0].step;
        if is_all(hours) {
            return (format!("every {n} minutes"), format!("每{n}分钟"));
        }
        if let Some((en, zh)) = hour_spans() {
            return (
                format!("every {n} minutes {}", join(en, "and", ", ")),
                format!("{} 每{n}分钟", join(zh, "", "、")),
            );
        }
    }
    if let (Some(h), [m]) = (single(hours), minutes) {
        if m.step == 1 && m.lo < m.hi {
            return (
                format!("every minute from {h:02}:{:02} to {h:02}:{:02}", m.lo, m.hi),
                format!("{h:02}:{:02}至{h:02}:{:02} 每分钟", m.lo, m.hi),
            );
        }
    }
    if let Some(m) = single(minutes) {
        if is_all(hours) {
            return (
                format!("at minute {m} of every hour"),
                format!("每小时第{m}分"),
            );
        }
        if hours.iter().all(|h| h.lo == h.hi) {
            let at: Vec<String> = hours
                .iter()
                .map(|h| format!("{:02}:{m:02}", h.lo))
                .collect();
            return (
                format!("at {}", join(at.clone(), "and", ", ")),
                join(at, "", "、"),
            );
        }
    }
    let (m_en, m_zh) = list(minutes, |v| v.to_string(), |v| v.to_string());
    let (h_en, h_zh) = list(hours, |v| format!("{v:02}"), |v| format!("{v}点"));
    let m_en = if is_all(minutes) {
        "every minute".to_owned()
    } else {
        format!("at minute {m_en}")
    };
    let h_en = if is_all(hours) {
        "of every hour".to_owned()
    } else {
        format!("past hour {h_en}")
    };
    let h_zh = if is_all(hours) {
        "每小时".to_owned()
    } else {
        h_zh
    };
    let m_zh = if is_all(minutes) {
        "每分钟".to_owned()
    } else {
        format!("第{m_zh}分")
    };
    (format!("{m_en} {h_en}"), format!("{h_zh}{m_zh}"))
}

fn days(doms: &[Part], dows: &[Part]) -> (String, String) {
    let dom = || {
        let (en, zh) = list(doms, |v| v.to_string(), |v| format!("{v}日"));
        if doms.len() == 1 && doms[0].star {
            let n = doms[0].step;
            (
                format!("every {n} days of the month from the 1st"),
                format!("每月从1日起每隔{n}天"),
            )
        } else {
            (format!("on day {en} of the month"), format!("每月{zh}"))
        }
    };
    let dow = || {
        let folded: Vec<Part> = dows
            .iter()
            .map(|p| {
                let fold = |v: u32| if v == 7 { 0 } else { v };
                if p.lo == p.hi {
                    Part {
                        lo: fold(p.lo),
                        hi: fold(p.hi),
                        ..*p
                    }
                } else {
                    *p
                }
            })
            .collect();
        let en_name = |v: u32| DAYS_EN[(v % 7) as usize].to_owned();
        let zh_name = |v: u32| DAYS_ZH[(v % 7) as usize].to_owned();
        let (en, zh) = list(&folded, en_name, zh_name);
        if dows.len() == 1 && dows[0].star {
            let n = dows[0].step;
            (
                format!("every {n} days of the week from Sunday"),
                format!("从周日起每隔{n}天"),
            )
        } else {
            (en, zh)
        }
    };
    // A field starting with `*` is unrestricted (cronie); both restricted: either matches.
    match (is_all(doms), is_all(dows)) {
        (true, true) => ("every day".into(), "每天".into()),
        (false, true) => dom(),
        (true, false) => dow(),
        (false, false) => {
            let (a, b) = (dom(), dow());
            let dom_unrestricted = doms.first().is_some_and(|p| p.star);
            let dow_unrestricted = dows.first().is_some_and(|p| p.star);
            if dom_unrestricted || dow_unrestricted {
                (format!("{} and {}", a.0, b.0), format!("{}且{}", a.1, b.1))
            } else {
                (format!("{} or {}", a.0, b.0), format!("{}或{}", a.1, b.1))
            }
        }
    }
}

fn month(months: &[Part]) -> (String, String) {
    if is_all(months) {
        return (String::new(), String::new());
    }
    let (en, zh) = list(
        months,
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
            "0-29 */2 * * *",
            "at minute 0 to 29 past hour every 2 from 00 to 23, every day",
            "每天 0点至23点每隔2第0至29分",
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
            "at 08:00, on day 1 of the month or Monday",
            "每月1日或周一 08:00",
        );
        check(
            "* * * 11-12 *",
            "every minute, every day, in November to December",
            "11月至12月 每天 每分钟",
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
