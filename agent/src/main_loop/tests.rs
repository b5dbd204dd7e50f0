//! Main loop tests without a broker: the handlers run against a client whose event loop is
//! never polled, and the requests they queued are read back from it.

use chrono::Duration as ChronoDuration;
use playlists::wire::pop::{AckedBatch, ACK_KIND};
use playlists::wire::status::COMMAND_KIND;
use playlists::wire::{Command, Keypair, PopAck, Status};
use playlists::Sha256;
use rumqttc::{EventLoop, Request};

use super::*;
use crate::config::Secret;
use crate::outbox::Durability;
use crate::schedule::fixture;

struct Rig {
    _dir: tempfile::TempDir,
    ml: MainLoop,
    eventloop: EventLoop,
    uploader: mpsc::Receiver<UploaderMsg>,
    schedules: watch::Receiver<Option<Arc<HeldSchedule>>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Sent {
    Subscribe(Vec<String>),
    Status(bool, Option<u64>, bool),
    Other(String),
    Disconnect,
}

impl Rig {
    fn new() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let config = Arc::new(AgentConfig {
            screen_id: fixture::screen(),
            mqtt_host: "127.0.0.1".into(),
            mqtt_port: 1,
            mqtt_tls: None,
            ca_pem: None,
            server_url: "http://127.0.0.1:1".into(),
            topic_prefix: "signage/v1".into(),
            server_public_key: fixture::server_key().public(),
            screen_key: Secret::new(Keypair::from_secret([5; 32])),
            mqtt_password: None,
            cache_max_bytes: 1 << 20,
            prefetch_hours: 24,
            metrics_listen: None,
        });
        let topics = Topics::new(&config.topic_prefix);
        let (client, eventloop) = crate::mqtt::client(&config, &topics, b"offline".to_vec());
        let (outbox, _) = Outbox::open(dir.path(), Durability::Relaxed).unwrap();
        let (cache, _) = Cache::open(dir.path(), 1 << 20, 0).unwrap();
        let (schedules_tx, schedules) = watch::channel(None);
        let (up_tx, uploader) = mpsc::channel(16);
        let ml = MainLoop {
            config,
            topics,
            client,
            clock: Clock::system(),
            outbox: Arc::new(outbox),
            cache: Arc::new(cache),
            schedules: schedules_tx,
            uploader: up_tx,
            now_playing: watch::channel(None).1,
            commands: watch::channel(0).0,
            player: "headless".into(),
            notes: vec![],
            connected: false,
            resubscribe: false,
            media_ready: false,
            playable_until: None,
            download_failures: Vec::new(),
            published: None,
            statuses: crate::status::StatusSigner::new(Keypair::from_secret([5; 32])),
            live: Default::default(),
            beat: daemon::Liveness::default().register("main loop"),
            store_probe: Arc::new(crate::readiness::StoreProbe::new(dir.path())),
        };
        Rig {
            _dir: dir,
            ml,
            eventloop,
            uploader,
            schedules,
        }
    }

    /// What the handlers queued since the last call.
    fn sent(&mut self) -> Vec<Sent> {
        self.eventloop.clean();
        self.eventloop
            .pending
            .drain(..)
            .map(|r| match r {
                Request::Subscribe(s) => {
                    Sent::Subscribe(s.filters.into_iter().map(|f| f.path).collect())
                }
                Request::Publish(p) if p.topic == "signage/v1/screens/scr-1/status" => {
                    assert!(p.retain);
                    // Sealed with the screen's key (the rig's [5; 32]).
                    let key = Keypair::from_secret([5; 32]).public();
                    let s: Status =
                        playlists::wire::open_status(&p.payload, "scr-1", &key).unwrap();
                    Sent::Status(s.online, s.schedule_version, s.media_ready)
                }
                Request::Publish(p) => Sent::Other(p.topic),
                Request::Disconnect(_) => Sent::Disconnect,
                other => Sent::Other(format!("{other:?}")),
            })
            .collect()
    }

    fn uploader_msgs(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.uploader.try_recv().ok())
            .map(|m| match m {
                UploaderMsg::Finalized => "finalized".to_owned(),
                UploaderMsg::Ack(a) => format!("ack {}", a.batches[0].batch_seq),
                UploaderMsg::Connected(up) => format!("connected {up}"),
            })
            .collect()
    }

    fn version(&self) -> Option<u64> {
        self.schedules.borrow().as_ref().map(|h| h.version)
    }
}

const SCHEDULE: &str = "signage/v1/screens/scr-1/schedule";
const COMMAND: &str = "signage/v1/screens/scr-1/command";
const ACK: &str = "signage/v1/screens/scr-1/pop/ack";

