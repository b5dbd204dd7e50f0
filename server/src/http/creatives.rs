//! `/api/v1/creatives`: upload (multipart: a `file` part streamed to disk while hashed,
//! and a `meta` JSON part), list, read, thumbnail and retire. An upload is probed with
//! `media` off the runtime (fully decoded, so truncated or corrupt files and decompression
//! bombs are refused with a 4xx) and checked (`media_checks`: flashes) before anything is
//! stored; its thumbnail is made and stored with it (`posters`). Under four-eyes approval an
//! upload is a draft, submitted and then approved or rejected by an approver who did not
//! submit it (`/submit`, `/approve`, `/reject`); only an approved creative plays.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use sha2::{Digest, Sha256 as Sha};
use tokio::io::AsyncWriteExt;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use playlists::scenario::FileCreative;
use playlists::Sha256;

use super::campaigns::{at_once, Rejection, EDIT, READ, REVIEW};
use super::{apply, blocking, ApiError, ApiPath, ApiQuery, Caller, ErrorBody, Page, PageQuery};
use crate::app::Shared;
use crate::approval::{self, Action};
use crate::ingest::{self, IngestError, Phase, Progress, ProgressBoard};
use crate::store::{CampaignState, CreativeEntity, Entity, StoredMeasurement, StoredRendition};

/// The largest upload accepted (the media crate's own file limit is the same).
pub const MAX_UPLOAD: usize = 256 * 1024 * 1024;

pub fn router() -> OpenApiRouter<Arc<Shared>> {
    OpenApiRouter::new()
        .routes(routes!(list_creatives, upload_creative))
        .routes(routes!(get_creative))
        .routes(routes!(upload_progress))
        .routes(routes!(thumbnail))
        .routes(routes!(renditions))
        .routes(routes!(retire_creative))
        .routes(routes!(submit_creative))
        .routes(routes!(approve_creative))
        .routes(routes!(reject_creative))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD + 64 * 1024))
}

/// The `meta` part of an upload.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadMeta {
    pub id: String,
    #[serde(default)]
    pub title: String,
    /// Required for stills; for videos it defaults to the measured length.
    #[serde(default)]
    pub duration_seconds: Option<u32>,
    /// When given, the upload is refused unless the file has this SHA-256.
    #[serde(default)]
    pub sha256: Option<String>,
    /// How renditions meet a screen of another aspect ratio: `"fit"` (the default:
    /// inside, on `background`) or `"fill"` (a centre crop).
    #[serde(default)]
    pub fit: Option<String>,
    /// `#rrggbb` behind a `"fit"` rendition; black when left out.
    #[serde(default)]
    pub background: Option<String>,
    /// Plays on screens of any aspect ratio, not only within 2 % of its own.
    #[serde(default)]
    pub any_aspect: bool,
}

/// The multipart form of an upload (for the OpenAPI document).
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code, reason = "describes the multipart body; parsed by hand")]
struct UploadForm {
    /// JSON: `{"id", "title"?, "duration_seconds"?, "sha256"?, "fit"?, "background"?,
    /// "any_aspect"?}`.
    meta: String,
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    file: Vec<u8>,
}

