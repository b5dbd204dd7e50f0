//! `/api/v1/campaigns`: list, create, read, replace and archive. A campaign is a campaign
//! object as in `scenario.json`; the catalogue validates it with everything else (cron,
//! targeting that matches a screen, a creative that fits one) before anything is stored.
//! Approval is off for now: a campaign created by staff is live at once.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use playlists::scenario::FileCampaign;

use super::{
    apply, blocking, same_id, ApiError, ApiJson, ApiPath, ApiQuery, Caller, ErrorBody, Page,
    PageQuery,
};
use crate::app::Shared;
use crate::store::{CampaignEntity, CampaignState, Entity, Role};

pub fn router() -> OpenApiRouter<Arc<Shared>> {
    OpenApiRouter::new()
        .routes(routes!(list_campaigns, create_campaign))
        .routes(routes!(get_campaign, put_campaign))
        .routes(routes!(archive_campaign))
}

const EDIT: &[Role] = &[Role::Staff, Role::Admin];

/// Every campaign (drafts, live and archived).
#[utoipa::path(get, path = "/api/v1/campaigns", params(PageQuery),
    responses((status = 200, body = Page<CampaignEntity>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_campaigns(
    State(shared): State<Arc<Shared>>,
    _caller: Caller,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Page<CampaignEntity>>, ApiError> {
    let snapshot = blocking(move || Ok(shared.store.snapshot()?)).await?;
    let items: Vec<CampaignEntity> = snapshot.campaigns.into_values().collect();
    Ok(Json(page.page(&items, |v| v.spec.id.clone())?))
}

/// Creates a campaign; it is published to the screens it targets at once.
#[utoipa::path(post, path = "/api/v1/campaigns", request_body = FileCampaign,
    responses((status = 201, body = CampaignEntity), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_campaign(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiJson(spec): ApiJson<FileCampaign>,
) -> Result<(StatusCode, Json<CampaignEntity>), ApiError> {
    caller.require(EDIT)?;
    let entity = CampaignEntity {
        spec,
        state: CampaignState::Live,
        archived_at: None,
    };
    let e = entity.clone();
    apply(
        &shared,
        &caller,
        format!("campaign {} created", e.spec.id),
        move |s| {
            if s.campaigns.contains_key(&e.spec.id) || s.emergencies.contains_key(&e.spec.id) {
                return Err(ApiError::conflict(format!(
                    "campaign {:?} already exists",
                    e.spec.id
                )));
            }
            s.put(Entity::Campaign(e));
            Ok(())
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(entity)))
}

/// One campaign.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}", params(("id" = String, Path, example = "rm2023-annual")),
    responses((status = 200, body = CampaignEntity), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_campaign(
    State(shared): State<Arc<Shared>>,
    _caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CampaignEntity>, ApiError> {
    let snapshot = blocking(move || Ok(shared.store.snapshot()?)).await?;
    snapshot
        .campaigns
        .get(&id)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no campaign {id:?}")))
}

/// Replaces a campaign's rules (an archived one cannot change).
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
    let i = id.clone();
    apply(
        &shared,
        &caller,
        format!("campaign {id} changed"),
        move |s| {
            let Some(c) = s.campaigns.get_mut(&i) else {
                return Err(ApiError::not_found(format!("no campaign {i:?}")));
            };
            if c.state == CampaignState::Archived {
                return Err(ApiError::conflict(format!("campaign {i:?} is archived")));
            }
            c.spec = spec;
            Ok(())
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
