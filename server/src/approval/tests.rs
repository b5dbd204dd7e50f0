//! The approval state machine, step by step: each case is a sequence of steps by named
//! people, checked after each against the expected status, the version that plays, and
//! the refusal when one is expected.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};

use playlists::scenario::{FileCampaign, FileCreative, FileTarget, FileWindow};

use super::*;
use crate::store::{CreativeEntity, StoredMeasurement};

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 12, minute, 0)
        .single()
        .expect("time")
}

fn by(name: &str, minute: u32) -> Actor<'_> {
    Actor {
        name,
        at: at(minute),
    }
}

fn spec(weight: u32) -> FileCampaign {
    FileCampaign {
        id: "c1".into(),
        name: "C1".into(),
        priority: "normal".into(),
        weight,
        flight: FileWindow {
            start: "2026-12-01T00:00:00Z".into(),
            end: "2026-12-31T00:00:00Z".into(),
        },
        dayparts: vec!["* * * * *".into()],
        target: FileTarget::default(),
        creatives: vec!["k1".into()],
        max_plays_per_hour: None,
    }
}

fn creative(status: ApprovalStatus) -> CreativeEntity {
    CreativeEntity {
        spec: FileCreative {
            id: "k1".into(),
            file: "media/k1.jpg".into(),
            kind: "image".into(),
            duration_seconds: 10,
            title: String::new(),
            sha256: "00".repeat(32),
            bytes: 1,
            fit: None,
            background: None,
            any_aspect: false,
        },
        measurement: StoredMeasurement {
            kind: "image".into(),
            width: 1920,
            height: 1080,
            duration_ms: None,
            sha256: "00".repeat(32),
            bytes: 1,
        },
        retired_at: None,
        approval: Approval {
            status,
            ..Approval::draft()
        },
        checks: Vec::new(),
        source_sha256: None,
        thumbnail_sha256: None,
    }
}

