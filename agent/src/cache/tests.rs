//! The media cache's tests: eviction choice, chunked storage, crash clean-up, reopening.

use super::*;

/// How many chunks are stored under `sha`.
fn chunk_count(cache: &Cache, sha: &str) -> usize {
    cache
        .t()
        .unwrap()
        .chunks
        .scan_prefix(chunk_prefix(sha).unwrap())
        .count()
}

fn entry(sha: &str, bytes: u64, added: u64) -> Entry {
    Entry {
        sha256: sha.into(),
        bytes,
        added,
    }
}

fn set(shas: &[&str]) -> HashSet<String> {
    shas.iter().map(|s| s.to_string()).collect()
}

fn check(entries: &[Entry], needed: &[&str], max: u64, expect: &[&str]) {
    let all = set(&["a", "b", "c", "d"]);
    assert_eq!(choose_evictions(entries, &set(needed), &all, max), expect);
}

#[test]
fn eviction_choice() {
    let es = [
        entry("a", 10, 3),
        entry("b", 10, 1),
        entry("c", 10, 2),
        entry("d", 10, 1),
    ];
    check(&es, &[], 40, &[]);
    check(&es, &[], 35, &["b"]);
    check(&es, &[], 15, &["b", "d", "c"]);
    check(&es, &["b"], 15, &["d", "c", "a"]);
    // Media the horizon needs stay even over the limit.
    check(&es, &["a", "b", "c", "d"], 0, &[]);
    check(&es, &["a", "b"], 0, &["d", "c"]);
    // Media gone from the schedule go before older ones still in it.
    let got = choose_evictions(&es, &set(&[]), &set(&["b", "d"]), 15);
    assert_eq!(got, ["c", "a", "b"]);
    assert_eq!(choose_purge(&es, &set(&["a"])), ["b", "c", "d"]);
}

#[test]
fn put_get_verify_and_evict() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, note) = Cache::open(dir.path(), 5, 100).unwrap();
    assert_eq!(note, None);
    let (a, b) = (b"abc".as_slice(), b"defg".as_slice());
    let (sa, sb) = (Sha256::of(a).to_string(), Sha256::of(b).to_string());
    assert!(matches!(
        cache.put(&sa, b, 1),
        Err(CacheError::Mismatch { .. })
    ));
    cache.put(&sa, a, 1).unwrap();
    cache.put(&sb, b, 2).unwrap();
    assert_eq!(cache.get(&sa).unwrap().as_deref(), Some(a));
    assert!(cache.playable(&sb).unwrap());
    assert_eq!(cache.stats(), CacheStats { bytes: 7, items: 2 });
    let referenced: HashSet<String> = [sb.clone()].into();
    assert_eq!(cache.evict(&referenced, false).unwrap(), vec![sa.clone()]);
    assert_eq!(cache.stats(), CacheStats { bytes: 4, items: 1 });
    assert!(!cache.contains(&sa).unwrap());
    cache.put(&sa, a, 3).unwrap();
    assert_eq!(cache.evict(&referenced, true).unwrap(), vec![sa.clone()]);
    drop(cache);
    // Reopened: the stats come back from the meta tree.
    let (cache, _) = Cache::open(dir.path(), 5, 100).unwrap();
    assert_eq!(cache.stats(), CacheStats { bytes: 4, items: 1 });
    assert!(cache.playable(&sb).unwrap());
}

#[test]
fn corrupt_entry_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, _) = Cache::open(dir.path(), 1 << 20, 100).unwrap();
    let sha = Sha256::of(b"good").to_string();
    cache.put(&sha, b"good", 1).unwrap();
    // Corrupt it behind the cache's back.
    let prefix = chunk_prefix(&sha).unwrap();
    cache
        .t()
        .unwrap()
        .chunks
        .insert(chunk_key(&prefix, 0), b"evil".as_slice())
        .unwrap();
    cache.verified.lock().unwrap().clear();
    assert!(!cache.playable(&sha).unwrap());
    assert_eq!(cache.get(&sha).unwrap(), None);
    assert!(!cache.contains(&sha).unwrap());
    assert_eq!(cache.stats(), CacheStats::default());
}