fn command(id: &str, action: CommandAction, expires_in_secs: i64) -> Vec<u8> {
    let now = Utc::now();
    let cmd = Command {
        v: 1,
        screen_id: "scr-1".into(),
        id: id.into(),
        issued_at: now,
        expires_at: now + ChronoDuration::seconds(expires_in_secs),
        action,
    };
    fixture::server_key().seal(COMMAND_KIND, &cmd)
}

#[tokio::test]
async fn connect_schedule_media_and_goodbye() {
    let mut rig = Rig::new();
    rig.ml.publish_status(true);
    assert_eq!(rig.sent(), [], "nothing is published while disconnected");
    rig.ml.on_connected().await;
    assert_eq!(
        rig.sent(),
        [
            Sent::Subscribe(vec![SCHEDULE.into(), COMMAND.into(), ACK.into()]),
            Sent::Status(true, None, false)
        ]
    );
    assert_eq!(rig.uploader_msgs(), ["connected true"]);

    // Forged, unsigned and foreign schedules change nothing.
    let forged = Keypair::from_secret([1; 32]).seal(
        playlists::wire::schedule::KIND,
        &fixture::doc(1, fixture::body(&[b"a"], 15)),
    );
    rig.ml.on_message(SCHEDULE, &forged).await;
    rig.ml.on_message(SCHEDULE, b"{\"v\":1}").await;
    assert_eq!((rig.version(), rig.sent()), (None, vec![]));
    assert_eq!(rig.ml.outbox.load_schedule().unwrap(), None);

    let v1 = fixture::signed(1, &[b"a"]);
    rig.ml.on_message(SCHEDULE, &v1).await;
    assert_eq!(rig.version(), Some(1));
    assert_eq!(rig.ml.outbox.load_schedule().unwrap(), Some(v1.clone()));
    assert_eq!(rig.sent(), [Sent::Status(true, Some(1), false)]);
    // The retained copy again (a reconnect): nothing new.
    rig.ml.on_message(SCHEDULE, &v1).await;
    assert_eq!(rig.sent(), []);
    rig.ml.on_coverage(ready(0));
    assert_eq!(rig.sent(), []);
    rig.ml.on_coverage(ready(1));
    assert_eq!(rig.sent(), [Sent::Status(true, Some(1), true)]);
    // A newer version resets media readiness until the fetcher says so.
    rig.ml
        .on_message(SCHEDULE, &fixture::signed(2, &[b"a"]))
        .await;
    assert_eq!(rig.sent(), [Sent::Status(true, Some(2), false)]);

    rig.ml.on_disconnected().await;
    assert_eq!(rig.uploader_msgs(), ["connected false"]);
    rig.ml.on_coverage(ready(2));
    assert_eq!(rig.sent(), []);
    rig.ml.on_connected().await;
    assert!(rig.sent().contains(&Sent::Status(true, Some(2), true)));
    assert!(rig.ml.goodbye());
    assert_eq!(
        rig.sent(),
        [Sent::Status(false, Some(2), true), Sent::Disconnect]
    );
}

#[tokio::test]
async fn refused_subscriptions_are_asked_again_at_the_next_beat_while_connected() {
    let mut rig = Rig::new();
    rig.ml.on_connected().await;
    rig.sent();
    let all = Sent::Subscribe(vec![SCHEDULE.into(), COMMAND.into(), ACK.into()]);
    // Nothing refused: a beat subscribes nothing.
    rig.ml.subscribe_again();
    assert_eq!(rig.sent(), []);
    rig.ml.on_subscribe_refused();
    assert_eq!(rig.sent(), [], "not at once");
    rig.ml.subscribe_again();
    assert_eq!(rig.sent(), std::slice::from_ref(&all));
    rig.ml.subscribe_again();
    assert_eq!(rig.sent(), [], "once per refusal");
    // Refused, then disconnected: the next connection subscribes anyway, once.
    rig.ml.on_subscribe_refused();
    rig.ml.on_disconnected().await;
    rig.ml.subscribe_again();
    assert_eq!(rig.sent(), []);
    rig.ml.on_connected().await;
    assert_eq!(rig.sent()[0], all);
    rig.ml.subscribe_again();
    assert_eq!(rig.sent(), []);
}

