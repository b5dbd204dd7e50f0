//! Proof of play through a three-node NATS cluster (nats-server with JetStream and its
//! MQTT listeners), one node killed and restarted on the way.
//!
//! One server (redb store, Beijing scenario) holds its MQTT connection on node 1 and
//! reads proof of play from the NATS queue group `signage-ingest` (`nats_ingest` listing
//! all three nodes). The Beijing screens run as real agents in this process
//! (`agent::fleet`: each with its own MQTT connection, key and outbox; every fifth screen,
//! fourteen agents), spread over the
//! three nodes' MQTT listeners. They receive their retained schedules through the cluster
//! and play; node 3 is SIGKILLed and restarted after a while. In the end the ledger holds
//! every play the agents finished before a mark taken after the restart (each agent's
//! outbox acknowledged up to it), each record once, seqs 1..=k per screen with the rest
//! still in the outboxes, every play the planner's for its slot, and the audit clean.
//! The cluster runs without authentication (see `tests::nats_cluster`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};

use agent::fleet::{Fleet, FleetOptions, Member};
use server::app::{self, MqttTarget};
use server::catalogue::CatalogueService;
use server::clock::ServerClock;
use server::import::ImportOptions;
use server::pop_source::{NatsIngest, PopSource};
use server::store::{LedgerStore, OpenMode, SharedStore};
use tests::nats_cluster::NatsCluster;

/// Virtual seconds per real second: a 15 s slot every 1.5 s.
const SPEED: f64 = 10.0;
/// One screen in this many runs an agent.
const AGENTS_EVERY: usize = 5;
/// How long any one wait may take.
const LIMIT: Duration = Duration::from_secs(180);

fn note(t0: Instant, what: impl std::fmt::Display) {
    eprintln!(
        "[nats-cluster {:>6.1} s] {what}",
        t0.elapsed().as_secs_f64()
    );
}

