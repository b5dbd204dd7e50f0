//! The server's redb store: imported scenarios and emergency takeovers (together the
//! catalogue), screens' public keys and the schedule versions last published. The ledger keeps its own tables in the same file
//! (see `ledger`). Media bytes live beside it, content-addressed, in `media/`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use playlists::scenario::{FileCampaign, FileTarget, FileWindow, Measurement, ScenarioFile};
use playlists::{Catalogue, MediaKind, Sha256};

const SCENARIOS: TableDefinition<&str, &[u8]> = TableDefinition::new("scenarios");
const SCREEN_KEYS: TableDefinition<&str, &str> = TableDefinition::new("screen_keys");
const PUBLISHED: TableDefinition<&str, &[u8]> = TableDefinition::new("published");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const EMERGENCIES: TableDefinition<&str, &[u8]> = TableDefinition::new("emergencies");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {source}")]
    Open {
        path: PathBuf,
        source: Box<redb::Error>,
    },
    #[error("store: {0}")]
    Db(#[from] Box<redb::Error>),
    #[error("store file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("stored scenario {name:?} no longer loads: {problem}")]
    Corrupt { name: String, problem: String },
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(Box::new(redb::Error::from(e)))
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// A scenario as imported: its file and what was measured of each creative.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredScenario {
    pub file: serde_json::Value,
    /// Ordered, so storing the same scenario twice writes the same bytes.
    pub measurements: BTreeMap<String, StoredMeasurement>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredMeasurement {
    pub kind: String,
    pub width: u32,
    pub height: u32,
    pub duration_ms: Option<u64>,
    pub sha256: String,
    pub bytes: u64,
}

impl StoredMeasurement {
    pub fn from_measurement(m: &Measurement) -> StoredMeasurement {
        StoredMeasurement {
            kind: m.kind.as_str().to_owned(),
            width: m.width,
            height: m.height,
            duration_ms: m.duration_ms,
            sha256: m.sha256.to_string(),
            bytes: m.bytes,
        }
    }
    fn to_measurement(&self) -> Option<Measurement> {
        Some(Measurement {
            kind: MediaKind::parse(&self.kind)?,
            width: self.width,
            height: self.height,
            duration_ms: self.duration_ms,
            sha256: Sha256::parse(&self.sha256).ok()?,
            bytes: self.bytes,
        })
    }
}

/// What was last published for a screen. (Times are absent in stores written before
/// schedules expired; such a document is re-signed with a new version once.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub version: u64,
    pub content_hash: String,
    #[serde(default)]
    pub issued_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// An emergency takeover triggered by staff: a campaign of tier `emergency`, weight 1,
/// every daypart, from when the server accepted it until it is ended (or `end`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEmergency {
    pub id: String,
    pub name: String,
    pub creatives: Vec<String>,
    /// Scenario targeting keys (`screens`, `venues`, `venue_types`, `districts`, `tags`).
    pub target: serde_json::Value,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Set when staff ended it (then `end` is that time).
    #[serde(default)]
    pub ended: bool,
}