#[tokio::test]
async fn commands_and_acks() {
    let mut rig = Rig::new();
    rig.ml.on_connected().await;
    rig.ml
        .on_message(SCHEDULE, &fixture::signed(1, &[b"kept"]))
        .await;
    rig.sent();
    rig.uploader_msgs();
    let (kept, stale): (&[u8], &[u8]) = (b"kept", b"stale");
    rig.ml
        .cache
        .put(Sha256::of(kept).as_str(), kept, 0)
        .unwrap();
    rig.ml
        .cache
        .put(Sha256::of(stale).as_str(), stale, 0)
        .unwrap();

    // Expired and forged commands are ignored.
    rig.ml
        .on_message(COMMAND, &command("c0", CommandAction::Purge, -1))
        .await;
    let forged = Keypair::from_secret([1; 32]).seal(COMMAND_KIND, &serde_json::json!({}));
    rig.ml.on_message(COMMAND, &forged).await;
    assert_eq!((rig.ml.cache.stats().items, rig.sent()), (2, vec![]));
    // Purge drops what the schedule does not need, once per nonce.
    rig.ml
        .on_message(COMMAND, &command("c1", CommandAction::Purge, 60))
        .await;
    assert_eq!(rig.ml.cache.stats().items, 1);
    assert!(rig.ml.cache.contains(Sha256::of(kept).as_str()).unwrap());
    assert_eq!(rig.sent(), [Sent::Status(true, Some(1), false)]);
    rig.ml
        .cache
        .put(Sha256::of(stale).as_str(), stale, 0)
        .unwrap();
    rig.ml
        .on_message(COMMAND, &command("c1", CommandAction::Purge, 60))
        .await;
    assert_eq!((rig.ml.cache.stats().items, rig.sent()), (2, vec![]));
    rig.ml
        .on_message(COMMAND, &command("c2", CommandAction::Resync, 60))
        .await;
    assert_eq!(rig.sent(), [Sent::Status(true, Some(1), false)]);

    // Acks reach the uploader only when the server signed them for this screen.
    let ack = |screen: &str| PopAck {
        v: 1,
        screen_id: screen.into(),
        batches: vec![AckedBatch {
            epoch: String::new(),
            batch_seq: 4,
            hash: "h".into(),
        }],
    };
    rig.ml
        .on_message(ACK, &fixture::server_key().seal(ACK_KIND, &ack("scr-1")))
        .await;
    rig.ml
        .on_message(
            ACK,
            &Keypair::from_secret([5; 32]).seal(ACK_KIND, &ack("scr-1")),
        )
        .await;
    rig.ml
        .on_message(ACK, &fixture::server_key().seal(ACK_KIND, &ack("scr-2")))
        .await;
    assert_eq!(rig.uploader_msgs(), ["ack 4"]);
    // The backlog reaching zero republishes the status.
    rig.ml.on_acked(3);
    assert_eq!(rig.sent(), []);
    rig.ml.on_acked(0);
    assert_eq!(rig.sent(), [Sent::Status(true, Some(1), false)]);
}

#[tokio::test]
async fn sim_clock_and_ready_messages() {
    let mut rig = Rig::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    rig.ml.clock = Clock::sim("scr-1", tx);
    rig.ml.on_connected().await;
    assert!(
        matches!(&rig.sent()[0], Sent::Subscribe(f) if f.last().map(String::as_str) == Some("signage/v1/sim/clock"))
    );
    rig.ml
        .on_message(
            "signage/v1/sim/clock",
            br#"{"v":1,"step":1,"now":"2023-12-18T08:00:00Z"}"#,
        )
        .await;
    assert_eq!(
        rig.ml.clock.now(),
        Some("2023-12-18T08:00:00Z".parse().unwrap())
    );
    // Nobody waits on the clock: no ready yet.
    assert!(rx.try_recv().is_err());
    rig.ml.on_message("signage/v1/sim/clock", b"").await;
    let ready = SimReady {
        v: 1,
        screen_id: "scr-1".into(),
        step: 1,
        next: "2023-12-18T08:00:15Z".parse().unwrap(),
        last_seq: None,
    };
    rig.ml.on_sim_ready(&ready);
    assert_eq!(
        rig.sent(),
        [Sent::Other("signage/v1/sim/ready/scr-1".into())]
    );
}

/// A command for `screen`, signed by `key`, expiring in a minute.
fn command_for(key: &Keypair, screen: &str, id: &str, action: CommandAction) -> Vec<u8> {
    let now = Utc::now();
    let cmd = Command {
        v: 1,
        screen_id: screen.into(),
        id: id.into(),
        issued_at: now,
        expires_at: now + ChronoDuration::seconds(60),
        action,
    };
    key.seal(COMMAND_KIND, &cmd)
}

