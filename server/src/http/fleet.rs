//! `/api/v1/fleet`: every screen in service with its last reported status, filtered and
//! paginated on the server (a city has thousands), joined with its venue and the version
//! the server last published for it; `/fleet/summary` (counts by state, overall and per
//! district, and the dark screens) and `/fleet/venues` (each venue's place and states, for
//! the map). The rules and the per-revision index are `crate::fleet_view`'s; a request
//! only filters and counts.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, MutexGuard};

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use playlists::wire::Status;

use super::{blocking, ApiError, ApiQuery, Caller, ErrorBody, PageQuery};
use crate::app::Shared;
use crate::fleet_view::{self, ByDistrict, Filter, FleetIndex, StateCounts};
use crate::store::Role;

pub fn router() -> OpenApiRouter<Arc<Shared>> {
    OpenApiRouter::new()
        .routes(routes!(fleet))
        .routes(routes!(summary))
        .routes(routes!(venues))
}

const READ: &[Role] = &[Role::Operator, Role::Auditor];

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct FleetQuery {
    /// `online`, `offline` (reported offline) or `unknown` (never reported).
    status: Option<String>,
    district: Option<String>,
    /// An OpenOOH venue type; its subtypes match too.
    venue_type: Option<String>,
    /// Text found in the screen id, its venue id or names (any case).
    q: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// One screen of the fleet.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FleetRow {
    pub screen_id: String,
    pub venue_id: String,
    pub venue_name: String,
    pub venue_name_en: Option<String>,
    pub district: Option<String>,
    pub venue_type: String,
    /// The venue's IANA time zone.
    pub timezone: Option<String>,
    /// `online`, `offline` or `unknown`.
    pub state: String,
    /// When its last status was received (since the server started).
    pub last_seen: Option<DateTime<Utc>>,
    /// The schedule version it applied, as it last reported.
    pub applied_version: Option<u64>,
    /// The version the server last published for it.
    pub published_version: Option<u64>,
    /// Whether the applied version is older than the published one.
    pub behind: bool,
    pub media_ready: Option<bool>,
    pub runway_hours: Option<f64>,
    pub backlog: Option<u64>,
    pub clock_synced: Option<bool>,
    /// Minutes it has been dark (offline or silent), when longer than the threshold.
    pub dark_minutes: Option<i64>,
    /// The agent's own readiness (broker, store, ingest; the reasons are in
    /// `status.readiness`); `null` when its agent does not report it.
    pub ready: Option<bool>,
    /// The agent's last retained status, as it sent it.
    #[schema(value_type = Option<Object>)]
    pub status: Option<serde_json::Value>,
}

/// One page of the fleet, with how many screens match in all.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FleetPage {
    pub items: Vec<FleetRow>,
    /// The cursor of the next page; `null` on the last.
    pub next: Option<String>,
    /// Screens matching the filters, on every page.
    pub total: usize,
    /// Screens in service.
    pub fleet: usize,
    /// The districts and venue types of the fleet, for filter choices.
    pub districts: Vec<String>,
    pub venue_types: Vec<String>,
}

/// What every fleet view reads: the index, the statuses, receptions, published versions.
/// The status maps stay locked while a request reads them (a few milliseconds at 11,000
/// screens), rather than being copied.
struct Inputs<'a> {
    index: Arc<FleetIndex>,
    statuses: MutexGuard<'a, BTreeMap<String, Status>>,
    received: MutexGuard<'a, HashMap<String, DateTime<Utc>>>,
    published: Arc<HashMap<String, u64>>,
    now: DateTime<Utc>,
}

