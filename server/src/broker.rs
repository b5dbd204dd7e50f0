//! The embedded MQTT broker (rumqttd) for single-machine deployments and simulations.
//!
//! rumqttd's `Broker::start()` blocks, cannot report the port it bound and only logs a
//! bind failure; so we pick a free port ourselves, run it on its own thread and confirm it
//! accepts an MQTT connection before going on. It keeps retained messages in memory only,
//! so the server republishes every schedule when it starts.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("no free port for the embedded broker: {0}")]
    Port(std::io::Error),
    #[error("embedded broker config: {0}")]
    Config(String),
    #[error("cannot run the embedded broker on {0}: {1} (another broker there? use it with --mqtt-url, or set embedded_broker in --config)")]
    InUse(SocketAddr, std::io::Error),
    #[error("embedded broker on {0} did not accept connections")]
    NotReady(SocketAddr),
}

/// A running embedded broker. It lives until the process exits (rumqttd has no stop).
#[derive(Debug, Clone)]
pub struct EmbeddedBroker {
    pub addr: SocketAddr,
}

impl EmbeddedBroker {
    pub fn url(&self) -> String {
        format!("mqtt://{}", self.addr)
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts rumqttd on `addr` (or a free loopback port) and waits until it accepts MQTT.
pub async fn start(addr: Option<SocketAddr>) -> Result<EmbeddedBroker, BrokerError> {
    let addr = match addr {
        // rumqttd only logs a failed bind, and the readiness probe below would then reach
        // whatever else listens there: make sure the port is ours to take.
        Some(a) => {
            TcpListener::bind(a).map_err(|e| BrokerError::InUse(a, e))?;
            a
        }
        None => SocketAddr::from(([127, 0, 0, 1], free_port().map_err(BrokerError::Port)?)),
    };
    let toml_text = format!(
        r#"
id = 0
[router]
id = 0
max_connections = 20000
max_outgoing_packet_count = 2000
max_segment_size = 104857600
max_segment_count = 10

[v4.1]
name = "v4-1"
listen = "{addr}"
next_connection_delay_ms = 0
    [v4.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = {max}
    max_inflight_count = 500
    dynamic_filters = true
"#,
        max = playlists::wire::MAX_SCHEDULE_BYTES + 4096
    );
    let config: rumqttd::Config =
        toml::from_str(&toml_text).map_err(|e| BrokerError::Config(e.to_string()))?;
    std::thread::Builder::new()
        .name("rumqttd".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded broker stopped");
            }
        })
        .map_err(|e| BrokerError::Config(e.to_string()))?;
    wait_ready(addr).await?;
    Ok(EmbeddedBroker { addr })
}

/// Connects an MQTT client until a CONNACK arrives, for up to ten seconds.
pub async fn wait_ready(addr: SocketAddr) -> Result<(), BrokerError> {
    for attempt in 0..100u32 {
        let mut options = rumqttc::MqttOptions::new(
            format!("signage-probe-{attempt}-{}", std::process::id()),
            addr.ip().to_string(),
            addr.port(),
        );
        options.set_keep_alive(Duration::from_secs(5));
        let (client, mut events) = rumqttc::AsyncClient::new(options, 4);
        let ok = tokio::time::timeout(Duration::from_millis(500), async {
            loop {
                match events.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => return true,
                    Ok(_) => {}
                    Err(_) => return false,
                }
            }
        })
        .await
        .unwrap_or(false);
        let _ = client.disconnect().await;
        if ok {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(BrokerError::NotReady(addr))
}

/// Host and port of an `mqtt://host:port` URL (port 1883 when absent) or an
/// `mqtts://host:port` one (TLS, port 8883 when absent; see [`is_tls_url`]).
pub fn parse_mqtt_url(url: &str) -> Result<(String, u16), String> {
    let (rest, default_port) = match url.strip_prefix("mqtts://") {
        Some(rest) => (rest, 8883),
        None => (
            url.strip_prefix("mqtt://")
                .or_else(|| url.strip_prefix("tcp://"))
                .ok_or_else(|| format!("MQTT URL {url:?} must start with mqtt:// or mqtts://"))?,
            1883,
        ),
    };
    let rest = rest.trim_end_matches('/');
    match rest.rsplit_once(':') {
        Some((host, port)) => Ok((
            host.to_owned(),
            port.parse()
                .map_err(|_| format!("MQTT URL {url:?} has a bad port"))?,
        )),
        None if !rest.is_empty() => Ok((rest.to_owned(), default_port)),
        None => Err(format!("MQTT URL {url:?} has no host")),
    }
}

/// Whether an MQTT URL asks for TLS (`mqtts://`).
pub fn is_tls_url(url: &str) -> bool {
    url.starts_with("mqtts://")
}
