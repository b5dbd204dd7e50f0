//! What "now" means to the server when it schedules: the flight start and end of an
//! emergency taken over by staff. The system clock in production; a scaled timeline
//! (`start + (real - anchor) * speed`, as the agent's `--clock scaled`) for tests and
//! demonstrations whose agents live in another year. Signatures, issue and expiry times of
//! messages are always wall-clock time.

use chrono::{DateTime, TimeDelta, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum ServerClock {
    #[default]
    System,
    /// Virtual time `start` at real time `anchor`, running `speed` times as fast.
    Scaled {
        start: DateTime<Utc>,
        anchor: DateTime<Utc>,
        speed: f64,
    },
}

impl ServerClock {
    pub fn now(&self) -> DateTime<Utc> {
        self.at(Utc::now())
    }

    /// Scheduling time at wall-clock time `real`.
    pub fn at(&self, real: DateTime<Utc>) -> DateTime<Utc> {
        match *self {
            ServerClock::System => real,
            ServerClock::Scaled {
                start,
                anchor,
                speed,
            } => {
                let micros = (real - anchor).num_microseconds().unwrap_or(i64::MAX);
                start + TimeDelta::microseconds((micros as f64 * speed) as i64)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_time_runs_from_its_anchor() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let c = ServerClock::Scaled {
            start: t("2023-12-20T02:00:00Z"),
            anchor: t("2026-01-01T00:00:00Z"),
            speed: 5.0,
        };
        assert_eq!(c.at(t("2026-01-01T00:00:03Z")), t("2023-12-20T02:00:15Z"));
        assert_eq!(
            ServerClock::System.at(t("2026-01-01T00:00:03Z")),
            t("2026-01-01T00:00:03Z")
        );
    }
}
