//! `/api/v1/campaigns`: list, create, read, replace and archive. A campaign is a campaign
//! object as in `scenario.json`; the catalogue validates it with everything else (cron,
//! targeting that matches a screen, a creative that fits one) before anything is stored.
//! Under four-eyes approval (the default) a campaign staff create or edit is a draft: it
//! is submitted, then approved or rejected (with a reason) by an approver who did not
//! submit it; only its approved version plays, so an edit of a live campaign leaves the
//! approved version playing until the new one is approved. With `approval = "off"` a
//! change is live at once. Every transition is one revision; an approval publishes the
//! screens it touches.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use playlists::scenario::FileCampaign;

use super::{
    apply, blocking, same_id, ApiError, ApiJson, ApiPath, ApiQuery, Caller, ErrorBody, Page,
    PageQuery,
};
use crate::app::Shared;
use crate::approval::{self, ApprovalMode, Decision};
use crate::campaign_check::{stage_edit, stage_new, StageError};
use crate::store::{CampaignEntity, CampaignState, Role};

pub fn router() -> OpenApiRouter<Arc<Shared>> {
    OpenApiRouter::new()
        .routes(routes!(list_campaigns, create_campaign))
        .routes(routes!(get_campaign, put_campaign))
        .routes(routes!(archive_campaign))
        .routes(routes!(submit_campaign))
        .routes(routes!(approve_campaign))
        .routes(routes!(reject_campaign))
}

/// Who makes campaigns and creatives (as drafts under four-eyes approval).
pub(super) const EDIT: &[Role] = &[Role::Staff];
/// Who reads them: those who make them and those who review them.
pub(super) const READ: &[Role] = &[Role::Staff, Role::Approver];
/// Who approves or rejects.
pub(super) const REVIEW: &[Role] = &[Role::Approver];

/// Why a submitted version is rejected.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rejection {
    /// Required, not blank; shown with the campaign or creative.
    #[schema(example = "The slogan's characters are too small for a platform screen")]
    pub reason: String,
}

/// Whether staff's changes are live at once.
pub(super) fn at_once(shared: &Shared) -> bool {
    shared.approval == ApprovalMode::Off
}

