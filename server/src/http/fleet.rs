//! `/api/v1/fleet`: every screen in service with its last reported status, filtered and
//! paginated on the server (a city has thousands), joined with its venue's district and
//! type and the version the server last published for it.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{blocking, ApiError, ApiQuery, Caller, ErrorBody, Page, PageQuery};
use crate::app::Shared;
use crate::store::Role;

pub fn router() -> OpenApiRouter<Arc<Shared>> {
    OpenApiRouter::new().routes(routes!(fleet))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct FleetQuery {
    /// `online`, `offline` (reported offline) or `unknown` (never reported).
    status: Option<String>,
    district: Option<String>,
    /// An OpenOOH venue type; its subtypes match too.
    venue_type: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// One screen of the fleet.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FleetRow {
    pub screen_id: String,
    pub venue_id: String,
    pub district: Option<String>,
    pub venue_type: String,
    /// `online`, `offline` or `unknown`.
    pub state: String,
    /// The version the server last published for it.
    pub published_version: Option<u64>,
    /// The agent's last retained status, as it sent it.
    #[schema(value_type = Option<Object>)]
    pub status: Option<serde_json::Value>,
}

/// Screens in service with their state.
#[utoipa::path(get, path = "/api/v1/fleet", params(FleetQuery),
    responses((status = 200, body = Page<FleetRow>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn fleet(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<FleetQuery>,
) -> Result<Json<Page<FleetRow>>, ApiError> {
    caller.require(&[Role::Operator, Role::Auditor])?;
    if let Some(s) = q.status.as_deref() {
        if !["online", "offline", "unknown"].contains(&s) {
            return Err(ApiError::invalid_field(
                "status",
                format!("{s:?} is not online, offline or unknown"),
            ));
        }
    }
    let venue_type = q
        .venue_type
        .as_deref()
        .map(playlists::taxonomy::VenueType::parse)
        .transpose()
        .map_err(|e| ApiError::invalid_field("venue_type", e.to_string()))?;
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor.clone(),
    };
    page.limit()?;
    let statuses = shared.fleet.lock().map(|f| f.clone()).unwrap_or_default();
    let rows = blocking(move || {
        let catalogue = shared.catalogue.catalogue()?;
        let published = shared.store.published()?;
        let index = playlists::catalogue::CatalogueIndex::new(&catalogue);
        let mut rows = Vec::new();
        for s in &catalogue.screens {
            let Some(v) = index.venue(s.venue.as_str()) else {
                continue;
            };
            if q.district
                .as_deref()
                .is_some_and(|d| v.district.as_deref() != Some(d))
            {
                continue;
            }
            if venue_type
                .as_ref()
                .is_some_and(|t| !v.venue_type.is_within(*t))
            {
                continue;
            }
            let status = statuses.get(s.id.as_str());
            let state = match status {
                None => "unknown",
                Some(st) if st.online => "online",
                Some(_) => "offline",
            };
            if q.status.as_deref().is_some_and(|w| w != state) {
                continue;
            }
            rows.push(FleetRow {
                screen_id: s.id.to_string(),
                venue_id: v.id.to_string(),
                district: v.district.clone(),
                venue_type: v.venue_type.to_string(),
                state: state.to_owned(),
                published_version: published.get(s.id.as_str()).map(|p| p.version),
                status: status.and_then(|st| serde_json::to_value(st).ok()),
            });
        }
        rows.sort_by(|a, b| a.screen_id.cmp(&b.screen_id));
        Ok(rows)
    })
    .await?;
    Ok(Json(page.page(&rows, |r| r.screen_id.clone())?))
}
