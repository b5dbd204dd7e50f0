//! Stores written before the catalogue was kept as entities held whole scenario files
//! (`scenarios` table, merged by id, later names winning). Opening such a store turns them
//! into entities, as one revision by `migration`, and drops the old table, in one
//! transaction: a crash leaves the old format, which migrates at the next open.

use std::collections::HashMap;

use chrono::Utc;
use serde::Deserialize;

use playlists::scenario::ScenarioFile;

use super::RedbStore;
use crate::store::{
    scenario_entities, ChangeRecord, Entity, Revision, Snapshot, StoreError, StoredMeasurement,
};

/// A scenario as the old format stored it.
#[derive(Debug, Deserialize)]
struct OldScenario {
    file: serde_json::Value,
    measurements: HashMap<String, StoredMeasurement>,
}

pub(super) fn scenarios_to_entities(store: &RedbStore) -> Result<(), StoreError> {
    let old = store.old_scenarios()?;
    if old.is_empty() {
        return Ok(());
    }
    let corrupt = |name: &str, problem: String| StoreError::Corrupt {
        what: format!("scenario {name:?} of the old format"),
        problem: format!("{problem}; cannot migrate: re-import it into a new data directory"),
    };
    let mut merged = Snapshot::default();
    for (name, bytes) in old {
        let s: OldScenario =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(&name, e.to_string()))?;
        let file: ScenarioFile =
            serde_json::from_value(s.file).map_err(|e| corrupt(&name, e.to_string()))?;
        for e in scenario_entities(&file, &s.measurements).map_err(|e| corrupt(&name, e))? {
            merged.put(e);
        }
    }
    // Emergencies started on the server are already entities; keep them as they are.
    let existing = crate::store::CatalogueStore::snapshot(store)?;
    let entities: Vec<Entity> = merged
        .entities()
        .into_iter()
        .filter(|e| existing.get(e.kind(), e.id()).is_none())
        .collect();
    let revision = Revision {
        number: existing.head + 1,
        author: "migration".into(),
        at: Utc::now(),
        comment: "catalogue migrated from stored scenario files".into(),
        changes: entities
            .iter()
            .map(|e| ChangeRecord {
                entity: e.kind(),
                id: e.id().to_owned(),
                before: None,
                after: Some(e.to_json()),
            })
            .collect(),
        event: None,
    };
    store.write_migrated(&entities, &revision)?;
    tracing::info!(entities = entities.len(), "store migrated to entities");
    Ok(())
}

#[cfg(test)]
#[path = "migrate_tests.rs"]
mod tests;
