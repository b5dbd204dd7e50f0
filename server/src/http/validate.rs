//! `POST /api/v1/campaigns/validate`: a dry run of a campaign save for the dashboard's
//! editor (`campaign_check::validate`: every check a create or edit runs, on a copy of
//! the catalogue, nothing stored), with the dayparts as readable text and what the
//! campaign would reach;
//! `POST /api/v1/dayparts/text`: dayparts in words (the calendar's); and
//! `GET /api/v1/taxonomy`: the OpenOOH venue-type tree the editor's targeting offers.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use playlists::scenario::FileCampaign;
use playlists::taxonomy::VenueType;

use super::campaigns::{at_once, EDIT, READ};
use super::{blocking, ApiError, ApiJson, ApiQuery, Caller, ErrorBody};
use crate::app::Shared;
use crate::campaign_check::{self, daypart_text, DaypartText, Validation};

pub fn router() -> OpenApiRouter<Arc<Shared>> {
    OpenApiRouter::new()
        .routes(routes!(validate_campaign))
        .routes(routes!(taxonomy))
        .routes(routes!(dayparts_text))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ValidateQuery {
    /// `true`: checked as a create (its id must be free); `false`: as an edit of the
    /// campaign with its id; absent: an edit when that campaign exists, else a create.
    new: Option<bool>,
}

/// Checks a campaign exactly as a save would (the same staging and the same catalogue
/// checks), without storing anything; 200 with the problems, if any.
#[utoipa::path(post, path = "/api/v1/campaigns/validate", params(ValidateQuery), request_body = FileCampaign,
    responses((status = 200, body = Validation), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn validate_campaign(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ValidateQuery>,
    ApiJson(spec): ApiJson<FileCampaign>,
) -> Result<Json<Validation>, ApiError> {
    caller.require(EDIT)?;
    let live = at_once(&shared);
    let name = caller.name().to_owned();
    let at = shared.clock.now();
    let result = blocking(move || {
        let snapshot = shared.store.snapshot()?;
        let by = crate::approval::Actor { name: &name, at };
        Ok(campaign_check::validate(&snapshot, spec, q.new, live, by))
    })
    .await?;
    Ok(Json(result))
}

/// Crontab dayparts to put in words.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Dayparts {
    /// At most 200.
    #[schema(example = json!(["* 7-8 * * 1-5"]))]
    pub dayparts: Vec<String>,
}

/// Dayparts in English and Chinese, in order (null texts for one that does not parse).
#[utoipa::path(post, path = "/api/v1/dayparts/text", request_body = Dayparts,
    responses((status = 200, body = Vec<DaypartText>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn dayparts_text(
    caller: Caller,
    ApiJson(body): ApiJson<Dayparts>,
) -> Result<Json<Vec<DaypartText>>, ApiError> {
    caller.require(READ)?;
    if body.dayparts.len() > 200 {
        return Err(ApiError::invalid_field(
            "dayparts",
            "more than 200 dayparts",
        ));
    }
    Ok(Json(
        body.dayparts.iter().map(|d| daypart_text(d).0).collect(),
    ))
}

/// A venue type of the OpenOOH taxonomy.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TaxonomyNode {
    #[schema(example = 10502)]
    pub id: u32,
    /// The value targeting names (`transit.subway.platform`).
    #[schema(example = "transit.subway.platform")]
    pub value: String,
    #[schema(example = "Subway Platform")]
    pub name: String,
    /// The enclosing type's id; null for a top-level category.
    pub parent: Option<u32>,
}

/// The OpenOOH 1.2.1 venue types, parents before their children.
#[utoipa::path(get, path = "/api/v1/taxonomy",
    responses((status = 200, body = Vec<TaxonomyNode>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn taxonomy(caller: Caller) -> Result<Json<Vec<TaxonomyNode>>, ApiError> {
    caller.require(READ)?;
    Ok(Json(
        VenueType::all()
            .map(|t| TaxonomyNode {
                id: t.id(),
                value: t.as_str().to_owned(),
                name: t.display_name().to_owned(),
                parent: t.parent().map(VenueType::id),
            })
            .collect(),
    ))
}