impl<'a> Inputs<'a> {
    fn read(shared: &'a Shared) -> Result<Inputs<'a>, ApiError> {
        let head = shared.catalogue.head()?;
        let index = shared
            .fleet_view
            .index(head, || shared.catalogue.current())?;
        let published = shared.fleet_view.published(|| {
            Ok::<_, ApiError>(
                shared
                    .store
                    .published()?
                    .into_iter()
                    .map(|(s, p)| (s, p.version))
                    .collect(),
            )
        })?;
        let statuses = shared.fleet.lock().unwrap_or_else(|p| p.into_inner());
        let received = shared
            .fleet_view
            .received
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        Ok(Inputs {
            index,
            statuses,
            received,
            published,
            now: Utc::now(),
        })
    }

    /// Screen `i`'s state, whether it is behind, and how long dark.
    fn live(&self, shared: &Shared, i: usize) -> (fleet_view::State, bool, Option<i64>) {
        let id = self.index.screens[i].id.as_str();
        let status = self.statuses.get(id);
        let state = fleet_view::State::of(status);
        let behind = status.is_some()
            && fleet_view::behind(
                status.and_then(|s| s.schedule_version),
                self.published.get(id).copied(),
            );
        let dark = fleet_view::dark_for(
            state,
            self.received.get(id).copied(),
            self.now,
            shared.fleet_view.dark_after,
        )
        .map(|d| d.num_minutes());
        (state, behind, dark)
    }

    fn row(&self, shared: &Shared, i: usize) -> FleetRow {
        let s = &self.index.screens[i];
        let v = &self.index.venues[s.venue];
        let status = self.statuses.get(s.id.as_str());
        let (state, behind, dark) = self.live(shared, i);
        FleetRow {
            screen_id: s.id.clone(),
            venue_id: v.id.clone(),
            venue_name: v.name.clone(),
            venue_name_en: v.name_en.clone(),
            district: v.district.clone(),
            venue_type: v.venue_type.to_string(),
            timezone: v.timezone.clone(),
            state: state.as_str().to_owned(),
            last_seen: self.received.get(s.id.as_str()).copied(),
            applied_version: status.and_then(|st| st.schedule_version),
            published_version: self.published.get(s.id.as_str()).copied(),
            behind,
            media_ready: status.map(|st| st.media_ready),
            runway_hours: status.map(|st| st.runway_hours),
            backlog: status.map(|st| st.outbox_backlog),
            clock_synced: status.map(|st| st.clock_synced),
            dark_minutes: dark,
            ready: status.and_then(|st| st.readiness.as_ref()).map(|r| r.ready),
            status: status.and_then(|st| serde_json::to_value(st).ok()),
        }
    }
}

/// Screens in service with their state, filtered, one page at a time (by screen id).
#[utoipa::path(get, path = "/api/v1/fleet", params(FleetQuery),
    responses((status = 200, body = FleetPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn fleet(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<FleetQuery>,
) -> Result<Json<FleetPage>, ApiError> {
    caller.require(READ)?;
    let state = q
        .status
        .as_deref()
        .map(|s| {
            fleet_view::State::parse(s).ok_or_else(|| {
                ApiError::invalid_field(
                    "status",
                    format!("{s:?} is not online, offline or unknown"),
                )
            })
        })
        .transpose()?;
    let venue_type = q
        .venue_type
        .as_deref()
        .map(playlists::taxonomy::VenueType::parse)
        .transpose()
        .map_err(|e| ApiError::invalid_field("venue_type", e.to_string()))?;
    let limit = PageQuery {
        limit: q.limit,
        cursor: None,
    }
    .limit()?;
    let filter = Filter {
        district: q.district.filter(|d| !d.is_empty()),
        venue_type,
        state,
        q: q.q
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty()),
    };
    let cursor = q.cursor;
    let page = blocking(move || {
        let inputs = Inputs::read(&shared)?;
        let ix = &inputs.index;
        let start = cursor
            .as_deref()
            .map_or(0, |c| ix.screens.partition_point(|s| s.id.as_str() <= c));
        let mut total = 0;
        let mut items = Vec::new();
        let mut more = false;
        for (i, s) in ix.screens.iter().enumerate() {
            let (state, _, _) = inputs.live(&shared, i);
            if !filter.keeps(s, &ix.venues[s.venue], state) {
                continue;
            }
            total += 1;
            if i < start {
                continue;
            }
            if items.len() < limit {
                items.push(inputs.row(&shared, i));
            } else {
                more = true;
            }
        }
        let next = more
            .then(|| items.last().map(|r: &FleetRow| r.screen_id.clone()))
            .flatten();
        let mut districts: Vec<String> = ix
            .venues
            .iter()
            .filter_map(|v| v.district.clone())
            .collect();
        districts.sort();
        districts.dedup();
        let mut venue_types: Vec<String> =
            ix.venues.iter().map(|v| v.venue_type.to_string()).collect();
        venue_types.sort();
        venue_types.dedup();
        Ok(FleetPage {
            items,
            next,
            total,
            fleet: ix.screens.len(),
            districts,
            venue_types,
        })
    })
    .await?;
    Ok(Json(page))
}

/// A screen dark for longer than the threshold.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DarkScreen {
    pub screen_id: String,
    pub venue_id: String,
    pub venue_name: String,
    pub venue_name_en: Option<String>,
    pub district: Option<String>,
    /// `offline`, or `online` when it went silent.
    pub state: String,
    pub last_seen: DateTime<Utc>,
    pub minutes: i64,
}

/// The fleet at a glance.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FleetSummary {
    pub overall: StateCounts,
    /// Per district (`""`: venues without one).
    #[schema(value_type = BTreeMap<String, StateCounts>)]
    pub districts: ByDistrict,
    /// The threshold, in minutes (`dark_alert_minutes`).
    pub dark_after_minutes: i64,
    /// The dark screens, longest dark first (at most 200; `overall.dark` counts them all).
    pub dark: Vec<DarkScreen>,
}

