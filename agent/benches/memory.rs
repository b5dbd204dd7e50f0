//! Memory bench: the resident memory and idle CPU of the real `signage-agent` binary with
//! 500 creatives in its sled cache, read from `/proc`. It prints figures and asserts
//! nothing about them (the target, from the issue, is at most 15 MB resident and idle
//! CPU near zero). The cache is filled through `agent::cache`, and the agent holds a signed
//! schedule that rotates all 500 creatives (stored in its outbox as a previous run would
//! have), so at start-up it verifies every creative against its hash, reading all the
//! media through sled, and plays its slots. It runs offline (its broker and server ports
//! are closed) with the system clock; the figures are taken once it has logged that the
//! whole prefetch horizon is cached. Linux only.
//!
//! Run with `cargo bench -p agent --bench memory`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agent::cache::Cache;
use agent::outbox::{Durability, Outbox};
use playlists::wire::schedule::{
    ScheduleBody, WireCampaign, WireScreen, WireTarget, WireVenue, KIND,
};
use playlists::wire::{Keypair, ScheduleDoc, WireCreative};
use playlists::{ScreenId, Sha256};

const CREATIVES: usize = 500;
const MIN_BYTES: usize = 60 << 10;
const MAX_BYTES: usize = 200 << 10;
const SETTLE: Duration = Duration::from_secs(5);
const SAMPLE: Duration = Duration::from_secs(5);

const SCREEN_ID: &str = "bench-memory-s1";
const READY_LOG: &str = "every creative of the prefetch horizon is cached";
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const SCREEN_SECRET_KEY: &str = "0101010101010101010101010101010101010101010101010101010101010101";

