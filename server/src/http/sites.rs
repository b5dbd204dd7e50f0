//! `/api/v1/venues` and `/api/v1/screens`: list, create, read, replace; screens are also
//! decommissioned (never deleted: they keep their history) and provisioned (a new key;
//! older keys stay valid for the past).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use playlists::scenario::{FileScreen, FileVenue};

use super::{
    apply, blocking, same_id, ApiError, ApiJson, ApiPath, ApiQuery, Caller, ErrorBody, Page,
    PageQuery,
};
use crate::app::Shared;
use crate::store::{Entity, Role, ScreenEntity, VenueEntity};

pub fn router() -> OpenApiRouter<Arc<Shared>> {
    OpenApiRouter::new()
        .routes(routes!(list_venues, create_venue))
        .routes(routes!(get_venue, put_venue))
        .routes(routes!(list_screens, create_screen))
        .routes(routes!(get_screen, put_screen))
        .routes(routes!(decommission_screen))
        .routes(routes!(provision_screen))
}

/// Venues are staff's; screens and their keys the admin's (design.md, "HTTP API").
const EDIT_VENUES: &[Role] = &[Role::Staff];
const EDIT_SCREENS: &[Role] = &[Role::Admin];

/// Every venue.
#[utoipa::path(get, path = "/api/v1/venues", params(PageQuery),
    responses((status = 200, body = Page<VenueEntity>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_venues(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Page<VenueEntity>>, ApiError> {
    caller.require(EDIT_VENUES)?;
    let snapshot = blocking(move || Ok(shared.store.snapshot()?)).await?;
    Ok(Json(page.page_of_map(&snapshot.venues)?))
}

/// Adds a venue (fields as in `scenario.json`; `timezone` is required here).
#[utoipa::path(post, path = "/api/v1/venues", request_body = FileVenue,
    responses((status = 201, body = VenueEntity), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_venue(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiJson(spec): ApiJson<FileVenue>,
) -> Result<(StatusCode, Json<VenueEntity>), ApiError> {
    caller.require(EDIT_VENUES)?;
    Ok((
        StatusCode::CREATED,
        Json(put_venue_entity(&shared, &caller, spec, true).await?),
    ))
}

/// One venue.
#[utoipa::path(get, path = "/api/v1/venues/{id}", params(("id" = String, Path, example = "bj-metro-xidan")),
    responses((status = 200, body = VenueEntity), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_venue(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<VenueEntity>, ApiError> {
    caller.require(EDIT_VENUES)?;
    let snapshot = blocking(move || Ok(shared.store.snapshot()?)).await?;
    snapshot
        .venues
        .get(&id)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no venue {id:?}")))
}

/// Replaces a venue.
#[utoipa::path(put, path = "/api/v1/venues/{id}", params(("id" = String, Path, example = "bj-metro-xidan")), request_body = FileVenue,
    responses((status = 200, body = VenueEntity), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn put_venue(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(spec): ApiJson<FileVenue>,
) -> Result<Json<VenueEntity>, ApiError> {
    caller.require(EDIT_VENUES)?;
    same_id(&id, &spec.id)?;
    Ok(Json(put_venue_entity(&shared, &caller, spec, false).await?))
}

async fn put_venue_entity(
    shared: &Arc<Shared>,
    caller: &Caller,
    spec: FileVenue,
    create: bool,
) -> Result<VenueEntity, ApiError> {
    if spec.timezone.is_none() {
        return Err(ApiError::invalid_field(
            "timezone",
            format!(
                "venue {:?}: field \"timezone\": give the venue's IANA time zone",
                spec.id
            ),
        ));
    }
    let entity = VenueEntity { spec };
    let e = entity.clone();
    let verb = if create { "added" } else { "changed" };
    apply(
        shared,
        caller,
        format!("venue {} {verb}", e.spec.id),
        move |s| match (create, s.venues.contains_key(&e.spec.id)) {
            (true, true) => Err(ApiError::conflict(format!(
                "venue {:?} already exists",
                e.spec.id
            ))),
            (false, false) => Err(ApiError::not_found(format!("no venue {:?}", e.spec.id))),
            _ => {
                s.put(Entity::Venue(e));
                Ok(())
            }
        },
    )
    .await?;
    Ok(entity)
}

/// Every screen, decommissioned ones included.
#[utoipa::path(get, path = "/api/v1/screens", params(PageQuery),
    responses((status = 200, body = Page<ScreenEntity>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_screens(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Page<ScreenEntity>>, ApiError> {
    caller.require(EDIT_SCREENS)?;
    let snapshot = blocking(move || Ok(shared.store.snapshot()?)).await?;
    Ok(Json(page.page_of_map(&snapshot.screens)?))
}

/// Adds a screen (fields as in `scenario.json`); provision it next.
#[utoipa::path(post, path = "/api/v1/screens", request_body = FileScreen,
    responses((status = 201, body = ScreenEntity), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_screen(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiJson(spec): ApiJson<FileScreen>,
) -> Result<(StatusCode, Json<ScreenEntity>), ApiError> {
    caller.require(EDIT_SCREENS)?;
    Ok((
        StatusCode::CREATED,
        Json(put_screen_entity(&shared, &caller, spec, true).await?),
    ))
}

/// One screen.
#[utoipa::path(get, path = "/api/v1/screens/{id}", params(("id" = String, Path, example = "bj-metro-xidan-s1")),
    responses((status = 200, body = ScreenEntity), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_screen(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ScreenEntity>, ApiError> {
    caller.require(EDIT_SCREENS)?;
    let snapshot = blocking(move || Ok(shared.store.snapshot()?)).await?;
    snapshot
        .screens
        .get(&id)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no screen {id:?}")))
}

/// Replaces a screen (a decommissioned one stays decommissioned).
#[utoipa::path(put, path = "/api/v1/screens/{id}", params(("id" = String, Path, example = "bj-metro-xidan-s1")), request_body = FileScreen,
    responses((status = 200, body = ScreenEntity), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn put_screen(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(spec): ApiJson<FileScreen>,
) -> Result<Json<ScreenEntity>, ApiError> {
    caller.require(EDIT_SCREENS)?;
    same_id(&id, &spec.id)?;
    Ok(Json(
        put_screen_entity(&shared, &caller, spec, false).await?,
    ))
}

async fn put_screen_entity(
    shared: &Arc<Shared>,
    caller: &Caller,
    spec: FileScreen,
    create: bool,
) -> Result<ScreenEntity, ApiError> {
    let id = spec.id.clone();
    let verb = if create { "added" } else { "changed" };
    let applied = apply(shared, caller, format!("screen {id} {verb}"), move |s| {
        let entity = match (create, s.screens.get(&spec.id)) {
            (true, Some(_)) => {
                return Err(ApiError::conflict(format!(
                    "screen {:?} already exists",
                    spec.id
                )))
            }
            (false, None) => return Err(ApiError::not_found(format!("no screen {:?}", spec.id))),
            (_, old) => ScreenEntity {
                spec,
                decommissioned_at: old.and_then(|o| o.decommissioned_at),
            },
        };
        s.put(Entity::Screen(entity));
        Ok(())
    })
    .await?;
    let _ = applied;
    let snapshot = {
        let s = shared.clone();
        super::blocking(move || Ok(s.store.snapshot()?)).await?
    };
    snapshot
        .screens
        .get(&id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("no screen {id:?}")))
}

/// Takes a screen out of service: it gets no schedule from now on; its history stays.
#[utoipa::path(post, path = "/api/v1/screens/{id}/decommission", params(("id" = String, Path, example = "bj-metro-xidan-s1")),
    responses((status = 200, body = ScreenEntity), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn decommission_screen(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ScreenEntity>, ApiError> {
    caller.require(EDIT_SCREENS)?;
    let i = id.clone();
    apply(
        &shared,
        &caller,
        format!("screen {id} decommissioned"),
        move |s| {
            let Some(screen) = s.screens.get_mut(&i) else {
                return Err(ApiError::not_found(format!("no screen {i:?}")));
            };
            if screen.decommissioned_at.is_some() {
                return Err(ApiError::conflict(format!(
                    "screen {i:?} is decommissioned already"
                )));
            }
            screen.decommissioned_at = Some(chrono::Utc::now());
            Ok(())
        },
    )
    .await?;
    let snapshot = {
        let s = shared.clone();
        super::blocking(move || Ok(s.store.snapshot()?)).await?
    };
    snapshot
        .screens
        .get(&id)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no screen {id:?}")))
}

/// Where a provisioned agent connects; the server's own addresses by default.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ProvisionQuery {
    /// The broker URL written into the config (`mqtt://host:port`).
    mqtt_url: Option<String>,
    /// The HTTP URL agents download media from.
    server_url: Option<String>,
}

/// A new key for the screen and the agent's config (TOML, with the private key: store it
/// safely). Older keys stay registered with their validity, so past proof of play still
/// verifies.
#[utoipa::path(post, path = "/api/v1/screens/{id}/provision", params(("id" = String, Path, example = "bj-metro-xidan-s1"), ProvisionQuery),
    responses((status = 200, description = "the agent config", content_type = "application/toml", body = String),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn provision_screen(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ProvisionQuery>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(EDIT_SCREENS)?;
    let mqtt_url = q
        .mqtt_url
        .unwrap_or_else(|| shared.agent_urls.mqtt_url.clone());
    let server_url = q
        .server_url
        .unwrap_or_else(|| shared.agent_urls.server_url.clone());
    crate::broker::parse_mqtt_url(&mqtt_url).map_err(|e| ApiError::invalid_field("mqtt_url", e))?;
    if !(server_url.starts_with("http://") || server_url.starts_with("https://")) {
        return Err(ApiError::invalid_field(
            "server_url",
            format!("{server_url:?} is not an http(s) URL"),
        ));
    }
    let s = shared.clone();
    let text = blocking(move || {
        let (snapshot, _) = s.catalogue.current()?;
        let screen = snapshot
            .screens
            .get(&id)
            .ok_or_else(|| ApiError::not_found(format!("no screen {id:?}")))?;
        if screen.decommissioned_at.is_some() {
            return Err(ApiError::conflict(format!(
                "screen {id:?} is decommissioned"
            )));
        }
        let mut prov =
            crate::provision::prepare(&*s.store, &id, &mqtt_url, &server_url, s.topics.prefix())
                .map_err(ApiError::internal)?;
        if let Some(pem) = &s.agent_urls.server_ca_pem {
            prov.pin_ca(pem);
        }
        // A screen decommissioned since the check above is refused here (404).
        prov.register(&*s.store, s.clock.now())
            .map_err(ApiError::from)?;
        Ok(prov.config)
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "application/toml")], text))
}
