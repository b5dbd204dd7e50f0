//! Proof-of-play ingest while the fleet plays: every 100 ms, each agent's last finished
//! seq (its outbox book) and each screen's highest seq in the ledger. A play counts as
//! finished when the first poll sees it finished, and as ingested when the first poll sees
//! the ledger hold it; its lag is the time between (so to within 100 ms, and including
//! the agent's own wait before it seals a batch). Plays still not ingested at the end of
//! the window are waited for (up to a minute) so the slowest count; those still missing
//! then are counted, not failed, so the other figures print.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use agent::fleet::Fleet;
use server::store::LedgerStore;

use super::Spread;

/// What [`measure`] found.
pub struct Ingest {
    /// Ledger records per second and plays finished per second over the window.
    pub rate: f64,
    pub plays: f64,
    pub lag: Spread,
    /// Plays finished in the window and still not in the ledger a minute after it.
    pub pending: usize,
}

/// Measures ingest over `window` of play (see the module's doc).
pub async fn measure(
    fleet: &Fleet,
    ledger: &dyn LedgerStore,
    window: Duration,
) -> anyhow::Result<Ingest> {
    let n = fleet.screens.len();
    let finished = || -> Vec<u64> { fleet.observed.iter().map(|o| o.seqs().1).collect() };
    let mut seen = finished();
    let mut pending: Vec<VecDeque<(u64, Instant)>> = vec![VecDeque::new(); n];
    let mut lags = Vec::new();
    let t0 = Instant::now();
    let r0 = ledger.counts()?.records;
    let p0: u64 = seen.iter().sum();
    let mut r1 = r0;
    let mut p1 = p0;
    let mut window_end = None;
    let give_up = t0 + window + Duration::from_secs(60);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = Instant::now();
        let in_window = now < t0 + window;
        if in_window {
            for (i, f) in finished().into_iter().enumerate() {
                for seq in seen[i] + 1..=f {
                    pending[i].push_back((seq, now));
                }
                seen[i] = seen[i].max(f);
            }
        }
        let counts = ledger.counts()?;
        for (i, screen) in fleet.screens.iter().enumerate() {
            let held = counts.last_seq.get(screen).copied().unwrap_or(0);
            while pending[i].front().is_some_and(|(seq, _)| *seq <= held) {
                let Some((_, at)) = pending[i].pop_front() else {
                    break;
                };
                lags.push(now.saturating_duration_since(at));
            }
        }
        if !in_window && window_end.is_none() {
            window_end = Some(now);
            r1 = counts.records;
            p1 = seen.iter().sum();
        }
        if !in_window && (pending.iter().all(VecDeque::is_empty) || now >= give_up) {
            break;
        }
    }
    let secs = window_end
        .unwrap_or(t0 + window)
        .duration_since(t0)
        .as_secs_f64();
    Ok(Ingest {
        rate: (r1 - r0) as f64 / secs,
        plays: (p1 - p0) as f64 / secs,
        lag: Spread::of(lags),
        pending: pending.iter().map(VecDeque::len).sum(),
    })
}
