//! What the ledger must hold for one screen after agents were killed or cut off: every seq
//! from 1 with no gap, no slot played twice, every play complete or partial and exactly
//! what the shared planner plans for its slot, batches within the size limit, and an audit
//! without problems.

use std::collections::{BTreeMap, BTreeSet};

use playlists::wire::{PlayRecord, PlayStatus};
use playlists::{Planner, ScreenId};
use server::store::{Dimension, LedgerStore, Query, Store};

/// Every record of `screen` in the ledger, by seq.
pub fn screen_plays(ledger: &dyn LedgerStore, screen: &str) -> Vec<PlayRecord> {
    // Off the runtime: async tests call these, and the store may block on its own.
    crate::store::off_runtime(|| {
        let q = Query {
            from: None,
            to: None,
            dimension: Dimension::Screen,
            venue: None,
            screen: Some(screen.to_owned()),
        };
        let mut records = Vec::new();
        ledger
            .plays(&q, &mut |r| {
                records.push(r.clone());
                Ok(())
            })
            .expect("ledger plays");
        records.sort_by_key(|r| r.seq);
        records
    })
}

/// Every record of `screen` in the ledger, by seq, after checking them as the module says
/// (each play against the plan of today's catalogue).
pub fn checked_plays(store: &dyn Store, ledger: &dyn LedgerStore, screen: &str) -> Vec<PlayRecord> {
    let records = checked_records(store, ledger, screen);
    check_plan(store, screen, &records);
    records
}

/// [`checked_plays`] for a screen whose catalogue changed while it played: each play
/// against the plan of the schedule document it names (its `schedule_version`), read from
/// the documents the store kept and planned here with the shared planner.
pub fn checked_plays_on_documents(
    store: &dyn Store,
    ledger: &dyn LedgerStore,
    screen: &str,
) -> Vec<PlayRecord> {
    checked_plays_on_documents_from(store, ledger, screen, Start::Cached)
}

/// What a screen held when its agent first started playing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Its media was cached before its first slot: every play is complete or partial.
    Cached,
    /// It was still downloading (a broker slow to deliver the retained schedule on a fast
    /// scaled clock): its first plays may be failed ones, honestly recorded, until its
    /// first play that found its media; after that, none.
    Fetching,
}

/// [`checked_plays_on_documents`] for a screen that started as `start` says.
pub fn checked_plays_on_documents_from(
    store: &dyn Store,
    ledger: &dyn LedgerStore,
    screen: &str,
    start: Start,
) -> Vec<PlayRecord> {
    let records = crate::store::off_runtime(|| checked_records_here(store, ledger, screen, start));
    let mut planners = BTreeMap::new();
    let issued = crate::store::off_runtime(|| store.issued(screen).expect("issued documents"));
    for doc in issued {
        let envelope: playlists::wire::signed::SignedEnvelope =
            serde_json::from_str(&doc.signed).expect("a signed envelope");
        let body: playlists::wire::ScheduleDoc =
            serde_json::from_str(&envelope.payload).expect("a schedule document");
        assert_eq!(
            body.version, doc.version,
            "document {} of {screen}",
            doc.version
        );
        let schedule = body.body.to_schedule().expect("the document's schedule");
        planners.insert(doc.version, schedule);
    }
    for r in &records {
        let schedule = planners.get(&r.schedule_version).unwrap_or_else(|| {
            panic!(
                "play {} names version {}, which was never issued",
                r.seq, r.schedule_version
            )
        });
        let planner = Planner::new(schedule);
        let slot = planner.slot_at(r.slot_start);
        assert_eq!(
            planner.slot_start(slot),
            r.slot_start,
            "play {} off the slot grid",
            r.seq
        );
        let p = planner
            .plan_range(r.slot_start, r.slot_start + chrono::Duration::seconds(1))
            .into_iter()
            .find(|p| p.slot == slot)
            .unwrap_or_else(|| {
                panic!("play {} in slot {} that plans nothing", r.seq, r.slot_start)
            });
        assert_eq!(
            (r.campaign_id.as_str(), r.creative_id.as_str()),
            (
                schedule.campaigns[p.campaign].id.as_str(),
                schedule.creatives[p.creative].id.as_str()
            ),
            "play {} at {} differs from the plan of version {}",
            r.seq,
            r.slot_start,
            r.schedule_version
        );
    }
    records
}

