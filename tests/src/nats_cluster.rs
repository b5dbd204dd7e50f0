//! A three-node (or N-node) NATS cluster on loopback for the tests: `nats-server`
//! processes (Debian's `/usr/sbin/nats-server`), each with its `server_name`, JetStream in
//! its own store directory, cluster routes to the others, an MQTT listener (which needs
//! JetStream; with three nodes its session, message and retained-message streams and its
//! consumers are set to three replicas, so they survive a node) and the HTTP monitoring port this harness reads to know the cluster is
//! formed. A node can be killed (SIGKILL, as a crash) and restarted on the same ports and
//! store.
//!
//! The cluster runs WITHOUT authentication: nats-server accepts any MQTT username and
//! password when no auth is configured, so the server's and agents' logins pass unchecked
//! here (README "Brokers for a city" says how production clusters authenticate).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs nats-server (CI's setup installs it).
pub const NATS_SERVER: &str = "/usr/sbin/nats-server";

/// One node's ports and process.
#[derive(Debug)]
pub struct Node {
    pub name: String,
    /// NATS clients.
    pub client_port: u16,
    /// MQTT clients.
    pub mqtt_port: u16,
    /// HTTP monitoring (`/healthz`, `/routez`).
    pub monitor_port: u16,
    pub cluster_port: u16,
    conf: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    /// `mqtt://127.0.0.1:PORT` of this node's MQTT listener.
    pub fn mqtt_url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.mqtt_port)
    }

    /// `nats://127.0.0.1:PORT` of this node's client listener.
    pub fn nats_url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.client_port)
    }

    /// The node's log so far (every start appends to it).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("nats log");
        let child = Command::new(NATS_SERVER)
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Panics with the log when the process has exited (a port taken, a bad config).
    fn check_alive(&mut self) {
        if let Some(child) = &mut self.child {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "nats-server {} exited with {status}:\n{}",
                    self.name,
                    tail(&self.log())
                );
            }
        }
    }
}

/// A running cluster; every node is killed on drop.
#[derive(Debug)]
pub struct NatsCluster {
    pub nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

/// `n` distinct free loopback ports (probed, then released for nats-server to bind).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect()
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

impl NatsCluster {
    /// Starts `n` nodes (at least 1) and waits until the cluster is formed: every node
    /// healthy (JetStream current), routed to every other, and its MQTT listener accepting
    /// a connection.
    pub async fn start(n: usize) -> NatsCluster {
        assert!(
            Path::new(NATS_SERVER).exists(),
            "{NATS_SERVER} is missing (scripts/setup.sh installs nats-server)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let ports = free_ports(4 * n);
        let mut nodes: Vec<Node> = (0..n)
            .map(|i| Node {
                name: format!("n{}", i + 1),
                client_port: ports[4 * i],
                mqtt_port: ports[4 * i + 1],
                monitor_port: ports[4 * i + 2],
                cluster_port: ports[4 * i + 3],
                conf: dir.path().join(format!("n{}.conf", i + 1)),
                log: dir.path().join(format!("n{}.log", i + 1)),
                child: None,
            })
            .collect();
        for i in 0..n {
            let routes: Vec<String> = nodes
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, o)| format!("\"nats-route://127.0.0.1:{}\"", o.cluster_port))
                .collect();
            let node = &nodes[i];
            let store = dir.path().join(format!("{}-js", node.name));
            let cluster = if n > 1 {
                format!(
                    "cluster {{\n  name: signage-test\n  listen: 127.0.0.1:{}\n  routes: [{}]\n}}\n",
                    node.cluster_port,
                    routes.join(", ")
                )
            } else {
                String::new()
            };
            let conf = format!(
                "server_name: {name}\nlisten: 127.0.0.1:{client}\nhttp: 127.0.0.1:{monitor}\n\
                 max_payload: 4194304\n\
                 jetstream {{\n  store_dir: \"{store}\"\n  max_memory_store: 256MB\n  max_file_store: 1GB\n}}\n\
                 {cluster}\
                 mqtt {{\n  listen: 127.0.0.1:{mqtt}\n{replicas}}}\n",
                name = node.name,
                client = node.client_port,
                monitor = node.monitor_port,
                store = store.display(),
                mqtt = node.mqtt_port,
                // Set, not left to the node: it sizes them by the peers it sees when the
                // first MQTT client connects (two, seen here), and R2 streams stall when a
                // node dies.
                replicas = if n >= 3 {
                    "  stream_replicas: 3\n  consumer_replicas: 3\n"
                } else {
                    ""
                },
            );
            std::fs::write(&node.conf, conf).expect("nats conf");
        }
        for node in &mut nodes {
            node.spawn();
        }
        let mut cluster = NatsCluster { nodes, _dir: dir };
        cluster.wait_formed(Duration::from_secs(60)).await;
        cluster
    }

