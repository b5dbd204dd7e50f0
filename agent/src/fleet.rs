//! Many agents in one process, for load tests of a whole fleet (the fleet simulator of
//! the `tests` crate). Each member runs the agent's own [`run_hosted`](crate::run_hosted)
//! with its own config (screen id, key, broker password), its own MQTT connection, its own
//! redb outbox in its own data dir (or in memory, [`Outboxes::Memory`], where the
//! process cannot spare a file descriptor per agent) and a headless player, on one shared
//! timeline (the scaled clock). They share what the agent's design allows: one sled media cache (content
//! addressed; see `cache/shared.rs` for what sharing changes) and one media HTTP client.
//! A sled database per agent would cost megabytes and a flusher thread each.
//!
//! The host watches each member through [`Watches`](crate::Watches) and records, against
//! one [`Instant`] base, when each schedule version arrived and when each play began; the
//! simulator computes its figures from these records and from the members' outboxes.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cache::Cache;
use crate::outbox::Outbox;
use crate::{AgentConfig, ClockKind, Durability, Host, PlayerKind, RunOptions, Watches};

/// One agent of the fleet.
#[derive(Debug)]
pub struct Member {
    pub config: AgentConfig,
    /// Its own data dir (the outbox; the cache is the fleet's).
    pub data_dir: PathBuf,
}

/// How the whole fleet runs.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Where the shared media cache lives (`cache.sled` in it).
    pub cache_dir: PathBuf,
    pub cache_max_bytes: u64,
    /// The shared timeline; `None` runs on the system clock.
    pub scaled: Option<crate::clock::Scaled>,
    pub durability: Durability,
}

/// Where the members keep their proof-of-play outboxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Outboxes {
    /// `outbox.redb` in each member's data dir, as a lone agent does (a file descriptor
    /// per member).
    #[default]
    Files,
    /// In memory (redb's in-memory backend): no file descriptor per member, so a process
    /// limited to 20,000 descriptors can host 11,000 members beside their sockets. The
    /// records live until the process ends.
    Memory,
}

/// What the host saw of one member, stamped with the fleet's monotonic clock.
#[derive(Default)]
pub struct Observed {
    watches: OnceLock<Watches>,
    /// (when, version) each time the held schedule changed.
    versions: Mutex<Vec<(Instant, u64)>>,
    /// (when, `campaign/creative`) each time a new play began.
    plays: Mutex<Vec<(Instant, String)>>,
    /// When each campaign first appeared in the held schedule (an emergency's, by command
    /// or by document: whichever came first).
    campaigns: Mutex<std::collections::HashMap<String, Instant>>,
    /// When each genuine command was taken (before the agent acted on it).
    commands: Mutex<Vec<Instant>>,
    /// How the member's run ended (`None` while it runs).
    exit: Mutex<Option<Result<(), String>>>,
}

impl Observed {
    /// The version of the schedule held now.
    pub fn version(&self) -> Option<u64> {
        let w = self.watches.get()?;
        let held = w.schedules.borrow();
        held.as_ref().map(|h| h.version)
    }

    /// When the member first held a version of at least `version`.
    pub fn first_holding(&self, version: u64) -> Option<Instant> {
        lock(&self.versions)
            .iter()
            .find(|(_, v)| *v >= version)
            .map(|(t, _)| *t)
    }

    /// When the first play of a label starting with `campaign/` began at or after `since`.
    pub fn first_play_of(&self, campaign: &str, since: Instant) -> Option<Instant> {
        let prefix = format!("{campaign}/");
        lock(&self.plays)
            .iter()
            .find(|(t, label)| *t >= since && label.starts_with(&prefix))
            .map(|(t, _)| *t)
    }

    /// When the held schedule first named `campaign`.
    pub fn first_holding_campaign(&self, campaign: &str) -> Option<Instant> {
        lock(&self.campaigns).get(campaign).copied()
    }

    /// When the first genuine command taken at or after `since` arrived.
    pub fn first_command_since(&self, since: Instant) -> Option<Instant> {
        lock(&self.commands).iter().copied().find(|t| *t >= since)
    }

    /// How many plays began since the fleet started.
    pub fn plays(&self) -> usize {
        lock(&self.plays).len()
    }

    /// The member's outbox, once it is wired.
    pub fn outbox(&self) -> Option<&Arc<Outbox>> {
        self.watches.get().map(|w| &w.outbox)
    }

    /// The last seq written and the last one finished (a play in progress is written but
    /// not finished); (0, 0) before it is wired or plays.
    pub fn seqs(&self) -> (u64, u64) {
        match self.outbox() {
            Some(o) => {
                let book = o.book();
                let last = book.last_seq();
                (last, last - u64::from(book.in_progress.is_some()))
            }
            None => (0, 0),
        }
    }

