//! Which incoming messages the agent accepts: schedules, commands and proof-of-play acks,
//! each signed by the pinned server key. Pure functions of (what is held, who we are, the
//! key, the bytes, and `now` where expiry matters): a message that fails any check changes
//! nothing. Applying what passes is the main loop's job; command nonces are remembered in
//! the outbox.

use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;
use playlists::wire::pop::ACK_KIND;
use playlists::wire::signed::open;
use playlists::wire::status::COMMAND_KIND;
use playlists::wire::{
    schedule, Command, CommandAction, PopAck, ScheduleDoc, WireError, MAX_SCHEDULE_BYTES,
    MAX_SMALL_BYTES, VERSION,
};
use playlists::ScreenId;

/// Why a message was ignored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    #[error("refused envelope: {0}")]
    Wire(#[from] WireError),
    #[error("message is for screen {found:?}, not this one")]
    OtherScreen { found: String },
    #[error("schedule version {got} is not newer than the held version {held}")]
    NotNewer { held: u64, got: u64 },
    #[error("unsupported document version {0}")]
    DocVersion(u32),
    #[error("command {id:?} expired at {expires_at}")]
    Expired {
        id: String,
        expires_at: DateTime<Utc>,
    },
    #[error("command {id:?} starts campaign {campaign:?} of priority {priority:?}; an emergency must be \"emergency\"")]
    NotEmergency {
        id: String,
        campaign: String,
        priority: String,
    },
    #[error("schedule version {version} expired at {expires_at} (now {now}): a stale copy")]
    ScheduleExpired {
        version: u64,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    },
}

/// Largest ack accepted: acks are small, but allow many batches in one.
pub const MAX_ACK_BYTES: usize = 64 * 1024;

fn check_screen(own: &ScreenId, found: &str) -> Result<(), Reject> {
    if found == own.as_str() {
        Ok(())
    } else {
        Err(Reject::OtherScreen {
            found: found.to_owned(),
        })
    }
}

fn check_version(v: u32) -> Result<(), Reject> {
    if v == VERSION {
        Ok(())
    } else {
        Err(Reject::DocVersion(v))
    }
}

/// Checks a newly received schedule: size, signature (the pinned server key), shape, screen,
/// version and expiry; `held` is the version already applied, if any. Only a document that
/// passes may change anything. An expired document is refused as new (the broker may hand
/// out an old retained copy), but expiry never stops a schedule already held: kiosks play
/// offline for days, so what the agent holds keeps playing (see [`open_held_schedule`]).
pub fn accept_schedule(
    held: Option<u64>,
    own: &ScreenId,
    key: &VerifyingKey,
    raw: &[u8],
    now: DateTime<Utc>,
) -> Result<ScheduleDoc, Reject> {
    let doc = open_held_schedule(held, own, key, raw)?;
    if doc.expires_at <= now {
        return Err(Reject::ScheduleExpired {
            version: doc.version,
            expires_at: doc.expires_at,
            now,
        });
    }
    Ok(doc)
}

/// Every check of [`accept_schedule`] except expiry: for the schedule this agent accepted
/// earlier and persisted, which keeps playing after its expiry until a newer one arrives.
pub fn open_held_schedule(
    held: Option<u64>,
    own: &ScreenId,
    key: &VerifyingKey,
    raw: &[u8],
) -> Result<ScheduleDoc, Reject> {
    let doc: ScheduleDoc = open(raw, schedule::KIND, key, MAX_SCHEDULE_BYTES)?;
    check_version(doc.v)?;
    check_screen(own, &doc.screen_id)?;
    check_screen(own, &doc.body.screen.id)?;
    if let Some(held) = held.filter(|h| doc.version <= *h) {
        return Err(Reject::NotNewer {
            held,
            got: doc.version,
        });
    }
    doc.body.to_schedule()?;
    Ok(doc)
}

/// Checks a command's signature, screen and expiry, and that an emergency start carries an
/// `emergency`-tier campaign. Whether its nonce is fresh is the caller's second check (it
/// needs the outbox).
pub fn accept_command(
    own: &ScreenId,
    key: &VerifyingKey,
    raw: &[u8],
    now: DateTime<Utc>,
) -> Result<Command, Reject> {
    let cmd: Command = open::<Command>(raw, COMMAND_KIND, key, MAX_SMALL_BYTES)?;
    check_version(cmd.v)?;
    check_screen(own, &cmd.screen_id)?;
    if cmd.expires_at <= now {
        return Err(Reject::Expired {
            id: cmd.id,
            expires_at: cmd.expires_at,
        });
    }
    if let CommandAction::EmergencyStart { campaign, .. } = &cmd.action {
        if campaign.priority != "emergency" {
            return Err(Reject::NotEmergency {
                id: cmd.id.clone(),
                campaign: campaign.id.clone(),
                priority: campaign.priority.clone(),
            });
        }
    }
    Ok(cmd)
}

