//! Two-person confirmation, announcements of another replica's changes, whole-second flights.

use super::*;

/// Two-person confirmation: the starter cannot confirm; a second operator can, within
/// the window only; until then nothing plays and nothing is announced.
#[test]
fn a_second_operator_confirms_in_time_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::open(dir.path(), crate::store::OpenMode::Create).unwrap();
    let catalogue = CatalogueService::new(store);
    let scenario =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/beijing-role-models");
    crate::import::import(
        &catalogue,
        &scenario,
        &crate::import::ImportOptions::admin(),
    )
    .unwrap();
    let key = Keypair::from_secret([1; 32]);
    let t0: DateTime<Utc> = "2026-11-29T12:00:00Z".parse().unwrap();
    let minutes = TimeDelta::minutes;
    let r = |who: &'static str, now| Request {
        catalogue: &catalogue,
        key: &key,
        author: who,
        now,
        confirm_within: Some(minutes(10)),
        renditions: None,
    };
    let req = |id: &str| StartRequest {
        id: id.into(),
        name: "drill".into(),
        creatives: vec!["alert-epidemic-l".into()],
        target: serde_json::json!({ "districts": ["xicheng"] }),
        until: None,
    };
    let plays = |id: &str| {
        catalogue
            .catalogue()
            .unwrap()
            .campaigns
            .iter()
            .any(|c| c.id.as_str() == id)
    };

    let a = start(r("olga", t0), req("drill-1")).unwrap();
    assert!(a.commands.is_empty() && a.affected.is_empty(), "{a:?}");
    assert_eq!(
        a.emergency.pending.as_ref().unwrap().confirm_by,
        t0 + minutes(10)
    );
    assert!(!plays("drill-1"));
    let own = confirm(r("olga", t0 + minutes(1)), "drill-1").unwrap_err();
    assert_eq!(
        own.to_string(),
        "olga started emergency \"drill-1\" and cannot confirm it: a second operator must"
    );
    let c = confirm(r("otto", t0 + minutes(5)), "drill-1").unwrap();
    assert!(!c.commands.is_empty() && !c.affected.is_empty());
    assert_eq!(c.emergency.start, t0 + minutes(5));
    assert!(c.emergency.pending.is_none());
    assert!(plays("drill-1"));
    assert!(matches!(
        confirm(r("otto", t0 + minutes(6)), "drill-1"),
        Err(EmergencyError::NotPending(_))
    ));

    start(r("olga", t0), req("drill-2")).unwrap();
    let late = confirm(r("otto", t0 + minutes(11)), "drill-2").unwrap_err();
    assert!(
        matches!(late, EmergencyError::ConfirmExpired { .. }),
        "{late}"
    );
    assert!(!plays("drill-2"));
    let ended = end(r("olga", t0 + minutes(12)), "drill-2").unwrap();
    assert!(ended.commands.is_empty() && ended.affected.is_empty());
    assert!(ended.emergency.ended);
}

/// What a replica that did not make a change announces for it: a start (or a
/// confirmation) the start commands while it runs, an end the end commands, a pending
/// start nothing.
#[test]
fn another_replicas_changes_announce_as_their_own_would() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::open(dir.path(), crate::store::OpenMode::Create).unwrap();
    let catalogue = CatalogueService::new(store);
    let scenario =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/beijing-role-models");
    let admin = crate::import::ImportOptions::admin();
    crate::import::import(&catalogue, &scenario, &admin).unwrap();
    let key = Keypair::from_secret([1; 32]);
    let t0: DateTime<Utc> = "2026-11-29T12:00:00Z".parse().unwrap();
    let r = |now, confirm_within| Request {
        catalogue: &catalogue,
        key: &key,
        author: "olga",
        now,
        confirm_within,
        renditions: None,
    };
    let req = |id: &str| StartRequest {
        id: id.into(),
        name: "drill".into(),
        creatives: vec!["alert-epidemic-l".into()],
        target: serde_json::json!({ "districts": ["xicheng"] }),
        until: None,
    };
    let told = |before: Option<&StoredEmergency>, after: &StoredEmergency, now| {
        let (snapshot, _) = catalogue.current().unwrap();
        announced(&key, &snapshot, before, after, now, None).unwrap()
    };

    let started = start(r(t0, None), req("drill-1")).unwrap();
    let (commands, at) = told(None, &started.emergency, t0).expect("a start is announced");
    let screens: Vec<_> = commands.iter().map(|(s, _)| s.clone()).collect();
    let theirs: Vec<_> = started.commands.iter().map(|(s, _)| s.clone()).collect();
    assert_eq!(screens, theirs);
    assert_eq!(at, started.emergency.start);

    let later = t0 + TimeDelta::minutes(1);
    let ended = end(r(later, None), "drill-1").unwrap();
    let (commands, at) =
        told(Some(&started.emergency), &ended.emergency, later).expect("an end is announced");
    assert_eq!(commands.len(), ended.commands.len());
    assert_eq!(at, ended.emergency.end);
    assert!(
        told(None, &started.emergency, later).is_none(),
        "an ended emergency's start is not sent again"
    );

    let pending = start(r(t0, Some(TimeDelta::minutes(10))), req("drill-2")).unwrap();
    assert!(told(None, &pending.emergency, t0).is_none());
}

#[test]
fn flights_start_and_end_on_whole_seconds() {
    let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
    assert_eq!(
        whole_second(t("2026-11-22T07:58:34.492270405Z")),
        t("2026-11-22T07:58:35Z")
    );
    assert_eq!(
        whole_second(t("2026-11-22T07:58:34Z")),
        t("2026-11-22T07:58:34Z")
    );
}
