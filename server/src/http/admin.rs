//! `/api/v1/users` (admin: people and their tokens) and `/api/v1/import` (admin or staff: a
//! whole scenario as one revision, all or nothing; live at once when an admin imports it,
//! drafts under four-eyes approval when staff do).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{blocking, ApiError, ApiJson, ApiQuery, Caller, ErrorBody};
use crate::app::Shared;
use crate::import::{ImportOptions, ImportSummary};
use crate::store::Role;

/// The largest scenario upload (scenario.json and every media file together).
pub const MAX_IMPORT: usize = 1024 * 1024 * 1024;

pub fn router() -> OpenApiRouter<Arc<Shared>> {
    OpenApiRouter::new()
        .routes(routes!(list_users, add_user))
        .routes(routes!(whoami))
        .routes(routes!(import))
        .layer(DefaultBodyLimit::max(MAX_IMPORT))
}

/// A user as the API shows it (no token, no hash).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserView {
    pub name: String,
    pub roles: Vec<Role>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub name: String,
    pub roles: Vec<Role>,
}

/// A new user and its API token, shown this once.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedUser {
    pub user: UserView,
    pub token: String,
}

/// The caller: its name and roles (any valid token).
#[utoipa::path(get, path = "/api/v1/whoami",
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody)))]
async fn whoami(caller: Caller) -> Json<UserView> {
    let u = caller.0;
    Json(UserView {
        name: u.name,
        roles: u.roles,
        created_at: u.created_at,
    })
}

/// Every user.
#[utoipa::path(get, path = "/api/v1/users",
    responses((status = 200, body = Vec<UserView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_users(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
) -> Result<Json<Vec<UserView>>, ApiError> {
    caller.require(&[Role::Admin])?;
    let users = blocking(move || Ok(shared.store.users()?)).await?;
    Ok(Json(
        users
            .into_iter()
            .map(|u| UserView {
                name: u.name,
                roles: u.roles,
                created_at: u.created_at,
            })
            .collect(),
    ))
}

/// Adds a user; the answer carries its token, which is never shown again.
#[utoipa::path(post, path = "/api/v1/users", request_body = NewUser,
    responses((status = 201, body = CreatedUser), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn add_user(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiJson(new): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<CreatedUser>), ApiError> {
    caller.require(&[Role::Admin])?;
    let author = caller.name().to_owned();
    let (user, token) = blocking(move || {
        crate::auth::add_user(&*shared.store, &new.name, &new.roles, &author).map_err(|e| match e {
            crate::auth::UserError::Invalid(m) => ApiError::invalid_field("name", m),
            crate::auth::UserError::Store(s) => s.into(),
        })
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedUser {
            user: UserView {
                name: user.name,
                roles: user.roles,
                created_at: user.created_at,
            },
            token,
        }),
    ))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ImportQuery {
    /// Archive campaigns, decommission screens and retire creatives the scenario leaves
    /// out, instead of refusing the import.
    archive_missing: Option<bool>,
}

/// The multipart form of an import (for the OpenAPI document).
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code, reason = "describes the multipart body; parsed by hand")]
struct ImportForm {
    /// The scenario's `scenario.json`.
    scenario: String,
    /// Every other part is a media file, named by its path relative to the scenario.
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    media: Vec<u8>,
}

/// Imports a scenario (`scenario` part: scenario.json; every other part a media file named
/// by its path in the scenario) as one revision, all or nothing. An admin's import is live
/// at once; under four-eyes approval, staff's campaigns and creatives arrive as drafts.
#[utoipa::path(post, path = "/api/v1/import", params(ImportQuery),
    request_body(content = ImportForm, content_type = "multipart/form-data"),
    responses((status = 200, body = ImportSummary), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn import(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ImportQuery>,
    mut form: Multipart,
) -> Result<Json<ImportSummary>, ApiError> {
    // An admin's import is live at once; staff's arrives as drafts (design.md, "Approval").
    caller.require(&[Role::Admin, Role::Staff])?;
    let at_once = caller.0.roles.contains(&Role::Admin) || super::campaigns::at_once(&shared);
    let mut scenario = None;
    let mut files = HashMap::new();
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                return Err(ApiError::invalid(format!(
                    "multipart body: {}",
                    e.body_text()
                )))
            }
        };
        let name = field.name().unwrap_or("").to_owned();
        let data = field
            .bytes()
            .await
            .map_err(|e| ApiError::invalid(format!("part {name:?}: {}", e.body_text())))?;
        if name == "scenario" {
            scenario = Some(String::from_utf8(data.to_vec()).map_err(|_| {
                ApiError::invalid_field("scenario", "scenario.json is not UTF-8 text")
            })?);
        } else {
            files.insert(name, data.to_vec());
        }
    }
    let text = scenario
        .ok_or_else(|| ApiError::invalid_field("scenario", "the `scenario` part is missing"))?;
    let options = ImportOptions {
        author: caller.name().to_owned(),
        at: shared.clock.now(),
        archive_missing: q.archive_missing.unwrap_or(false),
        at_once,
    };
    let s = shared.clone();
    let summary = blocking(move || {
        let loaded =
            crate::import::load_parts(std::path::Path::new("scenario.json"), &text, files)?;
        Ok(crate::import::import_loaded(
            &s.catalogue,
            &loaded,
            &options,
        )?)
    })
    .await?;
    shared.publisher.schedules(None, false).await;
    Ok(Json(summary))
}
