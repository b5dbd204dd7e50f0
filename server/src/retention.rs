//! The server's retention task (`[ledger] raw_retention_days`): every hour, raw
//! proof-of-play batches older than the retention are moved from the live ledger into
//! daily archive files (the ledger's `archive`: durable files first, then one deleting
//! transaction). `signage ledger archive` does the same by hand on a stopped server.
//!
//! Replicas sharing a PostgreSQL store each start this task, but only the one holding the
//! publisher lease (`crate::replica`) runs a pass; a lease that changes hands mid-pass is
//! safe too, since the PostgreSQL ledger's archiving steps take turns on a database lock
//! (`store/postgres/ledger/archive.rs`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use tokio_util::sync::CancellationToken;

use crate::clock::ServerClock;
use crate::store::LedgerStore;

/// How often the task looks for batches to archive.
const EVERY: Duration = Duration::from_secs(3600);

/// The first day kept live at `now` with `days` of retention.
pub fn cut_off(now: DateTime<Utc>, days: u32) -> NaiveDate {
    now.date_naive()
        .checked_sub_days(chrono::Days::new(days.into()))
        .unwrap_or(NaiveDate::MIN)
}

/// One pass: archives what is older than the retention at `now`, into `dir`.
pub async fn run_once(
    ledger: Arc<dyn LedgerStore>,
    now: DateTime<Utc>,
    days: u32,
    dir: PathBuf,
) -> anyhow::Result<crate::store::ledger::ArchiveSummary> {
    let before = cut_off(now, days);
    let summary = tokio::task::spawn_blocking(move || ledger.archive(&dir, before)).await??;
    for d in &summary.days {
        tracing::info!(
            day = %d.day,
            batches = d.batches,
            records = d.records,
            file = %d.file.display(),
            "proof of play archived"
        );
    }
    Ok(summary)
}

/// Runs [`run_once`] at start and every hour until `shutdown`, each time `runs_here` says
/// this replica is the one to (it holds the publisher lease).
pub async fn worker(
    ledger: Arc<dyn LedgerStore>,
    clock: ServerClock,
    days: u32,
    dir: PathBuf,
    runs_here: impl Fn() -> bool + Send + 'static,
    shutdown: CancellationToken,
) {
    let mut every = tokio::time::interval(EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = every.tick() => {}
        }
        if !runs_here() {
            tracing::debug!("another replica holds the publisher lease: it archives");
            continue;
        }
        if let Err(e) = run_once(ledger.clone(), clock.now(), days, dir.clone()).await {
            tracing::error!(error = %e, "archiving proof of play failed; the ledger keeps the batches");
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn cut_off_is_days_before_today_utc() {
        let now = Utc.with_ymd_and_hms(2025, 3, 9, 23, 59, 0).unwrap();
        let day = |d| NaiveDate::from_ymd_opt(2025, 3, d).unwrap();
        assert_eq!(cut_off(now, 7), day(2));
        assert_eq!(cut_off(now, 1), day(8));
        assert_eq!(cut_off(now, u32::MAX), NaiveDate::MIN);
    }

    use crate::store::ledger::testkit::{at, key_ring, Agent};

    /// One record played on 2025-03-01, in `l`; the agent.
    fn one_play(l: &dyn LedgerStore) -> Agent {
        let mut a = Agent::new(1, "s1", "v1");
        let r = a.play("c1", "k1", at(10, 0));
        let raw = a.batch(vec![r]);
        let incoming = crate::store::Incoming {
            topic_screen: "s1".into(),
            raw,
        };
        l.ingest(&[incoming], &key_ring(&[&a])).unwrap();
        a
    }

    /// A pass keeps what the retention keeps and archives the rest, verifiably.
    async fn a_pass(l: Arc<dyn LedgerStore>, archive: PathBuf) {
        let a = one_play(&*l);
        let now = Utc.with_ymd_and_hms(2025, 3, 9, 12, 0, 0).unwrap();
        let kept = run_once(l.clone(), now, 8, archive.clone()).await.unwrap();
        assert_eq!(kept.days, []);
        assert_eq!(l.counts().unwrap().records, 1);
        let moved = run_once(l.clone(), now, 7, archive.clone()).await.unwrap();
        assert_eq!(moved.days.len(), 1);
        assert_eq!(moved.days[0].records, 1);
        assert!(archive.join("ledger-2025-03-01.zst").is_file());
        assert_eq!(l.counts().unwrap().records, 0);
        let mut plays = Vec::new();
        let verified = l
            .verify_archive(&archive, &key_ring(&[&a]), &mut |r| {
                plays.push(r.seq);
                Ok(())
            })
            .unwrap();
        assert_eq!((verified.records, verified.problems.len()), (1, 0));
        assert_eq!(plays, [1]);
    }

    #[tokio::test]
    async fn a_pass_archives_what_is_older_than_the_retention() {
        let (dir, l) = crate::store::redb::ledger::testkit::ledger();
        a_pass(Arc::new(l), dir.path().join("archive")).await;
    }

    #[test]
    fn a_pass_archives_what_is_older_than_the_retention_on_postgres() {
        let db = crate::store::postgres::testdb::TestDb::new();
        let dir = tempfile::tempdir().unwrap();
        let store = db.open(dir.path(), crate::store::OpenMode::Create);
        let l = crate::store::Store::ledger(&store);
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(a_pass(l, dir.path().join("archive")));
    }

    /// The worker runs a pass only where `runs_here` says so (the publisher lease).
    #[tokio::test]
    async fn only_the_replica_it_runs_on_archives() {
        let (dir, l) = crate::store::redb::ledger::testkit::ledger();
        one_play(&l);
        let l: Arc<dyn LedgerStore> = Arc::new(l);
        let now = Utc.with_ymd_and_hms(2025, 3, 9, 12, 0, 0).unwrap();
        let clock = ServerClock::Scaled {
            start: now,
            anchor: Utc::now(),
            speed: 0.0,
        };
        let archive = dir.path().join("archive");
        for here in [false, true] {
            let (asked, mut was_asked) = tokio::sync::mpsc::unbounded_channel();
            let shutdown = CancellationToken::new();
            let task = tokio::spawn(worker(
                l.clone(),
                clock,
                7,
                archive.clone(),
                move || {
                    let _ = asked.send(());
                    here
                },
                shutdown.clone(),
            ));
            // Its first tick is at once; the next an hour later: one pass or none.
            was_asked.recv().await.unwrap();
            shutdown.cancel();
            task.await.unwrap();
            let records = l.counts().unwrap().records;
            assert_eq!(records, if here { 0 } else { 1 }, "runs here: {here}");
            assert_eq!(archive.join("ledger-2025-03-01.zst").is_file(), here);
        }
    }
}
