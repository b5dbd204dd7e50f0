//! Planned against delivered over time: a window cut into hours or days of an IANA zone
//! (buckets follow the zone's own hours and midnights, so a `+05:30` zone or a DST change
//! gets the buckets its people see), each counting the plays planned (the schedule
//! documents in force, as `report` derives them) and delivered (complete records in the
//! ledger, by `slot_start`) inside a [`Filter`]. The bucketing is a pure function.

use chrono::{DateTime, Duration, NaiveTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use playlists::wire::PlayStatus;

use crate::drill::{Filter, Places};
use crate::report::Window;
use crate::store::{Dimension, Store};

/// How long a bucket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Hour,
    Day,
}

/// One bucket: `[start, end)` with its counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Point {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub planned: u64,
    pub delivered: u64,
}

/// The series and what it covers.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Series {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// `hour` or `day`.
    pub bucket: String,
    /// The IANA zone the buckets follow.
    pub zone: String,
    pub buckets: Vec<Point>,
    /// Sums over every bucket: the report's totals for the same window and filter.
    pub planned: u64,
    pub delivered: u64,
}

/// Where the next bucket of `zone` after `t` starts (the next local hour or midnight);
/// `None` past the end of time.
fn next_boundary(t: DateTime<Utc>, zone: Tz, bucket: Bucket) -> Option<DateTime<Utc>> {
    let offset = Duration::seconds(i64::from(
        t.with_timezone(&zone).offset().fix().local_minus_utc(),
    ));
    // `t`'s local time (checked: near the end of time it may not exist).
    let naive = t.naive_utc().checked_add_signed(offset)?;
    match bucket {
        Bucket::Hour => {
            // The local hour holding `t` started at its local time with zero minutes, at
            // the offset in force at `t`; the next one starts an hour later.
            let start = naive
                .date()
                .and_time(NaiveTime::from_hms_opt(naive.hour(), 0, 0).unwrap_or(NaiveTime::MIN));
            start
                .checked_sub_signed(offset)?
                .and_utc()
                .checked_add_signed(Duration::hours(1))
        }
        Bucket::Day => {
            // The first instant of a later local day: its midnight, or the end of a gap
            // that swallowed it.
            let mut date = naive.date();
            for _ in 0..3 {
                date = date.succ_opt()?;
                let mut at = date.and_time(NaiveTime::MIN);
                for _ in 0..6 {
                    if let Some(x) = zone.from_local_datetime(&at).earliest() {
                        let x = x.with_timezone(&Utc);
                        if x > t {
                            return Some(x);
                        }
                        break;
                    }
                    at = at.checked_add_signed(Duration::minutes(30))?;
                }
            }
            t.checked_add_signed(Duration::days(1))
        }
    }
}

/// The buckets `[start, end)` covering `[from, to)`, cut at `zone`'s local hours or
/// midnights; the first and last are clipped to the window.
pub fn buckets(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    zone: Tz,
    bucket: Bucket,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut out = Vec::new();
    let mut a = from;
    while a < to {
        let b = next_boundary(a, zone, bucket)
            .filter(|b| *b > a)
            .map_or(to, |b| b.min(to));
        out.push((a, b));
        a = b;
    }
    out
}

/// The index of the bucket holding `t`, if any.
pub fn bucket_of(buckets: &[(DateTime<Utc>, DateTime<Utc>)], t: DateTime<Utc>) -> Option<usize> {
    let i = buckets.partition_point(|(_, end)| *end <= t);
    buckets.get(i).filter(|(start, _)| *start <= t).map(|_| i)
}