    /// Every node's NATS URL, comma-separated (the server's `nats_ingest`).
    pub fn nats_urls(&self) -> String {
        self.nodes
            .iter()
            .map(Node::nats_url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// SIGKILLs node `i` (clients see their connections drop).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Starts node `i` again on its ports and store, and waits until the cluster is formed
    /// again. The ports may linger a moment after a kill: a start that exits is retried.
    pub async fn restart(&mut self, i: usize) {
        self.nodes[i].kill();
        for attempt in 0..20 {
            self.nodes[i].spawn();
            tokio::time::sleep(Duration::from_millis(300)).await;
            let exited = match &mut self.nodes[i].child {
                Some(c) => matches!(c.try_wait(), Ok(Some(_))),
                None => true,
            };
            if !exited {
                break;
            }
            self.nodes[i].child = None;
            assert!(
                attempt < 19,
                "nats-server {} did not restart:\n{}",
                self.nodes[i].name,
                tail(&self.nodes[i].log())
            );
        }
        self.wait_formed(Duration::from_secs(60)).await;
    }

    /// Waits until every running node is healthy, routed to every other running node, and
    /// accepts an MQTT connection; panics with the logs after `limit`.
    pub async fn wait_formed(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("http client");
        let running = self.nodes.iter().filter(|n| n.is_running()).count();
        let mut last = String::new();
        loop {
            let mut ok = true;
            for node in &mut self.nodes {
                if !node.is_running() {
                    continue;
                }
                node.check_alive();
                match node_state(&http, node, running).await {
                    Ok(()) => {}
                    Err(e) => {
                        last = format!("{}: {e}", node.name);
                        ok = false;
                        break;
                    }
                }
            }
            if ok {
                return;
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = self
                    .nodes
                    .iter()
                    .map(|n| format!("--- {} ---\n{}", n.name, tail(&n.log())))
                    .collect();
                panic!(
                    "the NATS cluster did not form within {limit:?} ({last})\n{}",
                    logs.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Whether `node` is healthy, has a route to each of the other running nodes, and takes
/// an MQTT connection (its MQTT session streams exist).
async fn node_state(http: &reqwest::Client, node: &Node, running: usize) -> Result<(), String> {
    let base = format!("http://127.0.0.1:{}", node.monitor_port);
    let health = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .map_err(|e| format!("healthz: {e}"))?;
    if !health.status().is_success() {
        // A restarted node reports each JetStream stream or consumer that is still catching
        // up on its raft log ("… is not current") until it has; on a loaded machine that
        // takes minutes with hundreds of MQTT consumers. It serves meanwhile: its routes
        // and an MQTT connection below say whether it is in the cluster.
        let status = health.status();
        let text = health.text().await.unwrap_or_default();
        if !text.contains("is not current") {
            return Err(format!("healthz {status}: {text}"));
        }
    }
    let routez: serde_json::Value = http
        .get(format!("{base}/routez"))
        .send()
        .await
        .map_err(|e| format!("routez: {e}"))?
        .json()
        .await
        .map_err(|e| format!("routez: {e}"))?;
    // Routes are counted per remote server (one connection each in 2.9).
    let mut remotes: Vec<&str> = routez["routes"]
        .as_array()
        .map(|r| r.iter().filter_map(|r| r["remote_id"].as_str()).collect())
        .unwrap_or_default();
    remotes.sort_unstable();
    remotes.dedup();
    if remotes.len() + 1 < running {
        return Err(format!("{} of {} routes", remotes.len(), running - 1));
    }
    mqtt_accepts(node.mqtt_port).await
}

/// Whether an MQTT client gets a successful CONNACK from `port` within 5 s.
pub async fn mqtt_accepts(port: u16) -> Result<(), String> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet};
    let id = format!("probe-{port}-{}", std::process::id());
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut events) = AsyncClient::new(opts, 10);
    let outcome = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(a))) => {
                    return if a.code == rumqttc::ConnectReturnCode::Success {
                        Ok(())
                    } else {
                        Err(format!("MQTT CONNACK {:?}", a.code))
                    };
                }
                Ok(_) => {}
                Err(e) => return Err(format!("MQTT: {e}")),
            }
        }
    })
    .await
    .unwrap_or_else(|_| Err("MQTT: no CONNACK within 5 s".into()));
    let _ = client.try_disconnect();
    // Let the disconnect go out before the event loop is dropped.
    let _ = tokio::time::timeout(Duration::from_millis(200), events.poll()).await;
    outcome
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
    }
}

impl NatsCluster {
    /// How many subscriptions on `subject` the running nodes hold for their clients (read
    /// from each node's `/connz?subs=1`): a queue group's members once they subscribed.
    pub async fn subscriptions(&self, subject: &str) -> usize {
        let http = reqwest::Client::new();
        let mut count = 0;
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            let url = format!("http://127.0.0.1:{}/connz?subs=1", node.monitor_port);
            let Ok(resp) = http.get(url).send().await else {
                continue;
            };
            let Ok(connz) = resp.json::<serde_json::Value>().await else {
                continue;
            };
            for conn in connz["connections"].as_array().into_iter().flatten() {
                count += conn["subscriptions_list"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|s| s.as_str() == Some(subject))
                    .count();
            }
        }
        count
    }
}
