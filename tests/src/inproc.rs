//! A server in this process, for the fleet-sized benches and the fleet simulator: the
//! embedded broker with the store's broker logins (or a broker outside the process), and
//! the HTTP API on a free loopback port, publishing through that broker.

use playlists::wire::Topics;
use server::app::{self, MqttTarget};
use server::store::SharedStore;
use tokio_util::sync::CancellationToken;

/// A running in-process server.
pub struct InProcess {
    pub handle: app::Handle,
    /// The broker's port on 127.0.0.1.
    pub broker_port: u16,
    /// Cancel, then `handle.wait()`, to stop it.
    pub shutdown: CancellationToken,
}

/// Starts the embedded broker (with the logins `store` holds) and a server on `store`.
pub async fn start(store: SharedStore, options: app::Options) -> anyhow::Result<InProcess> {
    let logins = server::broker::Logins::of(&store)?;
    let broker = server::broker::start(None, logins).await?;
    start_with_broker(store, options, broker.addr.port()).await
}

/// Starts a server on `store` publishing through a broker outside this process on
/// 127.0.0.1:`broker_port` (it logs in with the store's server secret, and retries until
/// the broker is up).
pub async fn start_with_broker(
    store: SharedStore,
    options: app::Options,
    broker_port: u16,
) -> anyhow::Result<InProcess> {
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let handle = app::start_with(
        store,
        MqttTarget {
            host: "127.0.0.1".into(),
            port: broker_port,
            shared_subscription: false,
            tls: None,
        },
        listener,
        Topics::default(),
        options,
        shutdown.clone(),
    )
    .await?;
    Ok(InProcess {
        handle,
        broker_port,
        shutdown,
    })
}
