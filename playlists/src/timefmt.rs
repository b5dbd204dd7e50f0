//! Fast RFC 3339 UTC formatting (`2023-12-20T06:00:15Z`) for exports of millions of rows.

/// Appends `secs` since the epoch as RFC 3339 UTC with a `Z`.
pub fn push_utc(out: &mut Vec<u8>, secs: i64) {
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (y, m, d) = crate::planner::civil_from_days(days);
    let two = |out: &mut Vec<u8>, v: u32| {
        out.push(b'0' + (v / 10) as u8);
        out.push(b'0' + (v % 10) as u8);
    };
    let y = y.clamp(0, 9999) as u32;
    two(out, y / 100);
    two(out, y % 100);
    out.push(b'-');
    two(out, m);
    out.push(b'-');
    two(out, d);
    out.push(b'T');
    two(out, (of_day / 3600) as u32);
    out.push(b':');
    two(out, ((of_day / 60) % 60) as u32);
    out.push(b':');
    two(out, (of_day % 60) as u32);
    out.push(b'Z');
}

#[cfg(test)]
mod tests {
    fn check(secs: i64, expect: &str) {
        let mut out = Vec::new();
        super::push_utc(&mut out, secs);
        assert_eq!(String::from_utf8(out).unwrap(), expect);
    }

    #[test]
    fn formats() {
        check(0, "1970-01-01T00:00:00Z");
        check(1_703_023_215, "2023-12-19T22:00:15Z");
        check(951_782_400, "2000-02-29T00:00:00Z");
    }
}
