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
        .routes(routes!(history))
        .routes(routes!(choices))
}

/// A creative an emergency may show.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct CreativeChoice {
    pub id: String,
    pub title: String,
    /// `image` or `video`.
    pub kind: String,
    pub width: u32,
    pub height: u32,
}

/// What the start form offers.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Choices {
    /// The creatives that can play (approved, not retired).
    pub creatives: Vec<CreativeChoice>,
    pub districts: Vec<String>,
    pub venue_types: Vec<String>,
    /// Whether a second operator must confirm a start.
    pub two_person: bool,
}

/// The creatives, districts and venue types an emergency may use, and whether a second
/// operator confirms it.
#[utoipa::path(get, path = "/api/v1/emergencies/choices",
    responses((status = 200, body = Choices), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn choices(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
) -> Result<Json<Choices>, ApiError> {
    caller.require(OPERATE)?;
    let two_person = shared.emergency_confirm.is_some();
    let out = blocking(move || {
        let catalogue = shared.catalogue.catalogue()?;
        let mut creatives: Vec<CreativeChoice> = catalogue
            .creatives
            .iter()
            .map(|k| CreativeChoice {
                id: k.id.to_string(),
                title: k.title.clone(),
                kind: format!("{:?}", k.kind).to_lowercase(),
                width: k.width,
                height: k.height,
            })
            .collect();
        creatives.sort_by(|a, b| a.id.cmp(&b.id));
        let mut districts: Vec<String> = catalogue
            .venues
            .iter()
            .filter_map(|v| v.district.clone())
            .collect();
        districts.sort();
        districts.dedup();
        let mut venue_types: Vec<String> = catalogue
            .venues
            .iter()
            .map(|v| v.venue_type.to_string())
            .collect();
        venue_types.sort();
        venue_types.dedup();
        Ok(Choices {
            creatives,
            districts,
            venue_types,
            two_person,
        })
    })
    .await?;
    Ok(Json(out))
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

/// One takeover with who started, confirmed and ended it, and how many screens it
/// targets.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct HistoryRow {
    #[serde(flatten)]
    pub emergency: Listed,
    #[serde(flatten)]
    pub story: crate::emergency_history::Story,
    /// Screens in service its target matches.
    pub screens: usize,
}

/// Every takeover, newest first, with its story from the change log.
#[utoipa::path(get, path = "/api/v1/emergencies/history",
    responses((status = 200, body = Vec<HistoryRow>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn history(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
) -> Result<Json<Vec<HistoryRow>>, ApiError> {
    caller.require(OPERATE)?;
    let rows = blocking(move || {
        let listed = emergency::list(&shared.catalogue, shared.clock.now())?;
        let stories = shared.emergency_log.stories(&*shared.store)?;
        let catalogue = shared.catalogue.catalogue()?;
        let index = playlists::catalogue::CatalogueIndex::new(&catalogue);
        let mut rows: Vec<HistoryRow> = listed
            .into_iter()
            .map(|e| {
                let screens = catalogue
                    .campaigns
                    .iter()
                    .find(|c| c.id.as_str() == e.emergency.id)
                    .map_or(0, |c| {
                        catalogue
                            .screens
                            .iter()
                            .filter(|s| {
                                index
                                    .venue(s.venue.as_str())
                                    .is_some_and(|v| c.target.matches(s, v))
                            })
                            .count()
                    });
                HistoryRow {
                    story: stories.get(&e.emergency.id).cloned().unwrap_or_default(),
                    emergency: e,
                    screens,
                }
            })
            .collect();
        rows.sort_by(|a, b| {
            b.emergency
                .emergency
                .start
                .cmp(&a.emergency.emergency.start)
        });
        Ok(rows)
    })
    .await?;
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
        run(emergency::Request {
            catalogue: &s.catalogue,
            key: &s.key,
            author: &author,
            now: s.clock.now(),
            confirm_within: s.emergency_confirm,
            renditions: Some((&*s.renditions, &*s.store)),
        })
        .map_err(naming_the_field)
    })
    .await?;
    let from = effective(&a.emergency);
    Ok(announce(shared, a, from).await)
}

/// The API error for `e`, naming the request's field that caused it (the dashboard shows
/// the message next to that control).
fn naming_the_field(e: emergency::EmergencyError) -> ApiError {
    use emergency::EmergencyError as E;
    let field = match &e {
        E::Duplicate(_) => Some("id"),
        E::UnknownCreative(_) | E::FitsNoScreen { .. } | E::TooLarge { .. } => Some("creatives"),
        E::NoScreens(_) => Some("target"),
        E::UntilPassed { .. } => Some("until"),
        _ => None,
    };
    let err = ApiError::from(e);
    match field {
        Some(f) => err.with_field(f),
        None => err,
    }
}

/// Sends the commands, then republishes the touched schedules, which count as planned
/// from `in_force_from` (the takeover's start or end).
async fn announce(
    shared: &Shared,
    a: Announcement,
    in_force_from: chrono::DateTime<chrono::Utc>,
) -> Outcome {
    let screens: Vec<String> = a.commands.iter().map(|(s, _)| s.clone()).collect();
    // Another replica publishes: it follows the store and announces this change itself.
    let schedules_changed = if shared.publisher.publishing() {
        shared.publisher.commands(a.commands).await;
        Some(
            shared
                .publisher
                .schedules_from(Some(a.affected), Some(in_force_from))
                .await,
        )
    } else {
        None
    };
    Outcome {
        emergency: a.emergency,
        screens,
        schedules_changed,
    }
}
