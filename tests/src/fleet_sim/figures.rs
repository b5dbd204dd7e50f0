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
    /// From the request until the server's answer (commands built, signed and queued).
    pub emergency_answer: Duration,
    /// From the request until each targeted agent took its command (signature checked,
    /// before acting on it): the server's and the broker's part.
    pub emergency_delivered: Spread,
    /// From the request until each targeted agent held the emergency (its command merged,
    /// or its document): what decides whether a screen switches at its first boundary.
    pub emergency_held: Spread,
    pub emergency: Spread,
    /// Ledger records per second and plays finished by the agents per second, over the
    /// same window.
    pub ingest_rate: f64,
    pub play_rate: f64,
    pub ingest_lag: Spread,
    /// Plays finished in the window still not in the ledger a minute after it (their lag
    /// is not in `ingest_lag`).
    pub ingest_pending: usize,
    /// Play starts the host saw, and records in the ledger at the end.
    pub plays: usize,
    pub ledger_records: u64,
    /// The fd-light mode (Mosquitto, outboxes in memory) was on.
    pub fd_light: bool,
    /// Open file descriptors of this process: the most seen after the storm and after
    /// the ingest window.
    pub fds: usize,
    /// This process's resident memory after the ingest window.
    pub rss_end: u64,
    /// Mosquitto's resident memory after the storm (every schedule retained), and its
    /// peak at the end; `None` with the embedded broker (it is in this process).
    pub broker_rss: Option<u64>,
    pub broker_peak: Option<u64>,
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
            "  all-city emergency ({} screens): answered in {:.2} s; commands taken by the agents {}; the emergency held (merged into the schedule) {}",
            self.emergency_targets,
            s(self.emergency_answer),
            self.emergency_delivered,
            self.emergency_held
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
        if self.ingest_pending > 0 {
            writeln!(
                f,
                "  NOT KEPT UP: {} plays finished in the window were still not in the ledger a minute after it",
                self.ingest_pending
            )?;
        }
        writeln!(
            f,
            "  plays started: {}, ledger records at the end: {}",
            self.plays, self.ledger_records
        )?;
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        writeln!(
            f,
            "  this process: {} file descriptors ({:.2} per agent), {:.0} MiB resident at the end",
            self.fds,
            self.fds as f64 / self.screens.max(1) as f64,
            mib(self.rss_end)
        )?;
        match (self.broker_rss, self.broker_peak) {
            (Some(rss), Some(peak)) => write!(
                f,
                "  broker: Mosquitto, {:.0} MiB resident after the storm, {:.0} MiB peak; outboxes in memory",
                mib(rss),
                mib(peak)
            ),
            _ if self.fd_light => write!(f, "  broker: Mosquitto (memory not read)"),
            _ => write!(f, "  broker: embedded (in this process); outboxes in files"),
        }
    }
}

/// This process's resident memory (Linux), 0 where unknown.
pub fn rss_bytes() -> u64 {
    proc_status_bytes(std::process::id(), "VmRSS").unwrap_or(0)
}

/// A field in kB of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in bytes.
pub fn proc_status_bytes(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// How many file descriptors this process holds (`/proc/self/fd`), 0 where unknown.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
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

    #[test]
    fn reads_this_process_memory_and_descriptors() {
        let rss = proc_status_bytes(std::process::id(), "VmRSS").expect("VmRSS");
        assert!(rss > 0);
        assert_eq!(proc_status_bytes(std::process::id(), "NoSuchField"), None);
        // At least standard input, output and error.
        assert!(open_fds() >= 3);
    }
}