/// Every creative, retired ones included.
#[utoipa::path(get, path = "/api/v1/creatives", params(PageQuery),
    responses((status = 200, body = Page<CreativeEntity>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn list_creatives(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Page<CreativeEntity>>, ApiError> {
    caller.require(READ)?;
    let snapshot = blocking(move || Ok(shared.store.snapshot()?)).await?;
    Ok(Json(page.page_of_map(&snapshot.creatives)?))
}

/// One creative.
#[utoipa::path(get, path = "/api/v1/creatives/{id}", params(("id" = String, Path, example = "rm2023-w51-1")),
    responses((status = 200, body = CreativeEntity), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn get_creative(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CreativeEntity>, ApiError> {
    caller.require(READ)?;
    let snapshot = blocking(move || Ok(shared.store.snapshot()?)).await?;
    snapshot
        .creatives
        .get(&id)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no creative {id:?}")))
}

/// The query of an upload.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// A token of the client's choosing (1-64 letters, digits, `-`, `_`): the upload's
    /// phase can then be read at `/api/v1/creatives/progress/{token}` while it runs.
    pub progress: Option<String>,
}

/// Uploads a creative: a `file` part and a `meta` JSON part. A video outside the kiosk
/// gate is transcoded into it, and one off the loudness target normalised (as
/// configured); the creative's `checks` say what was found and done. A refusal by a check
/// is a 4xx whose `field` names the check.
#[utoipa::path(post, path = "/api/v1/creatives", params(UploadQuery),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 201, body = CreativeEntity), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn upload_creative(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiQuery(query): ApiQuery<UploadQuery>,
    headers: header::HeaderMap,
    form: Multipart,
) -> Result<(StatusCode, Json<CreativeEntity>), ApiError> {
    caller.require(EDIT)?;
    let token = match query.progress {
        Some(t) if ProgressBoard::valid_token(&t) => Some(t),
        Some(_) => {
            return Err(ApiError::invalid_field(
                "progress",
                "a progress token is 1 to 64 letters, digits, '-' or '_'",
            ))
        }
        None => None,
    };
    let total = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let tracker = Tracker {
        shared: shared.clone(),
        token,
        total,
    };
    tracker.set(Phase::Receiving, 0.0, "");
    match upload(&shared, &caller, form, &tracker).await {
        Ok(entity) => {
            tracker.set(Phase::Done, 1.0, entity.spec.id.clone());
            Ok((StatusCode::CREATED, Json(entity)))
        }
        Err(e) => {
            tracker.set(Phase::Failed, 1.0, e.message().to_owned());
            Err(e)
        }
    }
}

/// Reports an upload's phase under its token, when it has one.
struct Tracker {
    shared: Arc<Shared>,
    token: Option<String>,
    /// The request's length, for the fraction received.
    total: Option<u64>,
}

impl Tracker {
    fn set(&self, phase: Phase, fraction: f32, detail: impl Into<String>) {
        if let Some(token) = &self.token {
            self.shared
                .upload_progress
                .set(token, phase, fraction, detail);
        }
    }

    fn received(&self, bytes: u64) {
        let fraction = self
            .total
            .filter(|&t| t > 0)
            .map_or(0.0, |t| bytes as f32 / t as f32);
        self.set(
            Phase::Receiving,
            fraction,
            format!("{bytes} bytes received"),
        );
    }
}

async fn upload(
    shared: &Arc<Shared>,
    caller: &Caller,
    mut form: Multipart,
    tracker: &Tracker,
) -> Result<CreativeEntity, ApiError> {
    let upload_dir = shared.store.upload_dir();
    let mut meta: Option<UploadMeta> = None;
    let mut file: Option<(tempfile::TempPath, String, u64)> = None;
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(multipart_error(e)),
        };
        match field.name() {
            Some("meta") => {
                let text = field.text().await.map_err(multipart_error)?;
                meta = Some(serde_json::from_str(&text).map_err(|e| {
                    ApiError::invalid_field("meta", format!("meta is not the expected JSON: {e}"))
                })?);
            }
            Some("file") => file = Some(receive(&upload_dir, field, tracker).await?),
            other => {
                return Err(ApiError::invalid(format!(
                    "unexpected part {:?}: send `file` and `meta`",
                    other.unwrap_or("")
                )))
            }
        }
    }
    let meta = meta.ok_or_else(|| ApiError::invalid_field("meta", "the `meta` part is missing"))?;
    let (temp, sha256, _bytes) =
        file.ok_or_else(|| ApiError::invalid_field("file", "the `file` part is missing"))?;
    if let Some(want) = &meta.sha256 {
        if !want.eq_ignore_ascii_case(&sha256) {
            return Err(ApiError::invalid_field(
                "sha256",
                format!("the file has sha256 {sha256}, meta says {want}"),
            ));
        }
    }
    playlists::CreativeId::parse(&meta.id)
        .map_err(|e| ApiError::invalid_field("id", e.to_string()))?;
    playlists::Fit::parse(meta.fit.as_deref(), meta.background.as_deref())
        .map_err(|(field, problem)| ApiError::invalid_field(field, problem))?;
    let s = shared.clone();
    let id = meta.id.clone();
    // Refuse a taken id before any transcoding (the commit checks again).
    blocking(move || {
        if s.store.snapshot()?.creatives.contains_key(&id) {
            return Err(ApiError::conflict(format!(
                "creative {id:?} already exists"
            )));
        }
        Ok(())
    })
    .await?;

    let path = temp.to_path_buf();
    let id = meta.id.clone();
    let policy = shared.media.clone();
    let board = Tracker {
        shared: shared.clone(),
        token: tracker.token.clone(),
        total: None,
    };
    let ingested = blocking(move || {
        ingest::ingest(&path, &upload_dir, &policy, &mut |phase, f| {
            board.set(phase, f, "")
        })
        .map_err(|e| refusal(&id, e))
    })
    .await?;
    tracker.set(Phase::Storing, 0.0, "");
    let measured = &ingested.measured;
    let kind = match measured.kind {
        media::MediaKind::Image => playlists::MediaKind::Image,
        media::MediaKind::Video => playlists::MediaKind::Video,
    };
    let duration_seconds = match (meta.duration_seconds, measured.duration_ms) {
        (Some(d), _) => d,
        (None, Some(ms)) => u32::try_from(ms.div_ceil(1000)).unwrap_or(u32::MAX).max(1),
        (None, None) => {
            return Err(ApiError::invalid_field(
                "duration_seconds",
                "a still needs duration_seconds (how long it plays in a slot)",
            ))
        }
    };
    let sha =
        Sha256::parse(&measured.sha256).map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
    let measurement = playlists::scenario::Measurement {
        kind,
        width: measured.width,
        height: measured.height,
        duration_ms: measured.duration_ms,
        sha256: sha.clone(),
        bytes: measured.bytes,
    };
    let stored_sha = measured.sha256.clone();
    let entity = CreativeEntity {
        spec: FileCreative {
            id: meta.id.clone(),
            file: format!("media/{stored_sha}"),
            kind: kind.as_str().to_owned(),
            duration_seconds,
            title: meta.title.clone(),
            sha256: stored_sha.clone(),
            bytes: measured.bytes,
            fit: meta.fit.clone(),
            background: meta.background.clone(),
            any_aspect: meta.any_aspect,
        },
        measurement: StoredMeasurement::from_measurement(&measurement),
        retired_at: None,
        approval: approval::new_creative(
            at_once(shared),
            approval::Actor {
                name: caller.name(),
                at: shared.clock.now(),
            },
        ),
        checks: ingested.checks,
        source_sha256: (stored_sha != sha256).then_some(sha256),
        thumbnail_sha256: None,
    };
    let s = shared.clone();
    let keep = ingested.transcoded.unwrap_or(temp);
    let jpeg = ingested.thumbnail;
    let id = entity.spec.id.clone();
    let thumbnail = blocking(move || {
        let kept = keep.keep().map_err(|e| ApiError::internal(e.error))?;
        s.store.adopt_media(&sha, &kept)?;
        // Without a thumbnail stored the first request makes one: not worth failing for.
        Ok(jpeg.and_then(|j| {
            crate::posters::keep(s.store.as_ref(), &j)
                .inspect_err(|e| tracing::warn!(creative = %id, "thumbnail not stored: {e}"))
                .ok()
                .map(|t| t.as_str().to_owned())
        }))
    })
    .await?;
    let mut entity = entity;
    entity.thumbnail_sha256 = thumbnail;
    let e = entity.clone();
    apply(
        shared,
        caller,
        format!("creative {} uploaded", e.spec.id),
        move |s| {
            if s.creatives.contains_key(&e.spec.id) {
                return Err(ApiError::conflict(format!(
                    "creative {:?} already exists",
                    e.spec.id
                )));
            }
            s.put(Entity::Creative(e));
            Ok(())
        },
    )
    .await?;
    Ok(entity)
}

/// An ingest refusal as a 400 whose field names the check (`file` for a file we cannot
/// read, `flash`, `loudness`, `transcode`).
fn refusal(id: &str, e: IngestError) -> ApiError {
    match &e {
        IngestError::Io { .. } => ApiError::internal(e),
        IngestError::Media(_) => ApiError::invalid_field("file", format!("creative {id:?}: {e}")),
        IngestError::Refused { .. } | IngestError::Transcode(_) => {
            ApiError::invalid_field(e.check(), format!("creative {id:?}: {e}"))
        }
    }
}

/// Where the upload under a progress token is: receiving (fraction of the request
/// received), probing, checking, transcoding (fraction of the duration done), storing,
/// done (`detail` is the creative's id) or failed (`detail` is the refusal). Kept in
/// memory for ten minutes after its last change.
#[utoipa::path(get, path = "/api/v1/creatives/progress/{token}",
    params(("token" = String, Path, example = "upload-7f3a")),
    responses((status = 200, body = Progress), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn upload_progress(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(token): ApiPath<String>,
) -> Result<Json<Progress>, ApiError> {
    caller.require(EDIT)?;
    if !ProgressBoard::valid_token(&token) {
        return Err(ApiError::invalid_field(
            "token",
            "a progress token is 1 to 64 letters, digits, '-' or '_'",
        ));
    }
    shared
        .upload_progress
        .get(&token)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no upload in progress under {token:?}")))
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(format!("upload over {MAX_UPLOAD} bytes"))
    } else {
        ApiError::invalid(format!("multipart body: {}", e.body_text()))
    }
}

/// Streams a part to a temporary file in `dir`, hashing it; (file, sha256, bytes).
async fn receive(
    dir: &std::path::Path,
    mut field: axum::extract::multipart::Field<'_>,
    tracker: &Tracker,
) -> Result<(tempfile::TempPath, String, u64), ApiError> {
    let temp = tempfile::NamedTempFile::new_in(dir).map_err(ApiError::internal)?;
    let (std_file, path) = temp.into_parts();
    let mut out = tokio::fs::File::from_std(std_file);
    let mut hasher = Sha::new();
    let mut bytes: u64 = 0;
    let mut reported: u64 = 0;
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        bytes += chunk.len() as u64;
        if bytes > MAX_UPLOAD as u64 {
            return Err(ApiError::too_large(format!(
                "upload over {MAX_UPLOAD} bytes"
            )));
        }
        hasher.update(&chunk);
        out.write_all(&chunk).await.map_err(ApiError::internal)?;
        if bytes - reported >= 256 * 1024 {
            reported = bytes;
            tracker.received(bytes);
        }
    }
    out.sync_all().await.map_err(ApiError::internal)?;
    if bytes == 0 {
        return Err(ApiError::invalid_field("file", "the file is empty"));
    }
    tracker.received(bytes);
    Ok((path, hex::encode(hasher.finalize()), bytes))
}

