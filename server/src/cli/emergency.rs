//! `signage emergency start|end|list`: staff trigger and end takeovers through a running
//! server's HTTP API (the server stores, publishes and signs; this only asks). A refusal
//! exits non-zero with the server's own message.

use std::path::Path;
use std::process::ExitCode;

use chrono::{DateTime, Utc};

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

fn token(file: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("token file {}: {e}", file.display()))?;
    Ok(text.trim().to_owned())
}

/// The server's answer as JSON, or its `error` message as the error.
async fn answer(resp: reqwest::Response) -> anyhow::Result<serde_json::Value> {
    let status = resp.status();
    let text = resp.text().await?;
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    if !status.is_success() {
        let message = json["error"].as_str().unwrap_or(text.as_str()).to_owned();
        anyhow::bail!("server refused ({status}): {message}");
    }
    Ok(json)
}

/// `{server}/api/emergencies/{segments…}`, each segment percent-encoded (an id with `/` or
/// `?` stays one id). `server` must be an `http://` or `https://` URL.
fn endpoint(server: &str, segments: &[&str]) -> anyhow::Result<reqwest::Url> {
    let mut url = reqwest::Url::parse(server)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
        .ok_or_else(|| anyhow::anyhow!("--server {server:?} is not an http:// or https:// URL"))?;
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("--server {server:?} cannot take a path"))?
        .pop_if_empty()
        .extend(["api", "emergencies"])
        .extend(segments);
    Ok(url)
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()?)
}

#[allow(
    clippy::too_many_arguments,
    reason = "one argument per command-line flag"
)]
pub async fn start(
    server: &str,
    token_file: &Path,
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
    let resp = client()?
        .post(endpoint(server, &[])?)
        .bearer_auth(token(token_file)?)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&req)?)
        .send()
        .await?;
    let outcome: Outcome = serde_json::from_value(answer(resp).await?)?;
    println!(
        "emergency {} started at {} (end: {}): command sent to {} screen(s), {} schedule(s) republished",
        outcome.emergency.id,
        shown(outcome.emergency.start),
        end_shown(&outcome.emergency),
        outcome.screens.len(),
        outcome.schedules_changed
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn end(server: &str, token_file: &Path, id: &str) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(!id.trim().is_empty(), "the emergency id is empty");
    let resp = client()?
        .post(endpoint(server, &[id, "end"])?)
        .bearer_auth(token(token_file)?)
        .send()
        .await?;
    let outcome: Outcome = serde_json::from_value(answer(resp).await?)?;
    println!(
        "emergency {} ended at {}: command sent to {} screen(s), {} schedule(s) republished",
        outcome.emergency.id,
        shown(outcome.emergency.end),
        outcome.screens.len(),
        outcome.schedules_changed
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

pub async fn list(server: &str) -> anyhow::Result<ExitCode> {
    let resp = client()?.get(endpoint(server, &[])?).send().await?;
    let rows: Vec<Listed> = serde_json::from_value(answer(resp).await?)?;
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
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::endpoint;

    #[test]
    fn endpoints_are_checked_and_encoded() {
        let at = |server: &str, segments: &[&str]| {
            endpoint(server, segments)
                .map(|u| u.to_string())
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            at("http://127.0.0.1:8080", &[]).unwrap(),
            "http://127.0.0.1:8080/api/emergencies"
        );
        assert_eq!(
            at("http://h:1/base/", &["a/b?c", "end"]).unwrap(),
            "http://h:1/base/api/emergencies/a%2Fb%3Fc/end"
        );
        for bad in ["not-a-url", "ftp://h/", "127.0.0.1:8080"] {
            let err = at(bad, &[]).unwrap_err();
            assert!(
                err.contains("not an http:// or https:// URL"),
                "{bad}: {err}"
            );
        }
    }
}
