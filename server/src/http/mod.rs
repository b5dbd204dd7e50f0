//! HTTP: the API under `/api/v1` (each resource module owns its routes), health, media by
//! hash and the dashboard page. This module merges the routers, documents them (the
//! OpenAPI 3.1 document is generated from the handlers' annotations, so every route is in
//! it), answers unknown routes and methods in the API's error shape, and layers `guard.rs`
//! on everything: callers by API token or dashboard session (with its CSRF token on state
//! changes), refused privileged actions recorded in the change log, and the security
//! headers (a strict Content-Security-Policy among them) on every response.

mod admin;
mod broker;
mod campaigns;
mod creatives;
mod emergencies;
pub mod error;
mod fleet;
mod guard;
mod media_serve;
mod metrics;
mod plans;
mod reports;
mod review;
pub mod session;
mod sites;
mod validate;
mod web;

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use playlists::Sha256;

use crate::app::Shared;
pub use admin::{CreatedUser, UserView};
pub use error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
pub use guard::{Caller, CSP, CSRF_HEADER};
pub use plans::explain_text;
pub use session::SessionView;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "signage API",
        description = "Campaigns, screens, creatives, plans, reports and emergencies of a signage server. Every route but /health, /ready, /media and the login needs `Authorization: Bearer <token>` or a dashboard session cookie (whose state changes carry `X-CSRF-Token`).",
        version = "1"
    ),
    modifiers(&BearerAuth),
    security(("bearer" = []), ("session" = [])),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(crate::session::COOKIE))),
        );
    }
}

/// The API's routes and their OpenAPI document.
pub fn api() -> (Router<Arc<Shared>>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(sites::router())
        .merge(creatives::router())
        .merge(campaigns::router())
        .merge(review::router())
        .merge(validate::router())
        .merge(plans::router())
        .merge(reports::router())
        .merge(fleet::router())
        .merge(broker::router())
        .merge(emergencies::router())
        .merge(admin::router())
        .merge(session::router())
        .merge(metrics::router())
        .routes(utoipa_axum::routes!(health))
        .routes(utoipa_axum::routes!(ready))
        .routes(utoipa_axum::routes!(media))
        .split_for_parts()
}

/// The whole HTTP service.
pub fn router(shared: Arc<Shared>) -> Router {
    let (api, doc) = api();
    let doc = Arc::new(doc);
    Router::new()
        .route("/", get(web::page))
        .route("/ui/{name}", get(web::asset))
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json((*doc).clone()) }
            }),
        )
        .merge(api)
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::wrong_method)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            guard::record_refusals,
        ))
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            guard::security_headers,
        ))
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            metrics::count_requests,
        ))
        .with_state(shared)
}

/// `limit` and `cursor` of a list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// At most this many items (1-1000, default 100).
    pub limit: Option<usize>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(100),
            Some(n @ 1..=1000) => Ok(n),
            Some(n) => Err(ApiError::invalid_field(
                "limit",
                format!("limit {n} is not in 1..=1000"),
            )),
        }
    }

    /// One page of `items` (sorted by `key`), after the cursor.
    pub fn page<T: Clone>(
        &self,
        items: &[T],
        key: impl Fn(&T) -> String,
    ) -> Result<Page<T>, ApiError> {
        let limit = self.limit()?;
        let start = match &self.cursor {
            None => 0,
            Some(c) => items.partition_point(|x| key(x).as_str() <= c.as_str()),
        };
        let page: Vec<T> = items[start..].iter().take(limit).cloned().collect();
        let next = if start + page.len() < items.len() {
            page.last().map(&key)
        } else {
            None
        };
        Ok(Page { items: page, next })
    }

    /// [`Self::page`] of a map keyed by what the cursor names (ids, as the catalogue keeps
    /// its entities): only the page's items are read and cloned, whatever the map's size.
    pub fn page_of_map<T: Clone>(
        &self,
        items: &std::collections::BTreeMap<String, T>,
    ) -> Result<Page<T>, ApiError> {
        use std::ops::Bound;
        let limit = self.limit()?;
        let after = match &self.cursor {
            None => Bound::Unbounded,
            Some(c) => Bound::Excluded(c.as_str()),
        };
        let mut rest = items.range::<str, _>((after, Bound::Unbounded));
        let page: Vec<(&String, &T)> = rest.by_ref().take(limit).collect();
        let next = match rest.next() {
            Some(_) => page.last().map(|(k, _)| (*k).clone()),
            None => None,
        };
        Ok(Page {
            items: page.into_iter().map(|(_, v)| v.clone()).collect(),
            next,
        })
    }
}

