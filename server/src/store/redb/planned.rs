//! The `planned_parts` and `planned_plans` tables ([`PlannedStore`]): parts keyed by
//! screen and start (microseconds since the epoch), so one screen's parts are one key
//! range; plans by id. Written in the documents' transaction.

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::{decode, encode, write_issued, RedbStore};
use crate::store::{
    IssuedDocument, PlanCounts, PlannedChange, PlannedPart, PlannedStore, StoreError,
};

const PARTS: TableDefinition<(&str, i64), &[u8]> = TableDefinition::new("planned_parts");
const PLANS: TableDefinition<u64, &[u8]> = TableDefinition::new("planned_plans");

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

impl PlannedStore for RedbStore {
    fn planned_parts(
        &self,
        screen: Option<&str>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<PlannedPart>, StoreError> {
        self.guarded(|| {
            let tx = self.db.begin_read()?;
            let t = match tx.open_table(PARTS) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            };
            let rows = match screen {
                Some(s) => t.range((s, i64::MIN)..=(s, i64::MAX))?,
                None => t.range::<(&str, i64)>(..)?,
            };
            let mut out = Vec::new();
            for row in rows {
                let (k, v) = row?;
                let (s, at) = k.value();
                let part: PlannedPart = decode(|| format!("planned part {s} {at}"), v.value())?;
                if part.screen_id != s || micros(part.from) != at || part.from >= part.to {
                    return Err(StoreError::Corrupt {
                        what: format!("the planned counts of screen {s}"),
                        problem: "a part is filed under another key or is empty".into(),
                    });
                }
                if part.from < to && part.to > from {
                    out.push(part);
                }
            }
            Ok(out)
        })
    }

    fn plan_counts(
        &self,
        plan: u64,
        from_hour: i64,
        to_hour: i64,
    ) -> Result<Option<PlanCounts>, StoreError> {
        self.guarded(|| {
            let tx = self.db.begin_read()?;
            let t = match tx.open_table(PLANS) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let Some(v) = t.get(plan)? else {
                return Ok(None);
            };
            let mut counts: PlanCounts =
                decode(|| format!("planned counts {plan:016x}"), v.value())?;
            counts.check(plan)?;
            counts
                .entries
                .retain(|e| (from_hour..to_hour).contains(&e.hour()));
            Ok(Some(counts))
        })
    }

    fn record_issued_planned(
        &self,
        docs: &[IssuedDocument],
        change: &PlannedChange,
    ) -> Result<(), StoreError> {
        self.guarded(|| {
            let tx = self.db.begin_write()?;
            write_issued(&tx, docs)?;
            {
                let mut parts = tx.open_table(PARTS)?;
                let mut plans = tx.open_table(PLANS)?;
                for (id, counts) in &change.plans {
                    if plans.get(*id)?.is_none() {
                        plans.insert(*id, encode(counts).as_slice())?;
                    }
                }
                for (screen, from) in &change.remove {
                    parts.remove((screen.as_str(), micros(*from)))?;
                }
                for p in &change.parts {
                    if p.from >= p.to {
                        continue;
                    }
                    parts.insert((p.screen_id.as_str(), micros(p.from)), encode(p).as_slice())?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }
}