impl StoredEmergency {
    /// The campaign as a scenario file would write it, validated with the rest.
    pub fn file_campaign(&self) -> Result<FileCampaign, String> {
        let target: FileTarget = serde_json::from_value(self.target.clone())
            .map_err(|e| format!("emergency {:?} target: {e}", self.id))?;
        Ok(FileCampaign {
            id: self.id.clone(),
            name: self.name.clone(),
            priority: "emergency".into(),
            weight: 1,
            flight: FileWindow {
                start: self.start.to_rfc3339(),
                end: self.end.to_rfc3339(),
            },
            dayparts: vec!["* * * * *".into()],
            target,
            creatives: self.creatives.clone(),
            max_plays_per_hour: None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Store {
    db: Arc<Database>,
    dir: PathBuf,
}

/// Opens a redb file, creating it atomically: a crash during the very first create leaves
/// only a temporary file behind, never a database that cannot be opened.
pub fn open_redb(path: &Path) -> Result<Database, StoreError> {
    let open_err = |e: redb::DatabaseError| StoreError::Open {
        path: path.to_owned(),
        source: Box::new(e.into()),
    };
    if path.exists() {
        return Database::open(path).map_err(open_err);
    }
    let tmp = path.with_extension("redb.tmp");
    let _ = std::fs::remove_file(&tmp);
    drop(Database::create(&tmp).map_err(open_err)?);
    std::fs::rename(&tmp, path).map_err(|source| StoreError::Io {
        path: path.to_owned(),
        source,
    })?;
    Database::open(path).map_err(open_err)
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir.join("media")).map_err(|source| StoreError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let db = open_redb(&dir.join("signage.redb"))?;
        let tx = db.begin_write()?;
        tx.open_table(SCENARIOS)?;
        tx.open_table(SCREEN_KEYS)?;
        tx.open_table(PUBLISHED)?;
        tx.open_table(META)?;
        tx.open_table(EMERGENCIES)?;
        tx.commit()?;
        Ok(Store {
            db: Arc::new(db),
            dir: dir.to_owned(),
        })
    }

    pub fn db(&self) -> Arc<Database> {
        self.db.clone()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn media_path(&self, sha256: &Sha256) -> PathBuf {
        self.dir.join("media").join(sha256.as_str())
    }

    /// Writes media bytes under their hash (temporary file, fsync, rename): idempotent.
    pub fn put_media(&self, sha256: &Sha256, data: &[u8]) -> Result<(), StoreError> {
        let path = self.media_path(sha256);
        if path.exists() {
            return Ok(());
        }
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        let tmp = path.with_extension("tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(data).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &path).map_err(io)
    }

    /// Saves a validated scenario (replacing one of the same name) in one transaction.
    pub fn put_scenario(&self, name: &str, scenario: &StoredScenario) -> Result<bool, StoreError> {
        let bytes = serde_json::to_vec(scenario).expect("stored scenario serialises");
        let tx = self.db.begin_write()?;
        let changed = {
            let mut t = tx.open_table(SCENARIOS)?;
            let old = t.get(name)?.map(|v| v.value().to_vec());
            let changed = old.as_deref() != Some(bytes.as_slice());
            if changed {
                t.insert(name, bytes.as_slice())?;
            }
            changed
        };
        tx.commit()?;
        Ok(changed)
    }

    pub fn scenarios(&self) -> Result<Vec<(String, StoredScenario)>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(SCENARIOS)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            let s: StoredScenario =
                serde_json::from_slice(v.value()).map_err(|e| StoreError::Corrupt {
                    name: k.value().to_owned(),
                    problem: e.to_string(),
                })?;
            out.push((k.value().to_owned(), s));
        }
        Ok(out)
    }

    /// The catalogue: every stored scenario merged (by id, later names win) with the
    /// stored emergencies, validated.
    pub fn catalogue(&self) -> Result<Catalogue, StoreError> {
        let emergencies = self.emergencies()?;
        self.catalogue_with(&emergencies)?
            .map_err(|problem| StoreError::Corrupt {
                name: "emergencies".into(),
                problem,
            })
    }

    /// The catalogue with `emergencies` in place of the stored ones; the inner error says
    /// why they do not validate against the scenarios (an unknown creative, a bad target).
    pub fn catalogue_with(
        &self,
        emergencies: &[StoredEmergency],
    ) -> Result<Result<Catalogue, String>, StoreError> {
        let mut merged: Option<ScenarioFile> = None;
        let mut measured = HashMap::new();
        for (name, s) in self.scenarios()? {
            let corrupt = |problem: String| StoreError::Corrupt {
                name: name.clone(),
                problem,
            };
            let file: ScenarioFile =
                serde_json::from_value(s.file.clone()).map_err(|e| corrupt(e.to_string()))?;
            for (id, m) in &s.measurements {
                measured.insert(
                    id.clone(),
                    m.to_measurement()
                        .ok_or_else(|| corrupt(format!("measurement of {id}")))?,
                );
            }
            merged = Some(match merged {
                None => file,
                Some(mut acc) => {
                    merge_by_id(&mut acc.venues, file.venues, |v| v.id.clone());
                    merge_by_id(&mut acc.screens, file.screens, |v| v.id.clone());
                    merge_by_id(&mut acc.creatives, file.creatives, |v| v.id.clone());
                    merge_by_id(&mut acc.campaigns, file.campaigns, |v| v.id.clone());
                    merge_by_id(&mut acc.events, file.events, |v| {
                        format!("{}/{}", v.id, v.action)
                    });
                    acc
                }
            });
        }
        let Some(mut file) = merged else {
            return Ok(match emergencies.first() {
                Some(e) => Err(format!("emergency {:?}: no scenario is imported", e.id)),
                None => Ok(Catalogue::default()),
            });
        };
        let scenario = file.build(&measured).map_err(|e| StoreError::Corrupt {
            name: file.name.clone(),
            problem: e.to_string(),
        })?;
        if emergencies.is_empty() {
            return Ok(Ok(scenario.catalogue));
        }
        for e in emergencies {
            match e.file_campaign() {
                Ok(c) => file.campaigns.push(c),
                Err(problem) => return Ok(Err(problem)),
            }
        }
        Ok(file
            .build(&measured)
            .map(|s| s.catalogue)
            .map_err(|e| e.to_string()))
    }

    /// Every emergency takeover, active or ended, by id.
    pub fn emergencies(&self) -> Result<Vec<StoredEmergency>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(EMERGENCIES)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            out.push(
                serde_json::from_slice(v.value()).map_err(|e| StoreError::Corrupt {
                    name: format!("emergency {}", k.value()),
                    problem: e.to_string(),
                })?,
            );
        }
        Ok(out)
    }

    /// Saves (or replaces) one emergency in one transaction.
    pub fn put_emergency(&self, e: &StoredEmergency) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(e).expect("stored emergency serialises");
        let tx = self.db.begin_write()?;
        tx.open_table(EMERGENCIES)?
            .insert(e.id.as_str(), bytes.as_slice())?;
        tx.commit()?;
        Ok(())
    }

