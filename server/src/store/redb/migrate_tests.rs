//! Tests of the migration from the pre-entity format: a store written as the previous
//! version wrote it (raw redb tables `scenarios`, `screen_keys`, `published`,
//! `emergencies`, `meta`) opens as entities with one revision by `migration`, once; a
//! damaged old scenario is refused with a way out, and the file is left as it was.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::super::FILE;
use super::*;
use crate::store::{
    CampaignState, DocumentStore, EntityKind, KeyStore, MetaStore, OpenMode, Published, ScreenKey,
    StoredEmergency,
};

// The tables as the previous version declared them.
const OLD_SCENARIOS: TableDefinition<&str, &[u8]> = TableDefinition::new("scenarios");
const OLD_SCREEN_KEYS: TableDefinition<&str, &str> = TableDefinition::new("screen_keys");
const OLD_PUBLISHED: TableDefinition<&str, &[u8]> = TableDefinition::new("published");
const OLD_EMERGENCIES: TableDefinition<&str, &[u8]> = TableDefinition::new("emergencies");
const OLD_META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const REVISIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("revisions");

const OLD_KEY: &str = "5f0c7e2a9b1d4c3e8f706a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d";
const NAME: &str = "Beijing Role Models";

fn beijing_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/beijing-role-models")
}

/// The Beijing scenario file, parsed, and as the old format stored it: the file as JSON and
/// what `media::probe_bytes` measured of each creative's file (probed once per run).
fn beijing() -> &'static (ScenarioFile, Vec<u8>) {
    static OLD: OnceLock<(ScenarioFile, Vec<u8>)> = OnceLock::new();
    OLD.get_or_init(|| {
        let dir = beijing_dir();
        let text = std::fs::read_to_string(dir.join("scenario.json")).unwrap();
        let file = playlists::scenario::parse(&text).unwrap();
        let mut measurements = HashMap::new();
        for (id, rel) in file.media_files() {
            let data = std::fs::read(dir.join(&rel)).unwrap();
            let m = media::probe_bytes(&data, &media::Limits::default())
                .unwrap_or_else(|e| panic!("{rel}: {e}"));
            let kind = match m.kind {
                media::MediaKind::Image => "image",
                media::MediaKind::Video => "video",
            };
            let stored = StoredMeasurement {
                kind: kind.into(),
                width: m.width,
                height: m.height,
                duration_ms: m.duration_ms,
                sha256: m.sha256,
                bytes: m.bytes,
            };
            measurements.insert(id, stored);
        }
        let raw: serde_json::Value = serde_json::from_str(&text).unwrap();
        let blob = serde_json::json!({ "file": raw, "measurements": measurements });
        (file, serde_json::to_vec(&blob).unwrap())
    })
}

/// An emergency started on the old server (already stored as the entity it is now).
fn drill() -> StoredEmergency {
    StoredEmergency {
        id: "drill-2023-12-19".into(),
        name: "drill".into(),
        creatives: vec!["alert-epidemic-l".into(), "alert-epidemic-p".into()],
        target: serde_json::json!({ "districts": ["daxing", "yanqing"] }),
        start: at("2023-12-19T10:00:00+08:00"),
        end: at("2023-12-19T10:30:00+08:00"),
        ended: true,
        pending: None,
    }
}

/// Writes `dir/signage.redb` with the old version's tables, filled by `fill`.
fn write_old(dir: &Path, fill: impl FnOnce(&redb::WriteTransaction)) {
    let db = Database::create(dir.join(FILE)).unwrap();
    let tx = db.begin_write().unwrap();
    tx.open_table(OLD_SCENARIOS).unwrap();
    tx.open_table(OLD_SCREEN_KEYS).unwrap();
    tx.open_table(OLD_PUBLISHED).unwrap();
    tx.open_table(OLD_EMERGENCIES).unwrap();
    tx.open_table(OLD_META).unwrap();
    fill(&tx);
    tx.commit().unwrap();
}