/// Counts by state, overall and per district, and the screens dark longer than the
/// threshold (offline, or silent since their last status).
#[utoipa::path(get, path = "/api/v1/fleet/summary",
    responses((status = 200, body = FleetSummary), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn summary(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
) -> Result<Json<FleetSummary>, ApiError> {
    caller.require(READ)?;
    let out = blocking(move || {
        let inputs = Inputs::read(&shared)?;
        let ix = &inputs.index;
        let mut overall = StateCounts::default();
        let mut districts = ByDistrict::new();
        let mut dark = Vec::new();
        for (i, s) in ix.screens.iter().enumerate() {
            let v = &ix.venues[s.venue];
            let (state, behind, dark_minutes) = inputs.live(&shared, i);
            overall.add(state, behind, dark_minutes.is_some());
            districts
                .entry(v.district.clone().unwrap_or_default())
                .or_default()
                .add(state, behind, dark_minutes.is_some());
            if let (Some(minutes), Some(seen)) = (dark_minutes, inputs.received.get(&s.id)) {
                dark.push(DarkScreen {
                    screen_id: s.id.clone(),
                    venue_id: v.id.clone(),
                    venue_name: v.name.clone(),
                    venue_name_en: v.name_en.clone(),
                    district: v.district.clone(),
                    state: state.as_str().to_owned(),
                    last_seen: *seen,
                    minutes,
                });
            }
        }
        dark.sort_by(|a, b| {
            b.minutes
                .cmp(&a.minutes)
                .then(a.screen_id.cmp(&b.screen_id))
        });
        dark.truncate(200);
        Ok(FleetSummary {
            overall,
            districts,
            dark_after_minutes: shared.fleet_view.dark_after.num_minutes(),
            dark,
        })
    })
    .await?;
    Ok(Json(out))
}

/// A venue on the map.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VenueState {
    pub id: String,
    pub name: String,
    pub name_en: Option<String>,
    pub district: Option<String>,
    pub venue_type: String,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    /// Its screens by state.
    pub counts: StateCounts,
    /// The worst state of its screens: `offline`, `unknown` or `online`.
    pub worst: String,
}

/// Every venue with screens in service: where it is and its screens' states.
#[utoipa::path(get, path = "/api/v1/fleet/venues",
    responses((status = 200, body = Vec<VenueState>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn venues(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
) -> Result<Json<Vec<VenueState>>, ApiError> {
    caller.require(READ)?;
    let out = blocking(move || {
        let inputs = Inputs::read(&shared)?;
        let ix = &inputs.index;
        Ok(ix
            .venues
            .iter()
            .zip(&ix.venue_screens)
            .filter(|(_, screens)| !screens.is_empty())
            .map(|(v, screens)| {
                let mut counts = StateCounts::default();
                for &i in screens {
                    let (state, behind, dark) = inputs.live(&shared, i);
                    counts.add(state, behind, dark.is_some());
                }
                VenueState {
                    id: v.id.clone(),
                    name: v.name.clone(),
                    name_en: v.name_en.clone(),
                    district: v.district.clone(),
                    venue_type: v.venue_type.to_string(),
                    lat: v.location.map(|l| l.0),
                    lon: v.location.map(|l| l.1),
                    counts,
                    worst: counts.worst().as_str().to_owned(),
                }
            })
            .collect())
    })
    .await?;
    Ok(Json(out))
}