/// A page of a list.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The cursor of the next page; `null` on the last.
    pub next: Option<String>,
}

/// Runs blocking store work off the runtime.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await?
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Health {
    ok: bool,
}

/// The server is up.
#[utoipa::path(get, path = "/health", security(()), responses((status = 200, body = Health)))]
async fn health() -> Json<Health> {
    Json(Health { ok: true })
}

/// Whether the server can do its work, with the reason for each verdict.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Readiness {
    ready: bool,
    broker: Check,
    store: Check,
    ingest: Check,
    /// Whether this replica publishes schedules and commands (holds the publisher lease);
    /// never a reason to be unready: another replica publishes.
    publisher: Check,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Check {
    ok: bool,
    detail: String,
}

/// The ingest queue length above which the server says it is not keeping up.
const INGEST_BEHIND: usize = 2048;

/// Ready: the broker connection is up, the store answers, ingest keeps up (503 otherwise,
/// with the reasons).
#[utoipa::path(get, path = "/ready", security(()),
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
async fn ready(State(shared): State<Arc<Shared>>) -> (StatusCode, Json<Readiness>) {
    use std::sync::atomic::Ordering;
    let connected = shared.broker_connected.load(Ordering::SeqCst);
    let queued = shared.ingest_queue.load(Ordering::SeqCst);
    let s = shared.clone();
    let store = match tokio::task::spawn_blocking(move || {
        let head = s.store.head().map_err(|e| e.to_string())?;
        crate::health::probe_writable(s.store.dir()).map_err(|e| {
            format!(
                "the data directory {} takes no write: {e}",
                s.store.dir().display()
            )
        })?;
        Ok::<_, String>(head)
    })
    .await
    {
        Ok(Ok(head)) => Check {
            ok: true,
            detail: format!("catalogue at revision {head}; data directory writable"),
        },
        Ok(Err(detail)) => Check { ok: false, detail },
        Err(e) => Check {
            ok: false,
            detail: e.to_string(),
        },
    };
    let r = Readiness {
        broker: Check {
            ok: connected,
            detail: if connected {
                "connected"
            } else {
                "not connected"
            }
            .into(),
        },
        ingest: Check {
            ok: queued < INGEST_BEHIND,
            detail: format!("{queued} batches waiting"),
        },
        publisher: Check {
            ok: true,
            detail: if shared.publisher.publishing() {
                "this replica publishes (holds the publisher lease)"
            } else {
                "another replica publishes (holds the publisher lease)"
            }
            .into(),
        },
        ready: false,
        store,
    };
    let ready = r.broker.ok && r.store.ok && r.ingest.ok;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(Readiness { ready, ..r }))
}

