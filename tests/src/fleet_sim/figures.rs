//! The simulator's figures and how they print.

use std::fmt;
use std::time::Duration;

/// p50, p99 and max of a set of durations, and how many there were.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spread {
    pub count: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Spread {
    /// Nearest-rank percentiles.
    pub fn of(values: impl IntoIterator<Item = Duration>) -> Spread {
        let mut v: Vec<Duration> = values.into_iter().collect();
        v.sort();
        if v.is_empty() {
            return Spread::default();
        }
        let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Spread {
            count: v.len(),
            p50: rank(0.50),
            p99: rank(0.99),
            max: v[v.len() - 1],
        }
    }
}

impl fmt::Display for Spread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {:.2} s, p99 {:.2} s, max {:.2} s (n = {})",
            self.p50.as_secs_f64(),
            self.p99.as_secs_f64(),
            self.max.as_secs_f64(),
            self.count
        )
    }
}

/// Everything one run measured.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub screens: usize,
    pub speed: f64,
    pub provision: Duration,
    /// Start of every agent until all hold their published version and are online.
    pub connect_storm: Duration,
    /// Growth of this process's resident memory over the storm, per agent.
    pub rss_per_agent: f64,
    /// (district, its screens).
    pub edit_district: (String, usize),
    /// Screens whose published version the edit raised, and those outside the district.
    pub edit_targets: usize,
    pub edit_outside: usize,
    pub edit: Spread,
    /// Edited screens whose status, as the server holds it, names the new version.
    pub edit_status_confirmed: usize,
    pub emergency_targets: usize,
    pub emergency: Spread,
    /// Ledger records per second and plays finished by the agents per second, over the
    /// same window.
    pub ingest_rate: f64,
    pub play_rate: f64,
    pub ingest_lag: Spread,
    /// Play starts the host saw, and records in the ledger at the end.
    pub plays: usize,
    pub ledger_records: u64,
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |d: Duration| d.as_secs_f64();
        writeln!(
            f,
            "fleet simulator: {} agents in one process, scaled clock x{}",
            self.screens, self.speed
        )?;
        writeln!(
            f,
            "  provision (keys, broker logins): {:.1} s",
            s(self.provision)
        )?;
        writeln!(
            f,
            "  connect storm (all connected and holding their schedule): {:.1} s, {:.0} KiB RSS per agent",
            s(self.connect_storm),
            self.rss_per_agent / 1024.0
        )?;
        writeln!(
            f,
            "  campaign edit for district {} ({} screens, {} documents changed, {} outside it): applied {}",
            self.edit_district.0, self.edit_district.1, self.edit_targets, self.edit_outside, self.edit
        )?;
        writeln!(
            f,
            "  all-city emergency to first play ({} screens): {}",
            self.emergency_targets, self.emergency
        )?;
        writeln!(
            f,
            "  proof of play: ingest {:.0} records/s for {:.0} plays/s finished; lag {}",
            self.ingest_rate, self.play_rate, self.ingest_lag
        )?;
        write!(
            f,
            "  plays started: {}, ledger records at the end: {}",
            self.plays, self.ledger_records
        )
    }
}

/// This process's resident memory (Linux), 0 where unknown.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let ms = |v: u64| Duration::from_millis(v);
        let s = Spread::of((1..=100).map(ms));
        assert_eq!(
            (s.p50, s.p99, s.max, s.count),
            (ms(50), ms(99), ms(100), 100)
        );
        let one = Spread::of([ms(7)]);
        assert_eq!((one.p50, one.p99, one.max), (ms(7), ms(7), ms(7)));
        assert_eq!(Spread::of([]).count, 0);
    }
}