    /// `Some` once the member stopped: its error, if any.
    pub fn exit(&self) -> Option<Result<(), String>> {
        lock(&self.exit).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running fleet.
pub struct Fleet {
    pub screens: Vec<String>,
    pub observed: Vec<Arc<Observed>>,
    pub cache: Arc<Cache>,
    stop: CancellationToken,
    tracker: TaskTracker,
}

impl Fleet {
    /// Opens the shared cache and starts every member (they connect at once: the connect
    /// storm), each with its outbox file. Returns when all are spawned; each then runs
    /// until [`Fleet::stop`].
    pub async fn start(members: Vec<Member>, opts: FleetOptions) -> anyhow::Result<Fleet> {
        Fleet::start_with(members, opts, Outboxes::Files).await
    }

    /// [`Fleet::start`] with the members' outboxes kept where `outboxes` says.
    pub async fn start_with(
        members: Vec<Member>,
        opts: FleetOptions,
        outboxes: Outboxes,
    ) -> anyhow::Result<Fleet> {
        std::fs::create_dir_all(&opts.cache_dir)?;
        let (cache, note) = {
            let dir = opts.cache_dir.clone();
            let max = opts.cache_max_bytes;
            tokio::task::spawn_blocking(move || {
                Cache::open_shared(&dir, max, chrono::Utc::now().timestamp())
            })
            .await??
        };
        if let Some(note) = note {
            tracing::warn!(%note, "fleet media cache");
        }
        let cache = Arc::new(cache);
        let http = crate::fetch::http_client();
        let stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        let mut screens = Vec::with_capacity(members.len());
        let mut observed = Vec::with_capacity(members.len());
        for m in members {
            let seen = Arc::new(Observed::default());
            screens.push(m.config.screen_id.to_string());
            observed.push(seen.clone());
            let run = RunOptions {
                data_dir: m.data_dir,
                player: PlayerKind::Headless,
                clock: if opts.scaled.is_some() {
                    ClockKind::Scaled
                } else {
                    ClockKind::System
                },
                scaled: opts.scaled,
                durability: opts.durability,
                web_addr: crate::DEFAULT_WEB_ADDR,
            };
            let host = Host {
                cache: Some(cache.clone()),
                http: Some(http.clone()),
                outbox_in_memory: outboxes == Outboxes::Memory,
                watch: Some(Box::new({
                    let seen = seen.clone();
                    let tracker = tracker.clone();
                    let stop = stop.clone();
                    move |w: Watches| {
                        let _ = seen.watches.set(w.clone());
                        tracker.spawn(observe(seen, w, stop));
                    }
                })),
            };
            let token = stop.child_token();
            let config = m.config;
            tracker.spawn(async move {
                let result = crate::run_hosted(config, run, host, token).await;
                *lock(&seen.exit) = Some(result.map_err(|e| crate::error_chain(&e)));
            });
        }
        Ok(Fleet {
            screens,
            observed,
            cache,
            stop,
            tracker,
        })
    }

    /// Members that stopped (with their errors) while the fleet runs.
    pub fn exited(&self) -> Vec<(String, Result<(), String>)> {
        self.screens
            .iter()
            .zip(&self.observed)
            .filter_map(|(s, o)| Some((s.clone(), o.exit()?)))
            .collect()
    }

    /// Stops every member (each shuts down as a lone agent does: disconnect, outbox and
    /// cache flushed) and waits for all; returns the errors, by screen.
    pub async fn stop(self) -> Vec<(String, String)> {
        self.stop.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        self.screens
            .iter()
            .zip(&self.observed)
            .filter_map(|(s, o)| match o.exit() {
                Some(Err(e)) => Some((s.clone(), e)),
                _ => None,
            })
            .collect()
    }
}

/// Records schedule versions and play starts until the member or the fleet stops.
async fn observe(seen: Arc<Observed>, mut w: Watches, stop: CancellationToken) {
    let mut last_version = None;
    let mut version_changed = true;
    loop {
        if version_changed {
            let held = w.schedules.borrow_and_update().clone();
            if let Some(h) = &held {
                let now = Instant::now();
                let mut seen_campaigns = lock(&seen.campaigns);
                for c in &h.doc.body.campaigns {
                    seen_campaigns.entry(c.id.clone()).or_insert(now);
                }
            }
            let version = held.as_ref().map(|h| h.version);
            if version != last_version {
                if let Some(v) = version {
                    lock(&seen.versions).push((Instant::now(), v));
                }
                last_version = version;
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            r = w.schedules.changed() => {
                if r.is_err() { return }
                version_changed = true;
            }
            r = w.commands.changed() => {
                if r.is_err() { return }
                version_changed = false;
                w.commands.borrow_and_update();
                lock(&seen.commands).push(Instant::now());
            }
            r = w.now_playing.changed() => {
                if r.is_err() { return }
                version_changed = false;
                // The player sets the label at every boundary it starts a play at.
                if let Some(label) = w.now_playing.borrow_and_update().clone() {
                    lock(&seen.plays).push((Instant::now(), label));
                }
            }
        }
    }
}
