//! Conformance of [`CatalogueStore`]: commits, conflicts, the change log and its events.

use super::{at, screen, venue, Backend};
use crate::store::{Commit, Entity, EntityKind, EventKind, StoreError};

fn commit(base: u64, comment: &str, entities: Vec<Entity>) -> Commit {
    Commit {
        base,
        author: "ada".into(),
        at: at(base as i64),
        comment: comment.into(),
        entities,
    }
}

pub(crate) fn an_empty_store(s: &impl Backend) {
    assert_eq!(s.head().unwrap(), 0);
    let snapshot = s.snapshot().unwrap();
    assert_eq!(snapshot.head, 0);
    assert!(snapshot.entities().is_empty());
    assert!(s.revisions(0, 100).unwrap().is_empty());
}

pub(crate) fn a_snapshot_is_read_again_only_when_the_head_moved(s: &impl Backend) {
    s.commit(commit(0, "import", vec![venue("v1")]))
        .unwrap()
        .unwrap();
    let first = s.snapshot().unwrap();
    assert!(
        std::sync::Arc::ptr_eq(&first, &s.snapshot().unwrap()),
        "the same head: the snapshot kept"
    );
    // An event moves no head: the same snapshot still answers.
    s.record_event(EventKind::Login, "ada", at(1), "in")
        .unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &s.snapshot().unwrap()));
    let r = s
        .commit(commit(1, "screen", vec![screen("s1", 1920, None)]))
        .unwrap()
        .unwrap();
    let second = s.snapshot().unwrap();
    assert_eq!(second.head, r.number);
    assert_eq!(second.screens.keys().collect::<Vec<_>>(), ["s1"]);
    assert_eq!(first.head, 1, "a snapshot handed out is never changed");
    assert!(first.screens.is_empty());
}

pub(crate) fn commits_write_what_changed_as_one_revision(s: &impl Backend) {
    let first = vec![
        venue("v1"),
        screen("s1", 1920, None),
        screen("s2", 1920, None),
    ];
    let r1 = s
        .commit(commit(0, "import", first.clone()))
        .unwrap()
        .unwrap();
    assert_eq!(r1.number, 1);
    assert_eq!(r1.comment, "import");
    assert_eq!(r1.at, at(0), "kept to the nanosecond");
    assert_eq!(r1.changes.len(), 3);
    assert!(r1.changes.iter().all(|c| c.before.is_none()));
    let snapshot = s.snapshot().unwrap();
    assert_eq!(snapshot.head, 1);
    assert_eq!(s.head().unwrap(), 1);
    assert_eq!(snapshot.entities(), first, "read back as written");

    // The same entities again: nothing differs, no revision.
    assert!(s
        .commit(commit(1, "again", first.clone()))
        .unwrap()
        .is_none());
    assert_eq!(s.head().unwrap(), 1);

    // One changed among unchanged ones: only it is in the revision, with its before.
    let changed = screen("s2", 3840, Some(at(5)));
    let r2 = s
        .commit(commit(1, "s2 replaced", vec![venue("v1"), changed.clone()]))
        .unwrap()
        .unwrap();
    assert_eq!(r2.number, 2);
    assert_eq!(r2.changes.len(), 1);
    let change = &r2.changes[0];
    assert_eq!(
        (change.entity, change.id.as_str()),
        (EntityKind::Screen, "s2")
    );
    assert_eq!(change.before, Some(first[2].to_json()));
    assert_eq!(change.after, Some(changed.to_json()));
    let snapshot = s.snapshot().unwrap();
    assert_eq!(snapshot.get(EntityKind::Screen, "s2"), Some(changed));
    assert_eq!(
        snapshot.get(EntityKind::Screen, "s1"),
        Some(first[1].clone())
    );

    // The change log holds both, whole, in order.
    assert_eq!(s.revisions(0, 10).unwrap(), vec![r1.clone(), r2.clone()]);
    assert_eq!(s.revisions(1, 10).unwrap(), vec![r2]);
    assert_eq!(s.revisions(0, 1).unwrap(), vec![r1]);
    assert!(s.revisions(2, 10).unwrap().is_empty());
    assert!(s.revisions(u64::MAX, 10).unwrap().is_empty());
}

pub(crate) fn a_stale_base_conflicts_and_writes_nothing(s: &impl Backend) {
    s.commit(commit(0, "first", vec![venue("v1")]))
        .unwrap()
        .unwrap();
    let before = s.snapshot().unwrap();
    for base in [0, 2, 99] {
        let e = s
            .commit(commit(
                base,
                "stale",
                vec![venue("v2"), screen("s1", 1, None)],
            ))
            .unwrap_err();
        assert!(
            matches!(e, StoreError::Conflict { expected, head: 1 } if expected == base),
            "{e:?}"
        );
    }
    assert_eq!(s.snapshot().unwrap(), before, "nothing written");
    assert_eq!(s.revisions(0, 10).unwrap().len(), 1);
}

pub(crate) fn events_are_logged_but_do_not_move_the_head(s: &impl Backend) {
    let r1 = s
        .commit(commit(0, "first", vec![venue("v1")]))
        .unwrap()
        .unwrap();
    let e2 = s
        .record_event(EventKind::Login, "ada", at(10), "logged in")
        .unwrap();
    assert_eq!(e2.number, 2);
    assert_eq!(e2.event, Some(EventKind::Login));
    assert!(e2.changes.is_empty());
    let e3 = s
        .record_event(EventKind::Refused, "bob", at(11), "no role")
        .unwrap();
    assert_eq!(e3.number, 3);
    assert_eq!(s.head().unwrap(), 1, "events do not move the head");
    assert_eq!(s.snapshot().unwrap().head, 1);

    // A commit computed before the events still applies, numbered after them.
    let r4 = s
        .commit(commit(1, "second", vec![venue("v2")]))
        .unwrap()
        .unwrap();
    assert_eq!(r4.number, 4);
    assert_eq!(s.head().unwrap(), 4);
    let log: Vec<u64> = s
        .revisions(0, 10)
        .unwrap()
        .iter()
        .map(|r| r.number)
        .collect();
    assert_eq!(log, [1, 2, 3, 4]);
    assert_eq!(s.revisions(0, 10).unwrap()[..3], [r1, e2, e3]);
}

pub(crate) fn concurrent_commits_from_one_base_one_wins(s: &impl Backend) {
    s.commit(commit(0, "first", vec![venue("v1")]))
        .unwrap()
        .unwrap();
    let outcomes: Vec<Result<Option<u64>, StoreError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                scope.spawn(move || {
                    s.commit(commit(1, "race", vec![venue(&format!("w{i}"))]))
                        .map(|r| r.map(|r| r.number))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let won: Vec<_> = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Some(2))))
        .collect();
    let lost = outcomes
        .iter()
        .filter(|o| {
            matches!(
                o,
                Err(StoreError::Conflict {
                    expected: 1,
                    head: 2
                })
            )
        })
        .count();
    assert_eq!((won.len(), lost), (1, 5), "{outcomes:?}");
    assert_eq!(s.head().unwrap(), 2);
    // The snapshot holds the winner's venue alone beside the first.
    assert_eq!(s.snapshot().unwrap().venues.len(), 2);
    assert_eq!(s.revisions(0, 10).unwrap().len(), 2);
}
