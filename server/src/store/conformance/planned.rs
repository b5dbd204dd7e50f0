//! Conformance of [`PlannedStore`]: parts found by overlap and screen, plans by id and
//! hours, written with their documents or not at all.

use super::{at, Backend};
use crate::store::{
    plan_id, IssuedDocument, PlanCounts, PlanEntry, PlanSource, PlannedChange, PlannedPart,
    PlannedStore,
};

fn part(screen: &str, from: i64, to: i64, plan: u64) -> PlannedPart {
    PlannedPart {
        screen_id: screen.into(),
        version: 1,
        venue_id: "v1".into(),
        venue_type: "retail".into(),
        district: Some("d1".into()),
        from: at(from),
        to: at(to),
        plan,
    }
}

fn doc(screen: &str) -> IssuedDocument {
    IssuedDocument {
        screen_id: screen.into(),
        version: 1,
        issued_at: at(0),
        expires_at: at(86_400),
        in_force_from: at(0),
        content_hash: "h".into(),
        signed: "{}".into(),
    }
}

fn counts(last: u32) -> (u64, PlanCounts) {
    let counts = PlanCounts {
        // Kept with the plan and read back (a plan kept before sources reads as `None`).
        source: Some(PlanSource {
            screen_id: "s1".into(),
            version: 1,
        }),
        campaigns: vec!["c1".into()],
        creatives: vec!["k1".into(), "k2".into()],
        entries: vec![
            PlanEntry(1_703_030_400, 0, 0, 5),
            PlanEntry(1_703_034_000, 0, 1, last),
        ],
    };
    (plan_id(&serde_json::to_vec(&counts).unwrap()), counts)
}

/// The screens of the parts overlapping `[at(a), at(b))`.
fn screens(ps: &dyn PlannedStore, a: i64, b: i64) -> Vec<String> {
    ps.planned_parts(None, at(a), at(b))
        .unwrap()
        .into_iter()
        .map(|p| p.screen_id)
        .collect()
}

pub(crate) fn planned_counts_kept_with_their_documents(s: &impl Backend) {
    let ps = s.planned_store().expect("the backend keeps planned counts");
    assert!(ps
        .planned_parts(None, at(0), at(86_400))
        .unwrap()
        .is_empty());
    assert_eq!(ps.plan_counts(1, 0, i64::MAX).unwrap(), None);

    let (id, plan) = counts(7);
    let change = PlannedChange {
        remove: vec![],
        parts: vec![
            part("s1", 0, 7_200, id),
            part("s2", 5_400, 7_200, id),
            // Empty: not kept.
            part("s3", 100, 100, id),
        ],
        plans: vec![(id, plan.clone())],
    };
    ps.record_issued_planned(&[doc("s1")], &change).unwrap();
    assert_eq!(
        s.published().unwrap().len(),
        1,
        "the documents are kept too"
    );
    assert_eq!(s.issued("s1").unwrap(), vec![doc("s1")]);

    // Overlap is decided on the parts' exact times (nanoseconds included).
    assert_eq!(screens(ps, 0, 5_400), ["s1"]);
    assert_eq!(screens(ps, 3_600, 10_800), ["s1", "s2"]);
    assert_eq!(screens(ps, 7_200, 10_800), Vec::<String>::new());
    assert_eq!(screens(ps, -100, 0), Vec::<String>::new());
    let one = ps.planned_parts(Some("s2"), at(0), at(86_400)).unwrap();
    assert_eq!(one, vec![change.parts[1].clone()], "read back as written");
    assert!(ps
        .planned_parts(Some("nobody"), at(0), at(86_400))
        .unwrap()
        .is_empty());

    // A plan's entries by hour.
    let got = ps
        .plan_counts(id, 1_703_034_000, 1_703_037_600)
        .unwrap()
        .unwrap();
    assert_eq!(got.entries, vec![PlanEntry(1_703_034_000, 0, 1, 7)]);
    assert_eq!(
        (got.campaigns, got.creatives),
        (plan.campaigns.clone(), plan.creatives.clone())
    );
    assert_eq!(ps.plan_counts(id, 0, i64::MAX).unwrap(), Some(plan.clone()));
    assert_eq!(ps.plan_counts(id ^ 1, 0, i64::MAX).unwrap(), None);

    // The same plan again is one plan; a part with the same screen and start is replaced
    // (the later one in a change wins); removing by (screen, start).
    let (other, other_plan) = counts(9);
    let again = PlannedChange {
        remove: vec![("s2".into(), at(5_400))],
        parts: vec![part("s1", 0, 3_600, id), part("s1", 0, 1_800, other)],
        plans: vec![(id, plan.clone()), (other, other_plan.clone())],
    };
    ps.record_issued_planned(&[], &again).unwrap();
    assert_eq!(
        ps.planned_parts(None, at(0), at(86_400)).unwrap(),
        vec![part("s1", 0, 1_800, other)]
    );
    assert_eq!(ps.plan_counts(id, 0, i64::MAX).unwrap(), Some(plan.clone()));
    assert_eq!(
        ps.plan_counts(other, 0, i64::MAX).unwrap(),
        Some(other_plan)
    );

    // A plan filed under another's id is refused, and the documents with it.
    let wrong = PlannedChange {
        plans: vec![(id ^ 1, plan)],
        parts: vec![part("s9", 0, 60, id ^ 1)],
        ..PlannedChange::default()
    };
    assert!(ps.record_issued_planned(&[doc("s9")], &wrong).is_err());
    assert_eq!(s.published().unwrap().len(), 1);
    assert!(s.issued("s9").unwrap().is_empty());
    assert_eq!(screens(ps, 0, 86_400), ["s1"]);
}