#[test]
fn broken_cache_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.sled");
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("conf"), b"\xff\xfenot a sled config at all").unwrap();
    std::fs::write(path.join("db"), b"garbage").unwrap();
    let (cache, note) = Cache::open(dir.path(), 1 << 20, 1_700_000_000).unwrap();
    let note = note.expect("a note about the broken cache");
    assert!(note.contains("cache.sled.broken-1700000000"), "{note}");
    assert!(dir
        .path()
        .join("cache.sled.broken-1700000000")
        .join("db")
        .exists());
    assert_eq!(cache.stats(), CacheStats::default());
    let sha = Sha256::of(b"x").to_string();
    cache.put(&sha, b"x", 1).unwrap();
    assert!(cache.contains(&sha).unwrap());
}

/// Creatives spanning several chunks stream in, read back whole and verify; a write
/// that is dropped unfinished or whose hash is wrong leaves nothing behind.
#[test]
fn chunked_writes_and_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, _) = Cache::open(dir.path(), u64::MAX, 100).unwrap();
    let big: Vec<u8> = (0..3 * CHUNK_BYTES + 17)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let sha = Sha256::of(&big).to_string();
    let mut w = cache.writer(&sha, 5).unwrap();
    for piece in big.chunks(1000) {
        w.write(piece).unwrap();
    }
    assert_eq!(w.len(), big.len() as u64);
    w.finish().unwrap();
    assert_eq!(cache.get(&sha).unwrap().as_deref(), Some(&big[..]));
    assert_eq!(chunk_count(&cache, &sha), 4);
    let mut streamed = Vec::new();
    assert!(cache
        .read_verified(&sha, |c| {
            streamed.push(c.len());
            true
        })
        .unwrap());
    assert_eq!(streamed, [CHUNK_BYTES, CHUNK_BYTES, CHUNK_BYTES, 17]);

    // A wrong hash: refused, nothing left behind.
    let other = Sha256::of(b"other").to_string();
    let mut w = cache.writer(&other, 6).unwrap();
    w.write(&big).unwrap();
    assert!(matches!(w.finish(), Err(CacheError::Mismatch { .. })));
    assert!(!cache.contains(&other).unwrap());
    assert_eq!(chunk_count(&cache, &other), 0);

    // A download cut short: dropped unfinished, nothing left behind.
    let mut w = cache.writer(&other, 6).unwrap();
    w.write(&big[..CHUNK_BYTES * 2]).unwrap();
    drop(w);
    assert_eq!(chunk_count(&cache, &other), 0);
    assert_eq!(cache.t().unwrap().meta.get(other.as_bytes()).unwrap(), None);
    assert_eq!(
        cache.stats(),
        CacheStats {
            bytes: big.len() as u64,
            items: 1
        }
    );
    assert!(matches!(
        cache.writer("not-a-hash", 1),
        Err(CacheError::Mismatch { .. })
    ));
}

/// A missing middle chunk or a truncated entry is corruption: dropped on read.
#[test]
fn missing_chunk_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, _) = Cache::open(dir.path(), u64::MAX, 100).unwrap();
    let big = vec![42u8; 3 * CHUNK_BYTES];
    let sha = Sha256::of(&big).to_string();
    cache.put(&sha, &big, 1).unwrap();
    let prefix = chunk_prefix(&sha).unwrap();
    cache
        .t()
        .unwrap()
        .chunks
        .remove(chunk_key(&prefix, 1))
        .unwrap();
    cache.verified.lock().unwrap().clear();
    assert!(!cache.playable(&sha).unwrap());
    assert!(!cache.contains(&sha).unwrap());
    assert_eq!(cache.t().unwrap().chunks.scan_prefix(prefix).count(), 0);
}