/// A media file by its SHA-256 (what agents download).
#[utoipa::path(
    get,
    path = "/media/{sha256}",
    security(()),
    params(("sha256" = String, Path, description = "64 lowercase hex digits")),
    responses(
        (status = 200, description = "the file (its sniffed type), streamed", content_type = "application/octet-stream"),
        (status = 206, description = "the requested byte range", content_type = "application/octet-stream"),
        (status = 304, description = "unchanged (If-None-Match)"),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 416, description = "the range cannot be satisfied")
    )
)]
async fn media(
    State(shared): State<Arc<Shared>>,
    ApiPath(sha256): ApiPath<String>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let sha =
        Sha256::parse(&sha256).map_err(|e| ApiError::invalid_field("sha256", e.to_string()))?;
    let mut path = shared.store.media_path(&sha);
    if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
        // Another replica stored it: this one's copy is fetched (hash-checked) first.
        let (s, wanted) = (shared.clone(), sha.clone());
        path = blocking(move || match s.store.local_copy(&wanted) {
            Err(crate::store::StoreError::NotFound { .. }) => {
                Err(ApiError::not_found(format!("no media {wanted}")))
            }
            other => Ok(other?),
        })
        .await?;
    }
    match media_serve::serve(&path, &sha, &headers).await {
        Ok(response) => Ok(response),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(ApiError::not_found(format!("no media {sha256}")))
        }
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// Commits a catalogue change by the caller (off the runtime), then has the publisher
/// rebuild the documents of the screens it touches.
pub async fn apply(
    shared: &Arc<Shared>,
    caller: &Caller,
    comment: String,
    edit: impl FnOnce(&mut crate::store::Snapshot) -> Result<(), ApiError> + Send + 'static,
) -> Result<crate::catalogue::Applied, ApiError> {
    let s = shared.clone();
    let author = caller.name().to_owned();
    let applied = blocking(move || {
        let at = s.clock.now();
        s.catalogue
            .change(&author, &comment, at, |snapshot| {
                edit(snapshot).map_err(Wrapped)
            })
            .map_err(|Wrapped(e)| e)
    })
    .await?;
    if !applied.affected.is_empty() {
        shared
            .publisher
            .schedules(Some(applied.affected.clone()), false)
            .await;
    }
    Ok(applied)
}

/// An API error carried through the catalogue service.
struct Wrapped(ApiError);

impl From<crate::catalogue::CatalogueError> for Wrapped {
    fn from(e: crate::catalogue::CatalogueError) -> Wrapped {
        Wrapped(e.into())
    }
}