/// A JPEG of at most 320 pixels a side (videos: the poster frame), stored with the media.
#[utoipa::path(get, path = "/api/v1/creatives/{id}/thumbnail", params(("id" = String, Path, example = "rm2023-w51-1")),
    responses((status = 200, description = "JPEG", content_type = "image/jpeg"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn thumbnail(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(READ)?;
    let jpeg = blocking(move || {
        let snapshot = shared.store.snapshot()?;
        let c = snapshot
            .creatives
            .get(&id)
            .ok_or_else(|| ApiError::not_found(format!("no creative {id:?}")))?;
        crate::posters::thumbnail_of(shared.store.as_ref(), c).map_err(ApiError::internal)
    })
    .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        jpeg,
    ))
}

/// The renditions made of a creative (per screen resolution and fit), each a file in
/// `/media/{sha256}`.
#[utoipa::path(get, path = "/api/v1/creatives/{id}/renditions", params(("id" = String, Path, example = "rm2023-w51-1")),
    responses((status = 200, body = Vec<StoredRendition>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn renditions(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<StoredRendition>>, ApiError> {
    caller.require(READ)?;
    let list = blocking(move || {
        let snapshot = shared.store.snapshot()?;
        let c = snapshot
            .creatives
            .get(&id)
            .ok_or_else(|| ApiError::not_found(format!("no creative {id:?}")))?;
        // A file shared by creatives of other fits has their renditions too: keep this one's.
        let fit = playlists::Fit::parse(c.spec.fit.as_deref(), c.spec.background.as_deref())
            .unwrap_or_default();
        let mut list = shared.store.renditions_of(&c.spec.sha256)?;
        list.retain(|r| r.fit == fit.name() && r.background == fit.background_hex());
        Ok(list)
    })
    .await?;
    Ok(Json(list))
}

/// Retires a creative: it leaves every schedule; its history stays. Refused while a
/// campaign that is not archived uses it (in its approved version or its draft).
#[utoipa::path(post, path = "/api/v1/creatives/{id}/retire", params(("id" = String, Path, example = "rm2023-w51-1")),
    responses((status = 200, body = CreativeEntity), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn retire_creative(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CreativeEntity>, ApiError> {
    caller.require(EDIT)?;
    let at = shared.clock.now();
    let i = id.clone();
    apply(
        &shared,
        &caller,
        format!("creative {id} retired"),
        move |s| {
            let uses = |c: &crate::store::CampaignEntity| {
                c.state != CampaignState::Archived
                    && (c.spec.creatives.contains(&i)
                        || c.live_spec().is_some_and(|l| l.creatives.contains(&i)))
            };
            if let Some(c) = s.campaigns.values().find(|c| uses(c)) {
                return Err(ApiError::conflict(format!(
                    "creative {i:?} is used by {} campaign {:?}: archive it or edit it first",
                    c.state.as_str(),
                    c.spec.id
                )));
            }
            let Some(c) = s.creatives.get_mut(&i) else {
                return Err(ApiError::not_found(format!("no creative {i:?}")));
            };
            if c.retired_at.is_some() {
                return Err(ApiError::conflict(format!(
                    "creative {i:?} is retired already"
                )));
            }
            c.retired_at = Some(at);
            Ok(())
        },
    )
    .await?;
    let snapshot = {
        let s = shared.clone();
        super::blocking(move || Ok(s.store.snapshot()?)).await?
    };
    snapshot
        .creatives
        .get(&id)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no creative {id:?}")))
}

/// Submits an uploaded creative for approval (staff).
#[utoipa::path(post, path = "/api/v1/creatives/{id}/submit", params(("id" = String, Path, example = "rm2023-w51-1")),
    responses((status = 200, body = CreativeEntity), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn submit_creative(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CreativeEntity>, ApiError> {
    caller.require(EDIT)?;
    review(shared, caller, id, Action::Submit, None).await
}

/// Approves a submitted creative (an approver who did not submit it): campaigns may then
/// play it once they are approved.
#[utoipa::path(post, path = "/api/v1/creatives/{id}/approve", params(("id" = String, Path, example = "rm2023-w51-1")),
    responses((status = 200, body = CreativeEntity), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn approve_creative(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CreativeEntity>, ApiError> {
    caller.require(REVIEW)?;
    review(shared, caller, id, Action::Approve, None).await
}

/// Rejects a submitted creative with a reason (an approver who did not submit it).
#[utoipa::path(post, path = "/api/v1/creatives/{id}/reject", params(("id" = String, Path, example = "rm2023-w51-1")),
    request_body = Rejection,
    responses((status = 200, body = CreativeEntity), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn reject_creative(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    super::ApiJson(body): super::ApiJson<Rejection>,
) -> Result<Json<CreativeEntity>, ApiError> {
    caller.require(REVIEW)?;
    review(shared, caller, id, Action::Reject, Some(body.reason)).await
}

/// One transition of a creative's review, as one revision.
async fn review(
    shared: Arc<Shared>,
    caller: Caller,
    id: String,
    action: Action,
    reason: Option<String>,
) -> Result<Json<CreativeEntity>, ApiError> {
    let comment = match (action, &reason) {
        (Action::Submit, _) => format!("creative {id} submitted for approval"),
        (Action::Reject, Some(r)) => format!("creative {id} rejected: {}", r.trim()),
        _ => format!("creative {id} {}", action.past()),
    };
    let i = id.clone();
    let name = caller.name().to_owned();
    let at = shared.clock.now();
    apply(&shared, &caller, comment, move |s| {
        let Some(c) = s.creatives.get_mut(&i) else {
            return Err(ApiError::not_found(format!("no creative {i:?}")));
        };
        let by = approval::Actor { name: &name, at };
        Ok(approval::creative_action(c, action, reason.as_deref(), by)?)
    })
    .await?;
    get_creative(State(shared), caller, ApiPath(id)).await
}
