//! The fetcher's tests against a small real HTTP server: checks on download, readiness,
//! the horizon's order and the runway.

use super::*;
use crate::schedule::fixture;
use playlists::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A one-file-per-path HTTP/1.1 server on a port-0 listener: `routes` maps a path to the
/// body served; other paths get 404.
async fn serve(routes: Vec<(String, Vec<u8>)>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let routes = routes.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf);
                let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                let (status, body) = match routes.iter().find(|(p, _)| *p == path) {
                    Some((_, b)) => ("200 OK", b.clone()),
                    None => ("404 Not Found", b"no".to_vec()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body).await;
            });
        }
    });
    format!("http://{addr}")
}

/// A clock that reads `at` (a scaled clock crawling from it).
pub(super) fn clock_at(at: &str) -> Clock {
    let scale = crate::clock::Scaled::new(
        at.parse().unwrap(),
        chrono::Utc::now().timestamp_millis(),
        1e-9,
    )
    .unwrap();
    Clock::scaled(scale)
}

pub(super) fn fetcher(
    server_url: String,
    dir: &std::path::Path,
    held: Option<HeldSchedule>,
    max_bytes: u64,
    horizon_minutes: i64,
) -> (Fetcher, watch::Sender<Option<Arc<HeldSchedule>>>) {
    let (cache, _) = Cache::open(dir, max_bytes, 0).unwrap();
    let (tx, rx) = watch::channel(held.map(Arc::new));
    (
        Fetcher {
            http: http_client(),
            server_url,
            cache: Arc::new(cache),
            schedules: rx,
            clock: clock_at("2023-12-31T23:00:00Z"),
            horizon: chrono::Duration::minutes(horizon_minutes),
            retry: quick_retry(),
        },
        tx,
    )
}

/// Retries a few milliseconds apart, so tests of failures do not wait.
pub(super) fn quick_retry() -> Retry {
    Retry {
        attempts: 3,
        attempt_base: Duration::from_millis(5),
        attempt_cap: Duration::from_millis(20),
        creative_base: Duration::from_secs(60),
        creative_cap: Duration::from_secs(600),
    }
}

fn routes(held: &HeldSchedule, bodies: &[&[u8]]) -> Vec<(String, Vec<u8>)> {
    held.doc
        .body
        .creatives
        .iter()
        .zip(bodies)
        .map(|(c, bytes)| (c.url.clone(), bytes.to_vec()))
        .collect()
}

#[tokio::test]
async fn downloads_checks_and_caches() {
    let (good, evil): (&[u8], &[u8]) = (b"good media", b"evil media");
    let held = HeldSchedule::new(fixture::doc(1, fixture::body(&[good, evil], 15))).unwrap();
    let creatives = held.doc.body.creatives.clone();
    // The second path serves other bytes of the same length.
    let url = serve(vec![
        (creatives[0].url.clone(), good.to_vec()),
        (creatives[1].url.clone(), b"EVIL MEDIA".to_vec()),
        ("/short".into(), b"abc".to_vec()),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (f, _tx) = fetcher(url, dir.path(), None, 1 << 20, 60);
    f.fetch_one(&creatives[0]).await.unwrap();
    assert!(f.cache.contains(&Sha256::of(good).to_string()).unwrap());
    let err = f.fetch_one(&creatives[1]).await.unwrap_err().0;
    assert!(
        matches!(err, FetchError::Cache(CacheError::Mismatch { .. })),
        "{err}"
    );
    let short = WireCreative {
        url: "/short".into(),
        ..creatives[0].clone()
    };
    assert!(matches!(
        f.fetch_one(&short).await.unwrap_err().0,
        FetchError::Size { got: 3, .. }
    ));
    let missing = WireCreative {
        url: "/nope".into(),
        ..creatives[0].clone()
    };
    assert!(matches!(
        f.fetch_one(&missing).await.unwrap_err().0,
        FetchError::Http { .. }
    ));
    let absolute = WireCreative {
        url: "http://elsewhere/x".into(),
        ..creatives[0].clone()
    };
    assert!(matches!(
        f.fetch_one(&absolute).await.unwrap_err().0,
        FetchError::BadUrl { .. }
    ));
    let held = Arc::new(held);
    let needs = f.needs(&held).await;
    let missing: Vec<String> = f
        .missing(&held, &needs)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(missing, ["cr-1"]);
}

#[tokio::test]
async fn reports_ready_when_every_creative_is_cached() {
    let (a, b): (&[u8], &[u8]) = (b"first", b"second");
    let held = HeldSchedule::new(fixture::doc(7, fixture::body(&[a, b], 15))).unwrap();
    let url = serve(routes(&held, &[a, b])).await;
    let dir = tempfile::tempdir().unwrap();
    let (f, _tx) = fetcher(url, dir.path(), Some(held), 1 << 20, 60);
    let cache = f.cache.clone();
    let (events, mut rx) = mpsc::channel::<Coverage>(4);
    let stop = CancellationToken::new();
    let task = tokio::spawn(f.run(events, stop.clone()));
    let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.version, got.ready), (7, true));
    // The horizon (an hour) is all playable from the cache.
    assert_eq!(
        got.playable_until,
        Some("2024-01-01T00:00:00Z".parse().unwrap())
    );
    assert_eq!(cache.stats().items, 2);
    stop.cancel();
    task.await.unwrap();
}

