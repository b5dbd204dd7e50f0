//! Replicas: several servers on one store, one of them publishing. Every server serves
//! the API and ingest; only the one holding the store's publisher lease
//! ([`crate::store::lease`]) runs the publisher's jobs, so documents are versioned, signed
//! and sent by one replica at a time. This task asks for the lease every [`LEASE_EVERY`],
//! says on [`Publisher`](crate::app::Publisher) whether this replica publishes, and, while
//! it does, follows the store: the revisions others committed are announced as their own
//! replica would have (emergency commands first, then the documents of the screens the
//! change touches: cost follows the change). On taking the lease it catches up: every
//! document rebuilt and all of them sent again retained, plus the commands of emergencies
//! started or ended within a command's lifetime, so a holder that died mid-publish leaves
//! nothing unsent. Losing the lease (a failed or slow check) stops publishing at once.
//! On the same beat the holder follows the renditions finished in the background on any
//! replica (numbered in the store as they finish): the screens that name each get their
//! documents rebuilt. When none finished, that is one indexed read that finds no row.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use playlists::Catalogue;
use tokio_util::sync::CancellationToken;

use crate::app::{Publisher, Shared};
use crate::catalogue::CatalogueError;
use crate::store::lease::PublisherLease;
use crate::store::{EntityKind, Revision, Snapshot, StoreError, StoredEmergency};

/// How often the lease is asked for (or checked) and the store followed.
pub const LEASE_EVERY: Duration = Duration::from_millis(250);
/// A lease check that takes longer counts as a lost lease (the database is unreachable).
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How far back a new holder sends the commands of emergencies started or ended: as long
/// as a command is valid ([`crate::emergency::COMMAND_TTL`]).
const LOOKBACK: Duration = Duration::from_secs(300);
/// The meta key of the last revision the holder announced: where a new holder's catch-up
/// starts (within the lookback), so it sends again only what may not have been sent.
pub const ANNOUNCED: &str = "publisher.announced_through";
/// How many finished renditions one step reads at most (the rest at the next step).
const FINISHED_PAGE: usize = 256;

type Lease = Arc<dyn PublisherLease>;
/// Signed commands by screen, in sending order.
type Commands = Vec<(String, Vec<u8>)>;

/// Asks for the lease once, as the server starts (a lone server then publishes from its
/// first connection on).
pub(crate) async fn first_try(publisher: &Publisher, lease: &Lease) {
    let l = lease.clone();
    match tokio::task::spawn_blocking(move || l.try_hold()).await {
        Ok(Ok(true)) => {
            tracing::info!("this replica holds the publisher lease: it publishes");
            publisher.set_publishing(true);
        }
        Ok(Ok(false)) => tracing::info!(
            "another replica holds the publisher lease: this one serves the API and ingest"
        ),
        Ok(Err(e)) => tracing::warn!(error = %e, "publisher lease unavailable; retrying"),
        Err(e) => tracing::warn!(error = %e, "publisher lease check failed; retrying"),
    }
}

/// Holds or waits for the lease and follows the store until `shutdown`; then lets the
/// lease go, so another replica takes it at once.
pub(crate) async fn run(shared: Arc<Shared>, lease: Lease, shutdown: CancellationToken) {
    let publisher = shared.publisher.clone();
    let mut follower = Follower::default();
    let mut tick = tokio::time::interval(LEASE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pending: Option<tokio::task::JoinHandle<Result<bool, StoreError>>> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let mut check = pending.take().unwrap_or_else(|| {
            let l = lease.clone();
            tokio::task::spawn_blocking(move || l.try_hold())
        });
        let held = match tokio::time::timeout(CHECK_TIMEOUT, &mut check).await {
            Ok(Ok(Ok(held))) => held,
            Ok(Ok(Err(e))) => {
                tracing::warn!(error = %e, "publisher lease check failed");
                false
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "publisher lease check failed");
                false
            }
            Err(_) => {
                if publisher.publishing() {
                    tracing::warn!(
                        seconds = CHECK_TIMEOUT.as_secs(),
                        "publisher lease check is slow: counted as lost"
                    );
                }
                pending = Some(check);
                false
            }
        };
        let was = publisher.publishing();
        if held != was {
            publisher.set_publishing(held);
            if held {
                tracing::info!("this replica took the publisher lease: it publishes");
            } else {
                tracing::warn!("this replica lost the publisher lease: it stopped publishing");
            }
        }
        // Renditions first: on taking the lease, where to follow them from is read before
        // the catch-up rebuilds every document (which names all finished by then).
        follower.renditions(&shared, held, held && !was).await;
        follower.step(&shared, held, held && !was).await;
    }
    publisher.set_publishing(false);
    if let Some(check) = pending {
        check.abort();
    }
    let l = lease.clone();
    let _ = tokio::task::spawn_blocking(move || l.release()).await;
    tracing::info!("publisher lease released");
}

