//! `signage audit verify` and `POST /api/v1/audit/verify`: the ledger's own audit (every
//! signature and hash chain, every stored record against its batch), and then every play
//! against the schedule document it names: the shared planner, run on that document,
//! must pick the same campaign and creative for the record's slot. Emergency takeovers
//! reach agents as commands merged into the document they hold, so a play of an emergency
//! campaign is checked against the emergency itself (its creatives, its flight).
//!
//! Each batch is verified with the screen key that signed it (keys rotate at
//! re-provisioning and keep their validity intervals), and the verdict names every epoch
//! of every screen with the keys that signed its batches, and every key rotation.

use std::collections::HashMap;

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use playlists::wire::{PlayRecord, ScheduleDoc};
use playlists::{DayPlan, Planner, ScreenSchedule};

use crate::store::{epoch_name, ChainSummary, Query, ScreenKey, Store, StoredEmergency};

/// The audit's verdict.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditVerdict {
    pub screens: u64,
    pub batches: u64,
    pub records: u64,
    /// Each problem found, described.
    pub problems: Vec<String>,
    /// Each screen's epochs (one hash chain each): batches, records, and which keys signed.
    #[serde(default)]
    pub epochs: Vec<String>,
    /// Each screen whose key was rotated: its keys with their validity.
    #[serde(default)]
    pub key_rotations: Vec<String>,
    /// With `--archive`: what the archive files held (files, batches, records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<String>,
}

impl AuditVerdict {
    /// The lines `signage audit verify` prints.
    pub fn lines(&self) -> String {
        let mut out = format!(
            "audited {} screens, {} batches, {} records\n",
            self.screens, self.batches, self.records
        );
        for e in &self.epochs {
            out.push_str(&format!("EPOCH {e}\n"));
        }
        for k in &self.key_rotations {
            out.push_str(&format!("KEYS {k}\n"));
        }
        if let Some(a) = &self.archive {
            out.push_str(&format!("ARCHIVE {a}\n"));
        }
        for p in &self.problems {
            out.push_str(&format!("PROBLEM {p}\n"));
        }
        if self.problems.is_empty() {
            out.push_str("ledger verified: every signature and chain is intact, and every play is what its schedule document plans\n");
        } else {
            out.push_str(&format!("{} problem(s) found\n", self.problems.len()));
        }
        out
    }
}

/// The meta key of the last verdict.
pub const LAST_META: &str = "audit_last";

/// The last verdict as `GET /api/v1/audit/last` serves it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LastAudit {
    /// When the audit ran.
    pub at: chrono::DateTime<chrono::Utc>,
    /// Who ran it.
    pub by: String,
    /// `true` when no problem was found.
    pub intact: bool,
    pub verdict: AuditVerdict,
    /// What `signage audit verify` prints for this verdict.
    pub lines: String,
}

/// Keeps `verdict` as the last audit (meta in the store).
pub fn store_last(
    store: &dyn Store,
    by: &str,
    at: chrono::DateTime<chrono::Utc>,
    verdict: &AuditVerdict,
) -> anyhow::Result<()> {
    let last = LastAudit {
        at,
        by: by.to_owned(),
        intact: verdict.problems.is_empty(),
        verdict: verdict.clone(),
        lines: verdict.lines(),
    };
    store.set_meta(LAST_META, &serde_json::to_vec(&last)?)?;
    Ok(())
}

/// The last audit kept by [`store_last`], if any.
pub fn last(store: &dyn Store) -> anyhow::Result<Option<LastAudit>> {
    Ok(match store.meta(LAST_META)? {
        Some(b) => Some(serde_json::from_slice(&b)?),
        None => None,
    })
}