/// Refuses a body whose `id` differs from the path's.
pub fn same_id(path: &str, body: &str) -> Result<(), ApiError> {
    if path == body {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            "id",
            format!("the body's id {body:?} is not the path's {path:?}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::PageQuery;

    /// A map's pages are the pages of its values listed in key order, for every cursor: an
    /// id in the map, one between ids, before the first and after the last.
    #[test]
    fn pages_of_a_map_are_the_pages_of_its_list() {
        let map: BTreeMap<String, u32> = (0..25).map(|i| (format!("id-{:03}", i * 2), i)).collect();
        let list: Vec<(String, u32)> = map.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let cursors = [
            None,
            Some("id-"),
            Some("id-010"),
            Some("id-011"),
            Some("id-048"),
            Some("z"),
        ];
        for limit in [1, 3, 10, 25, 1000] {
            for cursor in cursors {
                let q = PageQuery {
                    limit: Some(limit),
                    cursor: cursor.map(str::to_owned),
                };
                let of_map = q.page_of_map(&map).unwrap();
                let of_list = q.page(&list, |(k, _)| k.clone()).unwrap();
                let values: Vec<u32> = of_list.items.iter().map(|(_, v)| *v).collect();
                assert_eq!(of_map.items, values, "limit {limit}, cursor {cursor:?}");
                assert_eq!(
                    of_map.next, of_list.next,
                    "limit {limit}, cursor {cursor:?}"
                );
            }
        }
        // Walking the pages visits every value once, in order.
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let q = PageQuery {
                limit: Some(7),
                cursor,
            };
            let page = q.page_of_map(&map).unwrap();
            seen.extend(page.items);
            match page.next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, (0..25).collect::<Vec<u32>>());
        assert!(PageQuery {
            limit: Some(0),
            cursor: None
        }
        .page_of_map(&map)
        .is_err());
    }

    /// design.md's route table, each path with its methods, is in the generated document.
    /// utoipa keys component schemas by type name: two types of one name would leave one
    /// schema for both (a response then violates its own document). Every type deriving
    /// `ToSchema` in the server's sources has a name of its own.
    #[test]
    fn schema_type_names_are_unique() {
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    out.push(p);
                }
            }
        }
        let mut files = Vec::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        let mut seen: std::collections::BTreeMap<String, String> = Default::default();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            let mut derives = false;
            for line in text.lines().map(str::trim) {
                if line.starts_with("#[derive(") && line.contains("ToSchema") {
                    derives = true;
                    continue;
                }
                if derives && !line.starts_with("#[") && !line.starts_with("///") {
                    let name = line
                        .split_whitespace()
                        .skip_while(|w| !["struct", "enum"].contains(w))
                        .nth(1)
                        .map(|n| {
                            n.trim_end_matches(['{', ';', '('])
                                .split('<')
                                .next()
                                .unwrap_or(n)
                                .to_owned()
                        });
                    if let Some(name) = name {
                        let at = f.display().to_string();
                        if let Some(first) = seen.insert(name.clone(), at.clone()) {
                            panic!("two schema types named {name}: {first} and {at}");
                        }
                    }
                    derives = false;
                }
            }
        }
        assert!(
            seen.len() > 20 && seen.contains_key("ErrorBody"),
            "{seen:?}"
        );
    }

    #[test]
    fn the_openapi_document_lists_every_route_of_the_design() {
        let doc = serde_json::to_value(super::api().1).expect("openapi json");
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().expect("paths");
        for (path, methods) in [
            ("/api/v1/venues", &["get", "post"][..]),
            ("/api/v1/venues/{id}", &["get", "put"]),
            ("/api/v1/screens", &["get", "post"]),
            ("/api/v1/screens/{id}", &["get", "put"]),
            ("/api/v1/screens/{id}/provision", &["post"]),
            ("/api/v1/creatives", &["get", "post"]),
            ("/api/v1/creatives/{id}", &["get"]),
            ("/api/v1/creatives/progress/{token}", &["get"]),
            ("/api/v1/creatives/{id}/thumbnail", &["get"]),
            ("/api/v1/creatives/{id}/renditions", &["get"]),
            ("/api/v1/campaigns", &["get", "post"]),
            ("/api/v1/campaigns/{id}", &["get", "put"]),
            ("/api/v1/campaigns/{id}/archive", &["post"]),
            ("/api/v1/campaigns/{id}/submit", &["post"]),
            ("/api/v1/campaigns/{id}/approve", &["post"]),
            ("/api/v1/campaigns/{id}/reject", &["post"]),
            ("/api/v1/campaigns/{id}/versions", &["get"]),
            ("/api/v1/preview/screens", &["get"]),
            ("/api/v1/campaigns/validate", &["post"]),
            ("/api/v1/taxonomy", &["get"]),
            ("/api/v1/dayparts/text", &["post"]),
            ("/api/v1/import", &["post"]),
            ("/api/v1/plan", &["get"]),
            ("/api/v1/explain", &["get"]),
            ("/api/v1/forecast", &["post"]),
            ("/api/v1/reports/{kind}", &["get"]),
            ("/api/v1/audit/verify", &["post"]),
            ("/api/v1/audit/last", &["get"]),
            ("/api/v1/reports/series", &["get"]),
            ("/api/v1/reports/names", &["get"]),
            ("/api/v1/fleet", &["get"]),
            ("/api/v1/fleet/summary", &["get"]),
            ("/api/v1/fleet/venues", &["get"]),
            ("/api/v1/emergencies/history", &["get"]),
            ("/api/v1/emergencies/choices", &["get"]),
            ("/api/v1/changes", &["get"]),
            ("/api/v1/emergencies", &["get", "post"]),
            ("/api/v1/emergencies/{id}/end", &["post"]),
            ("/health", &["get"]),
            ("/ready", &["get"]),
            ("/metrics", &["get"]),
            ("/media/{sha256}", &["get"]),
            ("/api/v1/session", &["get", "post", "delete"]),
            ("/api/v1/users/{name}/password", &["put"]),
        ] {
            let item = paths
                .get(path)
                .unwrap_or_else(|| panic!("{path} is not in the document"));
            for m in methods {
                assert!(item.get(*m).is_some(), "{m} {path} is not in the document");
            }
        }
        // Every operation needs a token or a session except the open ones.
        let open = [
            ("get", "/health"),
            ("get", "/ready"),
            ("get", "/metrics"),
            ("get", "/media/{sha256}"),
            ("post", "/api/v1/session"),
        ];
        for (path, item) in paths {
            for (method, op) in item.as_object().expect("path item") {
                let public = op["security"] == serde_json::json!([{}]);
                let want = open.contains(&(method.as_str(), path.as_str()));
                assert_eq!(public, want, "{method} {path}");
            }
        }
    }
}
