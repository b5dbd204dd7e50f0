//! Tests of `planner`.

use super::*;

#[test]
fn civil_dates() {
    assert_eq!(civil_from_days(0), (1970, 1, 1));
    assert_eq!(civil_from_days(19_716), (2023, 12, 25));
    assert_eq!(civil_from_days(-1), (1969, 12, 31));
    assert_eq!(civil_from_days(11_016), (2000, 2, 29));
}

#[test]
fn weekdays() {
    // 2023-12-25 was a Monday.
    assert_eq!(local_fields(19_716 * 86_400, 0).weekday, 1);
    assert_eq!(local_fields(0, 0).weekday, 4);
}

fn check_rotation(m: u32, n: u32) {
    let seq: Vec<u32> = (0..m).map(|i| rotation_index(i, m, n)).collect();
    let mut counts = vec![0u32; n as usize];
    for &c in &seq {
        counts[c as usize] += 1;
    }
    let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
    assert!(hi - lo <= 1, "m={m} n={n} {seq:?}");
    if n >= 2 {
        assert!(
            seq.windows(2).all(|w| w[0] != w[1]),
            "repeat m={m} n={n} {seq:?}"
        );
    }
    if n >= 3 && m >= 2 {
        assert_eq!(*seq.last().unwrap(), n - 1, "m={m} n={n} {seq:?}");
        assert_ne!(seq[0], n - 1, "m={m} n={n} {seq:?}");
    }
}

#[test]
fn rotation_balanced_and_days_meet_without_repeat() {
    for n in 1..8 {
        for m in 0..40 {
            check_rotation(m, n);
        }
    }
}
