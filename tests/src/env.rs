//! `TestEnv`: one in-process server (its store holding the Beijing scenario, HTTP, MQTT
//! client) in a fresh temporary directory, on the embedded broker or an external one, with
//! helpers to provision screens and read their retained status. The store is redb in the
//! data directory, or a fresh PostgreSQL database with `SIGNAGE_TEST_STORE=postgres` (see
//! [`crate::store`]).

use playlists::wire::{Status, Topics};
use server::app::{self, MqttTarget};
use server::catalogue::CatalogueService;
use server::import::ImportOptions;
use server::store::{OpenMode, SharedStore};
use tokio_util::sync::CancellationToken;

use crate::store::off_runtime;

#[derive(Debug)]
pub struct TestEnv {
    pub tmp: tempfile::TempDir,
    pub store: SharedStore,
    pub handle: app::Handle,
    pub shutdown: CancellationToken,
    /// `mqtt://127.0.0.1:PORT` of the broker in use.
    pub mqtt_url: String,
    /// Where the store is (a PostgreSQL database is dropped with it, after the server).
    pub test_store: crate::TestStore,
}

impl TestEnv {
    /// Starts the server on the broker at `mqtt_port`, or on a fresh embedded one.
    pub async fn spawn(mqtt_port: Option<u16>) -> TestEnv {
        TestEnv::spawn_with(mqtt_port, app::Options::default()).await
    }

    /// [`spawn`](Self::spawn) with server options (a scaled clock, a schedule TTL).
    pub async fn spawn_with(mqtt_port: Option<u16>, options: app::Options) -> TestEnv {
        let tmp = tempfile::tempdir().expect("tempdir");
        let test_store = crate::TestStore::new();
        let data = tmp.path().join("server");
        let store = off_runtime(|| test_store.open(&data, OpenMode::Create));
        let port = match mqtt_port {
            Some(p) => p,
            None => {
                let logins = server::broker::Logins::of(&store).expect("broker logins");
                server::broker::start(None, logins)
                    .await
                    .expect("embedded broker")
                    .addr
                    .port()
            }
        };
        off_runtime(|| {
            server::import::import(
                &CatalogueService::new(store.clone()),
                &crate::beijing(),
                &ImportOptions::admin(),
            )
        })
        .expect("import the Beijing scenario");
        let shutdown = CancellationToken::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let target = MqttTarget {
            host: "127.0.0.1".into(),
            port,
            shared_subscription: mqtt_port.is_some(),
            tls: None,
        };
        let handle = app::start_with(
            store.clone(),
            target,
            listener,
            Topics::default(),
            options,
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
            test_store,
        }
    }

    /// The agent config (with a fresh registered key) for `screen`.
    pub fn provision(&self, screen: &str) -> String {
        off_runtime(|| {
            let prepared = server::provision::prepare(
                &*self.store,
                screen,
                &self.mqtt_url,
                &format!("http://{}", self.handle.http_addr),
                "signage/v1",
            )
            .expect("provision");
            prepared
                .register(&*self.store, chrono::Utc::now())
                .expect("register the key");
            prepared.config
        })
    }

    /// The live catalogue.
    pub fn catalogue(&self) -> std::sync::Arc<playlists::Catalogue> {
        off_runtime(|| self.handle.shared.catalogue.catalogue()).expect("catalogue")
    }

    /// `http://127.0.0.1:PORT` of the server's HTTP API.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.handle.http_addr)
    }

    /// The admin token the server made in its data directory.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.store.dir().join(server::admin::FILE))
            .expect("admin token")
            .trim()
            .to_owned()
    }

    /// The broker login of the server's own clients (user name, secret): what a test's
    /// watcher uses on a broker that authenticates.
    pub fn server_login(&self) -> (String, String) {
        let secret =
            server::broker_auth::server_secret(self.store.dir()).expect("server broker secret");
        (server::broker_auth::SERVER_USER.to_owned(), secret)
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

impl TestEnv {
    /// Waits until `screen` is online with every creative of its schedule cached.
    pub async fn wait_media_ready(&self, screen: &str, agent: &crate::agent_proc::AgentProc) {
        crate::agent_proc::wait_for(
            "the agent to hold its schedule and media",
            std::time::Duration::from_secs(60),
            || {
                self.status(screen)
                    .is_some_and(|s| s.online && s.media_ready)
            },
            || agent.log_tail(),
        )
        .await;
    }

    /// Installation: on a sim clock nobody drives, the agent takes its schedule and media
    /// but plays nothing; a clean stop keeps both.
    pub async fn install(&self, screen: &str, agent: &mut crate::agent_proc::AgentProc) {
        agent.spawn(&["--clock".into(), "sim".into()]);
        self.wait_media_ready(screen, agent).await;
        agent.terminate().await;
    }

    /// Restarts the agent on a timeline at `night` (its venue closed, so nothing new plays),
    /// waits until the ledger holds every record it wrote and its outbox is empty, and
    /// stops it. Returns the last seq.
    pub async fn drain(
        &self,
        screen: &str,
        agent: &mut crate::agent_proc::AgentProc,
        night: chrono::DateTime<chrono::Utc>,
    ) -> u64 {
        agent.spawn(&crate::agent_proc::scaled_args(
            night,
            chrono::Utc::now().timestamp_millis(),
            1.0,
        ));
        let ledger = &self.handle.shared.ledger;
        let last_seq = || {
            off_runtime(|| ledger.counts())
                .expect("ledger counts")
                .last_seq
                .get(screen)
                .copied()
        };
        crate::agent_proc::wait_for(
            "the ledger to hold everything the agent wrote",
            std::time::Duration::from_secs(60),
            || {
                self.status(screen).is_some_and(|s| {
                    s.online
                        && s.at.is_some_and(|at| at >= night)
                        && s.outbox_backlog == 0
                        && s.last_seq > 0
                        && last_seq() == Some(s.last_seq)
                })
            },
            || {
                format!(
                    "status {:?}, ledger {:?}\n{}",
                    self.status(screen),
                    last_seq(),
                    agent.log_tail()
                )
            },
        )
        .await;
        agent.terminate().await;
        last_seq().expect("records in the ledger")
    }
}
