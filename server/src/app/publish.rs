//! The publisher task, the one place that sends schedules and commands, and its handle
//! ([`Publisher`]): callers queue work on a bounded channel, the MQTT driver only sets a
//! flag (so it never waits), and the healer gathers screens whose retained schedule is
//! wrong and queues their resend.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rumqttc::{AsyncClient, QoS};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;

use super::Shared;

/// How long the healer gathers screens whose retained schedule is wrong before resending.
pub const HEAL_DEBOUNCE: Duration = Duration::from_millis(500);

/// What the publisher task is asked to send.
#[derive(Debug)]
pub(super) enum Job {
    /// Rebuild the documents of `screens` (all when `None`) and publish the changed ones,
    /// or all of them when `resend`; `done` gets how many versions changed.
    Schedules {
        screens: Option<BTreeSet<String>>,
        resend: bool,
        /// When new versions count as planned (default: the scheduling clock's now).
        in_force_from: Option<DateTime<Utc>>,
        done: Option<oneshot::Sender<usize>>,
    },
    /// Signed commands by screen (QoS 1, not retained).
    Commands(Vec<(String, Vec<u8>)>),
}

/// Screens whose retained schedule is not the current document, gathered for the healer.
#[derive(Debug, Default)]
struct Heal {
    screens: Mutex<BTreeSet<String>>,
    wake: Notify,
}

/// The handle to the publisher task: the one place that sends schedules and commands.
/// Callers queue work (bounded); the MQTT driver only sets a flag, so it never waits.
#[derive(Debug, Clone)]
pub struct Publisher {
    tx: mpsc::Sender<Job>,
    resend_all: Arc<AtomicBool>,
    wake: Arc<Notify>,
    heal: Arc<Heal>,
    /// Whether this replica holds the publisher lease (`crate::replica`): only then are
    /// jobs run; otherwise they are dropped, and the holder follows the store instead.
    publishing: Arc<AtomicBool>,
}

impl Publisher {
    /// A publisher that does not publish until it is told it holds the lease, and the
    /// receiving end of its jobs, for [`publisher_task`].
    pub(super) fn new() -> (Publisher, mpsc::Receiver<Job>) {
        let (tx, rx) = mpsc::channel::<Job>(64);
        let publisher = Publisher {
            tx,
            resend_all: Arc::new(AtomicBool::new(false)),
            wake: Arc::new(Notify::new()),
            heal: Arc::new(Heal::default()),
            publishing: Arc::new(AtomicBool::new(false)),
        };
        (publisher, rx)
    }

    /// Rebuilds and publishes the documents of `screens` (every screen when `None`);
    /// returns how many got a new version once they are queued on the connection.
    pub async fn schedules(&self, screens: Option<BTreeSet<String>>, resend: bool) -> usize {
        self.send_schedules(screens, resend, None).await
    }

    /// As [`Publisher::schedules`] for a change that takes effect at `in_force_from` (an
    /// emergency's start or end): new versions count as planned from then.
    pub async fn schedules_from(
        &self,
        screens: Option<BTreeSet<String>>,
        in_force_from: Option<DateTime<Utc>>,
    ) -> usize {
        self.send_schedules(screens, false, in_force_from).await
    }

    async fn send_schedules(
        &self,
        screens: Option<BTreeSet<String>>,
        resend: bool,
        in_force_from: Option<DateTime<Utc>>,
    ) -> usize {
        let (done, rx) = oneshot::channel();
        let job = Job::Schedules {
            screens,
            resend,
            in_force_from,
            done: Some(done),
        };
        if self.tx.send(job).await.is_err() {
            return 0;
        }
        rx.await.unwrap_or(0)
    }

    /// Whether this replica publishes (holds the publisher lease). When it does not, its
    /// changes reach the broker through the replica that does.
    pub fn publishing(&self) -> bool {
        self.publishing.load(Ordering::SeqCst)
    }

    pub(crate) fn set_publishing(&self, publishing: bool) {
        self.publishing.store(publishing, Ordering::SeqCst);
    }

    /// Queues a rebuild of `screens` (all when `None`) without waiting for it.
    pub(crate) async fn queue_schedules(
        &self,
        screens: Option<BTreeSet<String>>,
        resend: bool,
        in_force_from: Option<DateTime<Utc>>,
    ) {
        let job = Job::Schedules {
            screens,
            resend,
            in_force_from,
            done: None,
        };
        if self.tx.send(job).await.is_err() {
            tracing::warn!("publisher stopped; schedules not rebuilt");
        }
    }

    /// Queues signed commands, in order, before any later schedule.
    pub async fn commands(&self, commands: Vec<(String, Vec<u8>)>) {
        if !commands.is_empty() && self.tx.send(Job::Commands(commands)).await.is_err() {
            tracing::warn!("publisher stopped; commands dropped");
        }
    }

