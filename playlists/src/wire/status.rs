//! Presence and health (agent to server, retained, signed by the screen's key) and signed
//! commands (server to agent).

use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use super::schedule::{WireCampaign, WireCreative};
use super::signed::{open, WireError};
use super::MAX_SMALL_BYTES;

pub const COMMAND_KIND: &str = "command";
/// The envelope kind of a status, signed by the screen's own key.
pub const STATUS_KIND: &str = "status";
/// The `seq` of the Last Will: signed at connect time, it is the last word of its session.
pub const LAST_WILL_SEQ: u64 = u64::MAX;

/// The retained status of a screen, sealed with the screen's key. The Last Will is the
/// same shape with `online: false`, signed when the connection is made. A receiver keeps
/// the status with the greatest [`Status::order`] and ignores older ones, so a replayed
/// old message (a will included) never overwrites a newer state.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Status {
    pub v: u32,
    pub screen_id: String,
    pub online: bool,
    /// When the connection this status belongs to was made (milliseconds since the Unix
    /// epoch, strictly increasing across the agent's connections).
    #[serde(default)]
    pub session: u64,
    /// The status's place within its session ([`LAST_WILL_SEQ`] for the will).
    #[serde(default)]
    pub seq: u64,
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
    /// The same verdicts as the server's `/ready`: broker, store, ingest, with a reason
    /// each. Absent from statuses of older agents and from the Last Will (signed before
    /// anything could be judged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<Readiness>,
}

/// Whether an agent can do its work: its broker connection is up, its store (the redb
/// outbox and the sled cache, in its data directory) takes writes, and its plays reach the
/// server (the outbox backlog under a threshold). `ready` is all three.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Readiness {
    pub ready: bool,
    pub broker: Verdict,
    pub store: Verdict,
    pub ingest: Verdict,
}

/// One verdict and its reason, in words for an operator.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Verdict {
    pub ok: bool,
    pub detail: String,
}

impl Readiness {
    /// The three verdicts, `ready` when all hold.
    pub fn of(broker: Verdict, store: Verdict, ingest: Verdict) -> Readiness {
        Readiness {
            ready: broker.ok && store.ok && ingest.ok,
            broker,
            store,
            ingest,
        }
    }
}

impl Status {
    /// Where this status falls in its screen's sequence: later sessions first, then seq.
    pub fn order(&self) -> (u64, u64) {
        (self.session, self.seq)
    }
}

/// Opens a sealed status with `screen`'s key: size, signature, shape, and that it names
/// `screen` (the topic's screen).
pub fn open_status(raw: &[u8], screen: &str, key: &VerifyingKey) -> Result<Status, WireError> {
    let status: Status = open(raw, STATUS_KIND, key, MAX_SMALL_BYTES)?;
    if status.v != super::VERSION {
        return Err(WireError::Version(status.v));
    }
    if status.screen_id != screen {
        return Err(WireError::Malformed(format!(
            "status of {:?} on the topic of {screen:?}",
            status.screen_id
        )));
    }
    Ok(status)
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
            fit: None,
            background: None,
            any_aspect: false,
            rendition: None,
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
    fn statuses_open_only_with_their_screens_key_and_topic() {
        let key = Keypair::from_secret([3; 32]);
        let status = Status {
            v: 1,
            screen_id: "scr-1".into(),
            online: true,
            session: 5,
            seq: 2,
            ..Status::default()
        };
        let sealed = key.seal(STATUS_KIND, &status);
        assert_eq!(
            open_status(&sealed, "scr-1", &key.public()),
            Ok(status.clone())
        );
        let other = Keypair::from_secret([4; 32]);
        assert_eq!(
            open_status(&sealed, "scr-1", &other.public()),
            Err(WireError::BadSignature)
        );
        assert!(matches!(
            open_status(&sealed, "scr-2", &key.public()),
            Err(WireError::Malformed(m)) if m.contains("scr-2")
        ));
        let unsigned = serde_json::to_vec(&status).unwrap();
        assert!(matches!(
            open_status(&unsigned, "scr-1", &key.public()),
            Err(WireError::Malformed(_))
        ));
        let as_command = key.seal(COMMAND_KIND, &status);
        assert!(matches!(
            open_status(&as_command, "scr-1", &key.public()),
            Err(WireError::Kind { .. })
        ));
        let big = Status {
            notes: vec!["x".repeat(MAX_SMALL_BYTES)],
            ..status.clone()
        };
        assert!(matches!(
            open_status(&key.seal(STATUS_KIND, &big), "scr-1", &key.public()),
            Err(WireError::TooLarge { .. })
        ));
        let will = Status {
            online: false,
            seq: LAST_WILL_SEQ,
            ..status.clone()
        };
        let next_session = Status {
            session: 6,
            seq: 1,
            ..status
        };
        assert!(will.order() < next_session.order());
    }

    /// A status from an agent older than the readiness verdicts still parses (without
    /// them), and one with them round-trips.
    #[test]
    fn readiness_is_optional_and_round_trips() {
        let old = r#"{"v":1,"screen_id":"scr-1","online":true,"outbox_backlog":3}"#;
        let status: Status = serde_json::from_str(old).unwrap();
        assert_eq!((status.readiness, status.outbox_backlog), (None, 3));
        let verdict = |ok, detail: &str| Verdict {
            ok,
            detail: detail.into(),
        };
        let with = Status {
            readiness: Some(Readiness::of(
                verdict(true, "connected"),
                verdict(true, "writable"),
                verdict(false, "5000 plays waiting"),
            )),
            ..status
        };
        let json = serde_json::to_value(&with).unwrap();
        assert_eq!(json["readiness"]["ready"], false);
        assert_eq!(json["readiness"]["ingest"]["detail"], "5000 plays waiting");
        assert_eq!(serde_json::from_value::<Status>(json).unwrap(), with);
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