/// An entry a crash left pending (chunks half written, or half removed) is cleaned at
/// the next open and does not count.
#[test]
fn pending_entry_is_cleaned_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let big = vec![7u8; 2 * CHUNK_BYTES + 1];
    let sha = Sha256::of(&big).to_string();
    let done = Sha256::of(b"done").to_string();
    {
        let (cache, _) = Cache::open(dir.path(), u64::MAX, 100).unwrap();
        cache.put(&done, b"done", 1).unwrap();
        let mut w = cache.writer(&sha, 2).unwrap();
        w.write(&big[..CHUNK_BYTES + 10]).unwrap();
        cache.flush().unwrap();
        // As if the process died here: the writer's clean-up never runs.
        std::mem::forget(w);
        cache.flush().unwrap();
    }
    let (cache, _) = Cache::open(dir.path(), u64::MAX, 100).unwrap();
    assert_eq!(cache.stats(), CacheStats { bytes: 4, items: 1 });
    assert!(!cache.contains(&sha).unwrap());
    assert_eq!(cache.t().unwrap().meta.get(sha.as_bytes()).unwrap(), None);
    assert_eq!(chunk_count(&cache, &sha), 0);
    assert_eq!(cache.get(&done).unwrap().as_deref(), Some(&b"done"[..]));
}

/// A cache written in the earlier layout (whole creatives in tree `media`) starts empty
/// rather than claiming entries it cannot read.
#[test]
fn old_layout_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open_sled(&dir.path().join("cache.sled")).unwrap();
        db.open_tree("media").unwrap().insert("x", "y").unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert("x", &[0u8; 16][..])
            .unwrap();
        db.flush().unwrap();
    }
    let (cache, _) = Cache::open(dir.path(), u64::MAX, 100).unwrap();
    assert_eq!(cache.stats(), CacheStats::default());
    assert!(cache.entries().unwrap().is_empty());
}

/// After more than [`RELIEVE_AFTER_BYTES`] went through, relieve reopens sled and
/// everything is still there; under a writer, or below the threshold, it does nothing.
#[test]
fn relieve_reopens_without_losing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, _) = Cache::open(dir.path(), u64::MAX, 100).unwrap();
    let small = Sha256::of(b"small").to_string();
    cache.put(&small, b"small", 1).unwrap();
    assert!(!cache.relieve(RELIEVE_AFTER_BYTES).unwrap());
    let big: Vec<u8> = (0..RELIEVE_AFTER_BYTES + 1)
        .map(|i| (i % 253) as u8)
        .collect();
    let sha = Sha256::of(&big).to_string();
    let writer = cache.writer(&sha, 2).unwrap();
    cache.touched.store(RELIEVE_AFTER_BYTES, Ordering::Relaxed);
    assert!(!cache.relieve(1).unwrap(), "never under a writer");
    drop(writer);
    cache.put(&sha, &big, 2).unwrap();
    assert!(cache.relieve(RELIEVE_AFTER_BYTES).unwrap());
    assert!(!cache.relieve(1).unwrap(), "nothing went through since");
    assert_eq!(cache.touched.load(Ordering::Relaxed), 0);
    assert_eq!(cache.get(&sha).unwrap().as_deref(), Some(&big[..]));
    assert_eq!(cache.get(&small).unwrap().as_deref(), Some(&b"small"[..]));
    assert_eq!(cache.stats().items, 2);
    assert!(cache.relieve(1).unwrap(), "the reads went through sled");
}

/// sled's file lock outlives the handles a moment (its background threads): a reopen
/// waits for it instead of taking the healthy cache for broken and moving it aside. Here
/// another handle holds the lock for a while during the reopen.
#[test]
fn relieve_waits_for_the_lock_and_keeps_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, _) = Cache::open(dir.path(), u64::MAX, 100).unwrap();
    let sha = Sha256::of(b"kept").to_string();
    cache.put(&sha, b"kept", 1).unwrap();
    let lingering = cache.t().unwrap().meta.clone();
    let holder = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(lingering);
    });
    assert!(cache.relieve(1).unwrap());
    holder.join().unwrap();
    assert_eq!(cache.get(&sha).unwrap().as_deref(), Some(&b"kept"[..]));
    assert!(!dir.path().read_dir().unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains("broken")));
}

