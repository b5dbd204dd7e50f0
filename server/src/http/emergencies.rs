//! `/api/v1/emergencies`: list, start, confirm (a second operator, when the config asks
//! for one) and end emergency takeovers. The rules are
//! `crate::emergency`'s; this module authorises, runs them off the runtime and hands what
//! they return to the publisher (commands first, then the changed schedules).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{blocking, ApiError, ApiJson, ApiPath, Caller, ErrorBody};
use crate::app::Shared;
use crate::emergency::{self, Announcement, Listed, Outcome, StartRequest};
use crate::store::Role;

pub fn router() -> OpenApiRouter<Arc<Shared>> {
    OpenApiRouter::new()
        .routes(routes!(list, start))
        .routes(routes!(end))
        .routes(routes!(confirm))
}

const OPERATE: &[Role] = &[Role::Operator];

/// Every takeover, active or ended.
#[utoipa::path(get, path = "/api/v1/emergencies",
    responses((status = 200, body = Vec<Listed>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
) -> Result<Json<Vec<Listed>>, ApiError> {
    caller.require(OPERATE)?;
    let rows =
        blocking(move || Ok(emergency::list(&shared.catalogue, shared.clock.now())?)).await?;
    Ok(Json(rows))
}

/// Starts a takeover now: its creatives play from each targeted screen's next slot.
#[utoipa::path(post, path = "/api/v1/emergencies", request_body = StartRequest,
    responses((status = 201, body = Outcome), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn start(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiJson(req): ApiJson<StartRequest>,
) -> Result<(StatusCode, Json<Outcome>), ApiError> {
    let outcome = change(&shared, &caller, |r| emergency::start(r, req), |e| e.start).await?;
    Ok((StatusCode::CREATED, Json(outcome)))
}

/// Ends a takeover now: the next slot plays the normal rotation.
#[utoipa::path(post, path = "/api/v1/emergencies/{id}/end", params(("id" = String, Path, example = "alert-epidemic-2023-12-20")),
    responses((status = 200, body = Outcome), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn end(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Outcome>, ApiError> {
    let outcome = change(&shared, &caller, move |r| emergency::end(r, &id), |e| e.end).await?;
    Ok(Json(outcome))
}

/// Confirms a takeover another operator started (with `emergency_confirm = "two-person"`):
/// it starts now and is announced to its screens.
#[utoipa::path(post, path = "/api/v1/emergencies/{id}/confirm", params(("id" = String, Path, example = "alert-epidemic-2023-12-20")),
    responses((status = 200, body = Outcome), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn confirm(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Outcome>, ApiError> {
    let outcome = change(
        &shared,
        &caller,
        move |r| emergency::confirm(r, &id),
        |e| e.start,
    )
    .await?;
    Ok(Json(outcome))
}

/// Runs a start or an end (one at a time, off the runtime) as the caller, then announces
/// it; new documents count as planned from the time `effective` picks.
async fn change(
    shared: &Arc<Shared>,
    caller: &Caller,
    run: impl FnOnce(emergency::Request<'_>) -> Result<Announcement, emergency::EmergencyError>
        + Send
        + 'static,
    effective: fn(&crate::store::StoredEmergency) -> chrono::DateTime<chrono::Utc>,
) -> Result<Outcome, ApiError> {
    caller.require(OPERATE)?;
    let _one_at_a_time = shared.emergencies.lock().await;
    let s = shared.clone();
    let author = caller.name().to_owned();
    let a = blocking(move || {
        Ok(run(emergency::Request {
            catalogue: &s.catalogue,
            key: &s.key,
            author: &author,
            now: s.clock.now(),
            confirm_within: s.emergency_confirm,
        })?)
    })
    .await?;
    let from = effective(&a.emergency);
    Ok(announce(shared, a, from).await)
}

/// Sends the commands, then republishes the touched schedules, which count as planned
/// from `in_force_from` (the takeover's start or end).
async fn announce(
    shared: &Shared,
    a: Announcement,
    in_force_from: chrono::DateTime<chrono::Utc>,
) -> Outcome {
    let screens: Vec<String> = a.commands.iter().map(|(s, _)| s.clone()).collect();
    shared.publisher.commands(a.commands).await;
    let schedules_changed = shared
        .publisher
        .schedules_from(Some(a.affected), Some(in_force_from))
        .await;
    Outcome {
        emergency: a.emergency,
        screens,
        schedules_changed,
    }
}
