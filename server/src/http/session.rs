//! `/api/v1/session`: the dashboard's login (`POST`, name and password as JSON; sets the
//! session cookie), who is logged in with the session's CSRF token (`GET`), and logout
//! (`DELETE`). The rules (hashing, expiry, slowing failed logins) are `crate::session`'s;
//! this module only speaks HTTP and cookies.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use cookie::{Cookie, SameSite};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{blocking, ApiError, ApiJson, Caller, ErrorBody};
use crate::app::Shared;
use crate::session::{LoginError, COOKIE, IDLE};
use crate::store::{Role, Session};

pub fn router() -> OpenApiRouter<Arc<Shared>> {
    OpenApiRouter::new().routes(routes!(login, current, logout))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub name: String,
    pub password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The logged-in user and the token every state change of this session carries as
/// `X-CSRF-Token`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionView {
    pub name: String,
    pub roles: Vec<Role>,
    pub csrf_token: String,
    /// When the session ends unless it is used before.
    pub idle_until: chrono::DateTime<Utc>,
    /// The zone most of the catalogue's venues keep: the dashboard's times are in it when
    /// no venue is at hand.
    pub timezone: String,
}

/// The value of the session cookie in `headers`, if any.
pub fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_owned())
}

/// The `Set-Cookie` of a session (`id` empty and expired: its removal).
fn set_cookie(id: &str, https: bool) -> HeaderValue {
    let mut c = Cookie::build((COOKIE, id.to_owned()))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .secure(https);
    c = if id.is_empty() {
        c.max_age(cookie::time::Duration::ZERO)
    } else {
        c.max_age(cookie::time::Duration::seconds(IDLE.num_seconds()))
    };
    // A cookie of our own hex id and fixed attributes is always a valid header value.
    HeaderValue::from_str(&c.build().to_string()).unwrap_or(HeaderValue::from_static(""))
}

/// Logs in with a name and password: sets the session cookie (HttpOnly, SameSite=Strict,
/// Secure over HTTPS) and answers as `GET`. Wrong name or password: 401; too many failures
/// for the name: 429 with `Retry-After`. Every attempt lands in the change log.
#[utoipa::path(post, path = "/api/v1/session", security(()), request_body = Login,
    responses((status = 200, body = SessionView, headers(("set-cookie" = String))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn login(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Login>,
) -> Result<Response, ApiError> {
    // A cross-site form cannot send JSON without a CORS preflight: no login CSRF.
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Err(ApiError::unsupported_media(
            "a login is a JSON body with Content-Type: application/json",
        ));
    }
    let s = shared.clone();
    let outcome = blocking(move || {
        Ok(crate::session::login(
            &*s.store,
            &s.logins,
            &body.name,
            &body.password,
            Utc::now(),
        ))
    })
    .await?;
    let new = match outcome {
        Ok(new) => new,
        Err(LoginError::Refused) => {
            return Err(ApiError::unauthorized("wrong name or password"));
        }
        Err(e @ LoginError::Slowed { retry_after_secs }) => {
            let mut r = ApiError::too_many(e.to_string()).into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            return Ok(r);
        }
        Err(LoginError::Store(e)) => return Err(e.into()),
    };
    let https = shared.https.load(Ordering::SeqCst);
    let view = view(&shared, new.user.name, new.user.roles, &new.session);
    let mut r = Json(view).into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, set_cookie(&new.id, https));
    Ok(r)
}

fn view(shared: &Shared, name: String, roles: Vec<Role>, s: &Session) -> SessionView {
    let timezone = shared
        .catalogue
        .catalogue()
        .map_or(chrono_tz::UTC, |c| c.main_zone());
    SessionView {
        name,
        roles,
        csrf_token: s.csrf_token.clone(),
        idle_until: s.last_seen + IDLE,
        timezone: timezone.name().to_owned(),
    }
}

/// The session's user and CSRF token (401 without a current session).
#[utoipa::path(get, path = "/api/v1/session", security(("session" = [])),
    responses((status = 200, body = SessionView), (status = 401, body = ErrorBody)))]
async fn current(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Json<SessionView>, ApiError> {
    let (user, session, _) = from_cookie(&shared, &headers).await?;
    Ok(Json(view(&shared, user.name, user.roles, &session)))
}

/// Logs out: the session ends on the server and the cookie is removed. A state change:
/// needs `X-CSRF-Token`.
#[utoipa::path(delete, path = "/api/v1/session", security(("session" = [])),
    responses((status = 204, description = "logged out", headers(("set-cookie" = String))),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn logout(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    // Checks the session and its CSRF token.
    caller: Caller,
) -> Result<Response, ApiError> {
    let id = cookie_value(&headers).ok_or_else(|| {
        ApiError::invalid("logout ends a dashboard session; this request has no session cookie")
    })?;
    let s = shared.clone();
    let user = caller.name().to_owned();
    blocking(move || Ok(crate::session::logout(&*s.store, &id, &user, Utc::now())?)).await?;
    let https = shared.https.load(Ordering::SeqCst);
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, set_cookie("", https));
    Ok(r)
}

/// The session a request's cookie names (401 without one, or when it has ended).
pub async fn from_cookie(
    shared: &Arc<Shared>,
    headers: &HeaderMap,
) -> Result<(crate::store::User, Session, String), ApiError> {
    let id = cookie_value(headers).ok_or(crate::auth::AuthError::Missing)?;
    let s = shared.clone();
    blocking(move || {
        let (user, session) =
            crate::session::authenticate(&*s.store, &id, Utc::now()).map_err(|e| match e {
                crate::session::SessionError::Auth(a) => ApiError::from(a),
                crate::session::SessionError::Store(s) => s.into(),
            })?;
        Ok((user, session, id))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_http_only_strict_and_secure_over_https() {
        let id = "ab".repeat(32);
        let plain = set_cookie(&id, false);
        let plain = plain.to_str().unwrap();
        assert!(plain.starts_with(&format!("{COOKIE}={id}")), "{plain}");
        for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
            assert!(plain.contains(attr), "{attr} in {plain}");
        }
        assert!(!plain.contains("Secure"), "{plain}");
        let tls = set_cookie(&id, true);
        assert!(tls.to_str().unwrap().contains("Secure"));
        assert!(set_cookie("", false)
            .to_str()
            .unwrap()
            .contains("Max-Age=0"));

        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=1; {COOKIE}={id}; b=2")).unwrap(),
        );
        assert_eq!(cookie_value(&headers), Some(id));
        assert_eq!(cookie_value(&HeaderMap::new()), None);
    }
}
