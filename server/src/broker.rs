//! The embedded MQTT broker (rumqttd) for single-machine deployments and simulations.
//!
//! rumqttd's `Broker::start()` blocks, cannot report the port it bound and only logs a
//! bind failure; so we pick a free port ourselves, run it on its own thread and confirm it
//! accepts an MQTT connection before going on. It keeps retained messages in memory only,
//! so the server republishes every schedule when it starts.
//!
//! Every connection is authenticated through rumqttd's external authentication hook
//! ([`Logins`]): the server with its secret, or a known screen in service whose client id
//! and user name are its id, with the password made at provisioning. rumqttd has no ACL:
//! once in, a client may publish or subscribe anywhere, so the server's own checks
//! (signatures, topic = signer) are the defence; Mosquitto adds an ACL (`mosquitto.rs`).

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::broker_auth::{PasswordHash, ServerLogin, SERVER_USER};
use crate::store::Store;

/// The largest MQTT packet a broker we configure accepts (rumqttd's `max_payload_size`,
/// Mosquitto's `max_packet_size`): a full-size schedule with room for its topic and
/// headers. The server's own client accepts more than this ([`CLIENT_MAX_PACKET_BYTES`]),
/// so whatever a broker delivers never breaks the server's connection: anything larger is
/// the broker's refusal.
pub const MAX_PACKET_BYTES: usize = playlists::wire::MAX_SCHEDULE_BYTES + 16 * 1024;
/// The server's own client limit, in and out: well above [`MAX_PACKET_BYTES`] (16 MiB), so
/// a broker configured by hand with a larger limit (up to this) still never breaks the
/// server's connection with a retained message it redelivers on every reconnect.
pub const CLIENT_MAX_PACKET_BYTES: usize = 16 * 1024 * 1024;

/// Who the embedded broker lets in: the server's own clients and provisioned screens.
/// The store is held weakly: rumqttd runs until the process exits and must not keep a
/// store open after its server is gone (screens are refused then).
#[derive(Clone)]
pub struct Logins {
    pub server: ServerLogin,
    pub screens: Weak<dyn Store>,
}

impl std::fmt::Debug for Logins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Logins")
    }
}

impl Logins {
    /// The logins of the store in the data directory `store.dir()`.
    pub fn of(store: &crate::store::SharedStore) -> Result<Logins, BrokerError> {
        Ok(Logins {
            server: ServerLogin::load(store.dir())
                .map_err(|e| BrokerError::Config(e.to_string()))?,
            screens: Arc::downgrade(store),
        })
    }

    /// Decides one CONNECT (off the runtime: a store read and a PBKDF2 hash).
    async fn check(&self, client_id: String, user: String, password: String) -> bool {
        let logins = self.clone();
        let (client, who) = (client_id.clone(), user.clone());
        let decided = tokio::task::spawn_blocking(move || {
            crate::broker_auth::decide(&logins.server, &client, &who, &password, |screen| {
                let store = logins.screens.upgrade()?;
                match store.broker_login(screen) {
                    Ok(Some(text)) => PasswordHash::parse(&text)
                        .map_err(|e| {
                            tracing::error!(
                                screen,
                                error = e,
                                "stored broker password hash is damaged"
                            )
                        })
                        .ok(),
                    Ok(None) => None,
                    Err(e) => {
                        tracing::error!(screen, error = %e, "cannot read broker logins");
                        None
                    }
                }
            })
        })
        .await;
        match decided {
            Ok(Ok(())) => true,
            Ok(Err(reason)) => {
                tracing::warn!(client_id, user, ?reason, "broker connection refused");
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "broker login check failed");
                false
            }
        }
    }
}

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

/// Starts rumqttd on `addr` (or a free loopback port), letting in only `logins`, and
/// waits until it accepts the server's MQTT login.
pub async fn start(
    addr: Option<SocketAddr>,
    logins: Logins,
) -> Result<EmbeddedBroker, BrokerError> {
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
        max = MAX_PACKET_BYTES
    );
    let mut config: rumqttd::Config =
        toml::from_str(&toml_text).map_err(|e| BrokerError::Config(e.to_string()))?;
    let server = logins.server.clone();
    for settings in config.v4.iter_mut().flat_map(|v4| v4.values_mut()) {
        let logins = logins.clone();
        settings.set_auth_handler(move |client_id, user, password| {
            let logins = logins.clone();
            async move { logins.check(client_id, user, password).await }
        });
    }
    std::thread::Builder::new()
        .name("rumqttd".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded broker stopped");
            }
        })
        .map_err(|e| BrokerError::Config(e.to_string()))?;
    wait_ready(addr, &server).await?;
    Ok(EmbeddedBroker { addr })
}

/// Connects an MQTT client with the server's login until a CONNACK arrives, for up to
/// ten seconds.
pub async fn wait_ready(addr: SocketAddr, login: &ServerLogin) -> Result<(), BrokerError> {
    for attempt in 0..100u32 {
        let mut options = rumqttc::MqttOptions::new(
            format!("{SERVER_USER}-probe-{attempt}-{}", std::process::id()),
            addr.ip().to_string(),
            addr.port(),
        );
        options.set_keep_alive(Duration::from_secs(5));
        options.set_credentials(SERVER_USER, login.secret.clone());
        let (client, mut events) = rumqttc::AsyncClient::new(options, 4);
        let ok = tokio::time::timeout(Duration::from_millis(500), async {
            loop {
                match events.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(a))) => {
                        return a.code == rumqttc::ConnectReturnCode::Success
                    }
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
