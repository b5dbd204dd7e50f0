//! What the approval and preview pages read beyond the catalogue's own routes:
//! `GET /api/v1/campaigns/{id}/versions` (the working version beside the live, approved one
//! and the one last rejected, so a reviewer sees what changed) and
//! `GET /api/v1/preview/screens` (screens found by venue name, district or type, with
//! their venue's zone, for whoever previews plans). The finding is `crate::review`'s.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use playlists::scenario::FileCampaign;

use super::campaigns::READ;
use super::{blocking, ApiError, ApiPath, ApiQuery, Caller, ErrorBody, Page, PageQuery};
use crate::app::Shared;
use crate::review::{find_screens, LastRejected, RejectedVersion, ScreenSummary};
use crate::store::{Approval, ApprovedCampaign, CampaignState, Role};

pub fn router() -> OpenApiRouter<Arc<Shared>> {
    OpenApiRouter::new()
        .routes(routes!(campaign_versions))
        .routes(routes!(preview_screens))
}

/// Who previews plans (as `GET /plan` and `/explain`).
const PREVIEW: &[Role] = &[Role::Staff, Role::Approver, Role::Auditor];

/// The versions of a campaign a reviewer compares.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CampaignVersions {
    pub id: String,
    pub state: CampaignState,
    /// The working version (a draft, the submitted one, or the approved one itself).
    pub working: FileCampaign,
    /// The working version's review.
    pub approval: Approval,
    /// The version that plays; absent until one is approved.
    pub live: Option<ApprovedCampaign>,
    /// The version last rejected, with its reason; absent when none was.
    pub rejected: Option<RejectedVersion>,
}

/// A campaign's working version beside its live (approved) version and the version last
/// rejected (from the change log).
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/versions", params(("id" = String, Path, example = "rm2023-annual")),
    responses((status = 200, body = CampaignVersions), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn campaign_versions(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CampaignVersions>, ApiError> {
    caller.require(READ)?;
    let versions = blocking(move || {
        let snapshot = shared.store.snapshot()?;
        let c = snapshot
            .campaigns
            .get(&id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("no campaign {id:?}")))?;
        let mut last = LastRejected::new(&id);
        let mut after = 0;
        loop {
            let chunk = shared.store.revisions(after, 512)?;
            let Some(end) = chunk.last().map(|r| r.number) else {
                break;
            };
            chunk.iter().for_each(|r| last.see(r));
            after = end;
        }
        Ok(CampaignVersions {
            id,
            state: c.state,
            working: c.spec,
            approval: c.approval,
            live: c.approved.map(|a| *a),
            rejected: last.finish(),
        })
    })
    .await?;
    Ok(Json(versions))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ScreenSearch {
    /// Words that each must appear in the screen's id, its venue's id, names, district
    /// or type (case-insensitive); empty: every screen in service.
    #[param(example = "西单")]
    q: Option<String>,
    /// At most this many items (1-1000, default 100).
    limit: Option<usize>,
    /// The `next` of the previous page.
    cursor: Option<String>,
}

/// Screens in service to preview, found by their venue (names, district, type), with the
/// venue's zone.
#[utoipa::path(get, path = "/api/v1/preview/screens", params(ScreenSearch),
    responses((status = 200, body = Page<ScreenSummary>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn preview_screens(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ScreenSearch>,
) -> Result<Json<Page<ScreenSummary>>, ApiError> {
    caller.require(PREVIEW)?;
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    page.limit()?;
    let found = blocking(move || {
        let snapshot = shared.store.snapshot()?;
        Ok(find_screens(&snapshot, q.q.as_deref().unwrap_or("")))
    })
    .await?;
    Ok(Json(page.page(&found, |s| s.id.clone())?))
}
