//! `signage campaigns|creatives submit|approve|reject ID`: the four-eyes review through a
//! running server's HTTP API (the server checks who may, stores the transition as one
//! revision and publishes; this only asks). A refusal exits non-zero with the server's own
//! message.

use std::process::ExitCode;

use super::client::ApiClient;
use crate::store::Approval;

/// What is reviewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reviewed {
    Campaign,
    Creative,
}

impl Reviewed {
    pub fn plural(self) -> &'static str {
        self.segment()
    }

    fn segment(self) -> &'static str {
        match self {
            Reviewed::Campaign => "campaigns",
            Reviewed::Creative => "creatives",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Reviewed::Campaign => "campaign",
            Reviewed::Creative => "creative",
        }
    }
}

/// Submits (`action` "submit"), approves or rejects (with `reason`) `id`.
pub async fn review(
    api: &ApiClient,
    what: Reviewed,
    id: &str,
    action: &str,
    reason: Option<String>,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(!id.trim().is_empty(), "the {} id is empty", what.name());
    let body = match reason {
        Some(r) => {
            anyhow::ensure!(!r.trim().is_empty(), "--reason is empty: say why");
            Some(serde_json::json!({ "reason": r }))
        }
        None => None,
    };
    let entity: serde_json::Value = api
        .post(&[what.segment(), id, action], body.as_ref())
        .await?;
    let approval: Approval = serde_json::from_value(entity["approval"].clone())?;
    println!("{} {id}: {}", what.name(), line(&approval));
    Ok(ExitCode::SUCCESS)
}

/// "submitted by sam", "approved by ann", "rejected by ann: why".
fn line(a: &Approval) -> String {
    let by = |who: &Option<String>| who.as_deref().unwrap_or("?").to_owned();
    match a.status {
        crate::store::ApprovalStatus::Submitted => {
            format!("submitted by {}", by(&a.submitted_by))
        }
        crate::store::ApprovalStatus::Rejected => format!(
            "rejected by {}: {}",
            by(&a.decided_by),
            a.reason.as_deref().unwrap_or_default()
        ),
        s => format!("{} by {}", s.as_str(), by(&a.decided_by)),
    }
}
