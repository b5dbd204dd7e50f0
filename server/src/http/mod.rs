//! HTTP: health, media by hash, fleet status and reports as JSON, and the dashboard page;
//! emergency takeovers are `emergencies.rs`'s router, merged here. One error type maps to
//! status codes; causes are logged, 500s stay opaque.

mod emergencies;
mod media_serve;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use playlists::Sha256;

use crate::app::Shared;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("not found")]
    NotFound,
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("unauthorised: {0}")]
    Unauthorized(&'static str),
    #[error("not found: {0}")]
    Missing(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = match &self {
            HttpError::NotFound => StatusCode::NOT_FOUND,
            HttpError::BadRequest(_) => StatusCode::BAD_REQUEST,
            HttpError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            HttpError::Missing(_) => StatusCode::NOT_FOUND,
            HttpError::Conflict(_) => StatusCode::CONFLICT,
            HttpError::Internal(cause) => {
                tracing::error!(error = %cause, "request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/health", get(health))
        .route("/media/{sha256}", get(media))
        .route("/api/fleet", get(fleet))
        .route("/api/report/venues", get(venues))
        .merge(emergencies::router())
        .with_state(shared)
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "ok": true }))
}

async fn media(
    State(shared): State<Arc<Shared>>,
    Path(sha256): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<Response, HttpError> {
    let sha = Sha256::parse(&sha256).map_err(|e| HttpError::BadRequest(e.to_string()))?;
    let path = shared.store.media_path(&sha);
    match media_serve::serve(&path, &sha, &headers).await {
        Ok(response) => Ok(response),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(HttpError::NotFound),
        Err(e) => Err(HttpError::Internal(e.into())),
    }
}

async fn fleet(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let fleet = shared.fleet.lock().expect("fleet lock").clone();
    Json(serde_json::to_value(fleet).unwrap_or_default())
}

async fn venues(State(shared): State<Arc<Shared>>) -> Result<Json<serde_json::Value>, HttpError> {
    let shared = shared.clone();
    let rows = tokio::task::spawn_blocking(move || {
        crate::report::venue_rows(
            &shared.store,
            &shared.ledger,
            &crate::report::Window::default(),
        )
    })
    .await
    .map_err(|e| HttpError::Internal(e.into()))?
    .map_err(HttpError::Internal)?;
    Ok(Json(serde_json::to_value(rows).unwrap_or_default()))
}

async fn dashboard() -> Html<&'static str> {
    Html(include_str!("../dashboard.html"))
}
