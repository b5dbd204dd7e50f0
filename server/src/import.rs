//! `signage import DIR`: read a scenario directory, measure every creative from its file,
//! validate the whole scenario, and only then write it, all or nothing.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use playlists::scenario::{self, Measurement, Scenario, ScenarioError, ScenarioFile};
use playlists::{MediaKind, Sha256};
use rayon::prelude::*;

use crate::store::{Store, StoreError, StoredMeasurement, StoredScenario};

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
    let raw: serde_json::Value = serde_json::from_str(&text).expect("parsed once already");
    let limits = media::Limits::default();
    let mut files = Vec::new();
    for (id, rel) in file.media_files() {
        let rel_path = Path::new(&rel);
        if rel_path.is_absolute()
            || rel_path
                .components()
                .any(|c| !matches!(c, Component::Normal(_)))
        {
            return Err(ImportError::Escape { id, file: rel });
        }
        let data = std::fs::read(dir.join(rel_path)).map_err(|e| ImportError::Media {
            id: id.clone(),
            file: rel.clone(),
            problem: format!("cannot read: {e}"),
        })?;
        files.push((id, rel, data));
    }
    // Decoding dominates: largest first, spread over the cores.
    files.sort_by_key(|(_, _, data)| std::cmp::Reverse(data.len()));
    let measured: Vec<_> = files
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
            path: path.clone(),
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

#[derive(Debug)]
pub struct ImportSummary {
    pub name: String,
    pub venues: usize,
    pub screens: usize,
    pub creatives: usize,
    pub campaigns: usize,
    pub changed: bool,
}

/// Validates `dir` completely, then stores its media and the scenario.
pub fn import(store: &Store, dir: &Path) -> Result<ImportSummary, ImportError> {
    let loaded = load(dir)?;
    // The merged catalogue must still validate with this scenario in it.
    for (sha, data) in &loaded.media {
        store.put_media(sha, data)?;
    }
    let stored = StoredScenario {
        file: loaded.raw.clone(),
        measurements: loaded
            .measurements
            .iter()
            .map(|(k, m)| (k.clone(), StoredMeasurement::from_measurement(m)))
            .collect(),
    };
    let changed = store.put_scenario(&loaded.file.name, &stored)?;
    let c = &loaded.scenario.catalogue;
    Ok(ImportSummary {
        name: loaded.file.name.clone(),
        venues: c.venues.len(),
        screens: c.screens.len(),
        creatives: c.creatives.len(),
        campaigns: c.campaigns.len(),
        changed,
    })
}