/// Audits everything the store holds.
pub fn verify(store: &dyn Store) -> anyhow::Result<AuditVerdict> {
    let rings = crate::store::key_rings(store)?;
    let key_of = |s: &str| rings.get(s).cloned().unwrap_or_default();
    let ledger = store.ledger();
    let report = ledger.audit(&key_of)?;
    let history = store.screen_keys()?;
    let epochs = report
        .chains
        .iter()
        .map(|c| describe_chain(c, history.get(&c.screen_id).map(Vec::as_slice)))
        .collect();
    let key_rotations = history
        .iter()
        .filter(|(_, keys)| keys.len() > 1)
        .map(|(screen, keys)| describe_keys(screen, keys))
        .collect::<std::collections::BTreeSet<String>>()
        .into_iter()
        .collect();
    let mut problems: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
    let server_key = crate::keys::server_key(store.dir())?.public();
    let emergencies = store.snapshot()?.emergencies.clone();
    let mut plans = Plans::new(store, &server_key);
    let all = Query {
        from: None,
        to: None,
        dimension: crate::store::Dimension::Venue,
        venue: None,
        screen: None,
    };
    ledger.plays(&all, &mut |r| {
        if let Some(p) = check_play(&mut plans, &emergencies, r) {
            problems.push(p);
        }
        Ok(())
    })?;
    Ok(AuditVerdict {
        screens: report.screens,
        batches: report.batches,
        records: report.records,
        problems,
        epochs,
        key_rotations,
        archive: None,
    })
}

/// [`verify`], and the archive files in `dir`: every archived batch's signature, each
/// chain from its genesis through the archive into the live ledger, each record once.
pub fn verify_with_archive(
    store: &dyn Store,
    dir: &std::path::Path,
) -> anyhow::Result<AuditVerdict> {
    anyhow::ensure!(
        dir.is_dir(),
        "--archive {}: no such directory",
        dir.display()
    );
    let mut verdict = verify(store)?;
    let rings = crate::store::key_rings(store)?;
    let key_of = |s: &str| rings.get(s).cloned().unwrap_or_default();
    // Archived plays were checked against their schedule documents by `verify`: the
    // ledger's raw export reads them from the archive files.
    let report = store
        .ledger()
        .verify_archive(dir, &key_of, &mut |_| Ok(()))?;
    verdict
        .problems
        .extend(report.problems.iter().map(ToString::to_string));
    verdict.archive = Some(format!(
        "{}: {} files, {} batches, {} records{}",
        dir.display(),
        report.files,
        report.batches,
        report.records,
        if report.also_live > 0 {
            format!(
                " ({} batches also still in the live ledger: an archiving run was interrupted; counted once)",
                report.also_live
            )
        } else {
            String::new()
        }
    ));
    Ok(verdict)
}

/// A key as the verdict names it: its first 16 hex digits.
fn short(hex: &str) -> &str {
    hex.get(..16).unwrap_or(hex)
}

/// `screen s1 epoch 3fa2…: batches 1..=12, 340 records, signed by key 1a2b… (batches 1..=5), …`
fn describe_chain(c: &ChainSummary, history: Option<&[ScreenKey]>) -> String {
    let signers: Vec<String> = c
        .signers
        .iter()
        .map(|s| {
            let hex = hex::encode(s.key.as_bytes());
            let which = match history.and_then(|h| h.iter().position(|k| k.public_hex == hex)) {
                Some(i) => format!(" (key {} of {})", i + 1, history.map_or(0, <[_]>::len)),
                None => String::new(),
            };
            format!(
                "key {}{which} signed batches {}..={}",
                short(&hex),
                s.first_batch,
                s.last_batch
            )
        })
        .collect();
    format!(
        "screen {} {}: {} batches up to batch {}, {} records; {}",
        c.screen_id,
        epoch_name(&c.epoch),
        c.batches,
        c.last_batch_seq,
        c.records,
        if signers.is_empty() {
            "no batch verifies with a key of the screen".to_owned()
        } else {
            signers.join(", ")
        }
    )
}

/// `screen s1: 3 keys, 2 rotations: key 1a2b… valid 2026-…..2026-…; …`
fn describe_keys(screen: &str, keys: &[ScreenKey]) -> String {
    let each: Vec<String> = keys
        .iter()
        .map(|k| {
            let until = k
                .valid_until
                .map_or_else(|| "now (current)".to_owned(), |t| t.to_rfc3339());
            format!(
                "key {} valid from {} until {until}",
                short(&k.public_hex),
                k.valid_from.to_rfc3339()
            )
        })
        .collect();
    format!(
        "screen {screen}: {} keys, {} rotations: {}",
        keys.len(),
        keys.len() - 1,
        each.join("; ")
    )
}

/// The planner on each issued document, with the day plan last used.
/// A document's schedule and, by creative index, the file each creative is played from.
type DocPlan = (ScreenSchedule, Vec<String>);