/// Every record of `screen` in the ledger, by seq: seqs, slots, statuses and the audit
/// checked, not the plan.
fn checked_records(store: &dyn Store, ledger: &dyn LedgerStore, screen: &str) -> Vec<PlayRecord> {
    // Off the runtime: async tests call these, and the store may block on its own.
    crate::store::off_runtime(|| checked_records_here(store, ledger, screen, Start::Cached))
}

fn checked_records_here(
    store: &dyn Store,
    ledger: &dyn LedgerStore,
    screen: &str,
    start: Start,
) -> Vec<PlayRecord> {
    let records = screen_plays(ledger, screen);
    assert!(!records.is_empty(), "no plays of {screen} in the ledger");

    // Seqs 1..=N, no gap, no repeat.
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.seq, i as u64 + 1, "seq gap or repeat at {r:?}");
        assert_eq!(r.screen_id, screen);
    }
    // No slot played twice, and slots only move forward.
    let mut slots = BTreeSet::new();
    for w in records.windows(2) {
        assert!(
            w[0].slot_start < w[1].slot_start,
            "slot {} (seq {}) not after slot {} (seq {})",
            w[1].slot_start,
            w[1].seq,
            w[0].slot_start,
            w[0].seq
        );
    }
    let played = |r: &PlayRecord| matches!(r.status, PlayStatus::Complete | PlayStatus::Partial);
    let first_played = records.iter().position(played);
    assert!(
        first_played.is_some(),
        "no play of {screen} found its media"
    );
    for (i, r) in records.iter().enumerate() {
        assert!(
            slots.insert(r.slot_start),
            "slot {} played twice",
            r.slot_start
        );
        let fetching = start == Start::Fetching && Some(i) < first_played;
        assert!(
            played(r) || (fetching && r.status == PlayStatus::Failed),
            "play {} is {:?}",
            r.seq,
            r.status
        );
        assert!(r.clock_synced, "play {} without a synced clock", r.seq);
    }

    // The audit re-verifies signatures, the chain and every record.
    let keys = server::store::key_rings(store).expect("screen keys");
    let key_of = |s: &str| keys.get(s).cloned().unwrap_or_default();
    let audit = ledger.audit(&key_of).expect("audit");
    assert!(
        audit.problems.is_empty(),
        "audit problems: {:?}",
        audit.problems
    );
    let audited: u64 = audit
        .chains
        .iter()
        .filter(|c| c.screen_id == screen)
        .map(|c| c.records)
        .sum();
    assert_eq!(
        audited,
        records.len() as u64,
        "records of {screen} the audit read"
    );
    records
}

/// Each of `records` (of `screen`, by slot) is on the slot grid and is the planner's play
/// for its slot.
pub fn check_plan(store: &dyn Store, screen: &str, records: &[PlayRecord]) {
    // Off the runtime: async tests call these, and the store may block on its own.
    crate::store::off_runtime(|| {
        let catalogue =
            server::catalogue::build(&store.snapshot().expect("snapshot")).expect("catalogue");
        let schedule = catalogue
            .schedule_for(&ScreenId::parse(screen).expect("screen id"))
            .expect("screen schedule");
        let planner = Planner::new(&schedule);
        let first = records.first().expect("records").slot_start;
        let last = records.last().expect("records").slot_start;
        let plan: BTreeMap<i64, playlists::Play> = planner
            .plan_range(first, last + chrono::Duration::seconds(1))
            .into_iter()
            .map(|p| (p.slot, p))
            .collect();
        for r in records {
            let slot = planner.slot_at(r.slot_start);
            assert_eq!(
                planner.slot_start(slot),
                r.slot_start,
                "play {} off the slot grid",
                r.seq
            );
            let p = plan.get(&slot).unwrap_or_else(|| {
                panic!("play {} in slot {} that plans nothing", r.seq, r.slot_start)
            });
            let campaign = schedule.campaigns[p.campaign].id.to_string();
            let creative = schedule.creatives[p.creative].id.to_string();
            assert_eq!(
                (r.campaign_id.as_str(), r.creative_id.as_str()),
                (campaign.as_str(), creative.as_str()),
                "play {} at {} differs from the plan",
                r.seq,
                r.slot_start
            );
        }
    })
}

/// Records per stored batch of `screen` (batch_seq → count), read from the ledger's
/// index of its latest epoch.
pub fn records_per_batch(store: &dyn Store, screen: &str) -> BTreeMap<u64, u64> {
    // Off the runtime: async tests call these, and the store may block on its own.
    crate::store::off_runtime(|| {
        store
            .ledger()
            .batch_sizes(screen)
            .expect("records per batch")
    })
}
