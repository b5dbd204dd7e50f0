//! Two replicas on one store and one broker (two in-process servers on one redb store
//! holding the Beijing scenario, the embedded broker): one holds the publisher lease and
//! publishes; the other serves the API, and its changes reach the broker through the
//! holder:
//! - only the holder publishes (each server's own count of schedules sent), each says its
//!   role on `/ready` and `/metrics`;
//! - a campaign archived through the other replica's API gets new schedule versions for
//!   the screens it targeted, and for those only, published by the holder;
//! - an emergency started through the other replica reaches a subscribed client as a
//!   command, and the API says the publishing replica sends it;
//! - the holder shut down, the other takes the lease, and the emergency ended through it
//!   is published at once (a command and new versions).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use playlists::catalogue::CatalogueIndex;
use playlists::wire::Topics;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use server::app::{self, MqttTarget, Options};
use server::catalogue::CatalogueService;
use server::import::ImportOptions;
use server::store::{OpenMode, Published, SharedStore};
use tests::agent_proc::wait_for;
use tokio_util::sync::CancellationToken;

const SCREEN: &str = "bj-metro-xidan-s1";

struct Replica {
    handle: app::Handle,
    shutdown: CancellationToken,
    base: String,
}

async fn replica(store: &SharedStore, broker_port: u16) -> Replica {
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let handle = app::start_with(
        store.clone(),
        MqttTarget {
            host: "127.0.0.1".into(),
            port: broker_port,
            shared_subscription: false,
            tls: None,
        },
        listener,
        Topics::default(),
        Options {
            // Not about approval: the admin's changes are live.
            approval: server::approval::ApprovalMode::Off,
            ..Options::default()
        },
        shutdown.clone(),
    )
    .await
    .expect("server");
    let base = format!("http://{}", handle.http_addr);
    Replica {
        handle,
        shutdown,
        base,
    }
}

impl Replica {
    fn publishing(&self) -> bool {
        self.handle.shared.publisher.publishing()
    }

    /// A line of the server's `/metrics` that starts with `name `.
    async fn metric(&self, name: &str) -> String {
        let text = reqwest::get(format!("{}/metrics", self.base))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .to_owned()
    }

    async fn ready(&self) -> Value {
        reqwest::get(format!("{}/ready", self.base))
            .await
            .expect("ready")
            .json()
            .await
            .expect("ready JSON")
    }
}

/// What a watcher saw: live schedule messages, and the actions of commands, by screen.
#[derive(Debug, Default)]
struct Seen {
    schedules: BTreeMap<String, u32>,
    commands: BTreeMap<String, Vec<String>>,
}

impl Seen {
    fn actions(&self, screen: &str) -> Vec<String> {
        self.commands.get(screen).cloned().unwrap_or_default()
    }
}

/// A command's action (`emergency_start`, …), from its signed envelope.
fn action(raw: &[u8]) -> String {
    let envelope: Value = serde_json::from_slice(raw).expect("a JSON envelope");
    let payload: Value =
        serde_json::from_str(envelope["payload"].as_str().expect("a payload")).expect("JSON");
    payload["action"]["action"]
        .as_str()
        .or(payload["action"].as_str())
        .unwrap_or_default()
        .to_owned()
}

async fn watch(port: u16, (user, secret): (String, String)) -> (AsyncClient, Arc<Mutex<Seen>>) {
    let mut options = MqttOptions::new("replicas-test-watcher", "127.0.0.1", port);
    options.set_max_packet_size(16 << 20, 16 << 20);
    options.set_credentials(user, secret);
    let (client, mut events) = AsyncClient::new(options, 64);
    for topic in [
        "signage/v1/screens/+/schedule",
        "signage/v1/screens/+/command",
    ] {
        client
            .subscribe(topic, QoS::AtLeastOnce)
            .await
            .expect("subscribe");
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    let counts = seen.clone();
    tokio::spawn(async move {
        while let Ok(event) = events.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = event {
                if p.retain {
                    continue;
                }
                let screen = p.topic.split('/').nth(3).unwrap_or_default().to_owned();
                let mut seen = counts.lock().expect("seen");
                if p.topic.ends_with("/command") {
                    seen.commands
                        .entry(screen)
                        .or_default()
                        .push(action(&p.payload));
                } else {
                    *seen.schedules.entry(screen).or_insert(0) += 1;
                }
            }
        }
    });
    (client, seen)
}

fn published(store: &SharedStore) -> BTreeMap<String, Published> {
    store.published().expect("published").into_iter().collect()
}

/// The screens whose published version is above `before`'s.
fn risen(store: &SharedStore, before: &BTreeMap<String, Published>) -> BTreeSet<String> {
    published(store)
        .into_iter()
        .filter(|(s, p)| before.get(s).is_none_or(|b| p.version > b.version))
        .map(|(s, _)| s)
        .collect()
}

