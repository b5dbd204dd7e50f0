//! `GET /metrics`: the server's metrics in the Prometheus text format, open like `/health`
//! (counts and levels only: no names of people, no content), and the middleware that
//! counts every HTTP request by its route template.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;

use super::{blocking, ApiError};
use crate::app::Shared;
use crate::telemetry::Levels;

pub fn router() -> OpenApiRouter<Arc<Shared>> {
    OpenApiRouter::new().routes(utoipa_axum::routes!(metrics))
}

/// The server's metrics (Prometheus text exposition format 0.0.4).
#[utoipa::path(get, path = "/metrics", security(()),
    responses((status = 200, description = "the metrics", content_type = "text/plain", body = String),
        (status = 500, body = super::ErrorBody)))]
async fn metrics(State(shared): State<Arc<Shared>>) -> Result<Response, ApiError> {
    let statuses = shared.fleet.lock().map(|f| f.clone()).unwrap_or_default();
    let s = shared.clone();
    let levels = blocking(move || {
        let catalogue = s.catalogue.catalogue()?;
        let index = playlists::catalogue::CatalogueIndex::new(&catalogue);
        let mut levels = Levels {
            ingest_queue: s.ingest_queue.load(Ordering::SeqCst) as u64,
            broker_connected: s.broker_connected.load(Ordering::SeqCst),
            publisher_lease_held: s.publisher.publishing(),
            store_bytes: crate::telemetry::dir_bytes(s.store.dir()),
            ..Levels::default()
        };
        for screen in &catalogue.screens {
            let district = index
                .venue(screen.venue.as_str())
                .and_then(|v| v.district.clone())
                .unwrap_or_else(|| "none".into());
            let online = statuses.get(screen.id.as_str()).is_some_and(|st| st.online);
            *levels.screens_online.entry(district).or_default() += u64::from(online);
        }
        levels.outbox_backlog = statuses.values().map(|st| st.outbox_backlog).sum();
        Ok(levels)
    })
    .await?;
    let text = shared.metrics.render(&levels);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// Counts a request by method, route template (`unmatched` when no route took it) and
/// status, with its duration.
pub async fn count_requests(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    shared.metrics.http(
        method.as_str(),
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}