/// What the follower knows of the store.
#[derive(Default)]
struct Follower {
    /// The catalogue last followed: what the next change is compared with.
    base: Option<(Arc<Snapshot>, Arc<Catalogue>)>,
    /// Heads seen while another replica published, with when: where catching up starts.
    marks: VecDeque<(Instant, u64)>,
    /// The revision last recorded as announced ([`ANNOUNCED`]).
    recorded: Option<u64>,
    /// The last rendition finish followed (`None`: read the store's last first).
    finished: Option<u64>,
}

/// What one step found to announce.
#[derive(Default)]
struct Work {
    commands: Commands,
    /// `None`: every screen, sent again (catching up).
    screens: Option<BTreeSet<String>>,
    in_force_from: Option<DateTime<Utc>>,
}

impl Follower {
    async fn step(&mut self, shared: &Arc<Shared>, held: bool, taken: bool) {
        let s = shared.clone();
        let followed = tokio::task::spawn_blocking(move || s.catalogue.follow()).await;
        let (snapshot, catalogue, own) = match followed {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "following the store failed");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "following the store failed");
                return;
            }
        };
        let head = snapshot.head;
        let base = self.base.replace((snapshot.clone(), catalogue.clone()));
        if !held {
            self.mark(head);
            return;
        }
        let work = if taken {
            // Every revision since the last holder's record (within the lookback) may be
            // unannounced: that holder may have died before sending it.
            let lookback = self.catch_up_from(base.as_ref().map_or(head, |(b, _)| b.head));
            let from = announced_through(shared)
                .await
                .map_or(lookback, |a| a.max(lookback));
            self.marks.clear();
            self.recorded = None;
            let found = self
                .announce(shared, from, (snapshot, catalogue), BTreeSet::new(), None)
                .await;
            // Whatever was read, every document is sent again.
            Some(Work {
                screens: None,
                ..found.ok().flatten().unwrap_or_default()
            })
        } else {
            let Some((base, base_catalogue)) = base else {
                return;
            };
            if base.head >= head {
                return;
            }
            let now = (snapshot, catalogue);
            let found = self
                .announce(
                    shared,
                    base.head,
                    now,
                    own,
                    Some((base.clone(), base_catalogue.clone())),
                )
                .await;
            match found {
                Ok(work) => work,
                Err(()) => {
                    // Tried again at the next step, from the same place.
                    self.base = Some((base, base_catalogue));
                    return;
                }
            }
        };
        if let Some(work) = work {
            queue(&shared.publisher, work).await;
        }
        if self.recorded != Some(head) {
            let s = shared.clone();
            let recorded = tokio::task::spawn_blocking(move || {
                s.store.set_meta(ANNOUNCED, head.to_string().as_bytes())
            })
            .await;
            match recorded {
                Ok(Ok(())) => self.recorded = Some(head),
                Ok(Err(e)) => tracing::warn!(error = %e, "recording what was announced failed"),
                Err(e) => tracing::warn!(error = %e, "recording what was announced failed"),
            }
        }
    }

    /// While this replica publishes, rebuilds the documents of the screens that name the
    /// renditions finished since the last step (on any replica). On taking the lease it
    /// starts from the store's last finish: the catch-up rebuilds every document anyway.
    async fn renditions(&mut self, shared: &Arc<Shared>, held: bool, taken: bool) {
        if !held {
            return;
        }
        let from = if taken { None } else { self.finished };
        let s = shared.clone();
        let read = tokio::task::spawn_blocking(move || {
            let Some(after) = from else {
                return Ok((s.store.last_finished_rendition()?, BTreeSet::new()));
            };
            let finished = s.store.finished_renditions(after, FINISHED_PAGE)?;
            let Some(last) = finished.last().map(|(n, _)| *n) else {
                return Ok((after, BTreeSet::new()));
            };
            let catalogue = s.catalogue.catalogue()?;
            let mut screens = BTreeSet::new();
            for (_, r) in &finished {
                screens.extend(crate::renditions::screens_naming(&catalogue, r));
            }
            tracing::info!(
                renditions = finished.len(),
                screens = screens.len(),
                "publishing the renditions finished"
            );
            Ok::<_, CatalogueError>((last, screens))
        })
        .await;
        match read {
            Ok(Ok((last, screens))) => {
                self.finished = Some(last);
                if !screens.is_empty() {
                    shared
                        .publisher
                        .queue_schedules(Some(screens), false, None)
                        .await;
                }
            }
            // Tried again at the next step, from the same place.
            Ok(Err(e)) => tracing::warn!(error = %e, "reading the renditions finished failed"),
            Err(e) => tracing::warn!(error = %e, "reading the renditions finished failed"),
        }
    }

    /// Remembers `head` as seen now; forgets marks older than the lookback but the last.
    fn mark(&mut self, head: u64) {
        let now = Instant::now();
        if self.marks.back().is_none_or(|(_, h)| *h != head) {
            self.marks.push_back((now, head));
        }
        while self.marks.len() > 1
            && self
                .marks
                .get(1)
                .is_some_and(|(at, _)| now.duration_since(*at) >= LOOKBACK)
        {
            self.marks.pop_front();
        }
    }

    /// The head to announce from when taking the lease: the oldest one seen within the
    /// lookback, or `otherwise`.
    fn catch_up_from(&self, otherwise: u64) -> u64 {
        self.marks.front().map_or(otherwise, |(_, h)| *h)
    }

    /// The commands of the emergency changes in revisions after `from` up to the head of
    /// the catalogue followed now that `own` does not name, and (given the catalogue followed before) the
    /// screens those revisions touch. `None` when there is nothing to announce.
    async fn announce(
        &self,
        shared: &Arc<Shared>,
        from: u64,
        (snapshot, catalogue): (Arc<Snapshot>, Arc<Catalogue>),
        own: BTreeSet<u64>,
        base: Option<(Arc<Snapshot>, Arc<Catalogue>)>,
    ) -> Result<Option<Work>, ()> {
        let s = shared.clone();
        let done = tokio::task::spawn_blocking(move || {
            let revisions = revisions_between(&*s.store, from, snapshot.head)?;
            let theirs: Vec<Revision> = revisions
                .into_iter()
                .filter(|r| !own.contains(&r.number) && !r.changes.is_empty())
                .collect();
            let catching_up = base.is_none();
            if theirs.is_empty() && !catching_up {
                return Ok(None);
            }
            let (commands, in_force_from) = commands_of(&s, &snapshot, &theirs);
            let screens = match base {
                Some((base, base_catalogue)) => {
                    let changed = snapshot.changed_since(&base);
                    crate::catalogue::affected_screens(&base_catalogue, &catalogue, &changed)
                }
                None => BTreeSet::new(),
            };
            if !theirs.is_empty() {
                tracing::info!(
                    revisions = theirs.len(),
                    screens = screens.len(),
                    commands = commands.len(),
                    "publishing what other replicas changed"
                );
            }
            Ok::<_, StoreError>(Some(Work {
                commands,
                screens: Some(screens),
                in_force_from,
            }))
        })
        .await;
        match done {
            Ok(Ok(work)) => Ok(work),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "reading other replicas' changes failed");
                Err(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading other replicas' changes failed");
                Err(())
            }
        }
    }
}

