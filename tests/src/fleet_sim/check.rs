//! After the fleet stopped: does the ledger hold exactly the plays the agents recorded?
//! An agent deletes records from its outbox only when the server acknowledged their
//! batch, so every seq it wrote (1 to its last) is in the ledger or still in its outbox;
//! the ledger must hold seqs 1..=k of each screen once each, and a seq in both places is
//! allowed only in the batch in flight at the stop (stored, its ack not yet taken), with
//! the same record.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use agent::fleet::Observed;
use playlists::wire::PlayRecord;
use server::store::{Dimension, LedgerStore, Query};

/// What the check found.
#[derive(Debug, Clone, Default)]
pub struct LedgerCheck {
    pub screens: usize,
    /// Records in the ledger, and seqs the agents wrote in all.
    pub records: u64,
    pub written: u64,
    /// Written but still only in outboxes (not yet sent or acknowledged at the stop).
    pub unsent: u64,
    /// Screens with at least one play in the ledger.
    pub screens_in_ledger: usize,
    /// Screens with a play of the emergency, in the ledger or the outbox.
    pub emergency_screens: BTreeSet<String>,
    /// Every disagreement, one line each.
    pub problems: Vec<String>,
}

pub fn ledger_against_outboxes(
    ledger: &dyn LedgerStore,
    screens: &[String],
    observed: &[Arc<Observed>],
) -> anyhow::Result<LedgerCheck> {
    let mut by_screen: BTreeMap<String, Vec<PlayRecord>> = BTreeMap::new();
    let all = Query {
        from: None,
        to: None,
        dimension: Dimension::Screen,
        venue: None,
        screen: None,
    };
    let mut records = 0u64;
    ledger.plays(&all, &mut |r| {
        records += 1;
        by_screen
            .entry(r.screen_id.clone())
            .or_default()
            .push(r.clone());
        Ok(())
    })?;
    let mut check = LedgerCheck {
        screens: screens.len(),
        records,
        ..LedgerCheck::default()
    };
    for (screen, seen) in screens.iter().zip(observed) {
        let mut stored = by_screen.remove(screen).unwrap_or_default();
        stored.sort_by_key(|r| r.seq);
        if !stored.is_empty() {
            check.screens_in_ledger += 1;
        }
        let (last, _) = seen.seqs();
        check.written += last;
        let outbox = match seen.outbox() {
            Some(o) => o.dump()?,
            None => {
                check
                    .problems
                    .push(format!("{screen}: the agent never opened its outbox"));
                continue;
            }
        };
        if stored
            .iter()
            .chain(outbox.iter().map(|(_, r)| r))
            .any(|r| r.campaign_id == super::EMERGENCY)
        {
            check.emergency_screens.insert(screen.clone());
        }
        let kept: BTreeMap<u64, (char, PlayRecord)> =
            outbox.into_iter().map(|(t, r)| (r.seq, (t, r))).collect();
        for (i, r) in stored.iter().enumerate() {
            if r.seq != i as u64 + 1 {
                check.problems.push(format!(
                    "{screen}: ledger seq {} where {} was due (gap or repeat)",
                    r.seq,
                    i + 1
                ));
                break;
            }
            if let Some((tag, mine)) = kept.get(&r.seq) {
                if *tag != 'B' || mine != r {
                    check.problems.push(format!(
                        "{screen}: seq {} is in the ledger and still in the outbox as {tag}",
                        r.seq
                    ));
                }
            }
        }
        let k = stored.len() as u64;
        if k > last {
            check.problems.push(format!(
                "{screen}: the ledger holds {k} records, the agent wrote {last}"
            ));
        }
        for seq in k + 1..=last {
            if !kept.contains_key(&seq) {
                check.problems.push(format!(
                    "{screen}: seq {seq} is neither in the ledger nor in the outbox (lost)"
                ));
                break;
            }
        }
        check.unsent += last.saturating_sub(k);
    }
    for (screen, stored) in by_screen {
        check.problems.push(format!(
            "{screen}: {} records in the ledger from no agent of the fleet",
            stored.len()
        ));
    }
    Ok(check)
}
