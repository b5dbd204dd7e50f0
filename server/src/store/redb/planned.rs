//! The `planned_parts` and `planned_plans` tables ([`PlannedStore`]): parts keyed by
//! screen and start (microseconds since the epoch), so one screen's parts are one key
//! range; plans by id. Written in the documents' transaction.

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::{decode, encode, write_issued, RedbStore};
use crate::store::planned::read_plan;
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
            // A screen's parts do not overlap (each issue cuts the earlier ones where it
            // takes over), so of those starting before `from` only the last can reach
            // into the window: older ones are passed over by key, not decoded.
            let (from_us, to_us) = (micros(from), micros(to));
            let mut out = Vec::new();
            let mut before: Option<(String, i64, Vec<u8>)> = None;
            let take = |s: &str, at: i64, bytes: &[u8], out: &mut Vec<PlannedPart>| {
                let part: PlannedPart = decode(|| format!("planned part {s} {at}"), bytes)?;
                if part.screen_id != s || micros(part.from) != at || part.from >= part.to {
                    return Err(StoreError::Corrupt {
                        what: format!("the planned counts of screen {s}"),
                        problem: "a part is filed under another key or is empty".into(),
                    });
                }
                if part.from < to && part.to > from {
                    out.push(part);
                }
                Ok(())
            };
            for row in rows {
                let (k, v) = row?;
                let (s, at) = k.value();
                if before.as_ref().is_some_and(|b| b.0 != s) {
                    if let Some((bs, bat, bytes)) = before.take() {
                        take(&bs, bat, &bytes, &mut out)?;
                    }
                }
                if at < from_us {
                    before = Some((s.to_owned(), at, v.value().to_vec()));
                    continue;
                }
                if let Some((bs, bat, bytes)) = before.take() {
                    take(&bs, bat, &bytes, &mut out)?;
                }
                if at < to_us {
                    take(s, at, v.value(), &mut out)?;
                }
            }
            if let Some((bs, bat, bytes)) = before.take() {
                take(&bs, bat, &bytes, &mut out)?;
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
            read_plan(plan, v.value(), from_hour, to_hour).map(Some)
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
                    let bytes = encode(counts);
                    if crate::store::plan_id(&bytes) != *id {
                        return Err(StoreError::Corrupt {
                            what: format!("new planned counts {id:016x}"),
                            problem: "the id is not that of the counts".into(),
                        });
                    }
                    if plans.get(*id)?.is_none() {
                        plans.insert(*id, bytes.as_slice())?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DocumentStore, OpenMode, PlanEntry};

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn part(screen: &str, from: &str, to: &str, plan: u64) -> PlannedPart {
        PlannedPart {
            screen_id: screen.into(),
            version: 1,
            venue_id: "v1".into(),
            venue_type: "retail".into(),
            district: Some("d1".into()),
            from: t(from),
            to: t(to),
            plan,
        }
    }

    fn doc(screen: &str) -> IssuedDocument {
        IssuedDocument {
            screen_id: screen.into(),
            version: 1,
            issued_at: t("2023-12-20T00:00:00Z"),
            expires_at: t("2023-12-21T00:00:00Z"),
            in_force_from: t("2023-12-20T00:00:00Z"),
            content_hash: "h".into(),
            signed: "{}".into(),
        }
    }

    /// Parts are found by overlap and screen, plans by id and hours; a change that names
    /// a plan by another's id is refused whole (its documents not kept either), and a
    /// damaged plan is named, not read.
    #[test]
    fn parts_and_plans_round_trip_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path(), OpenMode::Create).unwrap();
        assert!(store
            .planned_parts(None, t("2023-12-20T00:00:00Z"), t("2023-12-21T00:00:00Z"))
            .unwrap()
            .is_empty());
        let counts = PlanCounts {
            source: None,
            campaigns: vec!["c1".into()],
            creatives: vec!["k1".into(), "k2".into()],
            entries: vec![
                PlanEntry(1_703_030_400, 0, 0, 5),
                PlanEntry(1_703_034_000, 0, 1, 7),
            ],
        };
        let id = crate::store::plan_id(&encode(&counts));
        let change = PlannedChange {
            remove: vec![],
            parts: vec![
                part("s1", "2023-12-20T00:00:00Z", "2023-12-20T02:00:00Z", id),
                part("s2", "2023-12-20T01:30:00Z", "2023-12-20T02:00:00Z", id),
            ],
            plans: vec![(id, counts.clone())],
        };
        store.record_issued_planned(&[doc("s1")], &change).unwrap();
        assert_eq!(store.published().unwrap().len(), 1);
        let all = |a: &str, b: &str| -> Vec<String> {
            store
                .planned_parts(None, t(a), t(b))
                .unwrap()
                .into_iter()
                .map(|p| p.screen_id)
                .collect()
        };
        assert_eq!(all("2023-12-20T00:00:00Z", "2023-12-20T01:30:00Z"), ["s1"]);
        assert_eq!(
            all("2023-12-20T01:00:00Z", "2023-12-20T03:00:00Z"),
            ["s1", "s2"]
        );
        assert!(all("2023-12-20T02:00:00Z", "2023-12-20T03:00:00Z").is_empty());
        let one = store
            .planned_parts(
                Some("s2"),
                t("2023-12-20T00:00:00Z"),
                t("2023-12-21T00:00:00Z"),
            )
            .unwrap();
        assert_eq!(one, vec![change.parts[1].clone()]);
        let got = store
            .plan_counts(id, 1_703_034_000, 1_703_037_600)
            .unwrap()
            .unwrap();
        assert_eq!(got.entries, vec![PlanEntry(1_703_034_000, 0, 1, 7)]);
        assert_eq!(store.plan_counts(id ^ 1, 0, i64::MAX).unwrap(), None);

        // Removing by (screen, from).
        let gone = PlannedChange {
            remove: vec![("s2".into(), t("2023-12-20T01:30:00Z"))],
            ..PlannedChange::default()
        };
        store.record_issued_planned(&[], &gone).unwrap();
        assert_eq!(all("2023-12-20T00:00:00Z", "2023-12-21T00:00:00Z"), ["s1"]);

        // A plan filed under another id is refused, and so are the documents with it.
        let wrong = PlannedChange {
            plans: vec![(id ^ 1, counts.clone())],
            ..PlannedChange::default()
        };
        assert!(store.record_issued_planned(&[doc("s9")], &wrong).is_err());
        assert_eq!(store.published().unwrap().len(), 1);

        // Damaged bytes under a plan's id.
        let mut bytes = encode(&counts);
        let at = bytes.iter().position(|b| *b == b'7').unwrap();
        bytes[at] = b'9';
        let tx = store.db.begin_write().unwrap();
        tx.open_table(PLANS)
            .unwrap()
            .insert(id, bytes.as_slice())
            .unwrap();
        tx.commit().unwrap();
        let err = store.plan_counts(id, 0, i64::MAX).unwrap_err();
        assert!(err.to_string().contains("do not match its id"), "{err}");
    }
}