/// Polls `f` (done, of) every 200 ms until done == of; fails after [`LIMIT`].
async fn until(
    what: &str,
    mut f: impl FnMut() -> anyhow::Result<(usize, usize)>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + LIMIT;
    loop {
        let (done, of) = f()?;
        if done == of {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {done} of {of} after {LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Fails when an agent stopped on its own.
fn dead(fleet: &Fleet) -> anyhow::Result<()> {
    let exited = fleet.exited();
    anyhow::ensure!(exited.is_empty(), "agents stopped: {exited:?}");
    Ok(())
}

/// The highest seq of each screen in the ledger.
fn ledger_seqs(ledger: &dyn LedgerStore) -> BTreeMap<String, u64> {
    let mut last = BTreeMap::new();
    let all = server::store::Query {
        from: None,
        to: None,
        dimension: server::store::Dimension::Screen,
        venue: None,
        screen: None,
    };
    ledger
        .plays(&all, &mut |r| {
            let e = last.entry(r.screen_id.clone()).or_insert(0);
            *e = (*e).max(r.seq);
            Ok(())
        })
        .expect("ledger plays");
    last
}

/// Provisions every screen of the store (a key and a broker password each, as `signage
/// screens provision` does) with the MQTT URL `mqtt_url(i)` for the i-th screen.
fn members(
    store: &SharedStore,
    dir: &std::path::Path,
    http_url: &str,
    mqtt_url: impl Fn(usize) -> String,
) -> anyhow::Result<Vec<Member>> {
    let ids: Vec<String> = CatalogueService::new(store.clone())
        .catalogue()?
        .screens
        .iter()
        .map(|s| s.id.to_string())
        .collect();
    let server_key = server::keys::server_key(store.dir())?;
    let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let mut out = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let key = server::keys::generate()?;
        let password = server::broker_auth::new_password()?;
        let hash = server::broker_auth::PasswordHash::new(&password)?.to_string();
        store.add_screen_credentials(id, &key.public_hex(), &hash, Utc::now())?;
        let text = format!(
            "screen_id = {}\nmqtt_url = {}\nserver_url = {}\nserver_public_key = {}\n\
             screen_secret_key = {}\nmqtt_password = {}\n[cache]\nprefetch_hours = 1\n",
            quote(id),
            quote(&mqtt_url(i)),
            quote(http_url),
            quote(&server_key.public_hex()),
            quote(&key.secret_hex()),
            quote(&password),
        );
        out.push(Member {
            config: agent::AgentConfig::from_toml_str(&text)?,
            data_dir: dir.join("agents").join(id),
        });
    }
    Ok(out)
}

async fn run() -> anyhow::Result<()> {
    let t0 = Instant::now();
    let mut cluster = NatsCluster::start(3).await;
    note(t0, format!("cluster formed: NATS {}", cluster.nats_urls()));
    let result = agents_through(&mut cluster, t0).await;
    if result.is_err() {
        for node in &cluster.nodes {
            let log = node.log();
            let problems: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("[ERR]") || l.contains("[WRN]"))
                .collect();
            eprintln!(
                "--- {} errors and warnings ---\n{}",
                node.name,
                problems[problems.len().saturating_sub(30)..].join("\n")
            );
        }
    }
    result
}

/// The run on a formed cluster.
async fn agents_through(cluster: &mut NatsCluster, t0: Instant) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let store = server::store::open(&tmp.path().join("server"), OpenMode::Create)?;
    server::import::import(
        &CatalogueService::new(store.clone()),
        &tests::beijing(),
        &ImportOptions::admin(),
    )?;
    let start: DateTime<Utc> =
        DateTime::parse_from_rfc3339("2023-12-20T12:00:00+08:00")?.with_timezone(&Utc);
    let anchor_ms = Utc::now().timestamp_millis();
    let clock = ServerClock::Scaled {
        start,
        anchor: DateTime::from_timestamp_millis(anchor_ms).context("anchor")?,
        speed: SPEED,
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let handle = app::start_with(
        store.clone(),
        MqttTarget {
            host: "127.0.0.1".into(),
            port: cluster.nodes[0].mqtt_port,
            shared_subscription: false,
            tls: None,
        },
        listener,
        playlists::wire::Topics::default(),
        app::Options {
            clock,
            approval: server::approval::ApprovalMode::Off,
            ingest: PopSource::Nats(NatsIngest::parse(&cluster.nats_urls())?),
            ..app::Options::default()
        },
        shutdown.clone(),
    )
    .await?;
    let ledger = handle.shared.ledger.clone();
    let http_url = format!("http://{}", handle.http_addr);
    let mqtt_urls: Vec<String> = cluster.nodes.iter().map(|n| n.mqtt_url()).collect();
    // Every screen is provisioned; every AGENTS_EVERY-th runs (a dozen agents, four per
    // node, spare the shared machine a connect storm that is not what this test is about).
    let members: Vec<Member> = members(&store, tmp.path(), &http_url, |i| {
        mqtt_urls[(i / AGENTS_EVERY) % mqtt_urls.len()].clone()
    })?
    .into_iter()
    .step_by(AGENTS_EVERY)
    .collect();
    let count = members.len();
    let on_node3: Vec<usize> = (0..count).filter(|i| i % 3 == 2).collect();
    note(t0, format!("{count} agents over 3 nodes"));

    let fleet = Fleet::start(
        members,
        FleetOptions {
            cache_dir: tmp.path().join("fleet-cache"),
            cache_max_bytes: 8 << 30,
            scaled: Some(agent::clock::Scaled::new(start, anchor_ms, SPEED)?),
            durability: agent::Durability::Relaxed,
        },
    )
    .await?;

    // Schedules retained through the cluster, and plays reaching the ledger from agents
    // on every node.
    let mut lagging = Vec::new();
    let held = until("every agent to hold its published schedule", || {
        dead(&fleet)?;
        let published = store.published()?;
        lagging = (0..count)
            .filter(|&i| {
                let o = &fleet.observed[i];
                o.version().is_none()
                    || o.version() != published.get(&fleet.screens[i]).map(|p| p.version)
            })
            .map(|i| {
                let s = &fleet.screens[i];
                (
                    i % 3 + 1,
                    s.clone(),
                    fleet.observed[i].version(),
                    published.get(s).map(|p| p.version),
                )
            })
            .collect();
        Ok((count - lagging.len(), count))
    })
    .await;
    if let Err(e) = held {
        for (node, screen, _, _) in &lagging {
            for (n, node_) in cluster.nodes.iter().enumerate() {
                let retained = retained_len(
                    node_.mqtt_port,
                    &playlists::wire::Topics::default().schedule(screen),
                )
                .await;
                eprintln!(
                    "{screen} (agent on node {node}): node {} retains {retained:?}",
                    n + 1
                );
            }
        }
        anyhow::bail!("{e}: (node, screen, held, published) {lagging:?}");
    }
    note(t0, "every agent holds its schedule");
    until("every screen to have plays in the ledger", || {
        dead(&fleet)?;
        let seqs = ledger_seqs(&*ledger);
        Ok((
            fleet
                .screens
                .iter()
                .filter(|s| seqs.contains_key(*s))
                .count(),
            count,
        ))
    })
    .await?;
    note(t0, "every screen has plays in the ledger");

    // Node 3 dies; its agents play on into their outboxes.
    cluster.kill(2);
    let at_kill: Vec<u64> = fleet.observed.iter().map(|o| o.seqs().1).collect();
    note(t0, "node 3 killed");
    // Agents on nodes 1 and 2 keep being acknowledged meanwhile.
    until("plays from the surviving nodes after the kill", || {
        dead(&fleet)?;
        let seqs = ledger_seqs(&*ledger);
        let moved = (0..count)
            .filter(|i| !on_node3.contains(i))
            .filter(|&i| seqs.get(&fleet.screens[i]).copied().unwrap_or(0) > at_kill[i])
            .count();
        Ok((moved, count - on_node3.len()))
    })
    .await?;
    // Node 3's agents have played on meanwhile.
    until("node 3's agents to play on while it is down", || {
        dead(&fleet)?;
        let grown = on_node3
            .iter()
            .filter(|&&i| fleet.observed[i].seqs().1 > at_kill[i] + 1)
            .count();
        Ok((grown, on_node3.len()))
    })
    .await?;
    cluster.restart(2).await;
    note(t0, "node 3 restarted and the cluster formed again");

    // Every play finished by now reaches the ledger: every outbox is acknowledged up to
    // this mark.
    let mark: Vec<u64> = fleet.observed.iter().map(|o| o.seqs().1).collect();
    until("the ledger to hold every play finished at the mark", || {
        dead(&fleet)?;
        let seqs = ledger_seqs(&*ledger);
        let caught_up = (0..count)
            .filter(|&i| seqs.get(&fleet.screens[i]).copied().unwrap_or(0) >= mark[i])
            .count();
        Ok((caught_up, count))
    })
    .await?;
    note(t0, "the ledger holds every play finished at the mark");

    let observed = fleet.observed.clone();
    let screens = fleet.screens.clone();
    let errors = fleet.stop().await;
    anyhow::ensure!(errors.is_empty(), "agents failed: {errors:?}");
    // Each record once, seqs 1..=k per screen, the rest still in the outboxes.
    let check = tests::fleet_sim::ledger_against_outboxes(&*ledger, &screens, &observed)?;
    anyhow::ensure!(
        check.problems.is_empty(),
        "ledger against outboxes: {:#?}",
        check.problems
    );
    anyhow::ensure!(check.records + check.unsent == check.written);
    // Every play is the planner's for its slot.
    for screen in &screens {
        let records = tests::ledger_check::screen_plays(&*ledger, screen);
        tests::ledger_check::check_plan(&*store, screen, &records);
    }
    // The audit re-verifies signatures, chains and records.
    let keys = server::store::key_rings(&*store)?;
    let key_of = |s: &str| keys.get(s).cloned().unwrap_or_default();
    let audit = ledger.audit(&key_of)?;
    anyhow::ensure!(
        audit.problems.is_empty(),
        "audit problems: {:?}",
        audit.problems
    );
    anyhow::ensure!(audit.records == check.records);
    note(
        t0,
        format!(
            "{} records in the ledger, {} still in outboxes, audit clean",
            check.records, check.unsent
        ),
    );
    shutdown.cancel();
    handle.wait().await;
    Ok(())
}

/// Around the kill and restart, nats-server's MQTT listeners close connections on the
/// surviving nodes too and refuse subscriptions while their JetStream session store
/// re-forms (SUBACK 0x80): agents subscribe again at their next beat, or they would not
/// hear their acks and stop sending (this test failed about one run in seven before that).
#[test]
fn proof_of_play_through_a_nats_cluster_survives_a_node() {
    server::logging::init(
        server::logging::LogFormat::Text,
        "warn,server::pop_source=info,server::app=info",
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run()).expect("the cluster run");
}

/// The size of what the MQTT listener on `port` retains on `topic` (None: nothing within
/// 3 s).
async fn retained_len(port: u16, topic: &str) -> Option<usize> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let opts = MqttOptions::new(format!("diag-{port}"), "127.0.0.1", port);
    let (client, mut events) = AsyncClient::new(opts, 10);
    client.subscribe(topic, QoS::AtLeastOnce).await.ok()?;
    let found = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => return Some(p.payload.len()),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    })
    .await
    .ok()
    .flatten();
    let _ = client.try_disconnect();
    found
}

