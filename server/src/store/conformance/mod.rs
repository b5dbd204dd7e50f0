//! The store traits' conformance suite: each check is written once, generic over a
//! backend, and run against both the redb store (a fresh temporary directory) and the
//! PostgreSQL store (a fresh database on 127.0.0.1:5432, dropped afterwards; see
//! `postgres::testdb`). What one backend does, the other must: same revisions, same
//! conflicts, same refusals, same errors' variants.

use chrono::{DateTime, Utc};

use super::{Entity, ScreenEntity, VenueEntity};

mod archive;
mod catalogue;
mod copy;
mod figures;
pub(crate) mod ledger;
mod others;
mod planned;

/// What both backends implement: the whole store (the conformance cases take it by this
/// name).
pub(crate) use super::Store as Backend;

/// A store under test and what it lives in (dropped after it).
pub(crate) struct Fixture<S> {
    pub store: S,
    _dir: tempfile::TempDir,
    _db: Option<super::postgres::testdb::TestDb>,
}

pub(crate) fn redb() -> Fixture<super::redb::RedbStore> {
    let dir = tempfile::tempdir().unwrap();
    let store = super::redb::RedbStore::open(dir.path(), super::OpenMode::Create).unwrap();
    Fixture {
        store,
        _dir: dir,
        _db: None,
    }
}

pub(crate) fn postgres() -> Fixture<super::postgres::PgStore> {
    let db = super::postgres::testdb::TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let store = db.open(dir.path(), super::OpenMode::Create);
    Fixture {
        store,
        _dir: dir,
        _db: Some(db),
    }
}

/// A time with nanoseconds: stores must keep it exactly.
pub(crate) fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_780_000_000 + seconds, 123_456_789).unwrap()
}

pub(crate) fn venue(id: &str) -> Entity {
    Entity::Venue(VenueEntity {
        spec: serde_json::from_value(serde_json::json!({
            "id": id, "name": format!("Venue {id}"), "type": "mall",
            "timezone": "Asia/Shanghai", "tags": ["a", "b"],
            "operating_hours": "* 5-23 * * *", "location": {"lat": 39.9075, "lon": 116.4013},
        }))
        .unwrap(),
    })
}

pub(crate) fn screen(id: &str, width: u32, decommissioned_at: Option<DateTime<Utc>>) -> Entity {
    Entity::Screen(ScreenEntity {
        spec: serde_json::from_value(serde_json::json!({
            "id": id, "venue": "v1", "resolution": {"width": width, "height": 1080},
        }))
        .unwrap(),
        decommissioned_at,
    })
}

/// Runs every check of the suite against the backend `fixture` makes.
macro_rules! conformance {
    ($module:ident, $fixture:path) => {
        mod $module {
            conformance!(@checks $fixture;
                catalogue::an_empty_store,
                catalogue::commits_write_what_changed_as_one_revision,
                catalogue::a_snapshot_is_read_again_only_when_the_head_moved,
                catalogue::a_stale_base_conflicts_and_writes_nothing,
                catalogue::events_are_logged_but_do_not_move_the_head,
                catalogue::concurrent_commits_from_one_base_one_wins,
                others::documents_issued_and_published,
                others::keys_and_their_validity,
                others::broker_logins_only_for_screens_in_service,
                others::users_tokens_and_passwords,
                others::sessions_kept_ended_and_purged,
                others::meta_settings,
                others::media_put_and_adopted,
                others::renditions_by_source_size_and_fit,
                others::renditions_finished_in_order,
                planned::planned_counts_kept_with_their_documents,
            );
        }
    };
    (@checks $fixture:path; $($module:ident::$check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                let fixture = $fixture();
                super::$module::$check(&fixture.store);
            }
        )*
    };
}

conformance!(on_redb, super::redb);
conformance!(on_postgres, super::postgres);
