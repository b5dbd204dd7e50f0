//! A signed batch payload read in place: [`PopBatch`] and [`PlayRecord`] with the strings
//! borrowed from the payload text where JSON allows (no escapes), for ingest, which only
//! needs a few fields of each record and must not allocate a dozen strings per play.
//!
//! These mirror the wire types field for field (same names, same types, unknown fields
//! denied, same serde names in error messages), so a payload parses here exactly when it
//! parses as a [`PopBatch`]; the tests hold them to that.
//!
//! [`PopBatch`]: playlists::wire::PopBatch

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use playlists::wire::PlayStatus;

/// The type names are the wire types' own: serde names them in error messages, and a
/// refused batch must be told why in the same words.
pub(crate) type BatchView<'a> = PopBatch<'a>;
pub(crate) type RecordView<'a> = PlayRecord<'a>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PopBatch<'a> {
    pub v: u32,
    #[serde(borrow)]
    pub screen_id: Cow<'a, str>,
    #[serde(borrow, default)]
    pub epoch: Cow<'a, str>,
    pub batch_seq: u64,
    #[serde(borrow)]
    pub prev_hash: Cow<'a, str>,
    #[serde(borrow)]
    pub records: Vec<PlayRecord<'a>>,
}

/// Fields ingest does not use are still parsed: a record that is not a valid
/// [`PlayRecord`](playlists::wire::PlayRecord) must be refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlayRecord<'a> {
    #[serde(borrow)]
    pub play_id: Cow<'a, str>,
    #[serde(borrow)]
    pub screen_id: Cow<'a, str>,
    #[serde(borrow, default)]
    pub epoch: Cow<'a, str>,
    pub seq: u64,
    #[serde(borrow)]
    pub venue_id: Cow<'a, str>,
    #[serde(borrow)]
    pub campaign_id: Cow<'a, str>,
    #[serde(borrow)]
    pub creative_id: Cow<'a, str>,
    #[serde(borrow)]
    pub creative_sha256: Cow<'a, str>,
    pub schedule_version: u64,
    pub slot_start: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub status: PlayStatus,
    pub clock_synced: bool,
    #[serde(borrow, default)]
    pub media_sha256: Option<Cow<'a, str>>,
}

impl PlayRecord<'_> {
    /// Whether this is `r`, field for field.
    pub fn same_as(&self, r: &playlists::wire::PlayRecord) -> bool {
        self.play_id == r.play_id
            && self.screen_id == r.screen_id
            && self.epoch == r.epoch
            && self.seq == r.seq
            && self.venue_id == r.venue_id
            && self.campaign_id == r.campaign_id
            && self.creative_id == r.creative_id
            && self.creative_sha256 == r.creative_sha256
            && self.schedule_version == r.schedule_version
            && self.slot_start == r.slot_start
            && self.started_at == r.started_at
            && self.ended_at == r.ended_at
            && self.duration_ms == r.duration_ms
            && self.status == r.status
            && self.clock_synced == r.clock_synced
            && self.media_sha256.as_deref() == r.media_sha256.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{at, Agent};
    use super::*;
    use playlists::wire;

    impl RecordView<'_> {
        fn to_record(&self) -> wire::PlayRecord {
            wire::PlayRecord {
                play_id: self.play_id.to_string(),
                screen_id: self.screen_id.to_string(),
                epoch: self.epoch.to_string(),
                seq: self.seq,
                venue_id: self.venue_id.to_string(),
                campaign_id: self.campaign_id.to_string(),
                creative_id: self.creative_id.to_string(),
                creative_sha256: self.creative_sha256.to_string(),
                schedule_version: self.schedule_version,
                slot_start: self.slot_start,
                started_at: self.started_at,
                ended_at: self.ended_at,
                duration_ms: self.duration_ms,
                status: self.status,
                clock_synced: self.clock_synced,
                media_sha256: self.media_sha256.as_deref().map(str::to_owned),
            }
        }
    }

    /// Parses `json` both ways: the same records, or the same error message.
    fn same(json: &str) {
        let parsed = serde_json::from_str::<wire::PopBatch>(json);
        let viewed = serde_json::from_str::<BatchView<'_>>(json);
        match (parsed, viewed) {
            (Ok(w), Ok(v)) => {
                assert_eq!(
                    (w.v, w.screen_id.as_str(), w.batch_seq, w.prev_hash.as_str()),
                    (v.v, &*v.screen_id, v.batch_seq, &*v.prev_hash)
                );
                let records: Vec<wire::PlayRecord> =
                    v.records.iter().map(|r| r.to_record()).collect();
                assert_eq!(w.records, records);
                assert_eq!(w.epoch, v.epoch);
                assert!(v.records.iter().zip(&w.records).all(|(v, w)| v.same_as(w)));
            }
            (Err(w), Err(v)) => assert_eq!(w.to_string(), v.to_string(), "{json}"),
            (w, v) => panic!("{json}: wire {w:?}, view {v:?}"),
        }
    }

    #[test]
    fn parses_exactly_like_the_wire_types() {
        let mut a = Agent::new(1, "s1", "v1");
        let mut recs = a.plays(2, "c1", "k1");
        recs[0].campaign_id = "c\"1\\é".into(); // escapes: an owned string
        recs[1].status = PlayStatus::Failed;
        recs.push(a.play("c2", "k2", at(11, 0)));
        let good = serde_json::to_string(&a.payload(recs)).unwrap();
        same(&good);
        let mut value: serde_json::Value = serde_json::from_str(&good).unwrap();
        same(&value.to_string());
        for bad in [
            "",
            "{",
            "[]",
            "{}",
            "3",
            r#"{"v":1}"#,
            r#"{"v":1,"screen_id":"s1","batch_seq":1,"prev_hash":"x","records":[],"x":1}"#,
            r#"{"v":1,"screen_id":"s1","batch_seq":1,"prev_hash":"x","records":[{}]}"#,
            r#"{"v":1,"screen_id":"s1","batch_seq":-1,"prev_hash":"x","records":[]}"#,
            r#"{"v":1,"v":1,"screen_id":"s1","batch_seq":1,"prev_hash":"x","records":[]}"#,
        ] {
            same(bad);
        }
        for (field, bad) in [
            ("status", serde_json::json!("done")),
            ("slot_start", serde_json::json!("10:00")),
            ("ended_at", serde_json::json!(3)),
            ("seq", serde_json::json!("1")),
            ("clock_synced", serde_json::json!(null)),
            ("creative_sha256", serde_json::json!(7)),
            ("extra", serde_json::json!(1)),
        ] {
            let mut v = value.clone();
            v["records"][0][field] = bad;
            same(&v.to_string());
        }
        value["records"][0]
            .as_object_mut()
            .unwrap()
            .remove("play_id");
        same(&value.to_string());
    }
}