/// With a cache too small for everything, the creatives the horizon needs come first
/// and stay; one needed only later is not fetched, and one the server cannot serve
/// ends the runway at its first slot.
#[tokio::test]
async fn horizon_first_and_runway() {
    let bodies: [&[u8]; 3] = [&[1u8; 900], &[2u8; 900], &[3u8; 900]];
    let mut body = fixture::body(&bodies, 15);
    // A second campaign with the third creative starts after the horizon.
    let mut later = body.campaigns[0].clone();
    later.id = "camp-later".into();
    later.priority = "high".into();
    later.flight_start = "2023-12-31T23:30:00Z".parse().unwrap();
    later.creatives = vec![body.creatives[2].id.clone()];
    body.campaigns[0].creatives.truncate(2);
    body.campaigns.push(later);
    let held = HeldSchedule::new(fixture::doc(4, body)).unwrap();
    let shas: Vec<String> = bodies.iter().map(|b| Sha256::of(b).to_string()).collect();

    // Room for two creatives, a ten-minute horizon: the third is not needed yet and
    // does not fit, so it is not fetched.
    let url = serve(routes(&held, &bodies)).await;
    let dir = tempfile::tempdir().unwrap();
    let (f, _tx) = fetcher(
        url,
        dir.path(),
        Some(HeldSchedule::new(held.doc.clone()).unwrap()),
        2000,
        10,
    );
    let held = Arc::new(held);
    let (events, mut rx) = mpsc::channel::<Coverage>(4);
    let mut failures = Failures::new(RETRY_BASE, RETRY_CAP);
    assert!(f.look(&held, &events, &mut failures).await);
    let got = rx.recv().await.unwrap();
    assert!(got.ready);
    assert_eq!(
        got.playable_until,
        Some("2023-12-31T23:10:00Z".parse().unwrap())
    );
    assert!(f.cache.contains(&shas[0]).unwrap() && f.cache.contains(&shas[1]).unwrap());
    assert!(!f.cache.contains(&shas[2]).unwrap());

    // A one-hour horizon needs the third from 23:30, but the server lost it: the
    // runway ends where it is first planned.
    drop(f);
    let url = serve(routes(&held, &bodies[..2])).await;
    let (f, _tx) = fetcher(url, dir.path(), None, 2000, 60);
    let needs = f.needs(&held).await;
    assert_eq!(needs.uses.last().unwrap().sha256, shas[2]);
    let got = f
        .coverage(&held, &needs, false, &Failures::new(RETRY_BASE, RETRY_CAP))
        .await;
    assert_eq!(
        got.playable_until,
        Some("2023-12-31T23:30:00Z".parse().unwrap())
    );
    assert!(f.fetch_one(&held.doc.body.creatives[2]).await.is_err());
}
