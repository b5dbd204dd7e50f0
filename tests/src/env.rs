//! `TestEnv`: one in-process server (redb store holding the Beijing scenario, HTTP, MQTT
//! client) in a fresh temporary directory, on the embedded broker or an external one, with
//! helpers to provision screens and read their retained status.

use playlists::wire::{Status, Topics};
use server::app::{self, MqttTarget};
use server::store::Store;
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
pub struct TestEnv {
    pub tmp: tempfile::TempDir,
    pub store: Store,
    pub handle: app::Handle,
    pub shutdown: CancellationToken,
    /// `mqtt://127.0.0.1:PORT` of the broker in use.
    pub mqtt_url: String,
}

impl TestEnv {
    /// Starts the server on the broker at `mqtt_port`, or on a fresh embedded one.
    pub async fn spawn(mqtt_port: Option<u16>) -> TestEnv {
        let tmp = tempfile::tempdir().expect("tempdir");
        let port = match mqtt_port {
            Some(p) => p,
            None => server::broker::start(None)
                .await
                .expect("embedded broker")
                .addr
                .port(),
        };
        let store = Store::open(&tmp.path().join("server")).expect("store");
        server::import::import(&store, &crate::beijing()).expect("import the Beijing scenario");
        let shutdown = CancellationToken::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let target = MqttTarget {
            host: "127.0.0.1".into(),
            port,
            shared_subscription: mqtt_port.is_some(),
        };
        let handle = app::start(
            store.clone(),
            target,
            listener,
            Topics::default(),
            shutdown.clone(),
        )
        .await
        .expect("server");
        TestEnv {
            tmp,
            store,
            handle,
            shutdown,
            mqtt_url: format!("mqtt://127.0.0.1:{port}"),
        }
    }

    /// The agent config (with a fresh registered key) for `screen`.
    pub fn provision(&self, screen: &str) -> String {
        server::provision::provision(
            &self.store,
            screen,
            &self.mqtt_url,
            &format!("http://{}", self.handle.http_addr),
            "signage/v1",
        )
        .expect("provision")
    }

    /// The retained status the server last saw from `screen`.
    pub fn status(&self, screen: &str) -> Option<Status> {
        self.handle
            .shared
            .fleet
            .lock()
            .expect("fleet lock")
            .get(screen)
            .cloned()
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.handle.wait().await;
    }
}