/// A cache another process holds is reported as locked and left alone, never moved aside.
#[test]
fn a_lock_that_stays_held_is_an_error_not_damage() {
    let dir = tempfile::tempdir().unwrap();
    let (_first, _) = Cache::open(dir.path(), u64::MAX, 100).unwrap();
    let got = open_db_waiting(dir.path(), 100, std::time::Duration::from_millis(200));
    assert!(
        matches!(got, Err(CacheError::Locked { .. })),
        "{:?}",
        got.err()
    );
    assert!(dir.path().join("cache.sled").exists());
    assert!(!dir.path().join("cache.sled.broken-100").exists());
}

#[test]
fn a_cut_download_keeps_its_whole_chunks_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..3 * CHUNK_BYTES + 1000)
        .map(|i| (i % 253) as u8)
        .collect();
    let sha = Sha256::of(&data).to_string();
    {
        let (cache, _) = Cache::open(dir.path(), 1 << 20, 0).unwrap();
        let mut w = cache.resume(&sha, 7).unwrap();
        assert_eq!(w.len(), 0);
        w.write(&data[..2 * CHUNK_BYTES + 10]).unwrap();
        drop(w); // cut: the tail of 10 bytes is lost, the two whole chunks stay
        assert_eq!(cache.held(&sha).unwrap(), 2 * CHUNK_BYTES as u64);
        assert_eq!(cache.partials().unwrap(), std::slice::from_ref(&sha));
        assert!(!cache.contains(&sha).unwrap());
        assert_eq!(cache.stats(), CacheStats::default());
        cache.flush().unwrap();
    }
    let (cache, _) = Cache::open(dir.path(), 1 << 20, 0).unwrap();
    assert_eq!(cache.held(&sha).unwrap(), 2 * CHUNK_BYTES as u64);
    let mut w = cache.resume(&sha, 8).unwrap();
    assert_eq!(w.len(), 2 * CHUNK_BYTES as u64);
    w.write(&data[2 * CHUNK_BYTES..]).unwrap();
    w.finish().unwrap();
    assert_eq!(cache.get(&sha).unwrap(), Some(data.clone()));
    assert!(cache.partials().unwrap().is_empty());
    assert_eq!(cache.stats().items, 1);

    // A wrong prefix fails the whole hash and is dropped; so is a restart's old prefix.
    let other: Vec<u8> = (0..2 * CHUNK_BYTES).map(|i| (i % 7) as u8).collect();
    let other_sha = Sha256::of(&other).to_string();
    let mut w = cache.resume(&other_sha, 9).unwrap();
    w.write(&data[..CHUNK_BYTES]).unwrap();
    drop(w);
    let mut w = cache.resume(&other_sha, 9).unwrap();
    w.write(&other[CHUNK_BYTES..]).unwrap();
    assert!(matches!(w.finish(), Err(CacheError::Mismatch { .. })));
    assert_eq!(chunk_count(&cache, &other_sha), 0);
    assert!(cache.partials().unwrap().is_empty());
    let mut w = cache.resume(&other_sha, 9).unwrap();
    w.write(&data[..CHUNK_BYTES]).unwrap();
    w.restart().unwrap();
    w.write(&other).unwrap();
    w.finish().unwrap();
    assert!(cache.verify(&other_sha).unwrap());

    // A partial download of a creative no longer referenced goes at eviction.
    let mut w = cache.resume(&Sha256::of(b"gone").to_string(), 9).unwrap();
    w.write(&[0; CHUNK_BYTES]).unwrap();
    drop(w);
    assert_eq!(cache.partials().unwrap().len(), 1);
    cache
        .evict_to_fit(&HashSet::new(), &set(&[&sha, &other_sha]))
        .unwrap();
    assert!(cache.partials().unwrap().is_empty());
}