fn main() -> anyhow::Result<()> {
    // Cargo builds the binary for benches and tells us where it is.
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_signage-agent"));
    if !exe.exists() {
        anyhow::bail!(
            "{} is missing; build it with `cargo build --release -p agent`",
            exe.display()
        );
    }
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir)?;
    let server_key = Keypair::from_secret([7; 32]);
    let (media_bytes, creatives) = fill_cache(&data_dir)?;
    store_schedule(&data_dir, &server_key, creatives)?;
    let config = write_config(dir.path(), &server_key)?;
    let log_path = dir.path().join("agent.log");

    let mut agent = Agent(
        Command::new(&exe)
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--clock", "system"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path)?)
            .spawn()?,
    );
    let pid = agent.0.id();
    let started = Instant::now();
    loop {
        if std::fs::read_to_string(&log_path)?.contains(READY_LOG) {
            break;
        }
        if let Some(status) = agent.0.try_wait()? {
            anyhow::bail!("the agent exited during start-up: {status}");
        }
        if started.elapsed() > READY_TIMEOUT {
            anyhow::bail!("the agent did not verify its cache within {READY_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let verified_in = started.elapsed();
    std::thread::sleep(SETTLE);
    if let Some(status) = agent.0.try_wait()? {
        anyhow::bail!("the agent exited during start-up: {status}");
    }
    let ticks = clock_ticks_per_second();
    let cpu_before = cpu_ticks(pid)?;
    let started = Instant::now();
    let mut rss_max = 0;
    while started.elapsed() < SAMPLE {
        rss_max = rss_max.max(status_kib(pid, "VmRSS")?);
        std::thread::sleep(Duration::from_millis(250));
    }
    let cpu_after = cpu_ticks(pid)?;
    let wall = started.elapsed().as_secs_f64();
    let rss = status_kib(pid, "VmRSS")?.max(rss_max);
    let hwm = status_kib(pid, "VmHWM")?;
    let threads = status_kib(pid, "Threads")?;
    let cpu = (cpu_after - cpu_before) as f64 / ticks / wall * 100.0;
    println!(
        "agent RSS with {CREATIVES} cached creatives ({:.1} MiB of media): {:.1} MiB (peak {:.1} MiB); idle CPU over {:.0} s: {cpu:.2} %",
        media_bytes as f64 / (1 << 20) as f64,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        wall,
    );
    println!(
        "agent threads: {threads}; start-up to every creative verified: {:.1} s",
        verified_in.as_secs_f64()
    );
    if std::env::var_os("MEMORY_BENCH_DETAIL").is_some() {
        print_biggest_mappings(pid)?;
        let log = std::fs::read_to_string(&log_path)?;
        for line in log.lines().filter(|l| l.contains("cache")) {
            println!("log: {line}");
        }
    }
    Ok(())
}

/// Kills the agent however the bench ends.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Stores `CREATIVES` random creatives under their SHA-256; returns their total size and
/// their wire descriptions.
fn fill_cache(data_dir: &Path) -> anyhow::Result<(u64, Vec<WireCreative>)> {
    let (cache, _) = Cache::open(data_dir, u64::MAX, 1_700_000_000)?;
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut total = 0;
    let mut creatives = Vec::new();
    for i in 0..CREATIVES {
        let len = MIN_BYTES + (rng.next() as usize) % (MAX_BYTES - MIN_BYTES);
        let mut bytes = vec![0u8; len];
        for chunk in bytes.chunks_mut(8) {
            let word = rng.next().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        let sha = Sha256::of(&bytes);
        cache.put(sha.as_str(), &bytes, 1_700_000_000 + i as u64)?;
        total += len as u64;
        creatives.push(WireCreative {
            id: format!("cr-{i:03}"),
            kind: "image".into(),
            url: format!("/media/{sha}"),
            sha256: sha.to_string(),
            bytes: len as u64,
            width: 1920,
            height: 1080,
            duration_seconds: 15,
            title: format!("creative {i}"),
            fit: None,
            background: None,
            any_aspect: false,
            rendition: None,
        });
    }
    cache.flush()?;
    Ok((total, creatives))
}

/// A signed schedule rotating every creative on 15 s slots, all day, from yesterday for a
/// month, stored in the outbox as the agent keeps the schedule it accepted.
fn store_schedule(
    data_dir: &Path,
    key: &Keypair,
    creatives: Vec<WireCreative>,
) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    let body = ScheduleBody {
        screen: WireScreen {
            id: SCREEN_ID.into(),
            width: 1920,
            height: 1080,
            slot_seconds: 15,
        },
        venue: WireVenue {
            id: "bench-venue".into(),
            name: "Bench venue".into(),
            venue_type: 10502,
            district: None,
            tags: vec![],
            timezone: "UTC".into(),
            operating_hours: "* * * * *".into(),
        },
        campaigns: vec![WireCampaign {
            id: "bench-campaign".into(),
            name: "Bench campaign".into(),
            priority: "normal".into(),
            weight: 1,
            flight_start: now - chrono::Duration::days(1),
            flight_end: now + chrono::Duration::days(30),
            dayparts: vec!["* * * * *".into()],
            target: WireTarget::default(),
            creatives: creatives.iter().map(|c| c.id.clone()).collect(),
            max_plays_per_hour: None,
        }],
        creatives,
    };
    let doc = ScheduleDoc::new(
        &ScreenId::parse(SCREEN_ID)?,
        1,
        now,
        now + chrono::Duration::days(7),
        body,
    );
    let (outbox, _) = Outbox::open(data_dir, Durability::Immediate)?;
    outbox.store_schedule(&key.seal(KIND, &doc))?;
    Ok(())
}

/// A config that keeps the agent offline: nothing listens on either port.
fn write_config(dir: &Path, server_key: &Keypair) -> anyhow::Result<PathBuf> {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.local_addr()?.port()
    };
    let path = dir.join("agent.toml");
    std::fs::write(
        &path,
        format!(
            r#"screen_id = "{SCREEN_ID}"
mqtt_url = "mqtt://127.0.0.1:{closed}"
server_url = "http://127.0.0.1:9"
server_public_key = "{}"
screen_secret_key = "{SCREEN_SECRET_KEY}"
"#,
            server_key.public_hex()
        ),
    )?;
    Ok(path)
}

/// The mappings with the most resident memory (heap, thread arenas, sled's files), from
/// `/proc/PID/smaps`, to see where the figure comes from.
fn print_biggest_mappings(pid: u32) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps"))?;
    let mut maps: Vec<(u64, String)> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(rss) = line.strip_prefix("Rss:") {
            let kib = rss.split_whitespace().next().and_then(|v| v.parse().ok());
            maps.push((kib.unwrap_or(0), current.clone()));
        } else if line
            .split_whitespace()
            .next()
            .is_some_and(|f| f.contains('-'))
        {
            current = line.to_owned();
        }
    }
    maps.sort_by_key(|m| std::cmp::Reverse(m.0));
    for (kib, name) in maps.iter().take(12) {
        println!("{kib:>8} KiB  {name}");
    }
    Ok(())
}

/// A `kB` (or plain count) field of `/proc/PID/status`.
fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no {field} in /proc/{pid}/status"))
}

/// utime + stime of `/proc/PID/stat`, in clock ticks.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces; fields after it start with the state (field 3).
    let after = text
        .rsplit_once(')')
        .ok_or_else(|| anyhow::anyhow!("odd /proc/{pid}/stat"))?
        .1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| -> anyhow::Result<u64> {
        Ok(fields
            .get(n - 3)
            .ok_or_else(|| anyhow::anyhow!("short /proc/{pid}/stat"))?
            .parse()?)
    };
    Ok(field(14)? + field(15)?)
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Random enough that sled cannot shrink the media.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
