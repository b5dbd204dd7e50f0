//! Resumable downloads against a flaky axum server on a port-0 listener: it cuts the
//! connection after a number of bytes on its first answers, honours (or ignores) `Range`,
//! and counts the body bytes it sends; and a creative that keeps failing, as the status
//! reports it.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use playlists::Sha256;

use super::tests::{fetcher, quick_retry};
use super::*;
use crate::schedule::fixture;

/// One file, served at every path.
struct Flaky {
    data: Vec<u8>,
    /// Whether `Range: bytes=N-` gets a 206 (else the whole file, 200).
    ranges: bool,
    /// Answers still to cut, and after how many body bytes.
    cuts: AtomicU32,
    cut_after: usize,
    /// Body bytes sent, and the first byte each answer started from.
    sent: AtomicU64,
    starts: Mutex<Vec<usize>>,
}

impl Flaky {
    fn new(len: usize, ranges: bool, cuts: u32, cut_after: usize) -> Arc<Flaky> {
        // Deterministic noise (xorshift).
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let data = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        Arc::new(Flaky {
            data,
            ranges,
            cuts: AtomicU32::new(cuts),
            cut_after,
            sent: AtomicU64::new(0),
            starts: Mutex::new(Vec::new()),
        })
    }

    fn starts(&self) -> Vec<usize> {
        self.starts.lock().unwrap().clone()
    }
}

async fn answer(State(f): State<Arc<Flaky>>, headers: HeaderMap) -> Response {
    let len = f.data.len();
    let asked = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| {
            r.strip_prefix("bytes=")?
                .strip_suffix('-')?
                .parse::<usize>()
                .ok()
        })
        .filter(|start| f.ranges && *start < len);
    let start = asked.unwrap_or(0);
    f.starts.lock().unwrap().push(start);
    let rest = &f.data[start..];
    let cut = f
        .cuts
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let sent = if cut {
        f.cut_after.min(rest.len())
    } else {
        rest.len()
    };
    f.sent.fetch_add(sent as u64, Ordering::SeqCst);
    let mut chunks: Vec<Result<bytes::Bytes, std::io::Error>> = rest[..sent]
        .chunks(1024)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    if cut {
        chunks.push(Err(std::io::Error::other("cut")));
    }
    let mut response = Response::builder()
        .header(header::CONTENT_LENGTH, rest.len())
        .header(header::ACCEPT_RANGES, "bytes");
    response = match asked {
        Some(start) => response.status(StatusCode::PARTIAL_CONTENT).header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{len}", len - 1),
        ),
        None => response.status(StatusCode::OK),
    };
    response
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .unwrap()
}