/// Publishes `count` QoS 1 messages through the MQTT listener on `port`, one per screen
/// `{prefix}-{k}`, and waits for every PUBACK.
async fn publish_pops(port: u16, prefix: &str, count: usize) -> anyhow::Result<()> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let topics = playlists::wire::Topics::default();
    let mut opts = MqttOptions::new(format!("{prefix}-publisher"), "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(10));
    let (client, mut events) = AsyncClient::new(opts, count + 10);
    for k in 0..count {
        let screen = format!("{prefix}-{k}");
        client
            .publish(
                topics.pop(&screen),
                QoS::AtLeastOnce,
                false,
                screen.into_bytes(),
            )
            .await?;
    }
    let mut acked = 0;
    tokio::time::timeout(LIMIT, async {
        while acked < count {
            if let Event::Incoming(Packet::PubAck(_)) = events.poll().await? {
                acked += 1;
            }
        }
        anyhow::Ok(())
    })
    .await
    .context("PUBACKs")??;
    client.disconnect().await?;
    Ok(())
}

/// (replica, screen, payload) as a replica's NATS source handed it on.
type Delivery = (usize, String, Vec<u8>);

/// Two ingest replicas (the server's NATS source, `pop_source::run_nats`) in the queue
/// group on a three-node cluster: batches published through all three nodes' MQTT
/// listeners each reach exactly one replica, and both replicas take some.
#[test]
fn the_queue_group_hands_each_batch_to_one_replica() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let cluster = NatsCluster::start(3).await;
        let topics = playlists::wire::Topics::default();
        let subject = server::pop_source::subject_filter(&topics.pop_all(false))?;
        let got: std::sync::Arc<std::sync::Mutex<Vec<Delivery>>> = std::sync::Arc::default();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let mut tasks = Vec::new();
        for replica in 0..2 {
            let got = got.clone();
            tasks.push(tokio::spawn(server::pop_source::run_nats(
                NatsIngest::parse(&cluster.nats_urls())?,
                topics.clone(),
                move |screen, raw| got.lock().expect("lock").push((replica, screen, raw)),
                shutdown.clone(),
            )));
        }
        let deadline = Instant::now() + LIMIT;
        while cluster.subscriptions(&subject).await < 2 {
            anyhow::ensure!(Instant::now() < deadline, "the replicas never subscribed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        const EACH: usize = 30;
        for (i, node) in cluster.nodes.iter().enumerate() {
            publish_pops(node.mqtt_port, &format!("n{}", i + 1), EACH).await?;
        }
        let total = EACH * cluster.nodes.len();
        until("every batch to reach a replica", || {
            Ok((got.lock().expect("lock").len().min(total), total))
        })
        .await?;
        shutdown.cancel();
        for t in tasks {
            t.await?;
        }
        let got = got.lock().expect("lock").clone();
        let mut per_replica = [0usize; 2];
        let mut screens = std::collections::BTreeSet::new();
        for (replica, screen, raw) in &got {
            per_replica[*replica] += 1;
            anyhow::ensure!(raw == screen.as_bytes(), "{screen}: payload {raw:?}");
            anyhow::ensure!(screens.insert(screen.clone()), "{screen} delivered twice");
        }
        anyhow::ensure!(got.len() == total, "{} deliveries of {total}", got.len());
        anyhow::ensure!(
            per_replica.iter().all(|&n| n > 0),
            "one replica took everything: {per_replica:?}"
        );
        eprintln!("replicas took {per_replica:?} of {total} batches");
        anyhow::Ok(())
    })
    .expect("the queue group run");
}
