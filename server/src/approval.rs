//! Four-eyes approval (design.md, "Approval"): campaigns and creatives go draft, submitted,
//! approved (or rejected with a reason); nobody approves or rejects what they submitted;
//! an edit to a live campaign is a new draft while its approved version keeps playing.
//! A pure state machine over the stored entities: who may call a transition (roles) is the
//! caller's business, storing it is the catalogue's, and publishing the publisher's.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use playlists::scenario::FileCampaign;

use crate::store::{
    Approval, ApprovalStatus, ApprovedCampaign, CampaignEntity, CampaignState, CreativeEntity,
};

/// How a site approves content (`approval` in the server config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalMode {
    /// A second person approves every campaign and creative before it plays.
    #[default]
    FourEyes,
    /// What staff create or edit is live at once (a small site).
    Off,
}

impl ApprovalMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalMode::FourEyes => "four-eyes",
            ApprovalMode::Off => "off",
        }
    }
}

/// A transition of a review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Submit,
    Approve,
    Reject,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Submit => "submit",
            Action::Approve => "approve",
            Action::Reject => "reject",
        }
    }

    pub fn past(self) -> &'static str {
        match self {
            Action::Submit => "submitted",
            Action::Approve => "approved",
            Action::Reject => "rejected",
        }
    }

    /// The status a review must have for this action.
    fn needs(self) -> ApprovalStatus {
        match self {
            Action::Submit => ApprovalStatus::Draft,
            Action::Approve | Action::Reject => ApprovalStatus::Submitted,
        }
    }
}

/// Why a transition was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    #[error("{what} is {state}; only a {needs} one can be {action}", state = state.as_str(), needs = action.needs().as_str(), action = action.past())]
    WrongState {
        what: String,
        state: ApprovalStatus,
        action: Action,
    },
    #[error("{who} submitted {what} and cannot {action} it: nobody approves or rejects their own submission; another approver must", action = action.as_str())]
    OwnSubmission {
        who: String,
        what: String,
        action: Action,
    },
    #[error("rejecting {what} needs a reason")]
    NoReason { what: String },
    #[error("{what} is {how} and cannot change")]
    Ended { what: String, how: &'static str },
    #[error("{what} uses creative {creative:?}, which is {state}: the creative must be approved first", state = state.as_str())]
    CreativeNotApproved {
        what: String,
        creative: String,
        state: ApprovalStatus,
    },
}

impl ApprovalError {
    /// The refusal is about who asks, not about the state (a 403 rather than a 409).
    pub fn is_own_submission(&self) -> bool {
        matches!(self, ApprovalError::OwnSubmission { .. })
    }
}

/// Who makes a change, and when.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub name: &'a str,
    pub at: DateTime<Utc>,
}

/// A decision on a submitted version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject { reason: String },
}

/// Moves `approval` through `action` by `by`; `what` names the entity in errors.
fn transition(
    approval: &mut Approval,
    what: &str,
    action: Action,
    reason: Option<&str>,
    by: Actor<'_>,
) -> Result<(), ApprovalError> {
    if approval.status != action.needs() {
        return Err(ApprovalError::WrongState {
            what: what.to_owned(),
            state: approval.status,
            action,
        });
    }
    match action {
        Action::Submit => {
            *approval = Approval {
                status: ApprovalStatus::Submitted,
                submitted_by: Some(by.name.to_owned()),
                submitted_at: Some(by.at),
                ..Approval::draft()
            };
        }
        Action::Approve | Action::Reject => {
            if approval.submitted_by.as_deref() == Some(by.name) {
                return Err(ApprovalError::OwnSubmission {
                    who: by.name.to_owned(),
                    what: what.to_owned(),
                    action,
                });
            }
            let reason = match action {
                Action::Reject => Some(
                    reason
                        .map(str::trim)
                        .filter(|r| !r.is_empty())
                        .ok_or_else(|| ApprovalError::NoReason {
                            what: what.to_owned(),
                        })?
                        .to_owned(),
                ),
                _ => None,
            };
            approval.status = if reason.is_some() {
                ApprovalStatus::Rejected
            } else {
                ApprovalStatus::Approved
            };
            approval.decided_by = Some(by.name.to_owned());
            approval.decided_at = Some(by.at);
            approval.reason = reason;
        }
    }
    Ok(())
}

fn campaign_name(c: &CampaignEntity) -> String {
    format!("campaign {:?}", c.spec.id)
}

fn creative_name(c: &CreativeEntity) -> String {
    format!("creative {:?}", c.spec.id)
}

fn approved_version(spec: &FileCampaign, by: Actor<'_>) -> Box<ApprovedCampaign> {
    Box::new(ApprovedCampaign {
        spec: spec.clone(),
        approved_by: Some(by.name.to_owned()),
        approved_at: Some(by.at),
    })
}

