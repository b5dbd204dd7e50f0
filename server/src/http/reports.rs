//! `/api/v1/reports/*`, `/api/v1/audit/*` and `/api/v1/changes`: planned against
//! delivered and the plays export (JSON, CSV or the CLI's table), narrowed by the
//! drill-down's filters, the series over hours or days, the names the auditor's pages show,
//! the ledger audit and its last verdict, and the change log. The CLI with `--server`
//! prints exactly these bodies.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{blocking, ApiError, ApiPath, ApiQuery, Caller, ErrorBody, Page};
use crate::app::Shared;
use crate::audit::{AuditVerdict, LastAudit};
use crate::drill::{By, Filter};
use crate::report::{Format, Window};
use crate::series::{Bucket, Series};
use crate::store::{Dimension, EntityKind, Revision, Role};

pub fn router() -> OpenApiRouter<Arc<Shared>> {
    OpenApiRouter::new()
        .routes(routes!(report))
        .routes(routes!(series))
        .routes(routes!(names))
        .routes(routes!(audit))
        .routes(routes!(audit_last))
        .routes(routes!(changes))
}

const AUDIT: &[Role] = &[Role::Auditor];

/// Which report.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(
    dead_code,
    reason = "documents the path parameter, which is parsed by hand for its error"
)]
enum ReportKind {
    Plays,
    Districts,
    Venues,
    Screens,
    Campaigns,
    Creatives,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ReportQuery {
    /// RFC 3339. Missing ends: the last simulated window, else the 24 hours up to the
    /// next whole hour.
    #[param(example = "2023-12-20T06:00:00+08:00")]
    from: Option<DateTime<Utc>>,
    #[param(example = "2023-12-20T12:00:00+08:00")]
    to: Option<DateTime<Utc>>,
    /// Only this venue.
    venue: Option<String>,
    /// Only the venues of this district (`(none)`: venues without one).
    district: Option<String>,
    /// Only this screen.
    screen: Option<String>,
    /// Only the plays of this campaign.
    campaign: Option<String>,
    /// `json` (default), `csv` or `table`.
    format: Option<String>,
}

impl ReportQuery {
    fn window(&self) -> Window {
        Window {
            from: self.from,
            to: self.to,
        }
    }

