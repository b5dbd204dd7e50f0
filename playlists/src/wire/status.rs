//! Presence and health (agent to server, retained) and signed commands (server to agent).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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
    #[serde(default)]
    pub clock_synced: bool,
    #[serde(default)]
    pub now_playing: Option<String>,
    #[serde(default)]
    pub notes: Vec<String>,
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum CommandAction {
    /// Republish status and re-fetch the schedule and media.
    Resync,
    /// Drop every cached creative the schedule does not need.
    Purge,
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
