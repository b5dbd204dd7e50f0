//! `signage emergency start|end|list`: operators trigger and end takeovers through a
//! running server's HTTP API (the server stores, publishes and signs; this only asks). A
//! refusal exits non-zero with the server's own message. `list` also reads a store.

use std::process::ExitCode;

use chrono::{DateTime, Utc};

use super::client::ApiClient;
use crate::emergency::{Listed, Outcome, StartRequest};

/// Targeting as the scenario's keys, from repeated flags.
#[derive(Debug, Default, Clone)]
pub struct TargetFlags {
    pub venue_types: Vec<String>,
    pub districts: Vec<String>,
    pub screens: Vec<String>,
}

impl TargetFlags {
    fn to_json(&self) -> serde_json::Value {
        let mut t = serde_json::Map::new();
        for (key, values) in [
            ("venue_types", &self.venue_types),
            ("districts", &self.districts),
            ("screens", &self.screens),
        ] {
            if !values.is_empty() {
                t.insert(key.into(), serde_json::json!(values));
            }
        }
        serde_json::Value::Object(t)
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "one argument per command-line flag"
)]
pub async fn start(
    api: &ApiClient,
    id: String,
    name: String,
    creatives: Vec<String>,
    target: TargetFlags,
    until: Option<DateTime<Utc>>,
) -> anyhow::Result<ExitCode> {
    let req = StartRequest {
        id,
        name,
        creatives,
        target: target.to_json(),
        until,
    };
    let outcome: Outcome = api
        .post(&["emergencies"], Some(&serde_json::to_value(&req)?))
        .await?;
    println!(
        "emergency {} started at {} (end: {}): command sent to {} screen(s), {}",
        outcome.emergency.id,
        shown(outcome.emergency.start),
        end_shown(&outcome.emergency),
        outcome.screens.len(),
        republished(outcome.schedules_changed)
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn end(api: &ApiClient, id: &str) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(!id.trim().is_empty(), "the emergency id is empty");
    let outcome: Outcome = api.post(&["emergencies", id, "end"], None).await?;
    println!(
        "emergency {} ended at {}: command sent to {} screen(s), {}",
        outcome.emergency.id,
        shown(outcome.emergency.end),
        outcome.screens.len(),
        republished(outcome.schedules_changed)
    );
    Ok(ExitCode::SUCCESS)
}

fn shown(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// The end, or "open" for one that runs until it is ended.
fn end_shown(e: &crate::store::StoredEmergency) -> String {
    if e.end - e.start >= crate::emergency::OPEN_END {
        "open".into()
    } else {
        shown(e.end)
    }
}

/// The table `signage emergency list` prints.
pub fn print_list(rows: Vec<Listed>) -> ExitCode {
    println!("id\tactive\tstart\tend\tcreatives\tname");
    for r in rows {
        let e = &r.emergency;
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            e.id,
            r.active,
            shown(e.start),
            end_shown(e),
            e.creatives.join(","),
            e.name
        );
    }
    ExitCode::SUCCESS
}

/// What the server said of the schedules it republished.
fn republished(changed: Option<usize>) -> String {
    match changed {
        Some(n) => format!("{n} schedule(s) republished"),
        None => "schedules queued for the publishing replica".to_owned(),
    }
}
