//! Presence and health (agent to server, retained) and signed commands (server to agent).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::schedule::{WireCampaign, WireCreative};

pub const COMMAND_KIND: &str = "command";

/// The retained status of a screen. The Last Will is the same shape with `online: false`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Status {
    pub v: u32,
    pub screen_id: String,
    pub online: bool,
    #[serde(default)]
    pub schedule_version: Option<u64>,
    #[serde(default)]
    pub agent_version: String,
    #[serde(default)]
    pub player: String,
    #[serde(default)]
    pub cache_bytes: u64,
    #[serde(default)]
    pub cache_items: u64,
    /// Whether every creative the schedule needs is cached.
    #[serde(default)]
    pub media_ready: bool,
    /// Hours it can play correctly offline from what it holds.
    #[serde(default)]
    pub runway_hours: f64,
    /// Records in the outbox not yet acknowledged.
    #[serde(default)]
    pub outbox_backlog: u64,
    /// The last `seq` written.
    #[serde(default)]
    pub last_seq: u64,
    /// The outbox epoch `last_seq` counts in (empty: the legacy epoch).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub epoch: String,
    #[serde(default)]
    pub clock_synced: bool,
    #[serde(default)]
    pub now_playing: Option<String>,
    #[serde(default)]
    pub notes: Vec<String>,
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
    /// Creatives whose download keeps failing (each retried later, with backoff).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub download_failures: Vec<DownloadFailure>,
}

/// A creative the agent could not download, as its status reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadFailure {
    pub creative: String,
    pub sha256: String,
    /// Failed downloads in a row (each of several resumed attempts).
    pub attempts: u32,
    /// The last error.
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum CommandAction {
    /// Republish status and re-fetch the schedule and media.
    Resync,
    /// Drop every cached creative the schedule does not need.
    Purge,
    /// Play this campaign (priority `emergency`; agents refuse any other) from the next slot
    /// that starts at or after its flight start, before the schedule that carries it
    /// arrives. `creatives` are the ones it names that fit the screen, with their media URLs.
    EmergencyStart {
        /// Boxed: the other actions are small.
        campaign: Box<WireCampaign>,
        creatives: Vec<WireCreative>,
    },
    /// End that emergency: slots starting at or after `ends_at` play the normal rotation.
    EmergencyEnd {
        campaign_id: String,
        ends_at: DateTime<Utc>,
    },
}

/// A command for one screen, signed by the server; `id` is a nonce never accepted twice.
/// (No `deny_unknown_fields`: serde cannot combine it with the flattened action.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    pub v: u32,
    pub screen_id: String,
    pub id: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    #[serde(flatten)]
    pub action: CommandAction,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::schedule::WireTarget;
    use crate::wire::{Keypair, MAX_SMALL_BYTES};

    fn creative(i: usize) -> WireCreative {
        let sha = format!("{i:064x}");
        WireCreative {
            id: format!("rm2023-emergency-notice-{i:02}-landscape"),
            kind: "video".into(),
            url: format!("/media/{sha}"),
            sha256: sha,
            bytes: 12_345_678,
            width: 1920,
            height: 1080,
            duration_seconds: 15,
            title: "突发公共卫生事件提示 Public-health emergency notice, please wear a mask".into(),
        }
    }

    fn emergency(creatives: usize) -> Command {
        let creatives: Vec<WireCreative> = (0..creatives).map(creative).collect();
        Command {
            v: 1,
            screen_id: "bj-metro-xidan-s1".into(),
            id: "emergency-start-0123456789abcdef0123456789abcdef".into(),
            issued_at: "2023-12-20T01:00:00Z".parse().unwrap(),
            expires_at: "2023-12-20T01:05:00Z".parse().unwrap(),
            action: CommandAction::EmergencyStart {
                campaign: Box::new(WireCampaign {
                    id: "epidemic-alert-2023-12-20-daxing-yanqing".into(),
                    name: "突发疫情防控提示 Epidemic alert".into(),
                    priority: "emergency".into(),
                    weight: 1,
                    flight_start: "2023-12-20T01:00:00Z".parse().unwrap(),
                    flight_end: "2123-11-26T01:00:00Z".parse().unwrap(),
                    dayparts: vec!["* * * * *".into()],
                    target: WireTarget {
                        districts: Some(vec!["daxing".into(), "yanqing".into()]),
                        venue_types: Some(vec![10502, 10201]),
                        ..WireTarget::default()
                    },
                    creatives: creatives.iter().map(|c| c.id.clone()).collect(),
                    max_plays_per_hour: None,
                }),
                creatives,
            },
        }
    }

    #[test]
    fn emergency_commands_round_trip_with_their_action_tag() {
        let start = emergency(2);
        let json = serde_json::to_value(&start).unwrap();
        assert_eq!(json["action"], "emergency_start");
        assert_eq!(json["campaign"]["priority"], "emergency");
        assert_eq!(serde_json::from_value::<Command>(json).unwrap(), start);
        let end = Command {
            action: CommandAction::EmergencyEnd {
                campaign_id: "alert".into(),
                ends_at: "2023-12-20T03:00:00Z".parse().unwrap(),
            },
            ..start
        };
        let json = serde_json::to_value(&end).unwrap();
        assert_eq!(
            (json["action"].as_str(), json["campaign_id"].as_str()),
            (Some("emergency_end"), Some("alert"))
        );
        assert_eq!(serde_json::from_value::<Command>(json).unwrap(), end);
    }

    /// A signed emergency command with a generous handful of creatives (long ids and
    /// titles) stays within the small-message limit, so the limit need not grow.
    #[test]
    fn an_emergency_with_a_dozen_creatives_fits_the_small_limit() {
        let sealed = Keypair::from_secret([7; 32]).seal(COMMAND_KIND, &emergency(12));
        assert!(
            sealed.len() < MAX_SMALL_BYTES,
            "{} bytes > {MAX_SMALL_BYTES}",
            sealed.len()
        );
    }
}
