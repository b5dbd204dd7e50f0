//! Who is calling and what every response carries: [`Caller`] (an API token, or the
//! dashboard's session cookie whose state changes must carry the session's CSRF token),
//! the change-log record of every refused privileged action, and the security headers (a
//! strict Content-Security-Policy among them). `mod.rs` layers the two middlewares on the
//! whole service.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;

use super::{error, session, ApiError};
use crate::app::Shared;
use crate::store::{EventKind, Role, User};

/// The dashboard's Content-Security-Policy: nothing but the server's own scripts, styles
/// and images (and `data:` images); no inline script or style, no plugins, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// Puts the security headers on every response: the CSP, no sniffing, no referrer, no
/// framing, `no-store` on API answers, and HSTS when served over HTTPS.
pub(super) async fn security_headers(
    State(shared): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if api {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if shared.https.load(std::sync::atomic::Ordering::SeqCst) {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}

/// Records every refused privileged action (a 403 for a missing role or CSRF token) in
/// the change log, authored by the caller, naming the method and path.
pub(super) async fn record_refusals(
    State(shared): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let path: String = req.uri().path().chars().take(200).collect();
    let response = next.run(req).await;
    if let Some(r) = response.extensions().get::<error::Refusal>().cloned() {
        let s = shared.clone();
        let comment = format!("refused {method} {path}: {}", r.message);
        tracing::warn!(user = %r.user, %method, %path, "refused: {}", r.message);
        let recorded = tokio::task::spawn_blocking(move || {
            s.store
                .record_event(EventKind::Refused, &r.user, chrono::Utc::now(), &comment)
        })
        .await;
        match recorded {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot record a refusal"),
            Err(e) => tracing::error!(error = %e, "cannot record a refusal"),
        }
    }
    response
}
/// The authenticated caller of an API route.
#[derive(Debug, Clone)]
pub struct Caller(pub User);

impl Caller {
    /// Refuses a caller holding none of `roles` (403 naming the role needed).
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        crate::auth::require(&self.0, roles).map_err(ApiError::from)
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }
}

/// The header a session's state changes carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

impl FromRequestParts<Arc<Shared>> for Caller {
    type Rejection = ApiError;

    /// An `Authorization: Bearer` token (scripts, the CLI: no CSRF token needed, since no
    /// browser sends it by itself), or else the dashboard's session cookie, whose every
    /// request other than GET and HEAD must carry the session's `X-CSRF-Token`.
    async fn from_request_parts(
        parts: &mut Parts,
        shared: &Arc<Shared>,
    ) -> Result<Self, Self::Rejection> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if bearer.is_some() || session::cookie_value(&parts.headers).is_none() {
            // Off the runtime, as every store call.
            let (s, bearer) = (shared.clone(), bearer.map(str::to_owned));
            let user = super::blocking(move || {
                Ok(crate::auth::authenticate(&*s.store, bearer.as_deref())?)
            })
            .await?;
            return Ok(Caller(user));
        }
        let (user, s, _) = session::from_cookie(shared, &parts.headers).await?;
        if !matches!(parts.method, Method::GET | Method::HEAD) {
            let given = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            let problem = match given {
                None => Some("missing"),
                Some(g) if !crate::session::csrf_matches(&s, g) => Some("wrong"),
                Some(_) => None,
            };
            if let Some(problem) = problem {
                return Err(crate::auth::AuthError::Csrf {
                    user: user.name,
                    problem,
                }
                .into());
            }
        }
        Ok(Caller(user))
    }
}
