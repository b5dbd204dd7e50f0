//! The MQTT connection: options (client id = username = screen id, keep alive, Last Will),
//! the subscriptions, and the one driver loop that polls rumqttc's event loop, turns what it
//! yields into [`NetEvent`]s for the main loop, and reconnects with jittered backoff.
//! What the messages mean is the main loop's business.

use std::time::Duration;

use playlists::wire::{Topics, MAX_POP_BYTES, MAX_SCHEDULE_BYTES};
use rumqttc::{
    AsyncClient, Event as MqttEvent, EventLoop, LastWill, MqttOptions, NetworkOptions, Outgoing,
    Packet, QoS, SubscribeFilter, SubscribeReasonCode,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::config::AgentConfig;

pub const KEEP_ALIVE: Duration = Duration::from_secs(30);
pub const RECONNECT_BASE: Duration = Duration::from_millis(500);
pub const RECONNECT_CAP: Duration = Duration::from_secs(30);
/// Requests rumqttc buffers while the driver is busy or the broker away.
pub const REQUEST_CAPACITY: usize = 256;

/// What the connection tells the main loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    /// A ConnAck: (re)subscribe and (re)publish.
    Connected,
    /// The connection failed or dropped; the driver retries by itself.
    Disconnected(String),
    /// The broker refused this many filters of a SUBSCRIBE (a SUBACK failure code): a
    /// clustered broker may refuse while its session store is unavailable (NATS around a
    /// node's restart). The main loop subscribes again.
    SubscribeRefused(usize),
    Message {
        topic: String,
        payload: Vec<u8>,
    },
}

/// Client options; `will` is the offline status payload.
pub fn options(config: &AgentConfig, topics: &Topics, will: Vec<u8>) -> MqttOptions {
    let id = config.screen_id.as_str();
    let mut o = MqttOptions::new(id, &config.mqtt_host, config.mqtt_port);
    let password = config.mqtt_password.as_ref().map(|p| p.expose().as_str());
    o.set_credentials(id, password.unwrap_or_default());
    o.set_keep_alive(KEEP_ALIVE);
    o.set_clean_session(true);
    // Room for more than the largest valid schedule, so an oversized one reaches the
    // acceptance check (and is refused with a log) instead of failing the connection over
    // and over as the broker redelivers it.
    o.set_max_packet_size(4 * MAX_SCHEDULE_BYTES, MAX_POP_BYTES + 4096);
    o.set_request_channel_capacity(REQUEST_CAPACITY);
    o.set_last_will(LastWill::new(
        topics.status(id),
        will,
        QoS::AtLeastOnce,
        true,
    ));
    o
}

/// The client handle and its event loop (not yet connected), with Nagle off: the sim
/// clock's lock step is a ping-pong of small messages.
/// With `mqtts://` the connection is TLS, trusting the config's pinned CA (or the system's
/// roots).
pub fn client(config: &AgentConfig, topics: &Topics, will: Vec<u8>) -> (AsyncClient, EventLoop) {
    let mut options = options(config, topics, will);
    if let Some(tls) = &config.mqtt_tls {
        options.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(tls.clone()),
        ));
    }
    let (client, mut eventloop) = AsyncClient::new(options, REQUEST_CAPACITY);
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    net.set_connection_timeout(10);
    eventloop.set_network_options(net);
    (client, eventloop)
}

/// The topics to subscribe on every ConnAck (clean sessions forget them).
pub fn subscriptions(topics: &Topics, screen: &str, sim: bool) -> Vec<SubscribeFilter> {
    let mut v = vec![
        SubscribeFilter::new(topics.schedule(screen), QoS::AtLeastOnce),
        SubscribeFilter::new(topics.command(screen), QoS::AtLeastOnce),
        SubscribeFilter::new(topics.pop_ack(screen), QoS::AtLeastOnce),
    ];
    if sim {
        v.push(SubscribeFilter::new(
            crate::sim::clock_topic(topics.prefix()),
            QoS::AtLeastOnce,
        ));
    }
    v
}

/// Polls the event loop until it has sent a DISCONNECT or `stop` is cancelled. Errors
/// (broker down, connection lost) are reported, waited out with backoff, and polled again;
/// before each reconnect `renew_will` updates the options (a Last Will signed anew).
/// Events the main loop can no longer take are dropped.
pub async fn drive<E: From<NetEvent>>(
    mut eventloop: EventLoop,
    events: mpsc::Sender<E>,
    stop: CancellationToken,
    mut renew_will: impl FnMut(&mut MqttOptions),
) {
    let mut backoff = Backoff::new(RECONNECT_BASE, RECONNECT_CAP);
    loop {
        let polled = tokio::select! {
            _ = stop.cancelled() => return,
            polled = eventloop.poll() => polled,
        };
        let event = match polled {
            Ok(MqttEvent::Incoming(Packet::ConnAck(ack))) => {
                tracing::info!(code = ?ack.code, session_present = ack.session_present, "connected to the broker");
                backoff.reset();
                NetEvent::Connected
            }
            Ok(MqttEvent::Incoming(Packet::SubAck(ack))) => {
                let refused = ack
                    .return_codes
                    .iter()
                    .filter(|c| matches!(c, SubscribeReasonCode::Failure))
                    .count();
                if refused == 0 {
                    continue;
                }
                tracing::warn!(refused, "the broker refused subscriptions");
                NetEvent::SubscribeRefused(refused)
            }
            Ok(MqttEvent::Incoming(Packet::Publish(p))) => NetEvent::Message {
                topic: p.topic,
                payload: p.payload.to_vec(),
            },
            Ok(MqttEvent::Outgoing(Outgoing::Disconnect)) => {
                tracing::debug!("disconnect sent");
                return;
            }
            Ok(_) => continue,
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "MQTT connection error");
                // Once the main loop is gone only `stop` ends the loop: a DISCONNECT may
                // still be queued behind this.
                let _ = events
                    .send(NetEvent::Disconnected(e.to_string()).into())
                    .await;
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                renew_will(&mut eventloop.mqtt_options);
                continue;
            }
        };
        let _ = events.send(event.into()).await;
    }
}