/// Checks an acknowledgement's signature and screen. Whether it names the batch in flight
/// is the outbox's check.
pub fn accept_ack(own: &ScreenId, key: &VerifyingKey, raw: &[u8]) -> Result<PopAck, Reject> {
    let ack: PopAck = open(raw, ACK_KIND, key, MAX_ACK_BYTES)?;
    check_version(ack.v)?;
    check_screen(own, &ack.screen_id)?;
    Ok(ack)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::fixture::*;
    use playlists::wire::pop::AckedBatch;
    use playlists::wire::{CommandAction, Keypair};

    fn check(held: Option<u64>, raw: &[u8], expect: Result<u64, &str>) {
        let now = "2023-12-18T00:00:00Z".parse().unwrap();
        let got = accept_schedule(held, &screen(), &server_key().public(), raw, now)
            .map(|d| d.version)
            .map_err(|e| e.to_string());
        match (got, expect) {
            (Ok(v), Ok(w)) => assert_eq!(v, w),
            (Err(e), Err(w)) => assert!(e.contains(w), "error {e:?} should mention {w:?}"),
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn acceptance_rules() {
        let good = signed(5, &[b"a"]);
        check(None, &good, Ok(5));
        check(Some(4), &good, Ok(5));
        check(Some(5), &good, Err("not newer"));
        check(Some(9), &good, Err("not newer than the held version 9"));

        // Unsigned: the bare document.
        let bare = serde_json::to_vec(&doc(6, body(&[b"a"], 15))).unwrap();
        check(None, &bare, Err("malformed"));
        // Signed by someone else.
        let forged = Keypair::from_secret([1; 32]).seal(schedule::KIND, &doc(6, body(&[b"a"], 15)));
        check(None, &forged, Err("bad signature"));
        // Tampered payload.
        let tampered = String::from_utf8(good.clone())
            .unwrap()
            .replace("Campaign", "Campaigm");
        check(None, tampered.as_bytes(), Err("bad signature"));
        // Another kind of message signed by the server.
        let command = server_key().seal("command", &doc(6, body(&[b"a"], 15)));
        check(None, &command, Err("expected a schedule"));
        // Another screen.
        let mut other = doc(6, body(&[b"a"], 15));
        other.screen_id = "scr-2".into();
        check(
            None,
            &server_key().seal(schedule::KIND, &other),
            Err("\"scr-2\""),
        );
        // Signed but not a valid schedule (zero slot length).
        let broken = server_key().seal(schedule::KIND, &doc(6, body(&[b"a"], 0)));
        check(None, &broken, Err("zero slot"));
        // Oversized.
        check(None, &vec![b' '; MAX_SCHEDULE_BYTES + 1], Err("exceeds"));
        // Expired: refused as new, with the reason...
        let mut stale = doc(7, body(&[b"a"], 15));
        stale.expires_at = "2023-12-18T00:00:00Z".parse().unwrap();
        let stale = server_key().seal(schedule::KIND, &stale);
        check(
            None,
            &stale,
            Err("expired at 2023-12-18 00:00:00 UTC (now 2023-12-18 00:00:00 UTC)"),
        );
        check(Some(3), &stale, Err("stale copy"));
        // ...but the copy held from before still opens after its expiry.
        let held = open_held_schedule(None, &screen(), &server_key().public(), &stale);
        assert_eq!(held.map(|d| d.version), Ok(7));
        // One second before expiry it is still new.
        let now = "2023-12-17T23:59:59Z".parse().unwrap();
        let fresh = accept_schedule(None, &screen(), &server_key().public(), &stale, now);
        assert_eq!(fresh.map(|d| d.version), Ok(7));
    }

    fn command(screen: &str, id: &str, expires: &str) -> Command {
        Command {
            v: 1,
            screen_id: screen.into(),
            id: id.into(),
            issued_at: "2023-12-18T08:00:00Z".parse().unwrap(),
            expires_at: expires.parse().unwrap(),
            action: CommandAction::Purge,
        }
    }

    #[test]
    fn command_rules() {
        let now: DateTime<Utc> = "2023-12-18T08:00:30Z".parse().unwrap();
        let key = server_key();
        let accept = |raw: &[u8]| {
            accept_command(&screen(), &key.public(), raw, now).map_err(|e| e.to_string())
        };
        let good = key.seal(
            COMMAND_KIND,
            &command("scr-1", "n1", "2023-12-18T08:01:00Z"),
        );
        assert_eq!(accept(&good).unwrap().action, CommandAction::Purge);
        let expired = key.seal(
            COMMAND_KIND,
            &command("scr-1", "n1", "2023-12-18T08:00:30Z"),
        );
        assert!(accept(&expired).unwrap_err().contains("expired"));
        let other = key.seal(
            COMMAND_KIND,
            &command("scr-2", "n1", "2023-12-18T08:01:00Z"),
        );
        assert!(accept(&other).unwrap_err().contains("scr-2"));
        let forged = Keypair::from_secret([1; 32]).seal(
            COMMAND_KIND,
            &command("scr-1", "n1", "2023-12-18T08:01:00Z"),
        );
        assert!(accept(&forged).unwrap_err().contains("bad signature"));
        let unknown = key.seal(
            COMMAND_KIND,
            &serde_json::json!({"v":1,"screen_id":"scr-1","id":"n2","issued_at":"2023-12-18T08:00:00Z",
                "expires_at":"2023-12-18T09:00:00Z","action":"reboot"}),
        );
        assert!(accept(&unknown).unwrap_err().contains("malformed"));
    }

    #[test]
    fn emergency_command_rules() {
        let now: DateTime<Utc> = "2023-12-18T08:00:30Z".parse().unwrap();
        let key = server_key();
        let accept = |raw: &[u8]| {
            accept_command(&screen(), &key.public(), raw, now).map_err(|e| e.to_string())
        };
        let start = |priority: &str| {
            let (campaign, creatives) = crate::emergency::alert(priority);
            Command {
                action: CommandAction::EmergencyStart {
                    campaign: Box::new(campaign),
                    creatives,
                },
                ..command("scr-1", "e1", "2023-12-18T08:05:00Z")
            }
        };
        let good = accept(&key.seal(COMMAND_KIND, &start("emergency"))).unwrap();
        assert!(matches!(good.action, CommandAction::EmergencyStart { .. }));
        for priority in ["high", "normal", "filler", "EMERGENCY"] {
            let e = accept(&key.seal(COMMAND_KIND, &start(priority))).unwrap_err();
            assert!(
                e.contains(&format!("priority {priority:?}")),
                "{priority}: {e}"
            );
        }
        let forged = Keypair::from_secret([1; 32]).seal(COMMAND_KIND, &start("emergency"));
        assert!(accept(&forged).unwrap_err().contains("bad signature"));
        let other = Command {
            screen_id: "scr-2".into(),
            ..start("emergency")
        };
        assert!(accept(&key.seal(COMMAND_KIND, &other))
            .unwrap_err()
            .contains("\"scr-2\""));
        let expired = Command {
            expires_at: now,
            ..start("emergency")
        };
        assert!(accept(&key.seal(COMMAND_KIND, &expired))
            .unwrap_err()
            .contains("expired"));
        let end = Command {
            action: CommandAction::EmergencyEnd {
                campaign_id: "alert".into(),
                ends_at: now,
            },
            ..command("scr-1", "e2", "2023-12-18T08:05:00Z")
        };
        assert_eq!(accept(&key.seal(COMMAND_KIND, &end)).unwrap(), end);
    }

    #[test]
    fn ack_rules() {
        let key = server_key();
        let ack = |screen: &str| PopAck {
            v: 1,
            screen_id: screen.into(),
            batches: vec![AckedBatch {
                epoch: String::new(),
                batch_seq: 1,
                hash: "h".into(),
            }],
        };
        let accept =
            |raw: &[u8]| accept_ack(&screen(), &key.public(), raw).map_err(|e| e.to_string());
        assert_eq!(
            accept(&key.seal(ACK_KIND, &ack("scr-1")))
                .unwrap()
                .batches
                .len(),
            1
        );
        assert!(accept(&key.seal(ACK_KIND, &ack("scr-2"))).is_err());
        // Signed by the screen's own key (or anyone but the server): refused.
        assert!(
            accept(&Keypair::from_secret([3; 32]).seal(ACK_KIND, &ack("scr-1")))
                .unwrap_err()
                .contains("bad signature")
        );
        assert!(accept(&key.seal("pop-batch", &ack("scr-1"))).is_err());
    }
}