    pub fn set_screen_key(&self, screen: &str, public_hex: &str) -> Result<(), StoreError> {
        let tx = self.db.begin_write()?;
        tx.open_table(SCREEN_KEYS)?.insert(screen, public_hex)?;
        tx.commit()?;
        Ok(())
    }

    pub fn screen_keys(&self) -> Result<HashMap<String, String>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(SCREEN_KEYS)?;
        let mut out = HashMap::new();
        for row in t.iter()? {
            let (k, v) = row?;
            out.insert(k.value().to_owned(), v.value().to_owned());
        }
        Ok(out)
    }

    pub fn published(&self) -> Result<HashMap<String, Published>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(PUBLISHED)?;
        let mut out = HashMap::new();
        for row in t.iter()? {
            let (k, v) = row?;
            if let Ok(p) = serde_json::from_slice(v.value()) {
                out.insert(k.value().to_owned(), p);
            }
        }
        Ok(out)
    }

    pub fn set_published(&self, rows: &[(String, Published)]) -> Result<(), StoreError> {
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(PUBLISHED)?;
            for (screen, p) in rows {
                t.insert(
                    screen.as_str(),
                    serde_json::to_vec(p).expect("serialises").as_slice(),
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(META)?;
        Ok(t.get(key)?.map(|v| v.value().to_vec()))
    }

    pub fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let tx = self.db.begin_write()?;
        tx.open_table(META)?.insert(key, value)?;
        tx.commit()?;
        Ok(())
    }
}

fn merge_by_id<T>(acc: &mut Vec<T>, new: Vec<T>, id: impl Fn(&T) -> String) {
    for item in new {
        let key = id(&item);
        match acc.iter().position(|x| id(x) == key) {
            Some(i) => acc[i] = item,
            None => acc.push(item),
        }
    }
}
