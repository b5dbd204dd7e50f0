//! `/api/v1/plan`, `/api/v1/explain` and `/api/v1/forecast`: the shared planner over the
//! live catalogue (emergencies included), as the CLI prints it, and what a draft campaign
//! would deliver.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use playlists::scenario::FileCampaign;

use super::{blocking, ApiError, ApiJson, ApiQuery, Caller, ErrorBody};
use crate::app::Shared;
use crate::forecast::Forecast;
use crate::store::{Entity, Role};

pub fn router() -> OpenApiRouter<Arc<Shared>> {
    OpenApiRouter::new()
        .routes(routes!(plan))
        .routes(routes!(explain))
        .routes(routes!(forecast))
}

/// Who previews plans: staff, auditors checking them (design.md, "HTTP API"), and
/// approvers previewing what they are asked to approve.
const READ: &[Role] = &[Role::Staff, Role::Approver, Role::Auditor];

/// The longest window one plan request covers.
pub const MAX_PLAN_DAYS: i64 = 31;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PlanQuery {
    /// Screen ids, comma-separated (default: every screen).
    #[param(example = "bj-metro-xidan-s1")]
    screen: Option<String>,
    /// RFC 3339.
    #[param(example = "2023-12-20T08:00:00+08:00")]
    from: DateTime<Utc>,
    /// RFC 3339, after `from`, at most 31 days later.
    #[param(example = "2023-12-20T09:00:00+08:00")]
    to: DateTime<Utc>,
    /// `csv` (default) or `table`, as `signage plan` prints them.
    format: Option<String>,
}

/// The planned plays (`screen_id,venue_id,slot_start,campaign_id,creative_id`).
#[utoipa::path(get, path = "/api/v1/plan", params(PlanQuery),
    responses((status = 200, description = "CSV or a text table", content_type = "text/csv", body = String),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn plan(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PlanQuery>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(READ)?;
    let format = match q.format.as_deref() {
        None | Some("csv") => crate::plan::Format::Csv,
        Some("table") => crate::plan::Format::Table,
        Some(other) => {
            return Err(ApiError::invalid_field(
                "format",
                format!("{other:?} is not csv or table"),
            ))
        }
    };
    check_window(q.from, q.to, MAX_PLAN_DAYS)?;
    let screens: Vec<String> = q
        .screen
        .iter()
        .flat_map(|s| s.split(','))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let body = blocking(move || {
        let catalogue = shared.catalogue.catalogue()?;
        let schedules = crate::plan::schedules(&catalogue, &screens)
            .map_err(|e| ApiError::invalid_field("screen", e.to_string()))?;
        let mut out = Vec::new();
        crate::plan::write_plan(&schedules, q.from, q.to, format, &mut out)
            .map_err(ApiError::internal)?;
        Ok(out)
    })
    .await?;
    let content_type = match format {
        crate::plan::Format::Csv => "text/csv; charset=utf-8",
        crate::plan::Format::Table => "text/plain; charset=utf-8",
    };
    Ok(([(header::CONTENT_TYPE, content_type)], body))
}

/// Refuses an empty, reversed or too long window.
pub fn check_window(from: DateTime<Utc>, to: DateTime<Utc>, max_days: i64) -> Result<(), ApiError> {
    if from >= to {
        return Err(ApiError::invalid_field("to", "to must be after from"));
    }
    if to - from > TimeDelta::days(max_days) {
        return Err(ApiError::invalid_field(
            "to",
            format!("the window is longer than {max_days} days: ask for less"),
        ));
    }
    Ok(())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ExplainQuery {
    #[param(example = "bj-metro-xidan-s1")]
    screen: String,
    /// RFC 3339: the slot containing this instant.
    #[param(example = "2023-12-20T09:30:00+08:00")]
    at: DateTime<Utc>,
}

/// Why a slot plays what it plays (the planner's own trace), as `signage explain` prints it.
#[utoipa::path(get, path = "/api/v1/explain", params(ExplainQuery),
    responses((status = 200, description = "the explanation", content_type = "text/plain", body = String),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn explain(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ExplainQuery>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(READ)?;
    let text = blocking(move || {
        let catalogue = shared.catalogue.catalogue()?;
        explain_text(&catalogue, &q.screen, q.at)
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text))
}

/// The explanation of the slot of `screen` at `at`.
pub fn explain_text(
    catalogue: &playlists::Catalogue,
    screen: &str,
    at: DateTime<Utc>,
) -> Result<String, ApiError> {
    let id = playlists::ScreenId::parse(screen)
        .map_err(|e| ApiError::invalid_field("screen", e.to_string()))?;
    let schedule = catalogue
        .full_schedule_for(&id)
        .ok_or_else(|| ApiError::not_found(format!("unknown screen {screen:?}")))?;
    let slot = playlists::Planner::new(&schedule).slot_at(at);
    Ok(playlists::explain::explain(&schedule, slot).to_string())
}

/// What a draft campaign would deliver over its flight (at most 31 days of it), per
/// venue, district and campaign, with and without it, and which campaigns lose plays.
/// Nothing is stored.
#[utoipa::path(post, path = "/api/v1/forecast", request_body = FileCampaign,
    responses((status = 200, body = Forecast), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn forecast(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiJson(spec): ApiJson<FileCampaign>,
) -> Result<Json<Forecast>, ApiError> {
    // Approvers read the forecast of the version they are asked to approve.
    caller.require(&[Role::Staff, Role::Approver])?;
    let result = blocking(move || {
        let (snapshot, current) = shared.catalogue.current()?;
        let mut draft = (*snapshot).clone();
        let id = spec.id.clone();
        // "Without" is the catalogue without this campaign, even when a version of it
        // plays already (an edit is forecast against its absence, not against itself).
        let without = if snapshot.campaigns.contains_key(&id) {
            let mut rest = (*snapshot).clone();
            rest.campaigns.remove(&id);
            std::sync::Arc::new(crate::catalogue::build(&rest)?)
        } else {
            current
        };
        if draft.emergencies.contains_key(&id) {
            return Err(ApiError::invalid_field(
                "id",
                format!("{id:?} is an emergency"),
            ));
        }
        // Forecast as if approved: the rules as they would play, with the creatives they
        // name that still wait for a decision (a draft or a submission).
        let by = crate::approval::Actor {
            name: "forecast",
            at: chrono::Utc::now(),
        };
        for c in &spec.creatives {
            if let Some(k) = draft.creatives.get_mut(c) {
                if matches!(
                    k.approval.status,
                    crate::store::ApprovalStatus::Draft | crate::store::ApprovalStatus::Submitted
                ) {
                    k.approval = crate::store::Approval::approved_by(by.name, by.at);
                }
            }
        }
        draft.put(Entity::Campaign(crate::approval::new_campaign(
            spec, true, by,
        )));
        let with = crate::catalogue::build(&draft)?;
        crate::forecast::forecast(&without, &with, &id)
            .ok_or_else(|| ApiError::invalid(format!("campaign {id:?} did not build")))
    })
    .await?;
    Ok(Json(result))
}