/// A new campaign: live at once when `at_once` (approval off, an admin's import), else a
/// draft that plays nowhere.
pub fn new_campaign(spec: FileCampaign, at_once: bool, by: Actor<'_>) -> CampaignEntity {
    if at_once {
        CampaignEntity {
            approved: Some(approved_version(&spec, by)),
            spec,
            state: CampaignState::Live,
            archived_at: None,
            approval: Approval::approved_by(by.name, by.at),
        }
    } else {
        CampaignEntity {
            spec,
            state: CampaignState::Draft,
            archived_at: None,
            approval: Approval::draft(),
            approved: None,
        }
    }
}

/// Replaces a campaign's working version. Live at once when `at_once`; otherwise a new
/// draft (a pending submission is withdrawn) while the approved version keeps playing.
/// The same rules again change nothing.
pub fn edit_campaign(
    c: &mut CampaignEntity,
    spec: FileCampaign,
    at_once: bool,
    by: Actor<'_>,
) -> Result<(), ApprovalError> {
    if c.state == CampaignState::Archived {
        return Err(ApprovalError::Ended {
            what: campaign_name(c),
            how: "archived",
        });
    }
    let same = c.spec == spec;
    let settled = !at_once || c.approved.as_ref().is_some_and(|a| a.spec == spec);
    if same && settled {
        return Ok(());
    }
    if at_once {
        c.approved = Some(approved_version(&spec, by));
        c.approval = Approval::approved_by(by.name, by.at);
        c.state = CampaignState::Live;
    } else {
        c.approval = Approval::draft();
    }
    c.spec = spec;
    Ok(())
}

/// Submits a campaign's working version for approval.
pub fn submit_campaign(c: &mut CampaignEntity, by: Actor<'_>) -> Result<(), ApprovalError> {
    let what = campaign_name(c);
    if c.state == CampaignState::Archived {
        return Err(ApprovalError::Ended {
            what,
            how: "archived",
        });
    }
    transition(&mut c.approval, &what, Action::Submit, None, by)
}

/// Approves or rejects a campaign's submitted version. Approved, it becomes the version
/// that plays; every creative it names must be approved already.
pub fn decide_campaign(
    c: &mut CampaignEntity,
    decision: &Decision,
    creatives: &BTreeMap<String, CreativeEntity>,
    by: Actor<'_>,
) -> Result<(), ApprovalError> {
    let what = campaign_name(c);
    if c.state == CampaignState::Archived {
        return Err(ApprovalError::Ended {
            what,
            how: "archived",
        });
    }
    match decision {
        Decision::Approve => {
            let mut next = c.approval.clone();
            transition(&mut next, &what, Action::Approve, None, by)?;
            for id in &c.spec.creatives {
                let state = creatives
                    .get(id)
                    .map(|k| k.approval.status)
                    .unwrap_or(ApprovalStatus::Draft);
                if state != ApprovalStatus::Approved {
                    return Err(ApprovalError::CreativeNotApproved {
                        what,
                        creative: id.clone(),
                        state,
                    });
                }
            }
            c.approval = next;
            c.approved = Some(approved_version(&c.spec, by));
            c.state = CampaignState::Live;
            Ok(())
        }
        Decision::Reject { reason } => {
            transition(&mut c.approval, &what, Action::Reject, Some(reason), by)
        }
    }
}

/// The review of a newly uploaded creative.
pub fn new_creative(at_once: bool, by: Actor<'_>) -> Approval {
    if at_once {
        Approval::approved_by(by.name, by.at)
    } else {
        Approval::draft()
    }
}

/// Submits, approves or rejects a creative.
pub fn creative_action(
    c: &mut CreativeEntity,
    action: Action,
    reason: Option<&str>,
    by: Actor<'_>,
) -> Result<(), ApprovalError> {
    let what = creative_name(c);
    if c.retired_at.is_some() {
        return Err(ApprovalError::Ended {
            what,
            how: "retired",
        });
    }
    transition(&mut c.approval, &what, action, reason, by)
}

/// A campaign as an import leaves it: as imported and approved when `at_once` (an admin's
/// import, or approval off), else the imported rules as a draft beside the approved
/// version it may have. Unchanged rules keep the stored entity as it is.
pub fn import_campaign(
    existing: Option<&CampaignEntity>,
    spec: FileCampaign,
    at_once: bool,
    by: Actor<'_>,
) -> CampaignEntity {
    match existing {
        Some(c) if c.state != CampaignState::Archived => {
            let mut c = c.clone();
            // Not archived, so the edit cannot be refused.
            let _ = edit_campaign(&mut c, spec, at_once, by);
            c
        }
        // New, or brought back from the archive.
        _ => new_campaign(spec, at_once, by),
    }
}

/// A creative as an import leaves it: the stored one when the import says the same,
/// otherwise the imported one, approved when `at_once`, else a draft.
pub fn import_creative(
    existing: Option<&CreativeEntity>,
    mut imported: CreativeEntity,
    at_once: bool,
    by: Actor<'_>,
) -> CreativeEntity {
    if let Some(c) = existing {
        let same = c.spec == imported.spec
            && c.measurement == imported.measurement
            && c.retired_at.is_none();
        if same && (!at_once || c.approval.status == ApprovalStatus::Approved) {
            return c.clone();
        }
    }
    imported.retired_at = None;
    imported.approval = new_creative(at_once, by);
    imported
}

#[cfg(test)]
mod tests;