    fn filter(&self) -> Filter {
        let some = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        Filter {
            district: some(&self.district),
            venue: some(&self.venue),
            screen: some(&self.screen),
            campaign: some(&self.campaign),
        }
    }
}

/// Planned against delivered per district, venue, screen, campaign or creative (`plays`:
/// one row per play, the export), optionally narrowed to a district, venue, screen or
/// campaign.
#[utoipa::path(get, path = "/api/v1/reports/{kind}",
    params(("kind" = inline(ReportKind), Path), ReportQuery),
    responses((status = 200, description = "the report: for `plays` one object per play with the export's columns, else one per district, venue, screen, campaign or creative (`district_id`, `venue_id`, `screen_id`, … with `planned`, `delivered`, `partial`, `failed`, `compliance_pct`)", content(
            (Vec<serde_json::Value> = "application/json"), (String = "text/csv"), (String = "text/plain"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn report(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(kind): ApiPath<String>,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(AUDIT)?;
    let (format, content_type) = match q.format.as_deref() {
        None | Some("json") => (Format::Json, "application/json"),
        Some("csv") => (Format::Csv, "text/csv; charset=utf-8"),
        Some("table") => (Format::Table, "text/plain; charset=utf-8"),
        Some(other) => {
            return Err(ApiError::invalid_field(
                "format",
                format!("{other:?} is not json, csv or table"),
            ))
        }
    };
    let by = match kind.as_str() {
        "plays" => None,
        "districts" => Some(By::District),
        "venues" => Some(By::Dim(Dimension::Venue)),
        "screens" => Some(By::Dim(Dimension::Screen)),
        "campaigns" => Some(By::Dim(Dimension::Campaign)),
        "creatives" => Some(By::Dim(Dimension::Creative)),
        other => return Err(ApiError::not_found(format!("no report {other:?}"))),
    };
    let (window, filter) = (q.window(), q.filter());
    let body = blocking(move || {
        let mut out = Vec::new();
        render(&shared, by, &window, &filter, format, &mut out)?;
        Ok(out)
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, content_type)], body))
}

/// A report as `signage report` prints it; a bad window is the caller's mistake.
fn render(
    shared: &Shared,
    by: Option<By>,
    window: &Window,
    filter: &Filter,
    format: Format,
    out: &mut dyn std::io::Write,
) -> Result<(), ApiError> {
    crate::drill::render(&*shared.store, by, window, filter, format, out).map_err(window_error)
}

/// A bad window is the caller's mistake (400 naming `from`), anything else the server's.
fn window_error(e: anyhow::Error) -> ApiError {
    match e.downcast_ref::<crate::report::WindowError>() {
        Some(w) => ApiError::invalid_field("from", w.to_string()),
        None => ApiError::internal(e),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct SeriesQuery {
    /// RFC 3339; missing ends as for the reports.
    #[param(example = "2023-12-20T06:00:00+08:00")]
    from: Option<DateTime<Utc>>,
    #[param(example = "2023-12-21T06:00:00+08:00")]
    to: Option<DateTime<Utc>>,
    /// `hour` (default) or `day`.
    bucket: Option<String>,
    /// The IANA zone whose hours or days cut the window (default: the catalogue's).
    #[param(example = "Asia/Shanghai")]
    zone: Option<String>,
    district: Option<String>,
    venue: Option<String>,
    screen: Option<String>,
    campaign: Option<String>,
}

/// Planned against delivered per hour or day of a zone over the window, from the same
/// sources as the reports (so the buckets sum to the report's totals), narrowed to a
/// district, venue, screen or campaign.
#[utoipa::path(get, path = "/api/v1/reports/series", params(SeriesQuery),
    responses((status = 200, body = Series), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn series(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<SeriesQuery>,
) -> Result<Json<Series>, ApiError> {
    caller.require(AUDIT)?;
    let bucket = match q.bucket.as_deref() {
        None | Some("hour") => Bucket::Hour,
        Some("day") => Bucket::Day,
        Some(other) => {
            return Err(ApiError::invalid_field(
                "bucket",
                format!("{other:?} is not hour or day"),
            ))
        }
    };
    let zone: Option<chrono_tz::Tz> = match q.zone.as_deref().filter(|z| !z.is_empty()) {
        None => None,
        Some(z) => Some(z.parse().map_err(|_| {
            ApiError::invalid_field("zone", format!("{z:?} is not an IANA time zone"))
        })?),
    };
    let window = Window {
        from: q.from,
        to: q.to,
    };
    let some = |s: Option<String>| s.filter(|s| !s.is_empty());
    let filter = Filter {
        district: some(q.district),
        venue: some(q.venue),
        screen: some(q.screen),
        campaign: some(q.campaign),
    };
    let out = blocking(move || {
        let zone = match zone {
            Some(z) => z,
            None => default_zone(&*shared.store.snapshot()?),
        };
        crate::series::series(&*shared.store, &window, zone, bucket, &filter).map_err(window_error)
    })
    .await?;
    Ok(Json(out))
}

/// The catalogue's zone: the one most of its venues keep (UTC when it has none).
fn default_zone(snapshot: &crate::store::Snapshot) -> chrono_tz::Tz {
    let mut count: std::collections::BTreeMap<&str, usize> = Default::default();
    for v in snapshot.venues.values() {
        if let Some(z) = v.spec.timezone.as_deref() {
            *count.entry(z).or_default() += 1;
        }
    }
    count
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .and_then(|(z, _)| z.parse().ok())
        .unwrap_or(chrono_tz::UTC)
}

/// A venue as the auditor's pages name it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct NamedVenue {
    id: String,
    name: String,
    name_en: Option<String>,
    district: Option<String>,
    venue_type: String,
    timezone: String,
}

/// Something with a name (a campaign) or a title (a creative).
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Named {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    /// A screen's venue.
    #[serde(skip_serializing_if = "Option::is_none")]
    venue: Option<String>,
}

/// The names the auditor's reports show beside their ids, and the defaults of a report.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Names {
    /// The catalogue's zone (the one most venues keep).
    zone: String,
    /// The window a report without `from` and `to` covers.
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    /// District ids, sorted.
    districts: Vec<String>,
    venues: Vec<NamedVenue>,
    screens: Vec<Named>,
    campaigns: Vec<Named>,
    creatives: Vec<Named>,
}

/// Names of every venue, screen, campaign and creative (the auditor may read no catalogue
/// list), the catalogue's zone and the default report window.
#[utoipa::path(get, path = "/api/v1/reports/names",
    responses((status = 200, body = Names), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn names(State(shared): State<Arc<Shared>>, caller: Caller) -> Result<Json<Names>, ApiError> {
    caller.require(AUDIT)?;
    let out = blocking(move || {
        let snapshot = shared.store.snapshot()?;
        let zone = default_zone(&snapshot);
        let (from, to) = Window::default()
            .resolve(&*shared.store)
            .map_err(window_error)?;
        let mut districts: Vec<String> = snapshot
            .venues
            .values()
            .map(|v| {
                v.spec
                    .district
                    .clone()
                    .unwrap_or_else(|| crate::drill::NO_DISTRICT.into())
            })
            .collect();
        districts.sort();
        districts.dedup();
        Ok(Names {
            zone: zone.name().into(),
            from,
            to,
            districts,
            venues: snapshot
                .venues
                .values()
                .map(|v| NamedVenue {
                    id: v.spec.id.clone(),
                    name: v.spec.name.clone(),
                    name_en: v.spec.name_en.clone(),
                    district: v.spec.district.clone(),
                    venue_type: v.spec.venue_type.clone(),
                    timezone: v
                        .spec
                        .timezone
                        .clone()
                        .unwrap_or_else(|| zone.name().into()),
                })
                .collect(),
            screens: snapshot
                .screens
                .values()
                .map(|s| Named {
                    id: s.spec.id.clone(),
                    name: None,
                    title: None,
                    venue: Some(s.spec.venue.clone()),
                })
                .collect(),
            campaigns: snapshot
                .campaigns
                .values()
                .map(|c| Named {
                    id: c.spec.id.clone(),
                    name: Some(c.spec.name.clone()),
                    title: None,
                    venue: None,
                })
                .chain(snapshot.emergencies.values().map(|e| Named {
                    id: e.id.clone(),
                    name: Some(e.name.clone()),
                    title: None,
                    venue: None,
                }))
                .collect(),
            creatives: snapshot
                .creatives
                .values()
                .map(|c| Named {
                    id: c.spec.id.clone(),
                    name: None,
                    title: Some(c.spec.title.clone()),
                    venue: None,
                })
                .collect(),
        })
    })
    .await?;
    Ok(Json(out))
}

/// Re-checks every signature and chain in the ledger, and every play against the
/// schedule document it names.
#[utoipa::path(post, path = "/api/v1/audit/verify",
    responses((status = 200, body = AuditVerdict), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn audit(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
) -> Result<Json<AuditVerdict>, ApiError> {
    caller.require(AUDIT)?;
    let by = caller.name().to_owned();
    let verdict = blocking(move || {
        let verdict = crate::audit::verify(&*shared.store).map_err(ApiError::internal)?;
        crate::audit::store_last(&*shared.store, &by, Utc::now(), &verdict)
            .map_err(ApiError::internal)?;
        Ok(verdict)
    })
    .await?;
    Ok(Json(verdict))
}

/// The verdict of the last `POST /api/v1/audit/verify`: when, by whom, the verdict and the
/// lines `signage audit verify` prints.
#[utoipa::path(get, path = "/api/v1/audit/last",
    responses((status = 200, body = LastAudit), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn audit_last(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
) -> Result<Json<LastAudit>, ApiError> {
    caller.require(AUDIT)?;
    let last =
        blocking(move || crate::audit::last(&*shared.store).map_err(ApiError::internal)).await?;
    last.map(Json).ok_or_else(|| {
        ApiError::not_found(
            "the audit has never been run on this server: run it (POST /api/v1/audit/verify)",
        )
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ChangesQuery {
    /// At most this many revisions (1-1000, default 100).
    limit: Option<usize>,
    /// The `next` of the previous page (a revision number).
    cursor: Option<String>,
    /// Only revisions touching this kind of entity.
    entity: Option<EntityKind>,
    /// Only revisions touching this id.
    id: Option<String>,
}

/// The change log, oldest first: every revision with its author, time, comment, and each
/// entity's before and after.
#[utoipa::path(get, path = "/api/v1/changes", params(ChangesQuery),
    responses((status = 200, body = Page<Revision>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn changes(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ChangesQuery>,
) -> Result<Json<Page<Revision>>, ApiError> {
    caller.require(AUDIT)?;
    let limit = super::PageQuery {
        limit: q.limit,
        cursor: None,
    }
    .limit()?;
    let after: u64 = match &q.cursor {
        None => 0,
        Some(c) => c
            .parse()
            .map_err(|_| ApiError::invalid_field("cursor", format!("{c:?} is not a cursor")))?,
    };
    let page = blocking(move || {
        Ok(crate::changes::page(
            &*shared.store,
            after,
            limit,
            q.entity,
            q.id.as_deref(),
        )?)
    })
    .await?;
    Ok(Json(page))
}
