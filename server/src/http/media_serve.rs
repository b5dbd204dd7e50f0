//! Serving one stored creative from disk: streamed (never read whole into
//! memory), with `Content-Length`, a strong `ETag` (the quoted SHA-256, which
//! names the content for ever), `If-None-Match` (304), single byte ranges
//! (206, or 416 when unsatisfiable; several ranges get the whole file),
//! `If-Range`, `Accept-Ranges`, an immutable `Cache-Control` and a
//! `Content-Type` sniffed from the file's magic bytes by `media`.
//!
//! What to answer is the pure [`plan`] of the request headers and the file's
//! length; [`serve`] does the IO around it. Routing, parsing the hash and
//! finding the file are the caller's (`http/mod.rs`); a missing file comes
//! back as the `io::Error` of kind `NotFound`.

use std::io::SeekFrom;
use std::path::Path;

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use playlists::Sha256;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

/// Content-addressed media never changes under its URL.
const CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// Bytes read from disk per body chunk.
const CHUNK_BYTES: usize = 64 * 1024;

/// What a request for a file of a given length gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// 304: the client's copy is current.
    NotModified,
    /// 200 with the whole file.
    Full,
    /// 206 with bytes `start..=end`.
    Partial { start: u64, end: u64 },
    /// 416: the range starts past the end (or asks for an empty suffix).
    Unsatisfiable,
}

/// Decides the answer to `headers` for a file of `len` bytes tagged `etag`
/// (quoted). `If-None-Match` comes first; a `Range` is honoured only if
/// single, well formed and, with `If-Range`, for this very entity.
pub(crate) fn plan(headers: &HeaderMap, etag: &str, len: u64) -> Plan {
    if let Some(tags) = header_str(headers, header::IF_NONE_MATCH) {
        // Weak comparison, as RFC 9110 asks for If-None-Match.
        let matches = tags
            .split(',')
            .map(str::trim)
            .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag);
        if matches {
            return Plan::NotModified;
        }
    }
    let Some(range) = header_str(headers, header::RANGE) else {
        return Plan::Full;
    };
    if let Some(if_range) = header_str(headers, header::IF_RANGE) {
        // Strong comparison; a date (or a weak tag) never matches ours.
        if if_range.trim() != etag {
            return Plan::Full;
        }
    }
    match parse_range(range) {
        Some(Spec::From(start)) if start < len => Plan::Partial {
            start,
            end: len - 1,
        },
        Some(Spec::Between(start, end)) if start < len => Plan::Partial {
            start,
            end: end.min(len - 1),
        },
        Some(Spec::Suffix(n)) if n > 0 && len > 0 => Plan::Partial {
            start: len.saturating_sub(n),
            end: len - 1,
        },
        Some(_) => Plan::Unsatisfiable,
        // Malformed or several ranges: the whole file, as RFC 9110 allows.
        None => Plan::Full,
    }
}

/// One byte range as written in a `Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// `a-b`, with `a <= b`.
    Between(u64, u64),
    /// `a-`.
    From(u64),
    /// `-n`: the last `n` bytes.
    Suffix(u64),
}

/// A single `bytes=` range; `None` for anything else (other units, several
/// ranges, a backwards range, junk).
fn parse_range(value: &str) -> Option<Spec> {
    let spec = value.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, false) => Some(Spec::Suffix(number(last)?)),
        (false, true) => Some(Spec::From(number(first)?)),
        (false, false) => {
            let (a, b) = (number(first)?, number(last)?);
            (a <= b).then_some(Spec::Between(a, b))
        }
        (true, true) => None,
    }
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Answers `headers` with the file at `path`, which holds the creative
/// `sha256`. Reads only the first bytes to sniff the type, then streams the
/// planned bytes. An error is the file's (not found, unreadable).
pub(crate) async fn serve(
    path: &Path,
    sha256: &Sha256,
    headers: &HeaderMap,
) -> std::io::Result<Response> {
    let mut file = tokio::fs::File::open(path).await?;
    let len = file.metadata().await?.len();
    let etag = format!("\"{}\"", sha256.as_str());
    let common = |status: StatusCode| {
        Response::builder()
            .status(status)
            .header(header::ETAG, &etag)
            .header(header::CACHE_CONTROL, CACHE_CONTROL)
            .header(header::ACCEPT_RANGES, "bytes")
    };
    let (status, start, end) = match plan(headers, &etag, len) {
        Plan::NotModified => {
            return Ok(common(StatusCode::NOT_MODIFIED)
                .body(Body::empty())
                .map_or_else(|e| internal(e.into()), IntoResponse::into_response));
        }
        Plan::Unsatisfiable => {
            return Ok(common(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{len}"))
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .body(Body::empty())
                .map_or_else(|e| internal(e.into()), IntoResponse::into_response));
        }
        Plan::Full => (StatusCode::OK, 0, len.checked_sub(1)),
        Plan::Partial { start, end } => (StatusCode::PARTIAL_CONTENT, start, Some(end)),
    };
    let content_type = sniff_type(&mut file).await?;
    let length = end.map_or(0, |end| end + 1 - start);
    file.seek(SeekFrom::Start(start)).await?;
    let body = Body::from_stream(ReaderStream::with_capacity(file.take(length), CHUNK_BYTES));
    let mut response = common(status)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, length);
    if let (StatusCode::PARTIAL_CONTENT, Some(end)) = (status, end) {
        response = response.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"));
    }
    Ok(response
        .body(body)
        .map_or_else(|e| internal(e.into()), IntoResponse::into_response))
}

/// The media type from the file's first bytes; leaves the file where it was.
async fn sniff_type(file: &mut tokio::fs::File) -> std::io::Result<&'static str> {
    let mut head = [0u8; media::MIME_SNIFF_BYTES];
    let mut filled = 0;
    while filled < head.len() {
        let n = file.read(&mut head[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    file.seek(SeekFrom::Start(0)).await?;
    Ok(media::mime_type(&head[..filled]))
}

fn internal(e: anyhow::Error) -> Response {
    tracing::error!(error = %e, "building a media response failed");
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}

#[cfg(test)]
mod tests;