struct Plans<'a> {
    store: &'a dyn Store,
    key: &'a VerifyingKey,
    /// Each document's schedule, with the file each creative is played from on its
    /// screen (the rendition it names, or the original), by creative index.
    docs: HashMap<(String, u64), Option<DocPlan>>,
    day: Option<((String, u64), DayPlan)>,
}

impl<'a> Plans<'a> {
    fn new(store: &'a dyn Store, key: &'a VerifyingKey) -> Plans<'a> {
        Plans {
            store,
            key,
            docs: HashMap::new(),
            day: None,
        }
    }

    /// The schedule of `screen`'s document `version`, if the server issued it.
    fn schedule(&mut self, screen: &str, version: u64) -> Option<&(ScreenSchedule, Vec<String>)> {
        let k = (screen.to_owned(), version);
        if !self.docs.contains_key(&k) {
            for d in self.store.issued(screen).unwrap_or_default() {
                let schedule = playlists::wire::signed::open::<ScheduleDoc>(
                    d.signed.as_bytes(),
                    playlists::wire::schedule::KIND,
                    self.key,
                    playlists::wire::MAX_SCHEDULE_BYTES,
                )
                .ok()
                .and_then(|doc| {
                    let media = doc
                        .body
                        .creatives
                        .iter()
                        .map(|c| c.media().sha256.to_owned())
                        .collect();
                    Some((doc.body.to_schedule().ok()?, media))
                });
                self.docs.insert((screen.to_owned(), d.version), schedule);
            }
            self.docs.entry(k.clone()).or_insert(None);
        }
        self.docs.get(&k).and_then(Option::as_ref)
    }

    /// (campaign id, creative id, file played) the document plans for the record's slot.
    fn planned(&mut self, r: &PlayRecord) -> Result<Option<(String, String, String)>, String> {
        let k = (r.screen_id.clone(), r.schedule_version);
        let Some((schedule, media)) = self.schedule(&r.screen_id, r.schedule_version).cloned()
        else {
            return Err(format!(
                "names schedule version {}, which the server never issued",
                r.schedule_version
            ));
        };
        let planner = Planner::new(&schedule);
        let slot = planner.slot_at(r.slot_start);
        let fresh = match &self.day {
            Some((key, day)) => *key != k || !day.contains(slot),
            None => true,
        };
        if fresh {
            self.day = Some((k, planner.plan_day(slot)));
        }
        let Some((_, day)) = &self.day else {
            return Ok(None);
        };
        Ok(day.play(slot).map(|p| {
            (
                schedule.campaigns[p.campaign].id.to_string(),
                schedule.creatives[p.creative].id.to_string(),
                media[p.creative].clone(),
            )
        }))
    }
}

fn check_play(
    plans: &mut Plans<'_>,
    emergencies: &std::collections::BTreeMap<String, StoredEmergency>,
    r: &PlayRecord,
) -> Option<String> {
    let at = format!(
        "play {} (screen {} {} seq {}, slot {})",
        r.play_id,
        r.screen_id,
        epoch_name(&r.epoch),
        r.seq,
        r.slot_start.to_rfc3339()
    );
    if let Some(e) = emergencies.get(&r.campaign_id) {
        let inside = e.start <= r.slot_start && r.slot_start < e.end;
        if !inside || !e.creatives.contains(&r.creative_id) {
            return Some(format!(
                "{at}: emergency {} did not plan creative {} then",
                e.id, r.creative_id
            ));
        }
        return None;
    }
    match plans.planned(r) {
        Err(why) => Some(format!("{at}: {why}")),
        Ok(None) => Some(format!(
            "{at}: schedule version {} plans no play in that slot",
            r.schedule_version
        )),
        Ok(Some((campaign, creative, _)))
            if campaign != r.campaign_id || creative != r.creative_id =>
        {
            Some(format!(
                "{at}: played {}/{}, schedule version {} plans {campaign}/{creative}",
                r.campaign_id, r.creative_id, r.schedule_version
            ))
        }
        // Records of agents older than renditions do not name the file.
        Ok(Some((_, _, media))) => match &r.media_sha256 {
            Some(played) if *played != media => Some(format!(
                "{at}: played file {}, schedule version {} names {} for {}",
                short(played),
                r.schedule_version,
                short(&media),
                r.creative_id
            )),
            _ => None,
        },
    }
}