/// Queues what a step found: the commands, then the schedules.
async fn queue(publisher: &Publisher, work: Work) {
    publisher.commands(work.commands).await;
    match work.screens {
        None => publisher.queue_schedules(None, true, None).await,
        Some(screens) if !screens.is_empty() => {
            publisher
                .queue_schedules(Some(screens), false, work.in_force_from)
                .await
        }
        Some(_) => {}
    }
}

/// The last revision a holder recorded as announced, if any.
async fn announced_through(shared: &Arc<Shared>) -> Option<u64> {
    let s = shared.clone();
    let read = tokio::task::spawn_blocking(move || s.store.meta(ANNOUNCED)).await;
    match read {
        Ok(Ok(Some(bytes))) => std::str::from_utf8(&bytes).ok()?.parse().ok(),
        Ok(Ok(None)) => None,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "reading what was announced failed");
            None
        }
        Err(_) => None,
    }
}

/// Revisions numbered above `from` up to `to`, oldest first.
fn revisions_between(
    store: &dyn crate::store::Store,
    from: u64,
    to: u64,
) -> Result<Vec<Revision>, StoreError> {
    let mut out = Vec::new();
    let mut cursor = from;
    while cursor < to {
        let page = store.revisions(cursor, 512)?;
        let Some(last) = page.last().map(|r| r.number) else {
            break;
        };
        out.extend(page.into_iter().filter(|r| r.number <= to));
        cursor = last;
    }
    Ok(out)
}

/// The commands announcing the emergency changes of `revisions`, in order, and the
/// earliest time one of them takes effect. An emergency that no longer builds (its screens
/// gone since) is logged and skipped.
fn commands_of(
    shared: &Shared,
    snapshot: &Snapshot,
    revisions: &[Revision],
) -> (Commands, Option<DateTime<Utc>>) {
    let mut commands = Vec::new();
    let mut from: Option<DateTime<Utc>> = None;
    let now = shared.clock.now();
    let parse = |v: &Option<serde_json::Value>| {
        v.clone()
            .and_then(|v| serde_json::from_value::<StoredEmergency>(v).ok())
    };
    for r in revisions {
        for c in r
            .changes
            .iter()
            .filter(|c| c.entity == EntityKind::Emergency)
        {
            let Some(after) = parse(&c.after) else {
                continue;
            };
            let before = parse(&c.before);
            let announced = crate::emergency::announced(
                &shared.key,
                snapshot,
                before.as_ref(),
                &after,
                now,
                Some((&*shared.renditions, &*shared.store)),
            );
            match announced {
                Ok(Some((mut signed, at))) => {
                    commands.append(&mut signed);
                    from = Some(from.map_or(at, |f| f.min(at)));
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(id = %c.id, revision = r.number, error = %e,
                        "emergency change not announced")
                }
            }
        }
    }
    (commands, from)
}
