//! `/api/emergencies`: list, start and end emergency takeovers. Changes need the admin
//! token (`Authorization: Bearer …`); bodies are parsed here so that malformed JSON gets
//! the same JSON error shape as every other refusal. The rules are `crate::emergency`'s.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::HttpError;
use crate::app::Shared;
use crate::emergency::{self, EmergencyError, Listed, Outcome, StartRequest};

pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/emergencies", get(list).post(start))
        .route("/api/emergencies/{id}/end", post(end))
}

impl From<EmergencyError> for HttpError {
    fn from(e: EmergencyError) -> HttpError {
        match e {
            EmergencyError::Store(cause) => HttpError::Internal(cause.into()),
            EmergencyError::Unknown(_) => HttpError::Missing(e.to_string()),
            EmergencyError::Duplicate(_) | EmergencyError::AlreadyEnded { .. } => {
                HttpError::Conflict(e.to_string())
            }
            _ => HttpError::BadRequest(e.to_string()),
        }
    }
}

fn authorise(shared: &Shared, headers: &HeaderMap) -> Result<(), HttpError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if given.is_none() {
        return Err(HttpError::Unauthorized(
            "missing Authorization: Bearer <admin token>",
        ));
    }
    if !shared.admin.authorises(given) {
        return Err(HttpError::Unauthorized("wrong admin token"));
    }
    Ok(())
}

async fn list(State(shared): State<Arc<Shared>>) -> Result<Json<Vec<Listed>>, HttpError> {
    let rows = tokio::task::spawn_blocking(move || emergency::list(&shared))
        .await
        .map_err(|e| HttpError::Internal(e.into()))??;
    Ok(Json(rows))
}

async fn start(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Outcome>), HttpError> {
    authorise(&shared, &headers)?;
    let req: StartRequest = serde_json::from_slice(&body)
        .map_err(|e| HttpError::BadRequest(format!("emergency request: {e}")))?;
    let outcome = emergency::start(&shared, req).await?;
    Ok((StatusCode::CREATED, Json(outcome)))
}

async fn end(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Outcome>, HttpError> {
    authorise(&shared, &headers)?;
    Ok(Json(emergency::end(&shared, &id).await?))
}