/// One step on campaign `c1`.
#[derive(Debug, Clone)]
enum Step {
    Edit(&'static str, u32),
    Submit(&'static str),
    Approve(&'static str),
    Reject(&'static str, &'static str),
    Archive,
}

/// What must hold after a step: the status, the weight of the version that plays (none:
/// nothing plays), and the refusal's kind if the step was refused.
type Expect = (ApprovalStatus, Option<u32>, Option<&'static str>);

fn check(creative_status: ApprovalStatus, steps: &[(Step, Expect)]) {
    let creatives = BTreeMap::from([("k1".to_owned(), creative(creative_status))]);
    let mut c = new_campaign(spec(1), false, by("sam", 0));
    assert_eq!(c.state, CampaignState::Draft);
    assert!(c.live_spec().is_none(), "a new draft plays nowhere");
    for (i, (step, (status, playing, refused))) in steps.iter().enumerate() {
        let minute = i as u32 + 1;
        let before = c.clone();
        let result = match step {
            Step::Edit(who, weight) => edit_campaign(&mut c, spec(*weight), false, by(who, minute)),
            Step::Submit(who) => submit_campaign(&mut c, by(who, minute)),
            Step::Approve(who) => {
                decide_campaign(&mut c, &Decision::Approve, &creatives, by(who, minute))
            }
            Step::Reject(who, reason) => decide_campaign(
                &mut c,
                &Decision::Reject {
                    reason: (*reason).into(),
                },
                &creatives,
                by(who, minute),
            ),
            Step::Archive => {
                c.state = CampaignState::Archived;
                Ok(())
            }
        };
        let kind = result.as_ref().err().map(|e| match e {
            ApprovalError::WrongState { .. } => "wrong state",
            ApprovalError::OwnSubmission { .. } => "own submission",
            ApprovalError::NoReason { .. } => "no reason",
            ApprovalError::Ended { .. } => "ended",
            ApprovalError::CreativeNotApproved { .. } => "creative not approved",
        });
        assert_eq!(kind, *refused, "step {i} {step:?}: {result:?}");
        if result.is_err() {
            assert_eq!(c, before, "step {i} {step:?}: a refusal changes nothing");
        }
        assert_eq!(c.approval.status, *status, "step {i} {step:?}");
        assert_eq!(
            c.live_spec().map(|s| s.weight),
            *playing,
            "step {i} {step:?}: the version that plays"
        );
    }
}

use ApprovalStatus::{Approved, Draft, Rejected, Submitted};

#[test]
fn a_draft_is_submitted_and_approved_by_someone_else() {
    check(
        Approved,
        &[
            (Step::Approve("ann"), (Draft, None, Some("wrong state"))),
            (Step::Submit("sam"), (Submitted, None, None)),
            (Step::Submit("sam"), (Submitted, None, Some("wrong state"))),
            (
                Step::Approve("sam"),
                (Submitted, None, Some("own submission")),
            ),
            (
                Step::Reject("sam", "no"),
                (Submitted, None, Some("own submission")),
            ),
            (Step::Approve("ann"), (Approved, Some(1), None)),
            (
                Step::Approve("bob"),
                (Approved, Some(1), Some("wrong state")),
            ),
        ],
    );
}

#[test]
fn an_edit_of_a_live_campaign_is_a_draft_while_the_approved_version_plays() {
    check(
        Approved,
        &[
            (Step::Submit("sam"), (Submitted, None, None)),
            (Step::Approve("ann"), (Approved, Some(1), None)),
            (Step::Edit("sam", 5), (Draft, Some(1), None)),
            (Step::Edit("sam", 5), (Draft, Some(1), None)),
            (Step::Submit("ann"), (Submitted, Some(1), None)),
            // The submitter of this version is ann now: she cannot approve it, sam can.
            (
                Step::Approve("ann"),
                (Submitted, Some(1), Some("own submission")),
            ),
            (
                Step::Reject("sam", "  "),
                (Submitted, Some(1), Some("no reason")),
            ),
            (
                Step::Reject("sam", "wrong weight"),
                (Rejected, Some(1), None),
            ),
            (
                Step::Submit("ann"),
                (Rejected, Some(1), Some("wrong state")),
            ),
            (Step::Edit("ann", 3), (Draft, Some(1), None)),
            (Step::Submit("ann"), (Submitted, Some(1), None)),
            // An edit while submitted withdraws the submission.
            (Step::Edit("ann", 4), (Draft, Some(1), None)),
            (Step::Submit("ann"), (Submitted, Some(1), None)),
            (Step::Approve("sam"), (Approved, Some(4), None)),
            (Step::Archive, (Approved, None, None)),
            (Step::Edit("sam", 2), (Approved, None, Some("ended"))),
            (Step::Submit("sam"), (Approved, None, Some("ended"))),
        ],
    );
}

#[test]
fn a_campaign_with_an_unapproved_creative_is_not_approved() {
    for status in [Draft, Submitted, Rejected] {
        check(
            status,
            &[
                (Step::Submit("sam"), (Submitted, None, None)),
                (
                    Step::Approve("ann"),
                    (Submitted, None, Some("creative not approved")),
                ),
                (Step::Reject("ann", "its creative"), (Rejected, None, None)),
            ],
        );
    }
}

#[test]
fn refusals_name_the_state_and_the_person() {
    let mut c = new_campaign(spec(1), false, by("sam", 0));
    let creatives = BTreeMap::new();
    let e = decide_campaign(&mut c, &Decision::Approve, &creatives, by("ann", 1)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "campaign \"c1\" is draft; only a submitted one can be approved"
    );
    submit_campaign(&mut c, by("sam", 2)).unwrap();
    assert_eq!(c.approval.submitted_by.as_deref(), Some("sam"));
    assert_eq!(c.approval.submitted_at, Some(at(2)));
    let e = decide_campaign(&mut c, &Decision::Approve, &creatives, by("sam", 3)).unwrap_err();
    assert!(e.is_own_submission());
    assert!(
        e.to_string().starts_with("sam submitted campaign \"c1\""),
        "{e}"
    );
    let e = decide_campaign(&mut c, &Decision::Approve, &creatives, by("ann", 3)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "campaign \"c1\" uses creative \"k1\", which is draft: the creative must be approved first"
    );
    decide_campaign(
        &mut c,
        &Decision::Reject {
            reason: "too loud".into(),
        },
        &creatives,
        by("ann", 4),
    )
    .unwrap();
    assert_eq!(c.approval.reason.as_deref(), Some("too loud"));
    assert_eq!(c.approval.decided_by.as_deref(), Some("ann"));
    assert_eq!(c.approval.decided_at, Some(at(4)));
}

#[test]
fn with_approval_off_or_an_admin_import_changes_are_live_at_once() {
    let c = new_campaign(spec(1), true, by("sam", 0));
    assert_eq!(c.state, CampaignState::Live);
    assert_eq!(c.approval.status, Approved);
    assert_eq!(c.live_spec(), Some(&spec(1)));
    let mut edited = c.clone();
    edit_campaign(&mut edited, spec(7), true, by("sam", 1)).unwrap();
    assert_eq!(edited.live_spec().map(|s| s.weight), Some(7));
    assert_eq!(
        edited.approved.as_ref().and_then(|a| a.approved_at),
        Some(at(1))
    );

    // An import that says the same leaves the entity as it is (no revision).
    assert_eq!(import_campaign(Some(&c), spec(1), true, by("admin", 5)), c);
    assert_eq!(import_campaign(Some(&c), spec(1), false, by("sam", 5)), c);
    // Staff importing new rules: a draft beside the approved version.
    let staff = import_campaign(Some(&c), spec(2), false, by("sam", 5));
    assert_eq!(staff.approval.status, Draft);
    assert_eq!(staff.live_spec(), Some(&spec(1)));
    // The admin importing a draft's rules approves them.
    let admin = import_campaign(Some(&staff), spec(2), true, by("admin", 6));
    assert_eq!(admin.live_spec(), Some(&spec(2)));
    assert_eq!(admin.approval.decided_by.as_deref(), Some("admin"));
    let new = import_campaign(None, spec(2), false, by("sam", 6));
    assert!(new.live_spec().is_none());

    let k = creative(Approved);
    assert_eq!(import_creative(Some(&k), k.clone(), false, by("sam", 7)), k);
    let fresh = import_creative(None, k.clone(), false, by("sam", 7));
    assert_eq!(fresh.approval.status, Draft);
    let live = import_creative(Some(&fresh), k.clone(), true, by("admin", 8));
    assert_eq!(live.approval.decided_by.as_deref(), Some("admin"));
}

#[test]
fn creatives_are_reviewed_and_a_retired_one_is_not() {
    let mut k = creative(Draft);
    let e = creative_action(&mut k, Action::Approve, None, by("ann", 0)).unwrap_err();
    assert!(matches!(e, ApprovalError::WrongState { .. }), "{e}");
    creative_action(&mut k, Action::Submit, None, by("sam", 1)).unwrap();
    let e = creative_action(&mut k, Action::Approve, None, by("sam", 2)).unwrap_err();
    assert!(e.is_own_submission());
    let e = creative_action(&mut k, Action::Reject, None, by("ann", 2)).unwrap_err();
    assert_eq!(e.to_string(), "rejecting creative \"k1\" needs a reason");
    creative_action(&mut k, Action::Approve, None, by("ann", 3)).unwrap();
    assert_eq!(k.approval.status, Approved);
    let mut retired = creative(Submitted);
    retired.retired_at = Some(at(4));
    let e = creative_action(&mut retired, Action::Approve, None, by("ann", 5)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "creative \"k1\" is retired and cannot change"
    );
}

#[test]
fn stores_written_before_approval_read_as_approved() {
    let old = serde_json::json!({"spec": spec(1), "state": "live"});
    let c: CampaignEntity = serde_json::from_value(old).expect("old campaign");
    assert_eq!(c.approval.status, Approved);
    assert_eq!(c.live_spec(), Some(&spec(1)));
    let archived = serde_json::json!({"spec": spec(1), "state": "archived",
        "archived_at": "2026-01-01T00:00:00Z"});
    let c: CampaignEntity = serde_json::from_value(archived).expect("old archived campaign");
    assert!(c.live_spec().is_none());
    assert!(c.approved.is_some(), "what played stays on record");
    let draft = serde_json::json!({"spec": spec(1), "state": "draft"});
    let c: CampaignEntity = serde_json::from_value(draft).expect("old draft");
    assert_eq!(c.approval.status, Draft);
    assert!(c.live_spec().is_none());
    // A new entity reads back as written.
    let mut c = new_campaign(spec(1), false, by("sam", 0));
    submit_campaign(&mut c, by("sam", 1)).unwrap();
    let back: CampaignEntity = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
    assert_eq!(back, c);
    let mut k = serde_json::to_value(creative(Draft)).unwrap();
    k.as_object_mut().unwrap().remove("approval");
    let k: CreativeEntity = serde_json::from_value(k).unwrap();
    assert_eq!(k.approval.status, Approved);
}
