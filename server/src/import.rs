//! `signage import DIR` and `POST /api/v1/import`: read a scenario (a directory, or its
//! uploaded parts), measure every creative from its file, validate the whole scenario, and
//! only then store it as one revision of the catalogue, all or nothing.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

use playlists::scenario::{self, Measurement, Scenario, ScenarioError, ScenarioFile};
use playlists::{MediaKind, Sha256};
use rayon::prelude::*;

use chrono::{DateTime, Utc};

use crate::catalogue::{CatalogueError, CatalogueService};
use crate::store::{
    scenario_entities, CampaignState, Entity, EntityKind, Snapshot, StoreError, StoredMeasurement,
};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Scenario {
        path: PathBuf,
        source: ScenarioError,
    },
    #[error("creative {id:?}: field \"file\": {file:?} must be a relative path inside the scenario directory")]
    Escape { id: String, file: String },
    #[error("creative {id:?}: file {file:?}: {problem}")]
    Media {
        id: String,
        file: String,
        problem: String,
    },
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Catalogue(CatalogueError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A scenario read from disk and fully validated, with its media bytes.
#[derive(Debug)]
pub struct Loaded {
    pub file: ScenarioFile,
    pub raw: serde_json::Value,
    pub measurements: HashMap<String, Measurement>,
    pub scenario: Scenario,
    pub media: Vec<(Sha256, Vec<u8>)>,
}

/// Reads and validates `dir` without writing anything.
pub fn load(dir: &Path) -> Result<Loaded, ImportError> {
    let path = dir.join("scenario.json");
    let text = std::fs::read_to_string(&path).map_err(|source| ImportError::Read {
        path: path.clone(),
        source,
    })?;
    let file = scenario::parse(&text).map_err(|source| ImportError::Scenario {
        path: path.clone(),
        source,
    })?;
    let mut files = HashMap::new();
    for (id, rel) in file.media_files() {
        let rel_path = safe_relative(&id, &rel)?;
        let data = std::fs::read(dir.join(rel_path)).map_err(|e| ImportError::Media {
            id: id.clone(),
            file: rel.clone(),
            problem: format!("cannot read: {e}"),
        })?;
        files.insert(rel, data);
    }
    load_parts(&path, &text, files)
}

/// A creative's file must stay inside the scenario directory.
fn safe_relative<'a>(id: &str, rel: &'a str) -> Result<&'a Path, ImportError> {
    let rel_path = Path::new(rel);
    if rel_path.is_absolute()
        || rel_path
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(ImportError::Escape {
            id: id.to_owned(),
            file: rel.to_owned(),
        });
    }
    Ok(rel_path)
}

/// Validates a scenario given as its `scenario.json` text and its media files by relative
/// path (as uploaded to `POST /api/v1/import`). `path` names the scenario in errors.
pub fn load_parts(
    path: &Path,
    text: &str,
    mut files: HashMap<String, Vec<u8>>,
) -> Result<Loaded, ImportError> {
    let file = scenario::parse(text).map_err(|source| ImportError::Scenario {
        path: path.to_owned(),
        source,
    })?;
    let raw: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let limits = media::Limits::default();
    let mut media_files = Vec::new();
    for (id, rel) in file.media_files() {
        safe_relative(&id, &rel)?;
        let data = match files.get(&rel) {
            Some(d) => d.clone(),
            None => {
                return Err(ImportError::Media {
                    id,
                    file: rel,
                    problem: "is missing".into(),
                })
            }
        };
        media_files.push((id, rel, data));
    }
    files.clear();
    // Decoding dominates: largest first, spread over the cores.
    media_files.sort_by_key(|(_, _, data)| std::cmp::Reverse(data.len()));
    let measured: Vec<_> = media_files
        .par_iter()
        .map(|(id, rel, data)| measure(id, rel, data, &limits))
        .collect();
    let mut measurements = HashMap::new();
    let mut media = Vec::new();
    for m in measured {
        let (id, measurement, sha256, data) = m?;
        measurements.insert(id, measurement);
        media.push((sha256, data));
    }
    let scenario = file
        .build(&measurements)
        .map_err(|source| ImportError::Scenario {
            path: path.to_owned(),
            source,
        })?;
    Ok(Loaded {
        file,
        raw,
        measurements,
        scenario,
        media,
    })
}

/// A creative id, what was measured, its hash and bytes.
type MeasuredFile = (String, Measurement, Sha256, Vec<u8>);

fn measure(
    id: &str,
    rel: &str,
    data: &[u8],
    limits: &media::Limits,
) -> Result<MeasuredFile, ImportError> {
    let media_err = |problem: String| ImportError::Media {
        id: id.to_owned(),
        file: rel.to_owned(),
        problem,
    };
    let m = media::probe_bytes(data, limits).map_err(|e| media_err(e.to_string()))?;
    let sha256 = Sha256::parse(&m.sha256).map_err(|e| media_err(e.to_string()))?;
    let kind = match m.kind {
        media::MediaKind::Image => MediaKind::Image,
        media::MediaKind::Video => MediaKind::Video,
    };
    let measurement = Measurement {
        kind,
        width: m.width,
        height: m.height,
        duration_ms: m.duration_ms,
        sha256: sha256.clone(),
        bytes: m.bytes,
    };
    Ok((id.to_owned(), measurement, sha256, data.to_vec()))
}

/// What an import did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ImportSummary {
    pub name: String,
    pub venues: usize,
    pub screens: usize,
    pub creatives: usize,
    pub campaigns: usize,
    /// Emergency takeovers among the scenario's events.
    pub emergencies: usize,
    /// The revision it made; `None` when the catalogue already said the same.
    pub revision: Option<u64>,
    /// Entities absent from the scenario that were archived, decommissioned or retired.
    pub archived: Vec<String>,
}

