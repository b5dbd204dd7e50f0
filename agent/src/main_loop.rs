//! The agent's main loop: one closed [`Event`] enum, fed by one `select!`, each variant
//! handled in its own method. It owns the connection's meaning: it routes incoming
//! messages (schedules, commands, acks, sim clock steps) through the pure acceptance
//! checks, persists and applies accepted schedules, and publishes presence. Playing,
//! downloading and uploading are the other tasks'; it talks to them through channels.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use playlists::wire::{CommandAction, Topics};
use rumqttc::{AsyncClient, QoS};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::accept::{accept_ack, accept_command, accept_schedule, Reject};
use crate::cache::Cache;
use crate::clock::Clock;
use crate::config::AgentConfig;
use crate::fetch::Coverage;
use crate::mqtt::{subscriptions, NetEvent};
use crate::outbox::Outbox;
use crate::schedule::HeldSchedule;
use crate::sim::{ready_topic, SimClock, SimReady};
use crate::status::{build_status, presence_changed, Facts, Presence, StatusSigner};
use crate::uploader::{UploadEvent, UploaderMsg};

/// Status is republished at least this often (real time).
pub const HEARTBEAT: Duration = Duration::from_secs(30);

/// Everything the main loop reacts to.
#[derive(Debug)]
pub enum Event {
    Net(NetEvent),
    Media(Coverage),
    Upload(UploadEvent),
    SimReady(SimReady),
    Heartbeat,
    /// The watchdog's tick: the loop is turning (see [`daemon`]); nothing else to do.
    Alive,
    /// A task failed beyond repair; the agent stops with this error.
    Fatal(String),
}

impl From<NetEvent> for Event {
    fn from(e: NetEvent) -> Event {
        Event::Net(e)
    }
}

impl From<Coverage> for Event {
    fn from(e: Coverage) -> Event {
        Event::Media(e)
    }
}

impl From<UploadEvent> for Event {
    fn from(e: UploadEvent) -> Event {
        Event::Upload(e)
    }
}

/// How the main loop ended.
#[derive(Debug)]
pub struct Exit {
    /// The task failure that stopped the agent, if that is what did.
    pub fatal: Option<String>,
    /// A DISCONNECT is queued: the driver should be let run until it is sent.
    pub disconnecting: bool,
}

/// The main loop's state.
pub struct MainLoop {
    pub config: Arc<AgentConfig>,
    pub topics: Topics,
    pub client: AsyncClient,
    pub clock: Clock,
    pub outbox: Arc<Outbox>,
    pub cache: Arc<Cache>,
    pub schedules: watch::Sender<Option<Arc<HeldSchedule>>>,
    pub uploader: mpsc::Sender<UploaderMsg>,
    pub now_playing: watch::Receiver<Option<String>>,
    /// Counts the genuine commands taken ([`crate::Watches::commands`]).
    pub commands: watch::Sender<u64>,
    pub player: String,
    pub notes: Vec<String>,
    pub connected: bool,
    /// The broker refused a subscription on this connection: subscribe again at the next
    /// beat (every [`daemon::BEAT_EVERY`], so a broker that keeps refusing is not flooded).
    pub resubscribe: bool,
    /// Every creative the prefetch horizon needs is cached (the fetcher's last word on
    /// the held version).
    pub media_ready: bool,
    /// The runway's end: every slot before it plays from the cache.
    pub playable_until: Option<DateTime<Utc>>,
    /// Creatives whose download keeps failing (the fetcher's last word).
    pub download_failures: Vec<playlists::wire::DownloadFailure>,
    pub published: Option<Presence>,
    /// Seals statuses with the screen's key (its session shared with the MQTT driver).
    pub statuses: StatusSigner,
    /// The verdicts the metrics server reports.
    pub live: crate::telemetry::Live,
    /// Beaten on every turn of the loop: systemd's watchdog is fed only while it beats.
    pub beat: daemon::Beat,
    /// Probes where the outbox and the cache live, for the store verdict.
    pub store_probe: Arc<crate::readiness::StoreProbe>,
}

