//! The server's and the broker's part of an emergency, without the agents' part: the city
//! of [`super::run`] (generated, imported, provisioned, Mosquitto in the fd-light mode),
//! but each screen's connection is a thin subscriber instead of an agent. It logs in as its
//! screen (the broker's password and ACL), subscribes to its command topic alone, and checks
//! each command as the agent does (`agent::accept::accept_command`: the server's signature,
//! the screen, the expiry). An all-city emergency is started through the API, and the time
//! from the request until each targeted screen's subscriber held its verified command is
//! measured. On a city's own devices an agent's work after that is its own; in the fleet
//! simulator, 11,000 agents share this machine's two cores with the server.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio_util::sync::CancellationToken;

use playlists::wire::{CommandAction, Topics};

use super::{city, note, until, Figures, SimOptions, Spread, EMERGENCY};

/// What a delivery run measured.
#[derive(Debug, Default)]
pub struct Delivery {
    pub screens: usize,
    /// From starting every subscriber until each had its SUBACK.
    pub connect: Duration,
    /// From the run's start (the city generated, imported and provisioned, the server
    /// started) until the server had published every screen's schedule.
    pub published: Duration,
    /// The emergency request until the API answered.
    pub answer: Duration,
    pub targets: usize,
    /// The request until each targeted screen's subscriber held its verified command.
    pub delivered: Spread,
    /// Commands that reached a subscriber and failed the agent's check.
    pub refused: usize,
}

impl std::fmt::Display for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "command delivery, {} screens (thin subscribers, Mosquitto):",
            self.screens
        )?;
        writeln!(
            f,
            "  every subscriber connected and subscribed: {:.2} s",
            self.connect.as_secs_f64()
        )?;
        writeln!(
            f,
            "  every schedule published, from the run's start: {:.2} s",
            self.published.as_secs_f64()
        )?;
        writeln!(
            f,
            "  all-city emergency: API answered in {:.2} s, {} screens targeted",
            self.answer.as_secs_f64(),
            self.targets
        )?;
        writeln!(f, "  command held and verified: {}", self.delivered)?;
        write!(
            f,
            "  commands refused by the agent's check: {}",
            self.refused
        )
    }
}

/// Runs the city with a thin subscriber per screen (the fd-light mode: Mosquitto).
pub async fn deliver(opts: &SimOptions) -> anyhow::Result<Delivery> {
    anyhow::ensure!(
        opts.fd_light,
        "command delivery runs with Mosquitto (FLEET_FD_LIGHT=1)"
    );
    let t0 = Instant::now();
    let mut figures = Figures::default();
    let c = city(opts, t0, &mut figures).await?;
    let scaled = agent::clock::Scaled::new(opts.start, c.anchor_ms, opts.speed)?;
    let topics = Topics::new("signage/v1");
    let stop = CancellationToken::new();
    let subscribed = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let held: Arc<Vec<Mutex<Option<Instant>>>> =
        Arc::new(c.members.iter().map(|_| Mutex::new(None)).collect());
    let index: std::collections::HashMap<String, usize> = c
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| (m.config.screen_id.to_string(), i))
        .collect();

    let t_connect = Instant::now();
    let mut tasks = Vec::with_capacity(c.members.len());
    for (i, m) in c.members.iter().enumerate() {
        let config = m.config.clone();
        let id = config.screen_id.to_string();
        let mut o = MqttOptions::new(&id, &config.mqtt_host, config.mqtt_port);
        let password = config.mqtt_password.as_ref().map(|p| p.expose().clone());
        o.set_credentials(&id, password.unwrap_or_default());
        o.set_keep_alive(Duration::from_secs(60));
        o.set_clean_session(true);
        let (client, mut events) = AsyncClient::new(o, 10);
        let (topic, stop, subscribed, refused, held) = (
            topics.command(&id),
            stop.clone(),
            subscribed.clone(),
            refused.clone(),
            held.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut counted = false;
            loop {
                let event = tokio::select! {
                    _ = stop.cancelled() => return,
                    e = events.poll() => e,
                };
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = client.subscribe(topic.as_str(), QoS::AtLeastOnce).await;
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) if !counted => {
                        counted = true;
                        subscribed.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let now = scaled.virtual_at(Utc::now());
                        let at = Instant::now();
                        match agent::accept::accept_command(
                            &config.screen_id,
                            &config.server_public_key,
                            &p.payload,
                            now,
                        ) {
                            Ok(cmd) => {
                                if let CommandAction::EmergencyStart { campaign, .. } = cmd.action {
                                    if campaign.id.as_str() == EMERGENCY {
                                        let mut slot =
                                            held[i].lock().unwrap_or_else(|p| p.into_inner());
                                        slot.get_or_insert(at);
                                    }
                                }
                            }
                            Err(_) => {
                                refused.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
        }));
    }
    let n = c.members.len();
    until("every subscriber to subscribe", opts.phase_limit, || {
        Ok((subscribed.load(Ordering::SeqCst), n))
    })
    .await?;
    let connect = t_connect.elapsed();
    note(t0, format!("{n} subscribers connected in {connect:.2?}"));
    until("every schedule to be published", opts.phase_limit, || {
        Ok((super::published(&c.store)?.len(), n))
    })
    .await?;
    let published = t0.elapsed();

    let admin = std::fs::read_to_string(c.store.dir().join(server::admin::FILE))?
        .trim()
        .to_owned();
    let base = format!("http://{}/api/v1", c.handle.http_addr);
    let t_emergency = Instant::now();
    let (_, targeted) = super::start_emergency(&reqwest::Client::new(), &base, &admin).await?;
    let answer = t_emergency.elapsed();
    let slots: Vec<usize> = targeted
        .iter()
        .map(|s| {
            index
                .get(s)
                .copied()
                .context("a targeted screen not provisioned")
        })
        .collect::<anyhow::Result<_>>()?;
    let at = |i: usize| *held[i].lock().unwrap_or_else(|p| p.into_inner());
    until(
        "every targeted screen to hold its command",
        opts.phase_limit,
        || {
            Ok((
                slots.iter().filter(|&&i| at(i).is_some()).count(),
                slots.len(),
            ))
        },
    )
    .await?;
    let delivered = Spread::of(
        slots
            .iter()
            .filter_map(|&i| at(i))
            .map(|t| t.saturating_duration_since(t_emergency)),
    );

    stop.cancel();
    for t in tasks {
        let _ = t.await;
    }
    c.shutdown.cancel();
    c.handle.wait().await;
    drop(c.mosquitto);
    drop(c.tmp);
    Ok(Delivery {
        screens: n,
        connect,
        published,
        answer,
        targets: targeted.len(),
        delivered,
        refused: refused.load(Ordering::SeqCst),
    })
}