impl ImportSummary {
    /// The line `signage import` prints.
    pub fn line(&self) -> String {
        format!(
            "imported {:?}: {} venues, {} screens, {} creatives, {} campaigns, {} emergenc{}{}{}",
            self.name,
            self.venues,
            self.screens,
            self.creatives,
            self.campaigns,
            self.emergencies,
            if self.emergencies == 1 { "y" } else { "ies" },
            match self.revision {
                Some(n) => format!(" (revision {n})"),
                None => " (unchanged)".into(),
            },
            if self.archived.is_empty() {
                String::new()
            } else {
                format!("; archived {}", self.archived.join(", "))
            }
        )
    }
}

/// How an import is recorded.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub author: String,
    pub at: DateTime<Utc>,
    /// Archive campaigns, decommission screens and retire creatives that the scenario
    /// leaves out, instead of refusing the import.
    pub archive_missing: bool,
    /// Campaigns and creatives are approved at once (an admin's import, or approval off);
    /// otherwise they arrive as drafts, beside the approved versions they may have.
    pub at_once: bool,
}

impl ImportOptions {
    /// An import by the bootstrap admin, now, refusing to drop anything.
    pub fn admin() -> ImportOptions {
        ImportOptions {
            author: "admin".into(),
            at: Utc::now(),
            archive_missing: false,
            at_once: true,
        }
    }
}

/// Reads and validates `dir` completely, then stores it as one revision.
pub fn import(
    catalogue: &CatalogueService,
    dir: &Path,
    options: &ImportOptions,
) -> Result<ImportSummary, ImportError> {
    let loaded = load(dir)?;
    import_loaded(catalogue, &loaded, options)
}

/// Stores a validated scenario as one revision, all or nothing: its media first
/// (content-addressed, so an unused file is harmless), then every entity, checked
/// together with what the catalogue keeps.
pub fn import_loaded(
    catalogue: &CatalogueService,
    loaded: &Loaded,
    options: &ImportOptions,
) -> Result<ImportSummary, ImportError> {
    let measured: HashMap<String, StoredMeasurement> = loaded
        .measurements
        .iter()
        .map(|(k, m)| (k.clone(), StoredMeasurement::from_measurement(m)))
        .collect();
    let entities = scenario_entities(&loaded.file, &measured).map_err(|problem| {
        ImportError::Refused(format!("scenario {:?}: {problem}", loaded.file.name))
    })?;
    for (sha, data) in &loaded.media {
        catalogue.store().put_media(sha, data)?;
    }
    let mut archived = Vec::new();
    let comment = format!("import of scenario {:?}", loaded.file.name);
    let applied = catalogue
        .change(&options.author, &comment, options.at, |snapshot| {
            archived = drop_missing(snapshot, &entities, options)?;
            let by = crate::approval::Actor {
                name: &options.author,
                at: options.at,
            };
            for e in entities.iter().cloned() {
                let e = match e {
                    Entity::Campaign(c) => Entity::Campaign(crate::approval::import_campaign(
                        snapshot.campaigns.get(&c.spec.id),
                        c.spec,
                        options.at_once,
                        by,
                    )),
                    Entity::Creative(c) => Entity::Creative(crate::approval::import_creative(
                        snapshot.creatives.get(&c.spec.id),
                        c,
                        options.at_once,
                        by,
                    )),
                    other => other,
                };
                snapshot.put(e);
            }
            Ok(())
        })
        .map_err(ImportError::Catalogue)?;
    let c = &loaded.scenario.catalogue;
    Ok(ImportSummary {
        name: loaded.file.name.clone(),
        venues: c.venues.len(),
        screens: c.screens.len(),
        creatives: c.creatives.len(),
        campaigns: loaded.file.campaigns.len(),
        emergencies: loaded
            .file
            .events
            .iter()
            .filter(|e| e.action == "emergency_start")
            .count(),
        revision: applied.revision.map(|r| r.number),
        archived,
    })
}

/// Entities with history that the scenario leaves out: refused, or archived when asked.
fn drop_missing(
    snapshot: &mut Snapshot,
    entities: &[Entity],
    options: &ImportOptions,
) -> Result<Vec<String>, CatalogueError> {
    let present: HashSet<(EntityKind, &str)> =
        entities.iter().map(|e| (e.kind(), e.id())).collect();
    let at = options.at;
    let mut missing = Vec::new();
    for (id, s) in snapshot.screens.iter_mut() {
        if s.decommissioned_at.is_none() && !present.contains(&(EntityKind::Screen, id.as_str())) {
            missing.push(format!("screen {id}"));
            s.decommissioned_at = Some(at);
        }
    }
    for (id, c) in snapshot.campaigns.iter_mut() {
        if c.state != CampaignState::Archived
            && !present.contains(&(EntityKind::Campaign, id.as_str()))
        {
            missing.push(format!("campaign {id}"));
            c.state = CampaignState::Archived;
            c.archived_at = Some(at);
        }
    }
    for (id, c) in snapshot.creatives.iter_mut() {
        if c.retired_at.is_none() && !present.contains(&(EntityKind::Creative, id.as_str())) {
            missing.push(format!("creative {id}"));
            c.retired_at = Some(at);
        }
    }
    if !missing.is_empty() && !options.archive_missing {
        return Err(CatalogueError::Refused(format!(
            "the scenario leaves out {} that the catalogue keeps with their history: {}; \
             import with --archive-missing to archive them",
            missing.len(),
            summarise(&missing)
        )));
    }
    Ok(missing)
}

/// The first few names of a long list, and how many more.
fn summarise(names: &[String]) -> String {
    const SHOWN: usize = 8;
    let mut text = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}