/// The old scenario rows and the number of revisions, read with raw redb.
fn raw_state(dir: &Path) -> (Option<Vec<String>>, u64) {
    let db = Database::open(dir.join(FILE)).unwrap();
    let tx = db.begin_read().unwrap();
    let scenarios = match tx.open_table(OLD_SCENARIOS) {
        Ok(t) => Some(
            t.iter()
                .unwrap()
                .map(|row| row.unwrap().0.value().to_owned())
                .collect(),
        ),
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(e) => panic!("{e}"),
    };
    let revisions = match tx.open_table(REVISIONS) {
        Ok(t) => t.len().unwrap(),
        Err(redb::TableError::TableDoesNotExist(_)) => 0,
        Err(e) => panic!("{e}"),
    };
    (scenarios, revisions)
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[test]
fn an_old_store_opens_as_entities_in_one_revision() {
    let dir = tempfile::tempdir().unwrap();
    let (file, blob) = beijing();
    let screen = file.screens[0].id.clone();
    let old_published = serde_json::json!({ "version": 3, "content_hash": "ab12" });
    write_old(dir.path(), |tx| {
        let mut t = tx.open_table(OLD_SCENARIOS).unwrap();
        t.insert(NAME, blob.as_slice()).unwrap();
        let mut t = tx.open_table(OLD_SCREEN_KEYS).unwrap();
        t.insert(screen.as_str(), OLD_KEY).unwrap();
        let mut t = tx.open_table(OLD_PUBLISHED).unwrap();
        let bytes = serde_json::to_vec(&old_published).unwrap();
        t.insert(screen.as_str(), bytes.as_slice()).unwrap();
        let mut t = tx.open_table(OLD_EMERGENCIES).unwrap();
        let bytes = serde_json::to_vec(&drill()).unwrap();
        t.insert(drill().id.as_str(), bytes.as_slice()).unwrap();
        let mut t = tx.open_table(OLD_META).unwrap();
        t.insert("report_window", b"{}".as_slice()).unwrap();
    });

    let store = RedbStore::open(dir.path(), OpenMode::Existing).unwrap();
    let snapshot = crate::store::CatalogueStore::snapshot(&store).unwrap();
    assert_eq!(
        (
            snapshot.venues.len(),
            snapshot.screens.len(),
            snapshot.creatives.len(),
            snapshot.campaigns.len(),
        ),
        (42, 67, 46, file.campaigns.len())
    );
    assert_eq!(file.campaigns.len(), 6);
    assert!(snapshot
        .campaigns
        .values()
        .all(|c| c.state == CampaignState::Live && c.archived_at.is_none()));
    assert!(snapshot
        .venues
        .values()
        .all(|v| v.spec.timezone.as_deref() == Some("Asia/Shanghai")));
    assert!(snapshot
        .screens
        .values()
        .all(|s| s.decommissioned_at.is_none()));
    assert!(snapshot.creatives.values().all(|c| c.retired_at.is_none()));
    let event = &snapshot.emergencies["alert-epidemic-2023-12-20"];
    assert_eq!(
        (event.start, event.end, event.ended),
        (
            at("2023-12-20T09:00:00+08:00"),
            at("2023-12-20T11:00:00+08:00"),
            true
        )
    );
    assert_eq!(
        event.creatives,
        ["alert-epidemic-l", "alert-epidemic-p"].map(String::from)
    );
    assert_eq!(snapshot.emergencies["drill-2023-12-19"], drill());
    assert_eq!(snapshot.emergencies.len(), 2);
    assert_eq!(snapshot.head, 1);

    // One revision by `migration`, naming every scenario entity as created; the emergency
    // the old server already kept stays as it was, outside it.
    let revisions = crate::store::CatalogueStore::revisions(&store, 0, usize::MAX).unwrap();
    assert_eq!(revisions.len(), 1);
    let r = &revisions[0];
    assert_eq!((r.number, r.author.as_str()), (1, "migration"));
    let named: BTreeSet<(EntityKind, String)> =
        r.changes.iter().map(|c| (c.entity, c.id.clone())).collect();
    let expected: BTreeSet<(EntityKind, String)> = snapshot
        .entities()
        .iter()
        .filter(|e| e.id() != "drill-2023-12-19")
        .map(|e| (e.kind(), e.id().to_owned()))
        .collect();
    assert_eq!(named, expected);
    assert_eq!(r.changes.len(), 42 + 67 + 46 + 6 + 1);
    for c in &r.changes {
        let now = snapshot.get(c.entity, &c.id).unwrap().to_json();
        assert_eq!((&c.before, &c.after), (&None, &Some(now)), "{}", c.id);
    }

    // What the old store kept beside the scenarios reads back.
    let keys = store.screen_keys().unwrap();
    assert_eq!(
        keys[&screen],
        [ScreenKey {
            public_hex: OLD_KEY.into(),
            valid_from: DateTime::<Utc>::UNIX_EPOCH,
            valid_until: None,
        }]
    );
    assert_eq!(keys.len(), 1);
    assert_eq!(
        store.published().unwrap(),
        HashMap::from([(
            screen.clone(),
            Published {
                version: 3,
                content_hash: "ab12".into(),
                issued_at: None,
                expires_at: None,
            }
        )])
    );
    // Published before documents were kept: no documents, and that is no damage.
    assert!(store.issued(&screen).unwrap().is_empty());
    assert_eq!(
        store.meta("report_window").unwrap().as_deref(),
        Some(b"{}".as_slice())
    );
    crate::catalogue::build(&snapshot).unwrap();

    // The old table is gone, so a second open migrates nothing.
    drop(store);
    assert_eq!(raw_state(dir.path()), (None, 1));
    let store = RedbStore::open(dir.path(), OpenMode::Existing).unwrap();
    let again = crate::store::CatalogueStore::snapshot(&store).unwrap();
    assert_eq!(again, snapshot);
    let revisions = crate::store::CatalogueStore::revisions(&store, 0, usize::MAX).unwrap();
    assert_eq!(revisions.len(), 1);
}

/// Opens an old store holding `scenarios` (name, stored bytes): the open is refused as
/// [`StoreError::Corrupt`] saying all of `expect`, again at a second try, and the file
/// keeps its old rows with nothing migrated.
fn check_refused(scenarios: &[(&str, &[u8])], expect: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_old(dir.path(), |tx| {
        let mut t = tx.open_table(OLD_SCENARIOS).unwrap();
        for (name, bytes) in scenarios {
            t.insert(*name, *bytes).unwrap();
        }
    });
    let names: Vec<String> = {
        let mut n: Vec<String> = scenarios.iter().map(|(n, _)| n.to_string()).collect();
        n.sort();
        n
    };
    for _ in 0..2 {
        let err = RedbStore::open(dir.path(), OpenMode::Existing).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        let message = err.to_string();
        for e in expect.iter().chain(&[
            "of the old format",
            "cannot migrate: re-import it into a new data directory",
        ]) {
            assert!(message.contains(e), "{message:?} does not say {e:?}");
        }
        assert_eq!(raw_state(dir.path()), (Some(names.clone()), 0));
    }
    dir
}

#[test]
fn a_damaged_old_scenario_is_refused_and_left_as_it_was() {
    check_refused(
        &[("broken", b"not json")],
        &["scenario \"broken\"", "expected ident"],
    );
    check_refused(
        &[("no file", br#"{"file": {"name": 1}, "measurements": {}}"#)],
        &["scenario \"no file\""],
    );
    // One damaged scenario beside a good one: nothing of either is migrated.
    let (_, good) = beijing();
    let mut unmeasured: serde_json::Value = serde_json::from_slice(good).unwrap();
    unmeasured["measurements"]
        .as_object_mut()
        .unwrap()
        .remove("rm2023-annual-01-l");
    let unmeasured = serde_json::to_vec(&unmeasured).unwrap();
    let dir = check_refused(
        &[("a copy", unmeasured.as_slice()), (NAME, good.as_slice())],
        &[
            "scenario \"a copy\"",
            "creative \"rm2023-annual-01-l\": its file was not measured",
        ],
    );
    // Nothing else was damaged: without the bad row the same file migrates.
    {
        let db = Database::open(dir.path().join(FILE)).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(OLD_SCENARIOS)
            .unwrap()
            .remove("a copy")
            .unwrap();
        tx.commit().unwrap();
    }
    let store = RedbStore::open(dir.path(), OpenMode::Existing).unwrap();
    let snapshot = crate::store::CatalogueStore::snapshot(&store).unwrap();
    assert_eq!((snapshot.head, snapshot.screens.len()), (1, 67));
}
