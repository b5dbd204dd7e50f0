//! Exponential backoff with jitter, for reconnecting to the broker and retrying downloads.
//! Pure: the random part is a parameter ([`Backoff::next_with`]); [`Backoff::next_delay`] draws it
//! from the OS. Waiting is left to the caller.

use std::time::Duration;

/// Doubling delays from `base` up to `cap`, each with "equal jitter": a delay `d` becomes a
/// uniform pick in `[d/2, d]`, so a fleet that lost its broker together does not return
/// together.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap: cap.max(base),
            attempt: 0,
        }
    }

    /// Starts over, after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The next delay, with `unit` in `[0, 1)` choosing the jitter.
    pub fn next_with(&mut self, unit: f64) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.min(20));
        let full = self.base.saturating_mul(factor).min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let half = full / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// The next delay, jittered with OS randomness.
    pub fn next_delay(&mut self) -> Duration {
        self.next_with(random_unit())
    }
}

/// A uniform number in `[0, 1)` from the OS; 0.5 if the OS cannot give one.
pub fn random_unit() -> f64 {
    let mut buf = [0u8; 8];
    match getrandom::getrandom(&mut buf) {
        Ok(()) => (u64::from_le_bytes(buf) >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(base_ms: u64, cap_ms: u64, unit: f64, expect_ms: &[u64]) {
        let mut b = Backoff::new(
            Duration::from_millis(base_ms),
            Duration::from_millis(cap_ms),
        );
        let got: Vec<u64> = expect_ms
            .iter()
            .map(|_| b.next_with(unit).as_millis() as u64)
            .collect();
        assert_eq!(got, expect_ms);
    }

    #[test]
    fn doubles_up_to_the_cap_with_jitter() {
        check(
            1_000,
            30_000,
            1.0,
            &[1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000],
        );
        check(
            1_000,
            30_000,
            0.0,
            &[500, 1_000, 2_000, 4_000, 8_000, 15_000, 15_000],
        );
        check(1_000, 30_000, 0.5, &[750, 1_500, 3_000]);
    }

    #[test]
    fn reset_starts_over_and_random_stays_in_bounds() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        for _ in 0..50 {
            let d = b.next_delay();
            assert!(
                d >= Duration::from_millis(500) && d <= Duration::from_secs(30),
                "{d:?}"
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
        let u = random_unit();
        assert!((0.0..1.0).contains(&u));
    }
}
