//! The simulation clock's wire messages, exchanged with the leader (`signage simulate`):
//! `{prefix}/sim/clock` (leader to agents, retained, QoS 1) and
//! `{prefix}/sim/ready/{screen_id}` (agent to leader, QoS 1). The server cannot depend on this
//! crate, so these JSON shapes are the contract:
//!
//! - clock: `{"v":1,"step":N,"now":"RFC 3339"}`
//! - ready: `{"v":1,"screen_id":"…","step":N,"next":"RFC 3339","last_seq":S}`; `last_seq`
//!   is the last finished record's seq, so the leader can wait for the ledger to catch up
//!   (a play in progress is not counted: at the end of a run it never finishes).
//!
//! How the agent's clock uses them is in `clock.rs`.

use chrono::{DateTime, Utc};
use playlists::wire::{WireError, MAX_SMALL_BYTES, VERSION};
use serde::{Deserialize, Serialize};

/// The leader's current virtual time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimClock {
    pub v: u32,
    pub step: u64,
    pub now: DateTime<Utc>,
}

/// "I have done everything due at `step`'s time and next need the clock at `next`."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimReady {
    pub v: u32,
    pub screen_id: String,
    pub step: u64,
    pub next: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<u64>,
}

pub fn clock_topic(prefix: &str) -> String {
    format!("{prefix}/sim/clock")
}

pub fn ready_topic(prefix: &str, screen: &str) -> String {
    format!("{prefix}/sim/ready/{screen}")
}

impl SimClock {
    /// Parses a clock message, checking size and version.
    pub fn parse(raw: &[u8]) -> Result<SimClock, WireError> {
        if raw.len() > MAX_SMALL_BYTES {
            return Err(WireError::TooLarge {
                bytes: raw.len(),
                max: MAX_SMALL_BYTES,
            });
        }
        let msg: SimClock =
            serde_json::from_slice(raw).map_err(|e| WireError::Malformed(e.to_string()))?;
        if msg.v != VERSION {
            return Err(WireError::Version(msg.v));
        }
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let c = SimClock::parse(br#"{"v":1,"step":3,"now":"2023-12-18T08:00:00Z"}"#).unwrap();
        assert_eq!(c.step, 3);
        assert_eq!(c.now.to_rfc3339(), "2023-12-18T08:00:00+00:00");
        assert!(matches!(
            SimClock::parse(br#"{"v":2,"step":3,"now":"2023-12-18T08:00:00Z"}"#),
            Err(WireError::Version(2))
        ));
        assert!(SimClock::parse(b"{}").is_err());
        let mut r = SimReady {
            v: 1,
            screen_id: "s1".into(),
            step: 3,
            next: c.now,
            last_seq: None,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"v":1,"screen_id":"s1","step":3,"next":"2023-12-18T08:00:00Z"}"#
        );
        r.last_seq = Some(7);
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"v":1,"screen_id":"s1","step":3,"next":"2023-12-18T08:00:00Z","last_seq":7}"#
        );
        assert_eq!(ready_topic("signage/v1", "s1"), "signage/v1/sim/ready/s1");
        assert_eq!(clock_topic("signage/v1"), "signage/v1/sim/clock");
    }
}
