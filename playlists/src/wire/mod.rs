//! The wire format: every MQTT payload, versioned (`"v": 1`), with size limits. Only these
//! types derive `Serialize`/`Deserialize` for messages; domain types convert to and from
//! them here. Signatures are in `signed`.

pub mod pop;
pub mod schedule;
pub mod signed;
pub mod status;

pub use pop::{PlayRecord, PlayStatus, PopAck, PopBatch};
pub use schedule::{MediaRef, ScheduleDoc, WireCreative, WireRendition};
pub use signed::{Keypair, SignedEnvelope, WireError};
pub use status::{
    open_status, Command, CommandAction, DownloadFailure, Readiness, Status, Verdict,
    LAST_WILL_SEQ, STATUS_KIND,
};

/// The current wire version, the `"v"` of every payload.
pub const VERSION: u32 = 1;

/// Largest payloads accepted, checked on raw bytes before parsing.
pub const MAX_SCHEDULE_BYTES: usize = 2 * 1024 * 1024;
pub const MAX_POP_BYTES: usize = 1024 * 1024;
pub const MAX_SMALL_BYTES: usize = 16 * 1024;

/// Topic names under a prefix such as `signage/v1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
}

impl Topics {
    pub fn new(prefix: &str) -> Topics {
        Topics {
            prefix: prefix.trim_end_matches('/').to_owned(),
        }
    }
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    pub fn schedule(&self, screen: &str) -> String {
        format!("{}/screens/{screen}/schedule", self.prefix)
    }
    pub fn command(&self, screen: &str) -> String {
        format!("{}/screens/{screen}/command", self.prefix)
    }
    pub fn status(&self, screen: &str) -> String {
        format!("{}/screens/{screen}/status", self.prefix)
    }
    pub fn pop(&self, screen: &str) -> String {
        format!("{}/screens/{screen}/pop", self.prefix)
    }
    pub fn pop_ack(&self, screen: &str) -> String {
        format!("{}/screens/{screen}/pop/ack", self.prefix)
    }
    /// Every screen's pop topic, shared between ingest servers where the broker can.
    pub fn pop_all(&self, shared: bool) -> String {
        let t = format!("{}/screens/+/pop", self.prefix);
        if shared {
            format!("$share/signage-ingest/{t}")
        } else {
            t
        }
    }
    /// Every screen's schedule topic (the server watches what the broker retains there).
    pub fn schedule_all(&self) -> String {
        format!("{}/screens/+/schedule", self.prefix)
    }
    pub fn status_all(&self) -> String {
        format!("{}/screens/+/status", self.prefix)
    }
    /// The screen id in a `…/screens/{screen}/…` topic.
    pub fn screen_of<'t>(&self, topic: &'t str) -> Option<&'t str> {
        let rest = topic
            .strip_prefix(&self.prefix)?
            .strip_prefix("/screens/")?;
        rest.split('/').next().filter(|s| !s.is_empty())
    }
}

impl Default for Topics {
    fn default() -> Topics {
        Topics::new("signage/v1")
    }
}
