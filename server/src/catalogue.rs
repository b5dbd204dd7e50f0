//! The catalogue service: the live catalogue built from the stored entities, and every
//! change to it. A change is computed on a copy of the current [`Snapshot`], validated as a
//! whole by [`build`] and [`check_drafts`] (the one validation that import, the API and emergencies share), then
//! committed as one revision; it returns what changed, including the screens whose
//! schedule it may touch, and leaves publishing to the caller. No MQTT, no HTTP.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};

use playlists::catalogue::CatalogueIndex;
use playlists::scenario::{FileCampaign, FileWindow, ScenarioError, ScenarioFile, FORMAT};
use playlists::Catalogue;

use crate::store::{
    ApprovalStatus, CampaignState, Commit, Entity, EntityKind, Revision, SharedStore, Snapshot,
    StoreError,
};

/// Why a change was refused. Nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error(transparent)]
    Invalid(#[from] ScenarioError),
    #[error("no {entity} {id:?}")]
    NotFound { entity: &'static str, id: String },
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The catalogue the planner sees, and so the schedule documents: venues, screens in
/// service, creatives not retired, the approved version of every campaign that is not
/// archived (with its approved creatives only) and every emergency (as `emergency`-tier
/// campaigns). Checks every rule of the scenario format plus reach (a campaign's dayparts
/// can match, its target matches a screen, one of its creatives fits one of them).
pub fn build(snapshot: &Snapshot) -> Result<Catalogue, ScenarioError> {
    // An unknown creative stays, for the build to name it.
    let approved = |id: &String| {
        snapshot
            .creatives
            .get(id)
            .is_none_or(|k| k.approval.status == ApprovalStatus::Approved)
    };
    let campaigns = snapshot
        .campaigns
        .values()
        .filter_map(|c| c.live_spec())
        .filter_map(|spec| {
            let mut spec = spec.clone();
            spec.creatives.retain(approved);
            (!spec.creatives.is_empty()).then_some(spec)
        })
        .collect();
    build_with(snapshot, campaigns)
}

/// Checks the working version of every campaign that is not archived (drafts included)
/// by the same rules as [`build`]; a draft is refused for what would refuse it live.
pub fn check_drafts(snapshot: &Snapshot) -> Result<(), ScenarioError> {
    let settled = snapshot
        .campaigns
        .values()
        .all(|c| c.state == CampaignState::Archived || c.live_spec() == Some(&c.spec))
        && snapshot
            .creatives
            .values()
            .all(|k| k.approval.status == ApprovalStatus::Approved);
    if settled {
        // The working versions are the live ones: `build` checks them.
        return Ok(());
    }
    let campaigns = snapshot
        .campaigns
        .values()
        .filter(|c| c.state != CampaignState::Archived)
        .map(|c| c.spec.clone())
        .collect();
    build_with(snapshot, campaigns).map(drop)
}

/// The catalogue with the working version of every campaign that is not archived (drafts
/// included): what the campaigns would reach once approved.
pub fn build_drafts(snapshot: &Snapshot) -> Result<Catalogue, ScenarioError> {
    let campaigns = snapshot
        .campaigns
        .values()
        .filter(|c| c.state != CampaignState::Archived)
        .map(|c| c.spec.clone())
        .collect();
    build_with(snapshot, campaigns)
}

/// Every check a change must pass before it is committed ([`check_drafts`], then
/// [`build`]): what [`CatalogueService::change`] runs, and what a dry run reports.
pub fn check(after: &Snapshot) -> Result<Catalogue, ScenarioError> {
    check_drafts(after)?;
    build(after)
}

/// The catalogue of `snapshot` with these campaigns (and every emergency but those waiting
/// for a second operator).
fn build_with(
    snapshot: &Snapshot,
    mut campaigns: Vec<FileCampaign>,
) -> Result<Catalogue, ScenarioError> {
    let mut measured = HashMap::new();
    for c in snapshot
        .creatives
        .values()
        .filter(|c| c.retired_at.is_none())
    {
        let m = c
            .measurement
            .to_measurement()
            .ok_or_else(|| ScenarioError::Invalid {
                entity: "creative",
                id: c.spec.id.clone(),
                field: "measurement".into(),
                problem: "stored measurement is damaged".into(),
            })?;
        measured.insert(c.spec.id.clone(), m);
    }
    for e in snapshot
        .emergencies
        .values()
        .filter(|e| e.pending.is_none())
    {
        campaigns.push(
            e.file_campaign()
                .map_err(|problem| ScenarioError::Invalid {
                    entity: "emergency",
                    id: e.id.clone(),
                    field: "target".into(),
                    problem,
                })?,
        );
    }
    let file = ScenarioFile {
        format: FORMAT.into(),
        name: "catalogue".into(),
        timezone: "UTC".into(),
        window: FileWindow {
            start: "1970-01-01T00:00:00Z".into(),
            end: "2100-01-01T00:00:00Z".into(),
        },
        venues: snapshot.venues.values().map(|v| v.spec.clone()).collect(),
        screens: snapshot
            .screens
            .values()
            .filter(|s| s.decommissioned_at.is_none())
            .map(|s| s.spec.clone())
            .collect(),
        creatives: snapshot
            .creatives
            .values()
            .filter(|c| c.retired_at.is_none())
            .map(|c| c.spec.clone())
            .collect(),
        campaigns,
        events: Vec::new(),
    };
    Ok(file.build(&measured)?.catalogue)
}

/// What a committed change did.
#[derive(Debug, Clone)]
pub struct Applied {
    /// `None` when the change left everything as it was.
    pub revision: Option<Revision>,
    pub catalogue: Arc<Catalogue>,
    /// Screens whose schedule document may differ now.
    pub affected: BTreeSet<String>,
}

/// The live catalogue and its changes. Cheap to share; changes are serialised.
#[derive(Debug)]
pub struct CatalogueService {
    store: SharedStore,
    write: Mutex<()>,
    /// The snapshot and catalogue of one revision: a read checks the head alone and
    /// reads the whole catalogue only once the head moved.
    cached: RwLock<Option<Cached>>,
    /// Revisions committed through this service and not yet taken by [`Self::follow`].
    own: Mutex<BTreeSet<u64>>,
}

/// A revision's catalogue, and its snapshot once read from the store (a change caches the
/// catalogue it validated, not the snapshot it computed: the store's is the truth).
type Cached = (u64, Option<Arc<Snapshot>>, Arc<Catalogue>);

impl CatalogueService {
    pub fn new(store: SharedStore) -> CatalogueService {
        CatalogueService {
            store,
            write: Mutex::new(()),
            cached: RwLock::new(None),
            own: Mutex::new(BTreeSet::new()),
        }
    }

    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    /// The current snapshot and its catalogue (read and built once per revision).
    pub fn current(&self) -> Result<(Arc<Snapshot>, Arc<Catalogue>), CatalogueError> {
        let head = self.store.head()?;
        let cached = self.cached.read().ok().and_then(|g| g.clone());
        if let Some((h, Some(snapshot), c)) = &cached {
            if *h == head {
                return Ok((snapshot.clone(), c.clone()));
            }
        }
        let snapshot = self.store.snapshot()?;
        let catalogue = match cached {
            Some((h, _, c)) if h == snapshot.head => c,
            _ => Arc::new(build(&snapshot).map_err(|e| {
                CatalogueError::Store(StoreError::Corrupt {
                    what: format!("catalogue at revision {}", snapshot.head),
                    problem: e.to_string(),
                })
            })?),
        };
        if let Ok(mut g) = self.cached.write() {
            *g = Some((snapshot.head, Some(snapshot.clone()), catalogue.clone()));
        }
        Ok((snapshot, catalogue))
    }

    /// The current revision, without reading the catalogue.
    pub fn head(&self) -> Result<u64, CatalogueError> {
        Ok(self.store.head()?)
    }

    /// The current catalogue.
    pub fn catalogue(&self) -> Result<Arc<Catalogue>, CatalogueError> {
        Ok(self.current()?.1)
    }

    /// The current snapshot and catalogue, with the revisions up to its head that were
    /// committed through this service since the last call (each is told once): what a
    /// replica following the store needs to tell its own changes from others'. Read
    /// between changes, so a revision committed here is never missed nor told as another's.
    #[allow(
        clippy::type_complexity,
        reason = "three values read together, used at once"
    )]
    pub fn follow(&self) -> Result<(Arc<Snapshot>, Arc<Catalogue>, BTreeSet<u64>), CatalogueError> {
        let _between_changes = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let (snapshot, catalogue) = self.current()?;
        let mut own = self.own.lock().unwrap_or_else(|p| p.into_inner());
        let later = own.split_off(&(snapshot.head + 1));
        let mine = std::mem::replace(&mut *own, later);
        Ok((snapshot, catalogue, mine))
    }

    /// Applies `edit` to a copy of the current snapshot, validates the result, and commits
    /// the entities that differ as one revision by `author`.
    pub fn change<E: From<CatalogueError>>(
        &self,
        author: &str,
        comment: &str,
        at: DateTime<Utc>,
        edit: impl FnOnce(&mut Snapshot) -> Result<(), E>,
    ) -> Result<Applied, E> {
        let _one_at_a_time = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let (before, old) = self.current()?;
        let mut after = (*before).clone();
        edit(&mut after)?;
        let catalogue = Arc::new(check(&after).map_err(CatalogueError::from)?);
        let entities = after.changed_since(&before);
        if entities.is_empty() {
            return Ok(Applied {
                revision: None,
                catalogue: old,
                affected: BTreeSet::new(),
            });
        }
        let affected = affected_screens(&old, &catalogue, &entities);
        let revision = self
            .store
            .commit(Commit {
                base: before.head,
                author: author.to_owned(),
                at,
                comment: comment.to_owned(),
                entities,
            })
            .map_err(CatalogueError::from)?;
        if let (Some(r), Ok(mut g)) = (&revision, self.cached.write()) {
            *g = Some((r.number, None, catalogue.clone()));
        }
        if let (Some(r), Ok(mut own)) = (&revision, self.own.lock()) {
            own.insert(r.number);
        }
        Ok(Applied {
            revision,
            catalogue,
            affected,
        })
    }
}