    /// Asks for every document to be sent again (after a connect). Never waits.
    pub fn resend_everything(&self) {
        self.resend_all.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Asks for `screen`'s current document to be sent again soon (the broker retains
    /// something else). Never waits; requests within [`HEAL_DEBOUNCE`] go out together.
    pub fn heal(&self, screen: &str) {
        if let Ok(mut set) = self.heal.screens.lock() {
            set.insert(screen.to_owned());
        }
        self.heal.wake.notify_one();
    }
}

/// Sends what it is asked to, in order: commands, then rebuilt schedules. Document
/// building and signing run off the runtime; sends wait on the client's bounded queue,
/// which the driver drains.
pub(super) async fn publisher_task(
    shared: Arc<Shared>,
    client: AsyncClient,
    mut jobs: mpsc::Receiver<Job>,
    publisher: Publisher,
    shutdown: CancellationToken,
) {
    loop {
        let job = tokio::select! {
            _ = shutdown.cancelled() => break,
            job = jobs.recv() => match job {
                Some(job) => job,
                None => break,
            },
            _ = publisher.wake.notified() => {
                if !publisher.resend_all.swap(false, Ordering::SeqCst) {
                    continue;
                }
                Job::Schedules { screens: None, resend: true, in_force_from: None, done: None }
            }
        };
        if !publisher.publishing() {
            // Another replica publishes: it follows the store and sends what this one
            // changed. A waiting caller is told no versions changed here.
            if let Job::Schedules {
                done: Some(done), ..
            } = job
            {
                let _ = done.send(0);
            }
            continue;
        }
        match job {
            Job::Commands(commands) => {
                for (screen, bytes) in commands {
                    let topic = shared.topics.command(&screen);
                    if let Err(e) = client.publish(topic, QoS::AtLeastOnce, false, bytes).await {
                        tracing::warn!(screen, error = %e, "command not queued");
                    }
                }
            }
            Job::Schedules {
                screens,
                resend,
                in_force_from,
                done,
            } => {
                let changed =
                    publish_schedules(&shared, &client, screens, resend, in_force_from).await;
                if let Some(done) = done {
                    let _ = done.send(changed);
                }
            }
        }
    }
}

/// A round that built this many documents or more gives its freed memory back to the
/// system afterwards (about 27 KiB a document stays resident otherwise).
const TRIM_AFTER: usize = 1_000;

/// Builds, keeps and sends the documents of `screens`; returns how many changed.
async fn publish_schedules(
    shared: &Arc<Shared>,
    client: &AsyncClient,
    screens: Option<BTreeSet<String>>,
    resend: bool,
    in_force_from: Option<DateTime<Utc>>,
) -> usize {
    let started = std::time::Instant::now();
    let s = shared.clone();
    let built = tokio::task::spawn_blocking(move || {
        let catalogue = s.catalogue.catalogue()?;
        let renditions = s
            .renditions
            .prepare(&*s.store, &catalogue, screens.as_ref())?;
        let docs = crate::publisher::build(
            &*s.store,
            &catalogue,
            screens.as_ref(),
            &s.key,
            Utc::now(),
            s.schedule_ttl,
            in_force_from.unwrap_or_else(|| s.clock.now()),
            &renditions,
        )?;
        anyhow::Ok(docs)
    })
    .await;
    let docs = match built {
        Ok(Ok(docs)) => docs,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "building schedules failed");
            return 0;
        }
        Err(e) => {
            tracing::error!(error = %e, "schedule task failed");
            return 0;
        }
    };
    let built = docs.len();
    let mut changed = 0;
    let mut sent = 0;
    for d in docs {
        if !shared.publisher.publishing() {
            tracing::warn!("publisher lease lost; publishing stopped");
            break;
        }
        if d.changed || resend {
            sent += 1;
            changed += usize::from(d.changed);
            let topic = shared.topics.schedule(&d.screen_id);
            // Known before the echo can come back from the broker.
            if let Ok(mut hashes) = shared.schedule_hashes.lock() {
                hashes.insert(d.screen_id.clone(), sha256(&d.bytes));
            }
            if let Err(e) = client.publish(topic, QoS::AtLeastOnce, true, d.bytes).await {
                tracing::warn!(screen = d.screen_id, error = %e, "schedule not queued");
            }
        }
    }
    shared
        .metrics
        .published(sent, started.elapsed().as_secs_f64());
    if built >= TRIM_AFTER {
        // The round's schedules, counts and catalogue are dropped: hand their pages back,
        // off the publisher's way (a command queued next is not held up by the trim).
        drop(tokio::task::spawn_blocking(daemon::memory::trim_heap));
    }
    changed
}

/// The SHA-256 of a published document's bytes.
pub(super) fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// Gathers heal requests for [`HEAL_DEBOUNCE`], then queues one resend of those screens'
/// current documents on the publisher.
pub(super) async fn healer(publisher: Publisher, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = publisher.heal.wake.notified() => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(HEAL_DEBOUNCE) => {}
        }
        let screens = match publisher.heal.screens.lock() {
            Ok(mut set) => std::mem::take(&mut *set),
            Err(_) => break,
        };
        if screens.is_empty() {
            continue;
        }
        let job = Job::Schedules {
            screens: Some(screens),
            resend: true,
            in_force_from: None,
            done: None,
        };
        if publisher.tx.send(job).await.is_err() {
            break;
        }
    }
}