async fn post(url: String, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(url).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_publishes_what_every_replica_changes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = server::store::open(&tmp.path().join("server"), OpenMode::Create).expect("store");
    server::import::import(
        &CatalogueService::new(store.clone()),
        &tests::beijing(),
        &ImportOptions::admin(),
    )
    .expect("import the Beijing scenario");
    let logins = server::broker::Logins::of(&store).expect("broker logins");
    let broker = server::broker::start(None, logins)
        .await
        .expect("embedded broker");
    let port = broker.addr.port();

    let secret = server::broker_auth::server_secret(store.dir()).expect("server secret");
    let (_watcher, seen) = watch(port, (server::broker_auth::SERVER_USER.into(), secret)).await;
    let a = replica(&store, port).await;
    let b = replica(&store, port).await;
    assert!(a.publishing(), "the first replica took the lease");
    assert!(!b.publishing(), "two replicas publish");
    let token = std::fs::read_to_string(store.dir().join(server::admin::FILE))
        .expect("admin token")
        .trim()
        .to_owned();

    // The first publication, by the holder alone.
    let screens = a.handle.shared.catalogue.catalogue().expect("catalogue");
    let all = screens.screens.len();
    wait_for(
        "the holder's first schedule publication",
        Duration::from_secs(30),
        || published(&store).len() == all && seen.lock().expect("seen").schedules.len() == all,
        || format!("{:?}", seen.lock().expect("seen")),
    )
    .await;
    seen.lock().expect("seen").schedules.clear();
    assert_eq!(
        b.metric("signage_schedules_published_total").await,
        "signage_schedules_published_total 0"
    );
    assert_eq!(
        a.metric("signage_publisher_lease_held").await,
        "signage_publisher_lease_held 1"
    );
    assert_eq!(
        b.metric("signage_publisher_lease_held").await,
        "signage_publisher_lease_held 0"
    );
    let ready = b.ready().await;
    assert_eq!(ready["ready"], true, "{ready}");
    assert!(
        ready["publisher"]["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("another replica publishes")),
        "{ready}"
    );

    // A campaign archived through the replica that does not publish: the holder publishes
    // new versions of the screens it targeted, of those only.
    let (campaign, targeted) = {
        let index = CatalogueIndex::new(&screens);
        let stored = store.snapshot().expect("snapshot").campaigns.clone();
        screens
            .campaigns
            .iter()
            .filter(|c| stored.contains_key(c.id.as_str()))
            .map(|c| {
                let t: BTreeSet<String> = index.targeted(c).map(|s| s.id.to_string()).collect();
                (c.id.to_string(), t)
            })
            .filter(|(_, t)| !t.is_empty() && t.len() < all)
            .min_by_key(|(_, t)| t.len())
            .expect("a campaign for some screens only")
    };
    let before = published(&store);
    let (status, body) = post(
        format!("{}/api/v1/campaigns/{campaign}/archive", b.base),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    wait_for(
        "the holder to publish the archived campaign's screens",
        Duration::from_secs(10),
        || risen(&store, &before) == targeted,
        || format!("risen {:?}, targeted {targeted:?}", risen(&store, &before)),
    )
    .await;
    assert_eq!(
        b.metric("signage_schedules_published_total").await,
        "signage_schedules_published_total 0",
        "the replica without the lease published"
    );
    wait_for(
        "the archived campaign's schedules on the broker",
        Duration::from_secs(10),
        || {
            let seen = seen.lock().expect("seen");
            targeted.iter().all(|s| seen.schedules.contains_key(s))
        },
        || format!("{:?}", seen.lock().expect("seen")),
    )
    .await;
    {
        let seen = seen.lock().expect("seen");
        let sent: BTreeSet<_> = seen.schedules.keys().cloned().collect();
        assert!(
            sent.is_subset(&targeted),
            "schedules sent to screens the campaign does not target: {:?}",
            sent.difference(&targeted).collect::<Vec<_>>()
        );
    }

    // An emergency started through the replica that does not publish reaches the broker as
    // a command; the API says the publishing replica sends it.
    let (status, body) = post(
        format!("{}/api/v1/emergencies", b.base),
        &token,
        Some(json!({
            "id": "alert-replicas", "name": "Replicas alert",
            "creatives": ["alert-epidemic-l"],
            "target": {"screens": [SCREEN]},
        })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["schedules_changed"], Value::Null, "{body}");
    wait_for(
        "the emergency's command, sent by the holder",
        Duration::from_secs(10),
        || seen.lock().expect("seen").actions(SCREEN) == ["emergency_start"],
        || format!("{:?}", seen.lock().expect("seen")),
    )
    .await;

    // The holder stops: the other takes the lease, and publishes what it changes itself.
    a.shutdown.cancel();
    a.handle.wait().await;
    wait_for(
        "the other replica to take the lease",
        Duration::from_secs(10),
        || b.publishing(),
        String::new,
    )
    .await;
    assert_eq!(
        b.metric("signage_publisher_lease_held").await,
        "signage_publisher_lease_held 1"
    );
    let before = published(&store);
    let (status, body) = post(
        format!("{}/api/v1/emergencies/alert-replicas/end", b.base),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["schedules_changed"], 1, "{body}");
    assert!(risen(&store, &before).contains(SCREEN));
    wait_for(
        "the end command",
        Duration::from_secs(10),
        || seen.lock().expect("seen").actions(SCREEN).len() >= 2,
        || format!("{:?}", seen.lock().expect("seen")),
    )
    .await;
    assert_eq!(
        seen.lock().expect("seen").actions(SCREEN),
        ["emergency_start", "emergency_end"],
        "the new holder sent again what the last one had sent"
    );
    b.shutdown.cancel();
    b.handle.wait().await;
}