async fn serve_flaky(flaky: Arc<Flaky>) -> String {
    let app = axum::Router::new().fallback(answer).with_state(flaky);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// A schedule of the flaky server's one file.
fn held_of(flaky: &Flaky) -> HeldSchedule {
    HeldSchedule::new(fixture::doc(1, fixture::body(&[&flaky.data], 15))).unwrap()
}

const LEN: usize = 100_000;
const CUT: usize = 30_000;
const CHUNK: usize = crate::cache::CHUNK_BYTES;

#[tokio::test]
async fn resumes_after_cuts_from_the_bytes_held() {
    let flaky = Flaky::new(LEN, true, 3, CUT);
    let url = serve_flaky(flaky.clone()).await;
    let held = held_of(&flaky);
    let creative = held.doc.body.creatives[0].clone();
    let dir = tempfile::tempdir().unwrap();
    let (mut f, _tx) = fetcher(url, dir.path(), None, 1 << 20, 60);
    f.retry.attempts = 5;
    f.fetch_one(&creative).await.unwrap();

    let sha = Sha256::of(&flaky.data).to_string();
    assert_eq!(f.cache.get(&sha).unwrap().as_deref(), Some(&flaky.data[..]));
    // Each attempt starts at the whole chunks the last one kept (at most what the server
    // sent before the cut: the client may not have read all of it).
    let starts = flaky.starts();
    assert_eq!(starts.len(), 4, "{starts:?}");
    assert_eq!(starts[0], 0);
    for pair in starts.windows(2) {
        assert!(pair[1] > pair[0] && pair[1] <= pair[0] + CUT, "{starts:?}");
        assert_eq!(pair[1] % CHUNK, 0, "{starts:?}");
    }
    let sent = flaky.sent.load(Ordering::SeqCst);
    assert_eq!(sent, (3 * CUT + LEN - starts[3]) as u64);
    assert!(sent < 2 * LEN as u64, "{sent} bytes sent for {LEN}");
    assert!(f.cache.partials().unwrap().is_empty());
}

#[tokio::test]
async fn a_cut_download_is_kept_and_resumed_later() {
    let flaky = Flaky::new(LEN, true, 1, CUT);
    let url = serve_flaky(flaky.clone()).await;
    let held = held_of(&flaky);
    let creative = held.doc.body.creatives[0].clone();
    let dir = tempfile::tempdir().unwrap();
    let sha = Sha256::of(&flaky.data).to_string();
    {
        let (mut f, _tx) = fetcher(url.clone(), dir.path(), None, 1 << 20, 60);
        f.retry.attempts = 1;
        let (err, attempts) = f.fetch_one(&creative).await.unwrap_err();
        assert!(matches!(err, FetchError::Http { .. }), "{err}");
        assert_eq!(attempts, 1);
        assert_eq!(f.cache.partials().unwrap(), std::slice::from_ref(&sha));
        assert!(!f.cache.contains(&sha).unwrap());
    }
    // A new agent run on the same cache resumes.
    let (f, _tx) = fetcher(url, dir.path(), None, 1 << 20, 60);
    f.fetch_one(&creative).await.unwrap();
    let starts = flaky.starts();
    assert_eq!(starts.len(), 2, "{starts:?}");
    assert!(starts[1] > 0 && starts[1] <= CUT && starts[1].is_multiple_of(CHUNK));
    assert!(f.cache.verify(&sha).unwrap());
}

#[tokio::test]
async fn a_server_that_ignores_ranges_restarts_from_zero() {
    let flaky = Flaky::new(LEN, false, 1, CUT);
    let url = serve_flaky(flaky.clone()).await;
    let held = held_of(&flaky);
    let dir = tempfile::tempdir().unwrap();
    let (f, _tx) = fetcher(url, dir.path(), None, 1 << 20, 60);
    f.fetch_one(&held.doc.body.creatives[0]).await.unwrap();
    assert_eq!(flaky.starts(), [0, 0]);
    assert_eq!(flaky.sent.load(Ordering::SeqCst), (CUT + LEN) as u64);
    let sha = Sha256::of(&flaky.data).to_string();
    assert!(f.cache.verify(&sha).unwrap());
}

#[tokio::test]
async fn a_creative_that_keeps_failing_is_reported_and_waits() {
    let flaky = Flaky::new(LEN, true, u32::MAX, 0);
    let url = serve_flaky(flaky.clone()).await;
    let held = held_of(&flaky);
    let dir = tempfile::tempdir().unwrap();
    let (f, _tx) = fetcher(url, dir.path(), Some(held), 1 << 20, 60);
    let (events_tx, mut events) = mpsc::channel::<Coverage>(4);
    let stop = CancellationToken::new();
    let task = tokio::spawn(f.run(events_tx, stop.clone()));

    let coverage = events.recv().await.unwrap();
    assert!(!coverage.ready);
    assert_eq!(coverage.failures.len(), 1, "{coverage:?}");
    let failure = &coverage.failures[0];
    assert_eq!((failure.creative.as_str(), failure.attempts), ("cr-0", 3));
    assert_eq!(failure.sha256, Sha256::of(&flaky.data).to_string());
    // Its next try is a minute away (`quick_retry`): no new round meanwhile.
    let attempts = quick_retry().attempts as usize;
    assert_eq!(flaky.starts().len(), attempts);
    let next = tokio::time::timeout(Duration::from_millis(300), events.recv()).await;
    assert!(next.is_err(), "{next:?}");
    assert_eq!(flaky.starts().len(), attempts);
    stop.cancel();
    task.await.unwrap();
}
