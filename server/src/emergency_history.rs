//! Who started, confirmed and ended each emergency, and when, read from the change log
//! (every start, confirmation and end is a revision by the operator who made it). The log
//! is append-only, so [`Log`] folds each revision once and keeps the result; a request
//! only reads the revisions committed since. `http::emergencies` serves it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::store::{EntityKind, Revision, Store, StoreError};

/// One emergency's people and times.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Story {
    pub started_by: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub confirmed_by: Option<String>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub ended_by: Option<String>,
    pub ended_at: Option<DateTime<Utc>>,
}

fn flag(v: &Option<serde_json::Value>, key: &str) -> bool {
    v.as_ref()
        .and_then(|v| v.get(key))
        .is_some_and(|f| !f.is_null() && f != &serde_json::Value::Bool(false))
}

/// Folds one revision into the stories: a new emergency is a start, a pending one that is
/// no longer pending a confirmation, one newly `ended` an end.
pub fn fold(stories: &mut BTreeMap<String, Story>, r: &Revision) {
    for c in &r.changes {
        if c.entity != EntityKind::Emergency {
            continue;
        }
        let story = stories.entry(c.id.clone()).or_default();
        if c.before.is_none() && c.after.is_some() {
            *story = Story {
                started_by: Some(r.author.clone()),
                started_at: Some(r.at),
                ..Story::default()
            };
        }
        if flag(&c.before, "pending") && c.after.is_some() && !flag(&c.after, "pending") {
            story.confirmed_by = Some(r.author.clone());
            story.confirmed_at = Some(r.at);
        }
        if !flag(&c.before, "ended") && flag(&c.after, "ended") {
            story.ended_by = Some(r.author.clone());
            story.ended_at = Some(r.at);
        }
    }
}

/// The stories folded so far and the last revision read.
#[derive(Debug, Default)]
pub struct Log {
    state: Mutex<(u64, BTreeMap<String, Story>)>,
}

impl Log {
    /// Every emergency's story, reading only revisions not folded yet.
    pub fn stories(&self, store: &dyn Store) -> Result<BTreeMap<String, Story>, StoreError> {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let batch = store.revisions(g.0, 200)?;
            let Some(last) = batch.last().map(|r| r.number) else {
                break;
            };
            for r in &batch {
                fold(&mut g.1, r);
            }
            g.0 = last;
        }
        Ok(g.1.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ChangeRecord;
    use serde_json::json;

    fn rev(
        n: u64,
        author: &str,
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
    ) -> Revision {
        Revision {
            number: n,
            author: author.into(),
            at: format!("2026-01-01T00:0{n}:00Z").parse().unwrap(),
            comment: String::new(),
            changes: vec![ChangeRecord {
                entity: EntityKind::Emergency,
                id: "e1".into(),
                before,
                after,
            }],
            event: None,
        }
    }

    #[test]
    fn start_confirm_end() {
        let mut s = BTreeMap::new();
        let pending = json!({"id": "e1", "ended": false, "pending": {"started_by": "ann"}});
        let live = json!({"id": "e1", "ended": false});
        let ended = json!({"id": "e1", "ended": true});
        fold(&mut s, &rev(1, "ann", None, Some(pending.clone())));
        fold(&mut s, &rev(2, "bob", Some(pending), Some(live.clone())));
        fold(&mut s, &rev(3, "cat", Some(live), Some(ended)));
        let story = &s["e1"];
        assert_eq!(story.started_by.as_deref(), Some("ann"));
        assert_eq!(story.confirmed_by.as_deref(), Some("bob"));
        assert_eq!(story.ended_by.as_deref(), Some("cat"));
        assert_eq!(
            story.ended_at,
            Some("2026-01-01T00:03:00Z".parse().unwrap())
        );
    }
}