#[tokio::test]
async fn emergency_commands_overlay_the_held_schedule() {
    let mut rig = Rig::new();
    rig.ml.on_connected().await;
    rig.ml
        .on_message(SCHEDULE, &fixture::signed(1, &[b"a"]))
        .await;
    rig.sent();
    rig.ml
        .cache
        .put(Sha256::of(b"alert").as_str(), b"alert", 0)
        .unwrap();
    let campaigns = |rig: &Rig| -> Vec<String> {
        let held = rig.schedules.borrow().clone().unwrap();
        held.schedule
            .campaigns
            .iter()
            .map(|c| format!("{}..{}", c.id, c.flight.end().format("%Y")))
            .collect()
    };
    let stored = |rig: &Rig| crate::emergency::Overlays::load(&rig.ml.outbox).unwrap();
    let start = |priority: &str| {
        let (campaign, creatives) = crate::emergency::alert(priority);
        CommandAction::EmergencyStart {
            campaign: Box::new(campaign),
            creatives,
        }
    };
    let server = fixture::server_key();

    // Forged, misaddressed and non-emergency takeovers change nothing.
    let forged = Keypair::from_secret([1; 32]);
    for raw in [
        command_for(&forged, "scr-1", "e1", start("emergency")),
        command_for(&server, "scr-2", "e2", start("emergency")),
        command_for(&server, "scr-1", "e3", start("high")),
    ] {
        rig.ml.on_message(COMMAND, &raw).await;
    }
    assert_eq!(campaigns(&rig), ["camp-1..2024"]);
    assert!(stored(&rig).is_empty());
    assert_eq!(rig.sent(), []);

    // A genuine one is merged into the held schedule (same version) and persisted.
    let genuine = command_for(&server, "scr-1", "e4", start("emergency"));
    rig.ml.on_message(COMMAND, &genuine).await;
    assert_eq!(campaigns(&rig), ["camp-1..2024", "alert..2123"]);
    assert_eq!(rig.version(), Some(1));
    assert_eq!(stored(&rig).started.len(), 1);
    assert_eq!(rig.sent(), [Sent::Status(true, Some(1), false)]);

    // Its end sets the flight end; replaying the start (same nonce) does not undo it.
    // (Ends are in 2090: the rig's system clock prunes overlays ended two days ago.)
    let end = CommandAction::EmergencyEnd {
        campaign_id: "alert".into(),
        ends_at: "2090-01-01T00:00:00Z".parse().unwrap(),
    };
    rig.ml
        .on_message(COMMAND, &command_for(&server, "scr-1", "e5", end))
        .await;
    assert_eq!(campaigns(&rig), ["camp-1..2024", "alert..2090"]);
    rig.sent();
    let revision = rig.schedules.borrow().as_ref().unwrap().revision;
    let stored_before = stored(&rig);
    rig.ml.on_message(COMMAND, &genuine).await;
    assert_eq!(
        (rig.sent(), stored(&rig)),
        (vec![], stored_before),
        "a replayed start is ignored"
    );
    assert_eq!(rig.schedules.borrow().as_ref().unwrap().revision, revision);

    // A schedule that carries the campaign (ended) supersedes the overlays.
    let mut carried = fixture::doc(2, fixture::body(&[b"a"], 15));
    let (mut campaign, creatives) = crate::emergency::alert("emergency");
    campaign.flight_end = "2090-01-01T00:00:00Z".parse().unwrap();
    carried.body.campaigns.push(campaign);
    carried.body.creatives.extend(creatives);
    rig.ml
        .on_message(
            SCHEDULE,
            &server.seal(playlists::wire::schedule::KIND, &carried),
        )
        .await;
    assert_eq!(rig.version(), Some(2));
    assert_eq!(campaigns(&rig), ["camp-1..2024", "alert..2090"]);
    assert!(stored(&rig).is_empty());
}

#[tokio::test]
async fn an_expired_schedule_is_not_taken_but_the_held_one_keeps_playing() {
    let mut rig = Rig::new();
    rig.ml
        .on_message(SCHEDULE, &fixture::signed(1, &[b"a"]))
        .await;
    let mut stale = fixture::doc(2, fixture::body(&[b"a"], 15));
    stale.expires_at = Utc::now() - ChronoDuration::seconds(1);
    rig.ml
        .on_message(
            SCHEDULE,
            &fixture::server_key().seal(playlists::wire::schedule::KIND, &stale),
        )
        .await;
    assert_eq!(rig.version(), Some(1));
}

/// The fetcher's word that schedule `version` is fully cached for a day ahead.
fn ready(version: u64) -> Coverage {
    Coverage {
        version,
        ready: true,
        playable_until: Some(chrono::Utc::now() + chrono::Duration::hours(24)),
        failures: Vec::new(),
    }
}