/// The screens whose schedule document a change of `changed` may alter: the changed
/// screens, the screens at changed venues, and every screen a changed campaign or
/// emergency (or a campaign using a changed creative) targets, before or after.
pub fn affected_screens(old: &Catalogue, new: &Catalogue, changed: &[Entity]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for catalogue in [old, new] {
        let index = CatalogueIndex::new(catalogue);
        for e in changed {
            match e.kind() {
                EntityKind::Screen => {
                    out.insert(e.id().to_owned());
                }
                EntityKind::Venue => out.extend(
                    catalogue
                        .screens
                        .iter()
                        .filter(|s| s.venue.as_str() == e.id())
                        .map(|s| s.id.to_string()),
                ),
                EntityKind::Campaign | EntityKind::Emergency | EntityKind::Creative => {
                    for c in &catalogue.campaigns {
                        let uses = c.id.as_str() == e.id()
                            || (e.kind() == EntityKind::Creative
                                && c.creatives.iter().any(|k| k.as_str() == e.id()));
                        if uses {
                            out.extend(index.targeted(c).map(|s| s.id.to_string()));
                        }
                    }
                }
                EntityKind::User => {}
            }
        }
    }
    out
}

/// Looks up an entity for a change, or says it is not there.
pub fn existing(snapshot: &Snapshot, kind: EntityKind, id: &str) -> Result<Entity, CatalogueError> {
    snapshot
        .get(kind, id)
        .ok_or_else(|| CatalogueError::NotFound {
            entity: kind.as_str(),
            id: id.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::store::OpenMode;

    /// The cached snapshot follows the store's head, whoever moved it: this service, or
    /// another one on the same store (another replica, a CLI).
    #[test]
    fn current_follows_every_change_to_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(dir.path(), OpenMode::Create).unwrap();
        let scenario =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/beijing-role-models");
        let ours = CatalogueService::new(store.clone());
        crate::import::import(&ours, &scenario, &crate::import::ImportOptions::admin()).unwrap();
        let (first, _) = ours.current().unwrap();
        let (again, _) = ours.current().unwrap();
        assert!(
            Arc::ptr_eq(&first, &again),
            "an unchanged head reads nothing again"
        );
        let slot = |s: &Snapshot| s.screens["bj-metro-xidan-s1"].spec.slot_seconds;

        ours.change("admin", "slot", Utc::now(), |s| {
            s.screens
                .get_mut("bj-metro-xidan-s1")
                .unwrap()
                .spec
                .slot_seconds = 20;
            Ok::<_, CatalogueError>(())
        })
        .unwrap();
        let (mine, _) = ours.current().unwrap();
        assert_eq!(slot(&mine), 20);
        assert_eq!(mine.head, store.head().unwrap());

        let theirs = CatalogueService::new(store.clone());
        theirs
            .change("admin", "slot", Utc::now(), |s| {
                s.screens
                    .get_mut("bj-metro-xidan-s1")
                    .unwrap()
                    .spec
                    .slot_seconds = 30;
                Ok::<_, CatalogueError>(())
            })
            .unwrap();
        let (seen, catalogue) = ours.current().unwrap();
        assert_eq!(slot(&seen), 30);
        assert_eq!(
            *seen,
            *store.snapshot().unwrap(),
            "the store's own snapshot"
        );
        let built = catalogue
            .screens
            .iter()
            .find(|s| s.id.as_str() == "bj-metro-xidan-s1")
            .unwrap();
        assert_eq!(built.slot_seconds, 30);
    }
}