/// Every campaign (drafts, live and archived).
#[utoipa::path(get, path = "/api/v1/campaigns", params(PageQuery),
    responses((status = 200, body = Page<CampaignEntity>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn list_campaigns(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Page<CampaignEntity>>, ApiError> {
    caller.require(READ)?;
    let snapshot = blocking(move || Ok(shared.store.snapshot()?)).await?;
    Ok(Json(page.page_of_map(&snapshot.campaigns)?))
}

/// Creates a campaign: a draft under four-eyes approval, else live and published to the
/// screens it targets at once.
#[utoipa::path(post, path = "/api/v1/campaigns", request_body = FileCampaign,
    responses((status = 201, body = CampaignEntity), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_campaign(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiJson(spec): ApiJson<FileCampaign>,
) -> Result<(StatusCode, Json<CampaignEntity>), ApiError> {
    caller.require(EDIT)?;
    let by = approval::Actor {
        name: caller.name(),
        at: shared.clock.now(),
    };
    let entity = approval::new_campaign(spec, at_once(&shared), by);
    let e = entity.clone();
    apply(
        &shared,
        &caller,
        format!("campaign {} created", e.spec.id),
        move |s| Ok(stage_new(s, e)?),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(entity)))
}

impl From<StageError> for ApiError {
    fn from(e: StageError) -> ApiError {
        match e {
            StageError::Exists(_) => ApiError::conflict(e.to_string()),
            StageError::Missing(_) => ApiError::not_found(e.to_string()),
            StageError::Approval(a) => a.into(),
        }
    }
}

/// One campaign.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}", params(("id" = String, Path, example = "rm2023-annual")),
    responses((status = 200, body = CampaignEntity), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn get_campaign(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CampaignEntity>, ApiError> {
    caller.require(READ)?;
    let snapshot = blocking(move || Ok(shared.store.snapshot()?)).await?;
    snapshot
        .campaigns
        .get(&id)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no campaign {id:?}")))
}

/// Replaces a campaign's rules (an archived one cannot change): under four-eyes approval a
/// new draft, while the approved version keeps playing; else live at once.
#[utoipa::path(put, path = "/api/v1/campaigns/{id}", params(("id" = String, Path, example = "rm2023-annual")), request_body = FileCampaign,
    responses((status = 200, body = CampaignEntity), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn put_campaign(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(spec): ApiJson<FileCampaign>,
) -> Result<Json<CampaignEntity>, ApiError> {
    caller.require(EDIT)?;
    same_id(&id, &spec.id)?;
    let live = at_once(&shared);
    let name = caller.name().to_owned();
    let at = shared.clock.now();
    apply(
        &shared,
        &caller,
        format!("campaign {id} changed"),
        move |s| {
            let by = approval::Actor { name: &name, at };
            Ok(stage_edit(s, spec, live, by)?)
        },
    )
    .await?;
    get_campaign(State(shared), caller, ApiPath(id)).await
}

/// Archives a campaign: it plays nowhere from its screens' next document on; what it
/// played stays in the ledger and the change log.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/archive", params(("id" = String, Path, example = "rm2023-annual")),
    responses((status = 200, body = CampaignEntity), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn archive_campaign(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CampaignEntity>, ApiError> {
    caller.require(EDIT)?;
    let at = shared.clock.now();
    let i = id.clone();
    apply(
        &shared,
        &caller,
        format!("campaign {id} archived"),
        move |s| {
            let Some(c) = s.campaigns.get_mut(&i) else {
                return Err(ApiError::not_found(format!("no campaign {i:?}")));
            };
            if c.state == CampaignState::Archived {
                return Err(ApiError::conflict(format!(
                    "campaign {i:?} is archived already"
                )));
            }
            c.state = CampaignState::Archived;
            c.archived_at = Some(at);
            Ok(())
        },
    )
    .await?;
    get_campaign(State(shared), caller, ApiPath(id)).await
}

/// Submits a campaign's draft for approval (staff).
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/submit", params(("id" = String, Path, example = "rm2023-annual")),
    responses((status = 200, body = CampaignEntity), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn submit_campaign(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CampaignEntity>, ApiError> {
    caller.require(EDIT)?;
    review(shared, caller, id, None).await
}

/// Approves a campaign's submitted version (an approver who did not submit it): it is the
/// version that plays from its screens' next document on. Its creatives must be approved.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/approve", params(("id" = String, Path, example = "rm2023-annual")),
    responses((status = 200, body = CampaignEntity), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn approve_campaign(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CampaignEntity>, ApiError> {
    caller.require(REVIEW)?;
    review(shared, caller, id, Some(Decision::Approve)).await
}

/// Rejects a campaign's submitted version with a reason (an approver who did not submit
/// it); an approved version it may have keeps playing.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/reject", params(("id" = String, Path, example = "rm2023-annual")),
    request_body = Rejection,
    responses((status = 200, body = CampaignEntity), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn reject_campaign(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<Rejection>,
) -> Result<Json<CampaignEntity>, ApiError> {
    caller.require(REVIEW)?;
    let decision = Decision::Reject {
        reason: body.reason,
    };
    review(shared, caller, id, Some(decision)).await
}

/// Submits (no decision) or decides on a campaign, as one revision.
async fn review(
    shared: Arc<Shared>,
    caller: Caller,
    id: String,
    decision: Option<Decision>,
) -> Result<Json<CampaignEntity>, ApiError> {
    let comment = match &decision {
        None => format!("campaign {id} submitted for approval"),
        Some(Decision::Approve) => format!("campaign {id} approved"),
        Some(Decision::Reject { reason }) => format!("campaign {id} rejected: {}", reason.trim()),
    };
    let i = id.clone();
    let name = caller.name().to_owned();
    let at = shared.clock.now();
    apply(&shared, &caller, comment, move |s| {
        let creatives = &s.creatives;
        let Some(c) = s.campaigns.get_mut(&i) else {
            return Err(ApiError::not_found(format!("no campaign {i:?}")));
        };
        let by = approval::Actor { name: &name, at };
        match &decision {
            None => approval::submit_campaign(c, by)?,
            Some(d) => approval::decide_campaign(c, d, creatives, by)?,
        }
        Ok(())
    })
    .await?;
    get_campaign(State(shared), caller, ApiPath(id)).await
}
