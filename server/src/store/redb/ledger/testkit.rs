//! Test helpers for the redb ledger: a fresh ledger in a temp dir, and the backend-neutral
//! helpers of `store/ledger/testkit.rs` (the scripted agent, key rings, queries).

use std::sync::Arc;

pub(crate) use crate::store::ledger::testkit::*;

use super::Ledger;

pub(crate) fn ledger() -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = redb::Database::create(dir.path().join("ledger.redb")).expect("create redb");
    let ledger = Ledger::open(Arc::new(db)).expect("open ledger");
    (dir, ledger)
}
