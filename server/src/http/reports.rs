//! `/api/v1/reports/*`, `/api/v1/audit/verify` and `/api/v1/changes`: planned against
//! delivered and the plays export (JSON, CSV or the CLI's table), the ledger audit, and
//! the change log. The CLI with `--server` prints exactly these bodies.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{blocking, ApiError, ApiPath, ApiQuery, Caller, ErrorBody, Page};
use crate::app::Shared;
use crate::audit::AuditVerdict;
use crate::report::{Format, Window};
use crate::store::{Dimension, EntityKind, Revision, Role};

pub fn router() -> OpenApiRouter<Arc<Shared>> {
    OpenApiRouter::new()
        .routes(routes!(report))
        .routes(routes!(audit))
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
    /// `json` (default), `csv` or `table`.
    format: Option<String>,
}

/// Planned against delivered per venue, screen, campaign or creative (`plays`: one row per
/// play, the export).
#[utoipa::path(get, path = "/api/v1/reports/{kind}",
    params(("kind" = inline(ReportKind), Path), ReportQuery),
    responses((status = 200, description = "the report: for `plays` one object per play with the export's columns, else one per venue, screen, campaign or creative (`venue_id`, `screen_id`, … with `planned`, `delivered`, `partial`, `failed`, `compliance_pct`)", content(
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
    let dim = match kind.as_str() {
        "plays" => None,
        "venues" => Some(Dimension::Venue),
        "screens" => Some(Dimension::Screen),
        "campaigns" => Some(Dimension::Campaign),
        "creatives" => Some(Dimension::Creative),
        other => return Err(ApiError::not_found(format!("no report {other:?}"))),
    };
    let window = Window {
        from: q.from,
        to: q.to,
    };
    let body = blocking(move || {
        let mut out = Vec::new();
        render(&shared, dim, &window, q.venue.as_deref(), format, &mut out)?;
        Ok(out)
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, content_type)], body))
}

/// A report as `signage report` prints it; a bad window is the caller's mistake.
fn render(
    shared: &Shared,
    dim: Option<Dimension>,
    window: &Window,
    venue: Option<&str>,
    format: Format,
    out: &mut dyn std::io::Write,
) -> Result<(), ApiError> {
    crate::report::render(&*shared.store, dim, window, venue, format, out).map_err(|e| {
        match e.downcast_ref::<crate::report::WindowError>() {
            Some(w) => ApiError::invalid_field("from", w.to_string()),
            None => ApiError::internal(e),
        }
    })
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
    let verdict =
        blocking(move || crate::audit::verify(&*shared.store).map_err(ApiError::internal)).await?;
    Ok(Json(verdict))
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
