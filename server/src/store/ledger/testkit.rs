//! Test helpers for both ledger backends: a scripted screen agent that numbers, chains and
//! signs batches the way the real agent does, key rings and queries. A fresh ledger is each
//! backend's (`redb/ledger/testkit.rs`, `postgres/ledger/tests.rs`).

use std::collections::HashMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use ed25519_dalek::VerifyingKey;

use playlists::wire::pop::{batch_hash, genesis_hash, play_id, BATCH_KIND};
use playlists::wire::{Keypair, PlayRecord, PlayStatus, PopBatch, VERSION};

use super::{Dimension, Query};

/// The registered keys of `agents`, as `ingest` and `audit` want them: each screen's keys
/// newest first (an agent listed twice has had its key rotated: the later is newer).
pub(crate) fn key_ring(agents: &[&Agent]) -> impl Fn(&str) -> Vec<VerifyingKey> + use<> {
    let mut keys: HashMap<String, Vec<VerifyingKey>> = HashMap::new();
    for a in agents {
        let ring = keys.entry(a.screen.clone()).or_default();
        if !ring.contains(&a.key.public()) {
            ring.insert(0, a.key.public());
        }
    }
    move |screen| keys.get(screen).cloned().unwrap_or_default()
}

/// An unfiltered query over all time.
pub(crate) fn query(dimension: Dimension) -> Query {
    Query {
        from: None,
        to: None,
        dimension,
        venue: None,
        screen: None,
    }
}

pub(crate) fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, h, m, 0)
        .single()
        .expect("valid time")
}

/// One screen's agent.
pub(crate) struct Agent {
    pub screen: String,
    pub venue: String,
    pub key: Keypair,
    /// The outbox epoch (empty: legacy).
    pub epoch: String,
    batch_seq: u64,
    prev_hash: String,
    seq: u64,
}

impl Agent {
    /// Screen `screen` in `venue`, with the key made from `[n; 32]`.
    pub fn new(n: u8, screen: &str, venue: &str) -> Agent {
        Agent {
            screen: screen.to_owned(),
            venue: venue.to_owned(),
            key: Keypair::from_secret([n; 32]),
            epoch: String::new(),
            batch_seq: 0,
            prev_hash: genesis_hash(),
            seq: 0,
        }
    }

    /// The same screen after its outbox was wiped: a new epoch, counting from 1 again.
    pub fn new_epoch(&mut self, epoch: &str) {
        self.epoch = epoch.to_owned();
        self.batch_seq = 0;
        self.prev_hash = genesis_hash();
        self.seq = 0;
    }

    /// The same agent signing with the key made from `[n; 32]` (re-provisioned).
    pub fn rekey(&mut self, n: u8) {
        self.key = Keypair::from_secret([n; 32]);
    }

    /// The next play, with the next seq.
    pub fn play(
        &mut self,
        campaign: &str,
        creative: &str,
        slot_start: DateTime<Utc>,
    ) -> PlayRecord {
        self.seq += 1;
        PlayRecord {
            play_id: play_id(&self.screen, &self.epoch, self.seq),
            screen_id: self.screen.clone(),
            epoch: self.epoch.clone(),
            seq: self.seq,
            venue_id: self.venue.clone(),
            campaign_id: campaign.to_owned(),
            creative_id: creative.to_owned(),
            creative_sha256: "ab".repeat(32),
            schedule_version: 7,
            slot_start,
            started_at: slot_start,
            ended_at: slot_start + Duration::seconds(10),
            duration_ms: 10_000,
            status: PlayStatus::Complete,
            clock_synced: true,
            media_sha256: None,
        }
    }

    /// `n` complete plays, 10 s apart from 10:00.
    pub fn plays(&mut self, n: usize, campaign: &str, creative: &str) -> Vec<PlayRecord> {
        (0..n)
            .map(|_| {
                let start = at(10, 0) + Duration::seconds(10 * self.seq as i64);
                self.play(campaign, creative, start)
            })
            .collect()
    }

    /// The next batch's payload, without moving the chain on.
    pub fn payload(&self, records: Vec<PlayRecord>) -> PopBatch {
        PopBatch {
            v: VERSION,
            screen_id: self.screen.clone(),
            epoch: self.epoch.clone(),
            batch_seq: self.batch_seq + 1,
            prev_hash: self.prev_hash.clone(),
            records,
        }
    }

    pub fn seal(&self, batch: &PopBatch) -> Vec<u8> {
        self.key.seal(BATCH_KIND, batch)
    }

    /// The next batch, signed; the chain moves on.
    pub fn batch(&mut self, records: Vec<PlayRecord>) -> Vec<u8> {
        let payload = serde_json::to_string(&self.payload(records)).expect("serialises");
        let env = self.key.sign(BATCH_KIND, payload);
        self.batch_seq += 1;
        self.prev_hash = batch_hash(&env.payload).to_string();
        serde_json::to_vec(&env).expect("serialises")
    }

    /// The next batch, signed, without moving the chain on.
    pub fn batch_unchained(&self, records: Vec<PlayRecord>) -> Vec<u8> {
        self.seal(&self.payload(records))
    }
}