/// Planned against delivered per bucket over the window inside `filter`.
pub fn series(
    store: &dyn Store,
    window: &Window,
    zone: Tz,
    bucket: Bucket,
    filter: &Filter,
) -> anyhow::Result<Series> {
    let (from, to) = window.resolve(store)?;
    let cuts = buckets(from, to, zone, bucket);
    let mut points: Vec<Point> = cuts
        .iter()
        .map(|&(start, end)| Point {
            start,
            end,
            planned: 0,
            delivered: 0,
        })
        .collect();
    let keep = |s: &playlists::ScreenSchedule| filter.keeps_schedule(s);
    let whole_hours = cuts
        .iter()
        .all(|(a, b)| a.timestamp() % 3_600 == 0 && b.timestamp() % 3_600 == 0);
    let wanted = |schedule: &playlists::ScreenSchedule, campaign: usize| {
        filter
            .campaign
            .as_deref()
            .is_none_or(|c| c == schedule.campaigns[campaign].id.as_str())
    };
    if whole_hours {
        // Every UTC hour lies inside one bucket: the shared plans' hourly tallies answer.
        // Counts kept with the documents answer, planned only where they cannot.
        let keep = |p: &crate::planned::Place| filter.keeps_place(p);
        crate::planned::each_count(
            store,
            &*store.snapshot()?,
            from,
            to,
            &keep,
            &mut |_, counts| {
                for e in &counts.entries {
                    let at = DateTime::from_timestamp(e.hour, 0).unwrap_or_default();
                    if filter.campaign.as_deref().is_none_or(|c| c == &*e.campaign) {
                        if let Some(i) = bucket_of(&cuts, at) {
                            points[i].planned += e.plays;
                        }
                    }
                }
            },
        )?;
    } else {
        crate::report::each_planned(store, from, to, &keep, &mut |schedule, play| {
            let Some(p) = play else { return };
            if !wanted(schedule, p.campaign) {
                return;
            }
            let at = DateTime::from_timestamp(p.slot * i64::from(schedule.screen.slot_seconds), 0)
                .unwrap_or_default();
            if let Some(i) = bucket_of(&cuts, at) {
                points[i].planned += 1;
            }
        })?;
    }
    let ledger = store.ledger();
    if whole_hours && filter.district.is_none() && filter.campaign.is_none() {
        // The rollups answer each bucket, as they answer the report.
        let (venue, screen) = (filter.venue.as_deref(), filter.screen.as_deref());
        for (point, &(a, b)) in points.iter_mut().zip(&cuts) {
            let rows = crate::report::delivered(&*ledger, Dimension::Venue, a, b, venue, screen)?;
            point.delivered = rows.values().map(|r| r.0).sum();
        }
    } else {
        // One pass over the records: buckets off the hour, or filters the rollups lack.
        let places = Places::of(&*store.snapshot()?);
        ledger.plays(&filter.query(from, to), &mut |r| {
            if r.status == PlayStatus::Complete && filter.keeps_record(&places, r) {
                if let Some(i) = bucket_of(&cuts, r.slot_start) {
                    points[i].delivered += 1;
                }
            }
            Ok(())
        })?;
    }
    Ok(Series {
        from,
        to,
        bucket: match bucket {
            Bucket::Hour => "hour",
            Bucket::Day => "day",
        }
        .into(),
        zone: zone.name().into(),
        planned: points.iter().map(|p| p.planned).sum(),
        delivered: points.iter().map(|p| p.delivered).sum(),
        buckets: points,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// Each bucket as local start and end in `zone`.
    fn check(from: &str, to: &str, zone: Tz, bucket: Bucket, expect: &[(&str, &str)]) {
        let got: Vec<(String, String)> = buckets(at(from), at(to), zone, bucket)
            .into_iter()
            .map(|(a, b)| {
                let f = |t: DateTime<Utc>| t.with_timezone(&zone).format("%m-%d %H:%M").to_string();
                (f(a), f(b))
            })
            .collect();
        let expect: Vec<(String, String)> = expect
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got, expect);
    }

    #[test]
    fn days_cut_at_the_zones_midnight_across_a_day_boundary() {
        // 20:30 in Beijing on the 20th to 04:00 on the 22nd: three local days, clipped.
        check(
            "2023-12-20T20:30:00+08:00",
            "2023-12-22T04:00:00+08:00",
            chrono_tz::Asia::Shanghai,
            Bucket::Day,
            &[
                ("12-20 20:30", "12-21 00:00"),
                ("12-21 00:00", "12-22 00:00"),
                ("12-22 00:00", "12-22 04:00"),
            ],
        );
        // The same window in UTC days: the boundary falls at 08:00 Beijing time.
        let utc = buckets(
            at("2023-12-20T20:30:00+08:00"),
            at("2023-12-22T04:00:00+08:00"),
            chrono_tz::UTC,
            Bucket::Day,
        );
        assert_eq!(utc[0].1, at("2023-12-21T00:00:00Z"));
        assert_eq!(utc.len(), 2);
    }

    #[test]
    fn hours_follow_the_zone_and_its_half_hour_offset() {
        check(
            "2023-12-20T22:15:00+08:00",
            "2023-12-21T01:00:00+08:00",
            chrono_tz::Asia::Shanghai,
            Bucket::Hour,
            &[
                ("12-20 22:15", "12-20 23:00"),
                ("12-20 23:00", "12-21 00:00"),
                ("12-21 00:00", "12-21 01:00"),
            ],
        );
        // Kolkata is +05:30: its hours start at half past in UTC.
        let k = buckets(
            at("2023-12-20T18:00:00Z"),
            at("2023-12-20T20:00:00Z"),
            chrono_tz::Asia::Kolkata,
            Bucket::Hour,
        );
        assert_eq!(
            k,
            vec![
                (at("2023-12-20T18:00:00Z"), at("2023-12-20T18:30:00Z")),
                (at("2023-12-20T18:30:00Z"), at("2023-12-20T19:30:00Z")),
                (at("2023-12-20T19:30:00Z"), at("2023-12-20T20:00:00Z")),
            ]
        );
    }

    #[test]
    fn a_dst_day_is_23_hours_long() {
        let b = buckets(
            at("2024-03-10T00:00:00-05:00"),
            at("2024-03-11T00:00:00-04:00"),
            chrono_tz::America::New_York,
            Bucket::Hour,
        );
        assert_eq!(b.len(), 23);
        let d = buckets(
            at("2024-03-10T00:00:00-05:00"),
            at("2024-03-12T00:00:00-04:00"),
            chrono_tz::America::New_York,
            Bucket::Day,
        );
        assert_eq!(d[0].1, at("2024-03-11T00:00:00-04:00"));
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn the_end_of_time_ends_the_last_bucket() {
        let to = DateTime::<Utc>::MAX_UTC;
        let from = to - Duration::hours(30);
        for bucket in [Bucket::Hour, Bucket::Day] {
            let b = buckets(from, to, chrono_tz::Pacific::Kiritimati, bucket);
            assert_eq!(b.last().map(|x| x.1), Some(to));
            assert_eq!(b.first().map(|x| x.0), Some(from));
        }
    }

    #[test]
    fn instants_fall_in_the_bucket_that_holds_them() {
        let cuts = buckets(
            at("2023-12-20T20:30:00+08:00"),
            at("2023-12-22T04:00:00+08:00"),
            chrono_tz::Asia::Shanghai,
            Bucket::Day,
        );
        assert_eq!(bucket_of(&cuts, at("2023-12-20T20:30:00+08:00")), Some(0));
        assert_eq!(bucket_of(&cuts, at("2023-12-20T23:59:59+08:00")), Some(0));
        assert_eq!(bucket_of(&cuts, at("2023-12-21T00:00:00+08:00")), Some(1));
        assert_eq!(bucket_of(&cuts, at("2023-12-22T03:59:59+08:00")), Some(2));
        assert_eq!(bucket_of(&cuts, at("2023-12-22T04:00:00+08:00")), None);
        assert_eq!(bucket_of(&cuts, at("2023-12-20T20:29:59+08:00")), None);
    }
}