impl MainLoop {
    /// Runs until `shutdown`, then says goodbye to the broker.
    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<Event>,
        mut sim_ready: mpsc::UnboundedReceiver<SimReady>,
        shutdown: CancellationToken,
    ) -> Exit {
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut alive = tokio::time::interval(daemon::BEAT_EVERY);
        alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let fatal = loop {
            self.beat.beat();
            let event = tokio::select! {
                _ = shutdown.cancelled() => break None,
                Some(e) = events.recv() => e,
                Some(r) = sim_ready.recv() => Event::SimReady(r),
                _ = heartbeat.tick() => Event::Heartbeat,
                _ = alive.tick() => Event::Alive,
            };
            match event {
                Event::Net(NetEvent::Connected) => self.on_connected().await,
                Event::Net(NetEvent::Disconnected(_)) => self.on_disconnected().await,
                Event::Net(NetEvent::SubscribeRefused(_)) => self.on_subscribe_refused(),
                Event::Net(NetEvent::Message { topic, payload }) => {
                    self.on_message(&topic, &payload).await
                }
                Event::Media(coverage) => self.on_coverage(coverage),
                Event::Upload(UploadEvent::Acked { backlog }) => self.on_acked(backlog),
                Event::SimReady(r) => self.on_sim_ready(&r),
                Event::Heartbeat => self.publish_status(true),
                Event::Alive => self.subscribe_again(),
                Event::Fatal(e) => break Some(e),
            }
        };
        Exit {
            fatal,
            disconnecting: self.goodbye(),
        }
    }

    fn screen(&self) -> &str {
        self.config.screen_id.as_str()
    }

    fn held(&self) -> Option<Arc<HeldSchedule>> {
        self.schedules.borrow().clone()
    }

    async fn on_connected(&mut self) {
        self.connected = true;
        self.subscribe();
        self.publish_status(true);
        let _ = self.uploader.send(UploaderMsg::Connected(true)).await;
        if let Some(ready) = self.clock.as_sim().and_then(|s| s.last_ready()) {
            self.on_sim_ready(&ready);
        }
    }

    /// Subscribes to everything this agent listens on (again: the broker keeps what is
    /// already subscribed and resends retained schedules, which are accepted only once).
    fn subscribe(&mut self) {
        self.resubscribe = false;
        let subs = subscriptions(&self.topics, self.screen(), self.clock.as_sim().is_some());
        if let Err(e) = self.client.try_subscribe_many(subs) {
            tracing::warn!(error = %e, "could not queue subscriptions");
        }
    }

    /// A refusal is answered at the next beat, not at once: a broker that refuses quickly
    /// (an ACL) would otherwise be asked in a loop.
    fn on_subscribe_refused(&mut self) {
        self.resubscribe = true;
    }

    /// Subscribes again after a refusal, once connected.
    fn subscribe_again(&mut self) {
        if self.resubscribe && self.connected {
            tracing::info!("subscribing again after a refusal");
            self.subscribe();
        }
    }

    async fn on_disconnected(&mut self) {
        if self.connected {
            self.connected = false;
            let _ = self.uploader.send(UploaderMsg::Connected(false)).await;
        }
    }

    async fn on_message(&mut self, topic: &str, payload: &[u8]) {
        let screen = self.screen().to_owned();
        if topic == self.topics.schedule(&screen) {
            self.on_schedule(payload).await;
        } else if topic == self.topics.command(&screen) {
            self.on_command(payload).await;
        } else if topic == self.topics.pop_ack(&screen) {
            match accept_ack(
                &self.config.screen_id,
                &self.config.server_public_key,
                payload,
            ) {
                Ok(ack) => {
                    let _ = self.uploader.send(UploaderMsg::Ack(ack)).await;
                }
                Err(e) => tracing::warn!(reason = %e, "ignoring proof-of-play ack"),
            }
        } else if topic == crate::sim::clock_topic(self.topics.prefix()) {
            self.on_sim_clock(payload);
        } else {
            tracing::debug!(topic, "message on an unexpected topic ignored");
        }
    }

    async fn on_schedule(&mut self, raw: &[u8]) {
        let held = self.held().map(|h| h.version);
        let now = self.clock.now().unwrap_or_else(Utc::now);
        let doc = match accept_schedule(
            held,
            &self.config.screen_id,
            &self.config.server_public_key,
            raw,
            now,
        ) {
            Ok(doc) => doc,
            Err(Reject::NotNewer { held, got }) if held == got => {
                tracing::debug!(version = got, "schedule already held");
                return;
            }
            Err(e) => {
                tracing::warn!(reason = %e, bytes = raw.len(), "ignoring schedule");
                return;
            }
        };
        let held = match HeldSchedule::new(doc) {
            Ok(h) => Arc::new(self.with_overlays(h, now).await),
            Err(e) => {
                tracing::warn!(reason = %e, "ignoring schedule");
                return;
            }
        };
        let outbox = self.outbox.clone();
        let bytes = raw.to_vec();
        match tokio::task::spawn_blocking(move || outbox.store_schedule(&bytes)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot persist the schedule; not applying it");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "schedule persistence task failed");
                return;
            }
        }
        tracing::info!(
            version = held.version,
            campaigns = held.schedule.campaigns.len(),
            "schedule applied"
        );
        self.media_ready = false;
        self.playable_until = None;
        self.schedules.send_replace(Some(held));
        self.publish_status(false);
    }

    async fn on_command(&mut self, raw: &[u8]) {
        let now = self.clock.now().unwrap_or_else(Utc::now);
        let cmd = match accept_command(
            &self.config.screen_id,
            &self.config.server_public_key,
            raw,
            now,
        ) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(reason = %e, "ignoring command");
                return;
            }
        };
        self.commands.send_modify(|n| *n += 1);
        let outbox = self.outbox.clone();
        let id = cmd.id.clone();
        match tokio::task::spawn_blocking(move || outbox.remember_command(&id)).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => {
                tracing::warn!(id = %cmd.id, "ignoring command: nonce already used");
                return;
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot record the command nonce; ignoring command");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "command nonce task failed");
                return;
            }
        }
        tracing::info!(id = %cmd.id, action = ?cmd.action, "command accepted");
        match cmd.action {
            CommandAction::Resync => self.publish_status(true),
            CommandAction::Purge => {
                let referenced = self.held().map(|h| h.referenced()).unwrap_or_default();
                let cache = self.cache.clone();
                match tokio::task::spawn_blocking(move || cache.evict(&referenced, true)).await {
                    Ok(Ok(evicted)) => {
                        tracing::info!(count = evicted.len(), "purged unreferenced media")
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "purge failed"),
                    Err(e) => tracing::warn!(error = %e, "purge task failed"),
                }
                self.publish_status(true);
            }
            CommandAction::EmergencyStart {
                campaign,
                creatives,
            } => self.on_emergency_start(*campaign, creatives, now).await,
            CommandAction::EmergencyEnd {
                campaign_id,
                ends_at,
            } => self.on_emergency_end(campaign_id, ends_at, now).await,
        }
    }

    fn on_sim_clock(&mut self, raw: &[u8]) {
        let Some(sim) = self.clock.as_sim() else {
            return;
        };
        if raw.is_empty() {
            tracing::debug!("sim clock cleared");
            return;
        }
        match SimClock::parse(raw) {
            Ok(msg) => {
                if let Err(e) = sim.advance(&msg) {
                    tracing::debug!(reason = %e, "sim clock step ignored");
                }
            }
            Err(e) => tracing::warn!(reason = %e, "ignoring sim clock message"),
        }
    }

    fn on_sim_ready(&mut self, ready: &SimReady) {
        if !self.connected {
            return;
        }
        let book = self.outbox.book();
        let finished = book.last_seq() - u64::from(book.in_progress.is_some());
        let ready = SimReady {
            last_seq: Some(finished),
            ..ready.clone()
        };
        let payload = serde_json::to_vec(&ready).expect("ready serialises");
        let topic = ready_topic(self.topics.prefix(), self.screen());
        if let Err(e) = self
            .client
            .try_publish(topic, QoS::AtLeastOnce, false, payload)
        {
            tracing::warn!(error = %e, "could not queue sim ready");
        }
    }

    /// The fetcher's word on what the cache covers; a word about an older schedule is
    /// stale and ignored.
    pub(crate) fn on_coverage(&mut self, c: Coverage) {
        if self.held().is_none_or(|h| h.version != c.version) {
            return;
        }
        if c.ready && !self.media_ready {
            tracing::info!(
                version = c.version,
                "every creative of the prefetch horizon is cached"
            );
        }
        self.media_ready = c.ready;
        self.playable_until = c.playable_until;
        self.download_failures = c.failures;
        self.publish_status(false);
    }

    fn on_acked(&mut self, backlog: u64) {
        if backlog == 0 {
            self.publish_status(true);
        }
    }

    fn facts(&self, online: bool) -> Facts {
        let held = self.held();
        let book = self.outbox.book();
        let now = self.clock.now();
        Facts {
            screen_id: self.screen().to_owned(),
            online,
            schedule_version: held.as_ref().map(|h| h.version),
            player: self.player.clone(),
            cache: self.cache.stats(),
            media_ready: self.media_ready,
            runway_hours: match (&held, self.playable_until, now) {
                (Some(_), Some(until), Some(now)) => {
                    (until - now).num_seconds().max(0) as f64 / 3600.0
                }
                _ => 0.0,
            },
            outbox_backlog: book.backlog(),
            last_seq: book.last_seq(),
            epoch: self.outbox.epoch().to_owned(),
            clock_synced: self.clock.synced(),
            now_playing: self.now_playing.borrow().clone(),
            notes: self.notes.clone(),
            at: now,
            download_failures: self.download_failures.clone(),
            readiness: None,
        }
    }

    /// Publishes the retained status; without `always`, only if the presence changed.
    pub(crate) fn publish_status(&mut self, always: bool) {
        let mut facts = self.facts(true);
        self.live.set(crate::telemetry::Verdicts {
            playable_until: self.held().and(self.playable_until),
            download_failures: facts.download_failures.len(),
            connected: self.connected,
            media_ready: facts.media_ready,
        });
        let presence = Presence {
            schedule_version: facts.schedule_version,
            media_ready: facts.media_ready,
            download_failures: facts.download_failures.len(),
        };
        if !self.connected || !(always || presence_changed(self.published.as_ref(), &presence)) {
            return;
        }
        // Judged only for a status that goes out: the store verdict writes a probe file.
        facts.readiness = Some(crate::readiness::judge(
            self.connected,
            &self.store_probe,
            facts.outbox_backlog,
        ));
        let payload = self.statuses.seal(build_status(facts));
        match self.client.try_publish(
            self.topics.status(self.screen()),
            QoS::AtLeastOnce,
            true,
            payload,
        ) {
            Ok(()) => self.published = Some(presence),
            Err(e) => tracing::warn!(error = %e, "could not queue status"),
        }
    }

    /// On the way out: a retained offline status, then a clean DISCONNECT (which keeps the
    /// broker from sending the Last Will).
    fn goodbye(&mut self) -> bool {
        if !self.connected {
            return false;
        }
        let mut facts = self.facts(false);
        facts.readiness = Some(crate::readiness::judge(
            false,
            &self.store_probe,
            facts.outbox_backlog,
        ));
        let payload = self.statuses.seal(build_status(facts));
        if let Err(e) = self.client.try_publish(
            self.topics.status(self.screen()),
            QoS::AtLeastOnce,
            true,
            payload,
        ) {
            tracing::warn!(error = %e, "could not queue the offline status");
        }
        match self.client.try_disconnect() {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "could not queue the disconnect");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests;
