//! One error shape for every refusal of the API: `{"error": {"code", "message", "field"?}}`,
//! 4xx for the caller's mistakes (bodies, queries, paths, tokens, roles, unknown routes and
//! methods included), opaque 500s with the cause logged. The extractors here replace axum's
//! own so that a malformed body or query gets this shape too.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;

use playlists::scenario::ScenarioError;

use crate::auth::{AuthError, AuthenticateError};
use crate::catalogue::CatalogueError;
use crate::emergency::EmergencyError;
use crate::import::ImportError;
use crate::store::StoreError;

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable code (`invalid`, `not_found`, `unauthorized`, …).
    pub code: String,
    pub message: String,
    /// The offending field, where one is to blame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// An API refusal or failure.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
    cause: Option<anyhow::Error>,
    /// The user refused a privileged action (a missing role or CSRF token): the response
    /// carries a [`Refusal`] so that the change log records it.
    refused: Option<String>,
}

/// Attached to the response of a refused privileged action (403); `http/mod.rs` records it
/// in the change log with the request's method and path.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub user: String,
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            cause: None,
            refused: None,
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn too_many(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", message)
    }

    pub fn unsupported_media(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            message,
        )
    }

    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        let mut e = ApiError::invalid(message);
        e.field = Some(field.into());
        e
    }

    /// The same error, naming the field of the request that caused it.
    pub fn with_field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }

    pub fn internal(cause: impl Into<anyhow::Error>) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error (logged on the server)",
        );
        e.cause = Some(cause.into());
        e
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(cause) = &self.cause {
            tracing::error!(error = format!("{cause:#}"), "request failed");
        }
        let refusal = self.refused.map(|user| Refusal {
            user,
            message: self.message.clone(),
        });
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                field: self.field,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(r) = refusal {
            response.extensions_mut().insert(r);
        }
        response
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        match &e {
            AuthError::Forbidden { user, .. } | AuthError::Csrf { user, .. } => {
                let mut api = ApiError::new(StatusCode::FORBIDDEN, "forbidden", e.to_string());
                api.refused = Some(user.clone());
                api
            }
            _ => ApiError::unauthorized(e.to_string()),
        }
    }
}

impl From<AuthenticateError> for ApiError {
    fn from(e: AuthenticateError) -> ApiError {
        match e {
            AuthenticateError::Auth(a) => a.into(),
            AuthenticateError::Store(s) => s.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Conflict { .. } | StoreError::Exists { .. } => {
                ApiError::conflict(e.to_string())
            }
            StoreError::NotFound { .. } => ApiError::not_found(e.to_string()),
            other => ApiError::internal(other),
        }
    }
}

impl From<ScenarioError> for ApiError {
    fn from(e: ScenarioError) -> ApiError {
        match &e {
            ScenarioError::Invalid { field, .. } => ApiError::invalid_field(field, e.to_string()),
            _ => ApiError::invalid(e.to_string()),
        }
    }
}

impl From<CatalogueError> for ApiError {
    fn from(e: CatalogueError) -> ApiError {
        match e {
            CatalogueError::Invalid(s) => s.into(),
            CatalogueError::NotFound { .. } => ApiError::not_found(e.to_string()),
            CatalogueError::Refused(m) => ApiError::conflict(m),
            CatalogueError::Store(s) => s.into(),
        }
    }
}

impl From<EmergencyError> for ApiError {
    fn from(e: EmergencyError) -> ApiError {
        match e {
            EmergencyError::Store(cause) => cause.into(),
            EmergencyError::Catalogue(c) => c.into(),
            EmergencyError::Unknown(_) => ApiError::not_found(e.to_string()),
            EmergencyError::Duplicate(_)
            | EmergencyError::AlreadyEnded { .. }
            | EmergencyError::NotPending(_)
            | EmergencyError::ConfirmExpired { .. } => ApiError::conflict(e.to_string()),
            EmergencyError::OwnStart { .. } => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", e.to_string())
            }
            _ => ApiError::invalid(e.to_string()),
        }
    }
}

impl From<crate::approval::ApprovalError> for ApiError {
    fn from(e: crate::approval::ApprovalError) -> ApiError {
        use crate::approval::ApprovalError;
        match e {
            ApprovalError::OwnSubmission { .. } => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", e.to_string())
            }
            ApprovalError::NoReason { .. } => ApiError::invalid_field("reason", e.to_string()),
            _ => ApiError::conflict(e.to_string()),
        }
    }
}

impl From<ImportError> for ApiError {
    fn from(e: ImportError) -> ApiError {
        match e {
            ImportError::Scenario { source, .. } => source.into(),
            ImportError::Catalogue(c) => c.into(),
            ImportError::Store(s) => s.into(),
            ImportError::Refused(m) => ApiError::conflict(m),
            other => ApiError::invalid(other.to_string()),
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> ApiError {
        ApiError::internal(e)
    }
}

/// A JSON body; malformed or mistyped bodies are a 400 in the API's shape.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::invalid(format!("request body: {}", e.body_text())))?;
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|e| ApiError::invalid(format!("request body is not the expected JSON: {e}")))
    }
}

/// Query parameters; bad ones are a 400 in the API's shape.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| ApiError::invalid(e.body_text()))
    }
}

/// Path parameters; bad ones are a 400 in the API's shape.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e: PathRejection| ApiError::invalid(e.body_text()))
    }
}

/// Unknown routes.
pub async fn no_route() -> ApiError {
    ApiError::not_found("no such route")
}

/// Known routes asked with a method they do not take.
pub async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
}
