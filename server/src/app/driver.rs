//! The MQTT driver: the one task that polls the server's event loop. It subscribes on
//! every connect (asking again, at each beat, for filters the broker refused), routes
//! incoming proof of play, statuses and retained schedules without waiting, and reconnects
//! with backoff. It never awaits the client it drives: the client's queue is drained only
//! here.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Outgoing, Packet, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{MqttTarget, Shared};
use crate::store::Incoming;
use crate::subscriptions::Subscriptions;

/// What the driver works with.
pub(super) struct Driver {
    pub shared: Arc<Shared>,
    pub client: AsyncClient,
    pub target: MqttTarget,
    pub routes: Routes,
    /// Proof of play comes through this MQTT connection (not a NATS queue group).
    pub mqtt_ingest: bool,
    pub beat: daemon::Beat,
}

/// Polls `events` until `shutdown`.
pub(super) async fn run(driver: Driver, mut events: EventLoop, shutdown: CancellationToken) {
    let Driver {
        shared,
        client,
        target,
        routes,
        mqtt_ingest,
        beat,
    } = driver;
    let mut backoff = Duration::from_millis(200);
    let mut alive = tokio::time::interval(daemon::BEAT_EVERY);
    alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut subscriptions = Subscriptions::default();
    'driver: loop {
        // The poll is never cancelled mid-way (only at shutdown): the beat ticks
        // beside it while it waits on a quiet connection, and asks again for what
        // the broker refused.
        let event = {
            let poll = events.poll();
            tokio::pin!(poll);
            loop {
                beat.beat();
                tokio::select! {
                    _ = shutdown.cancelled() => break 'driver,
                    e = &mut poll => break e,
                    _ = alive.tick() => {
                        let refused = subscriptions.take_refused();
                        if !refused.is_empty() {
                            tracing::info!(filters = ?refused, "subscribing again after a refusal");
                            subscribe(&client, &mut subscriptions, refused);
                        }
                    }
                }
            }
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                shared.broker_connected.store(true, Ordering::SeqCst);
                backoff = Duration::from_millis(200);
                let t = &shared.topics;
                let pops = mqtt_ingest.then(|| t.pop_all(target.shared_subscription));
                let topics = [t.status_all(), t.schedule_all()];
                subscriptions.connected();
                subscribe(
                    &client,
                    &mut subscriptions,
                    pops.into_iter().chain(topics).collect(),
                );
                shared.publisher.resend_everything();
            }
            Ok(Event::Outgoing(Outgoing::Subscribe(pkid))) => subscriptions.sent(pkid),
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let refused = subscriptions.acked(ack.pkid, &ack.return_codes);
                if !refused.is_empty() {
                    tracing::warn!(filters = ?refused, "the broker refused subscriptions; asking again shortly");
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                on_publish(&shared, &routes, &p.topic, p.payload.to_vec())
            }
            Ok(_) => {}
            Err(e) => {
                shared.broker_connected.store(false, Ordering::SeqCst);
                tracing::warn!(error = %e, "MQTT connection lost; reconnecting");
                tokio::select! {
                    _ = shutdown.cancelled() => break 'driver,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Where the driver hands messages on, without waiting.
pub(super) struct Routes {
    pub ingest: mpsc::Sender<Incoming>,
    pub statuses: mpsc::Sender<(String, Vec<u8>)>,
}

/// Routes one incoming message; never waits (full queues drop, with a log).
fn on_publish(shared: &Shared, routes: &Routes, topic: &str, payload: Vec<u8>) {
    let Some(screen) = shared.topics.screen_of(topic) else {
        return;
    };
    let screen = screen.to_owned();
    if topic.ends_with("/pop") {
        crate::pop_source::offer(&routes.ingest, &shared.ingest_queue, screen, payload);
    } else if topic.ends_with("/status") {
        if payload.len() > playlists::wire::MAX_SMALL_BYTES {
            tracing::warn!(screen, bytes = payload.len(), "oversized status dropped");
            return;
        }
        if let Err(e) = routes.statuses.try_send((screen.clone(), payload)) {
            tracing::warn!(screen, error = %e, "status queue full; status dropped");
        }
    } else if topic == shared.topics.schedule(&screen) {
        on_retained_schedule(shared, &screen, &payload);
    }
}

/// What the broker holds (or just passed on) for `screen`'s schedule: when it is not the
/// exact bytes last published (garbage, empty, another or an older signed version), the
/// healer sends the current document again. Our own publish echoes back equal, so this
/// never loops; a screen with nothing published yet is left to the publisher.
fn on_retained_schedule(shared: &Shared, screen: &str, payload: &[u8]) {
    let current = shared
        .schedule_hashes
        .lock()
        .ok()
        .and_then(|h| h.get(screen).copied());
    let Some(current) = current else {
        return;
    };
    if current != super::publish::sha256(payload) {
        tracing::warn!(
            screen,
            bytes = payload.len(),
            "the broker holds another schedule than the current one; republishing"
        );
        shared.publisher.heal(screen);
    }
}

/// Subscribes to `filters` in one SUBSCRIBE (its SUBACK answers them in this order).
fn subscribe(client: &AsyncClient, subscriptions: &mut Subscriptions, filters: Vec<String>) {
    let packet = filters
        .iter()
        .map(|f| rumqttc::SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
    match client.try_subscribe_many(packet) {
        Ok(()) => subscriptions.queued(filters),
        Err(e) => {
            tracing::error!(error = %e, ?filters, "could not queue subscriptions; asking again shortly");
            subscriptions.not_queued(filters);
        }
    }
}
