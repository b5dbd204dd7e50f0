//! Tests of media serving: the pure [`plan`] table, and whole requests through an
//! axum router (`tower::ServiceExt::oneshot`) against a temporary file.

use axum::body::to_bytes;
use axum::http::Request;
use axum::routing::get;
use axum::Router;
use tower::ServiceExt;

use super::*;

const TAG: &str = "\"abc\"";

fn check(headers: &[(&str, &str)], len: u64, expect: Plan) {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    assert_eq!(plan(&map, TAG, len), expect, "{headers:?} len {len}");
}

#[test]
fn plans() {
    use Plan::*;
    let part = |start, end| Partial { start, end };
    check(&[], 10, Full);
    check(&[("range", "bytes=0-4")], 10, part(0, 4));
    check(&[("range", "bytes=3-")], 10, part(3, 9));
    check(&[("range", "bytes=-4")], 10, part(6, 9));
    check(&[("range", "bytes=-40")], 10, part(0, 9));
    check(&[("range", "bytes=5-100")], 10, part(5, 9));
    check(&[("range", "bytes=9-9")], 10, part(9, 9));
    check(&[("range", " bytes = 2 - 3 ")], 10, Full); // "bytes =" is not the unit
    check(&[("range", "bytes= 2 - 3 ")], 10, part(2, 3));
    check(&[("range", "bytes=10-")], 10, Unsatisfiable);
    check(&[("range", "bytes=10-20")], 10, Unsatisfiable);
    check(&[("range", "bytes=-0")], 10, Unsatisfiable);
    check(&[("range", "bytes=0-")], 0, Unsatisfiable);
    check(&[("range", "bytes=-5")], 0, Unsatisfiable);
    // Ignored: several ranges, backwards, other units, junk.
    check(&[("range", "bytes=0-1,5-6")], 10, Full);
    check(&[("range", "bytes=5-1")], 10, Full);
    check(&[("range", "items=0-1")], 10, Full);
    check(&[("range", "bytes=-")], 10, Full);
    check(&[("range", "bytes=+1-2")], 10, Full);
    check(&[("range", "bytes=a-")], 10, Full);
    // Conditionals.
    check(&[("if-none-match", TAG)], 10, NotModified);
    check(&[("if-none-match", "W/\"abc\"")], 10, NotModified);
    check(&[("if-none-match", "\"x\", \"abc\"")], 10, NotModified);
    check(&[("if-none-match", "*")], 10, NotModified);
    check(
        &[("if-none-match", "\"x\""), ("range", "bytes=1-")],
        10,
        part(1, 9),
    );
    check(
        &[("if-none-match", TAG), ("range", "bytes=1-")],
        10,
        NotModified,
    );
    check(&[("if-range", TAG), ("range", "bytes=1-")], 10, part(1, 9));
    check(&[("if-range", "\"old\""), ("range", "bytes=1-")], 10, Full);
    check(
        &[("if-range", "W/\"abc\""), ("range", "bytes=1-")],
        10,
        Full,
    );
}

/// A PNG-looking file of 1,000 bytes in a temp dir and a router serving it
/// at `/media/x`.
fn fixture() -> (tempfile::TempDir, Vec<u8>, Sha256, Router) {
    let dir = tempfile::tempdir().unwrap();
    let mut data = b"\x89PNG\r\n\x1a\n".to_vec();
    data.extend((0..992u32).map(|i| (i % 251) as u8));
    let path = dir.path().join("media.bin");
    std::fs::write(&path, &data).unwrap();
    let sha = Sha256::of(&data);
    let served = sha.clone();
    let router = Router::new().route(
        "/media/x",
        get(
            move |headers: HeaderMap| async move { serve(&path, &served, &headers).await.unwrap() },
        ),
    );
    (dir, data, sha, router)
}

async fn request(router: &Router, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = Request::get("/media/x");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = router
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    let body = to_bytes(body, usize::MAX).await.unwrap().to_vec();
    (parts.status, parts.headers, body)
}

fn get_header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn serves_whole_file_with_validators() {
    let (_dir, data, sha, router) = fixture();
    let etag = format!("\"{}\"", sha.as_str());
    let (status, headers, body) = request(&router, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, data);
    for (name, expect) in [
        ("content-length", "1000"),
        ("content-type", "image/png"),
        ("accept-ranges", "bytes"),
        ("etag", etag.as_str()),
        ("cache-control", "public, max-age=31536000, immutable"),
    ] {
        assert_eq!(get_header(&headers, name), Some(expect), "{name}");
    }
    assert_eq!(get_header(&headers, "content-range"), None);

    let (status, headers, body) = request(&router, &[("if-none-match", &etag)]).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(get_header(&headers, "etag"), Some(etag.as_str()));
}

#[tokio::test]
async fn serves_byte_ranges() {
    let (_dir, data, _sha, router) = fixture();
    for (range, start, end) in [
        ("bytes=0-99", 0, 99),
        ("bytes=900-", 900, 999),
        ("bytes=-10", 990, 999),
        ("bytes=995-5000", 995, 999),
    ] {
        let (status, headers, body) = request(&router, &[("range", range)]).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(body, &data[start..=end], "{range}");
        let content_range = format!("bytes {start}-{end}/1000");
        assert_eq!(
            get_header(&headers, "content-range"),
            Some(content_range.as_str())
        );
        let length = (end + 1 - start).to_string();
        assert_eq!(
            get_header(&headers, "content-length"),
            Some(length.as_str())
        );
        assert_eq!(get_header(&headers, "content-type"), Some("image/png"));
    }

    let (status, headers, body) = request(&router, &[("range", "bytes=1000-")]).await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert!(body.is_empty());
    assert_eq!(get_header(&headers, "content-range"), Some("bytes */1000"));

    let (status, _, body) = request(&router, &[("range", "bytes=0-1,5-9")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, data);
}

#[tokio::test]
async fn a_missing_file_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let err = serve(
        &dir.path().join("nope"),
        &Sha256::of(b""),
        &HeaderMap::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}
