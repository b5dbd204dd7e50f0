//! `/api/v1/users` (admin: people, their tokens and dashboard passwords; a user may change
//! their own password) and `/api/v1/import` (admin or staff: a whole scenario as one revision,
//! all or nothing; live at once when an admin imports it, drafts under four-eyes approval when
//! staff do).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{blocking, ApiError, ApiJson, ApiPath, ApiQuery, Caller, ErrorBody};
use crate::app::Shared;
use crate::import::{ImportOptions, ImportSummary};
use crate::store::Role;

/// The largest scenario upload (scenario.json and every media file together).
pub const MAX_IMPORT: usize = 1024 * 1024 * 1024;

pub fn router() -> OpenApiRouter<Arc<Shared>> {
    OpenApiRouter::new()
        .routes(routes!(list_users, add_user))
        .routes(routes!(set_password))
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub name: String,
    pub roles: Vec<Role>,
    /// A dashboard password (at least 10 characters); without one the user has only the
    /// API token.
    #[serde(default)]
    pub password: Option<String>,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("name", &self.name)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

/// A new dashboard password. Users changing their own (without the admin role) give the
/// current one too, when they have one.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    pub password: String,
    #[serde(default)]
    pub current_password: Option<String>,
}

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewPassword").finish_non_exhaustive()
    }
}

fn user_error(e: crate::auth::UserError) -> ApiError {
    match e {
        crate::auth::UserError::Invalid(m) => ApiError::invalid_field("name", m),
        crate::auth::UserError::Password(m) => ApiError::invalid_field("password", m),
        crate::auth::UserError::Store(s) => s.into(),
    }
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
        crate::auth::add_user(
            &*shared.store,
            &new.name,
            &new.roles,
            new.password.as_deref(),
            &author,
        )
        .map_err(user_error)
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

/// Sets a user's dashboard password and ends their sessions: an admin for anyone, or users
/// for themselves (with their current password when they have one).
#[utoipa::path(put, path = "/api/v1/users/{name}/password", request_body = NewPassword,
    params(("name" = String, Path, description = "the user")),
    responses((status = 204, description = "set"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn set_password(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<NewPassword>,
) -> Result<StatusCode, ApiError> {
    let admin = caller.0.roles.contains(&Role::Admin);
    if !admin && caller.name() != name {
        caller.require(&[Role::Admin])?;
    }
    let author = caller.name().to_owned();
    let needs_current = !admin && caller.0.password_phc.is_some();
    let current_phc = caller.0.password_phc.clone();
    blocking(move || {
        if needs_current {
            let now = chrono::Utc::now();
            shared.logins.check(&name, now).map_err(|secs| {
                ApiError::too_many(format!("too many wrong passwords; try again in {secs} s"))
            })?;
            let given = body.current_password.as_deref().unwrap_or("");
            let ok = current_phc
                .as_deref()
                .is_some_and(|phc| crate::auth::verify_password(given, phc));
            if !ok {
                shared.logins.failed(&name, now);
                shared.store.record_event(
                    crate::store::EventKind::LoginFailed,
                    &name,
                    now,
                    "password change refused: wrong current password",
                )?;
                return Err(ApiError::invalid_field(
                    "current_password",
                    "give your current password (current_password) to change it",
                ));
            }
        }
        crate::auth::set_password(&*shared.store, &name, &body.password, &author)
            .map_err(user_error)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
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
