//! Planned counts in PostgreSQL ([`PlannedStore`]): `planned_parts` keyed by screen and
//! start, `planned_plans` by id (schema `0003_planned.sql`), written in the documents'
//! transaction. A part's value is its serde JSON, as the redb store keeps it; a plan's
//! counts are the exact bytes its id was computed from, so what is read back is checked
//! against its id.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::documents::write_issued;
use super::{decode, encode, off_worker, PgStore};
use crate::store::planned::read_plan;
use crate::store::{
    plan_id, IssuedDocument, PlanCounts, PlannedChange, PlannedPart, PlannedStore, StoreError,
};

/// Rows written by one statement.
const BATCH: usize = 1_000;

/// A plan id's 64 bits as PostgreSQL's signed BIGINT (and back): an id, not a number.
fn to_column(id: u64) -> i64 {
    i64::from_be_bytes(id.to_be_bytes())
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn damaged_part(screen: &str) -> StoreError {
    StoreError::Corrupt {
        what: format!("the planned counts of screen {screen}"),
        problem: "a part is filed under another key or is empty".into(),
    }
}

impl PlannedStore for PgStore {
    fn planned_parts(
        &self,
        screen: Option<&str>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<PlannedPart>, StoreError> {
        off_worker(|| {
            // The columns hold microseconds (what PostgreSQL keeps, as the parameters are
            // sent): the query is a superset of the overlap, which is then decided exactly on
            // the parts' own times.
            let rows = self.client()?.query(
                "SELECT screen_id, from_at, body FROM planned_parts
                 WHERE ($1::text IS NULL OR screen_id = $1) AND from_at <= $3 AND to_at >= $2
                 ORDER BY screen_id, from_at",
                &[&screen, &from, &to],
            )?;
            let mut out = Vec::new();
            for row in rows {
                let (s, at): (String, DateTime<Utc>) = (row.get(0), row.get(1));
                let part: PlannedPart = decode(
                    || format!("planned part {s} {}", at.to_rfc3339()),
                    row.get(2),
                )?;
                if part.screen_id != s || micros(part.from) != micros(at) || part.from >= part.to {
                    return Err(damaged_part(&s));
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
        off_worker(|| {
            let Some(row) = self.client()?.query_opt(
                "SELECT counts FROM planned_plans WHERE id = $1",
                &[&to_column(plan)],
            )?
            else {
                return Ok(None);
            };
            let bytes: Vec<u8> = row.get(0);
            read_plan(plan, &bytes, from_hour, to_hour).map(Some)
        })
    }

    /// Plans are added once (an id already stored is the same counts); parts removed,
    /// then written (a later part in `change` with the same screen and start wins, as
    /// written one by one), a thousand rows to a statement.
    fn record_issued_planned(
        &self,
        docs: &[IssuedDocument],
        change: &PlannedChange,
    ) -> Result<(), StoreError> {
        off_worker(|| {
            let mut plans: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
            for (id, counts) in &change.plans {
                let bytes = serde_json::to_vec(counts).unwrap_or_default();
                if plan_id(&bytes) != *id {
                    return Err(StoreError::Corrupt {
                        what: format!("new planned counts {id:016x}"),
                        problem: "the id is not that of the counts".into(),
                    });
                }
                plans.insert(to_column(*id), bytes);
            }
            let mut parts: BTreeMap<(&str, i64), &PlannedPart> = BTreeMap::new();
            for p in change.parts.iter().filter(|p| p.from < p.to) {
                parts.insert((p.screen_id.as_str(), micros(p.from)), p);
            }

            let mut client = self.client()?;
            let mut tx = client.transaction()?;
            write_issued(&mut tx, docs)?;
            let plans: Vec<(i64, Vec<u8>)> = plans.into_iter().collect();
            for batch in plans.chunks(BATCH) {
                let ids: Vec<i64> = batch.iter().map(|(id, _)| *id).collect();
                let counts: Vec<&[u8]> = batch.iter().map(|(_, b)| b.as_slice()).collect();
                tx.execute(
                    "INSERT INTO planned_plans (id, counts)
                     SELECT * FROM unnest($1::bigint[], $2::bytea[])
                     ON CONFLICT (id) DO NOTHING",
                    &[&ids, &counts],
                )?;
            }
            for batch in change.remove.chunks(BATCH) {
                let screens: Vec<&str> = batch.iter().map(|(s, _)| s.as_str()).collect();
                let froms: Vec<DateTime<Utc>> = batch.iter().map(|(_, f)| *f).collect();
                tx.execute(
                    "DELETE FROM planned_parts p
                     USING unnest($1::text[], $2::timestamptz[]) AS gone (screen_id, from_at)
                     WHERE p.screen_id = gone.screen_id AND p.from_at = gone.from_at",
                    &[&screens, &froms],
                )?;
            }
            let parts: Vec<&PlannedPart> = parts.into_values().collect();
            for batch in parts.chunks(BATCH) {
                let mut columns = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
                for p in batch {
                    columns.0.push(p.screen_id.as_str());
                    columns.1.push(p.from);
                    columns.2.push(p.to);
                    columns.3.push(encode(p));
                }
                tx.execute(
                    "INSERT INTO planned_parts (screen_id, from_at, to_at, body)
                     SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[],
                                          $4::jsonb[])
                     ON CONFLICT (screen_id, from_at) DO UPDATE
                     SET to_at = EXCLUDED.to_at, body = EXCLUDED.body",
                    &[&columns.0, &columns.1, &columns.2, &columns.3],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::postgres::testdb::TestDb;
    use crate::store::{OpenMode, PlanEntry};

    /// Damaged bytes under a plan's id are named, not read; a part filed under another
    /// screen is named too.
    #[test]
    fn damaged_plans_and_parts_are_refused() {
        let db = TestDb::new();
        let dir = tempfile::tempdir().unwrap();
        let store = db.open(dir.path(), OpenMode::Create);
        let counts = PlanCounts {
            source: None,
            campaigns: vec!["c1".into()],
            creatives: vec!["k1".into()],
            entries: vec![PlanEntry(1_703_030_400, 0, 0, 7)],
        };
        let bytes = serde_json::to_vec(&counts).unwrap();
        let id = plan_id(&bytes);
        let from: DateTime<Utc> = "2023-12-20T00:00:00Z".parse().unwrap();
        let part = PlannedPart {
            screen_id: "s1".into(),
            version: 1,
            venue_id: "v1".into(),
            venue_type: "retail".into(),
            district: None,
            from,
            to: from + chrono::TimeDelta::hours(2),
            plan: id,
        };
        let change = PlannedChange {
            remove: vec![],
            parts: vec![part],
            plans: vec![(id, counts)],
        };
        store.record_issued_planned(&[], &change).unwrap();
        assert!(store.plan_counts(id, 0, i64::MAX).unwrap().is_some());

        let mut damaged = bytes.clone();
        let at = damaged.iter().position(|b| *b == b'7').unwrap();
        damaged[at] = b'9';
        store.with_client(|c| {
            c.execute(
                "UPDATE planned_plans SET counts = $1 WHERE id = $2",
                &[&damaged, &to_column(id)],
            )
            .unwrap()
        });
        let err = store.plan_counts(id, 0, i64::MAX).unwrap_err();
        assert!(err.to_string().contains("do not match its id"), "{err}");

        store.with_client(|c| {
            c.execute("UPDATE planned_parts SET screen_id = 's2'", &[])
                .unwrap()
        });
        let err = store
            .planned_parts(None, from, from + chrono::TimeDelta::days(1))
            .unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("screen s2"), "{err}");
    }
}
