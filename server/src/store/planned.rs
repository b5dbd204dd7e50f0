//! Planned counts kept with the schedule documents: what each issued document plans, per
//! UTC hour, campaign and creative, computed when it is issued ([`crate::planned`]) so
//! reports read counts instead of re-planning. Backend-neutral plain rows: a *part* says
//! which stored plan counts one screen's plays over `[from, to)`; a *plan* is the counts
//! themselves, shared by every part whose screen plans identically over the same slots.
//! A backend keeps both and writes them in the same transaction as the documents.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{IssuedDocument, StoreError};

/// One screen's document counted over `[from, to)` by plan `plan`: the plan's rows of the
/// hours this span touches count exactly the plays whose slots start inside it. The
/// document's venue travels with it (reports group by the venue the document named).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedPart {
    pub screen_id: String,
    pub version: u64,
    pub venue_id: String,
    pub venue_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub district: Option<String>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub plan: u64,
}

/// Plays of one UTC hour (seconds since the epoch of its start), campaign and creative
/// (indices into the plan's `campaigns` and `creatives`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PlanEntry(pub i64, pub u32, pub u32, pub u32);

impl PlanEntry {
    pub fn hour(&self) -> i64 {
        self.0
    }
    pub fn campaign(&self) -> usize {
        self.1 as usize
    }
    pub fn creative(&self) -> usize {
        self.2 as usize
    }
    pub fn plays(&self) -> u64 {
        u64::from(self.3)
    }
}

/// A plan's counts, sorted by hour.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanCounts {
    pub campaigns: Vec<String>,
    pub creatives: Vec<String>,
    pub entries: Vec<PlanEntry>,
    /// The document the plan was counted from. Every part naming the plan counts a
    /// document that plans exactly as this one does (the id covers the source, and a plan
    /// is made once per distinct schedule), so what hourly counts cannot answer, an hour
    /// cut by a report's window, is planned once from this document for all of them.
    /// Absent from plans kept before sources were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<PlanSource>,
}

/// One issued document: a screen's version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PlanSource {
    pub screen_id: String,
    pub version: u64,
}

impl PlanCounts {
    /// Checks that every entry names a campaign and creative of the plan.
    pub fn check(&self, plan: u64) -> Result<(), StoreError> {
        match self
            .entries
            .iter()
            .find(|e| e.campaign() >= self.campaigns.len() || e.creative() >= self.creatives.len())
        {
            None => Ok(()),
            Some(e) => Err(StoreError::Corrupt {
                what: format!("planned counts {plan:016x}"),
                problem: format!("an entry of hour {} names no campaign or creative", e.0),
            }),
        }
    }
}

/// The id of a plan: the first 8 bytes of the SHA-256 of its counts as stored (JSON), so
/// equal counts are one plan and a backend can check what it reads.
pub fn plan_id(bytes: &[u8]) -> u64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(id)
}

/// Plan `plan`'s counts from its stored bytes, with only the entries of hours in
/// `[from_hour, to_hour)`: checked against the id (the start of their SHA-256, so damage
/// cannot pass for counts) and for entries naming no campaign or creative.
pub(crate) fn read_plan(
    plan: u64,
    bytes: &[u8],
    from_hour: i64,
    to_hour: i64,
) -> Result<PlanCounts, StoreError> {
    let corrupt = |problem: String| StoreError::Corrupt {
        what: format!("planned counts {plan:016x}"),
        problem,
    };
    if plan_id(bytes) != plan {
        return Err(corrupt("its bytes do not match its id".into()));
    }
    let mut counts: PlanCounts =
        serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    counts.check(plan)?;
    counts
        .entries
        .retain(|e| (from_hour..to_hour).contains(&e.hour()));
    Ok(counts)
}

/// What issuing documents changes in the planned counts: parts removed (by screen and
/// `from`), parts written (replacing any with the same screen and `from`), plans added.
#[derive(Debug, Clone, Default)]
pub struct PlannedChange {
    pub remove: Vec<(String, DateTime<Utc>)>,
    pub parts: Vec<PlannedPart>,
    pub plans: Vec<(u64, PlanCounts)>,
}

/// Planned counts, kept with the documents they count.
pub trait PlannedStore: Send + Sync {
    /// The parts that overlap `[from, to)`, of one screen or all, in (screen, from) order.
    fn planned_parts(
        &self,
        screen: Option<&str>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<PlannedPart>, StoreError>;
    /// The entries of plan `plan` whose hours lie in `[from_hour, to_hour)` (seconds since
    /// the epoch), with the plan's campaigns and creatives; `None` for an unknown plan.
    fn plan_counts(
        &self,
        plan: u64,
        from_hour: i64,
        to_hour: i64,
    ) -> Result<Option<PlanCounts>, StoreError>;
    /// [`DocumentStore::record_issued`](super::DocumentStore::record_issued) and `change`
    /// in one transaction.
    fn record_issued_planned(
        &self,
        docs: &[IssuedDocument],
        change: &PlannedChange,
    ) -> Result<(), StoreError>;
}
