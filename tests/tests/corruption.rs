//! Honest tooling on a damaged store (issue 10, item 6), through the real `signage`
//! binary: a real store (the Beijing scenario and a short simulation with real agents, so
//! the ledger holds signed plays) is copied, one byte of the copy's redb file is flipped,
//! and every read command runs on it. None may panic; each either fails with a clear
//! error or succeeds with exactly the undamaged store's output (the byte was in free
//! space). Success with different output is the worst case: damaged rows exported as if
//! they were sound. The test knows nothing of the file's layout: offsets are spread over
//! the whole file, packed over its first pages, and drawn from its non-zero bytes.
//! redb only, whatever `SIGNAGE_TEST_STORE` says: it damages the redb file itself.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Utc};
use server::sim::{simulate, SimOptions};
use tokio_util::sync::CancellationToken;

const FROM: &str = "2023-12-20T08:30:00+08:00";
const TO: &str = "2023-12-20T08:50:00+08:00";
const SCREENS: [&str; 2] = ["bj-metro-xidan-s1", "bj-bus-daxing-huangcun-s1"];
const FILE: &str = "signage.redb";

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The read commands, each on `dir`.
fn reads(dir: &str) -> Vec<Vec<String>> {
    let window = ["--from", FROM, "--to", TO];
    let cmds: Vec<Vec<&str>> = vec![
        vec!["audit", "verify", "--data-dir", dir],
        [
            &["report", "plays", "--format", "csv", "--data-dir", dir][..],
            &window,
        ]
        .concat(),
        [
            &["report", "venues", "--format", "csv", "--data-dir", dir][..],
            &window,
        ]
        .concat(),
        vec!["changes", "--data-dir", dir],
        [&["plan", "--data-dir", dir][..], &window].concat(),
    ];
    cmds.into_iter()
        .map(|c| c.into_iter().map(str::to_owned).collect())
        .collect()
}

/// What one command did.
#[derive(Debug, Clone, PartialEq)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(args: &[String]) -> Run {
    let out = Command::new(tests::signage_bin())
        .args(args)
        .env_remove("SIGNAGE_SERVER")
        .env_remove("SIGNAGE_TOKEN_FILE")
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run signage");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Copies the store's top-level files (not the agents' directories) into `to`, the redb
/// file with `offset`'s byte inverted.
fn damaged_copy(from: &Path, to: &Path, offset: Option<usize>) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
    if let Some(offset) = offset {
        let path = to.join(FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[offset] = !bytes[offset];
        std::fs::write(&path, bytes).unwrap();
    }
}

/// Why a run on a damaged copy is not acceptable, if it is not.
fn judge(run: &Run, clean: &Run) -> Option<String> {
    if run.code == Some(101) || run.stderr.contains("panicked") {
        return Some(format!("panicked: {}", run.stderr.trim()));
    }
    if run.code.is_none() {
        return Some("killed by a signal".into());
    }
    if run.code == Some(0) {
        if run.stdout != clean.stdout {
            return Some(format!(
                "exit 0 with output that differs from the undamaged store's ({} vs {} bytes)",
                run.stdout.len(),
                clean.stdout.len()
            ));
        }
        return None;
    }
    // `audit verify` reports what it found damaged on standard output, and fails.
    if run.stderr.trim().is_empty() && run.stdout != clean.stdout && !run.stdout.is_empty() {
        return None;
    }
    // Any other failure must say what is damaged: the store file, or the table or record.
    let said = run.stderr.to_lowercase();
    let named = said.contains(FILE) || said.contains("damaged") || said.contains("corrupt");
    if !named || !said.contains("error: ") {
        return Some(format!("an unclear error: {}", run.stderr.trim()));
    }
    None
}

/// A small deterministic generator (xorshift), so a failure names a reproducible offset.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// The offsets to damage: the first pages densely, the whole file evenly, and non-zero
/// bytes (where the data is) at random.
fn offsets(bytes: &[u8]) -> Vec<usize> {
    let len = bytes.len();
    let mut v: Vec<usize> = (0..1024.min(len)).step_by(41).collect();
    v.extend((0..50).map(|i| i * len / 50 + 7));
    let used: Vec<usize> = (0..len).filter(|&i| bytes[i] != 0).collect();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    v.extend((0..60).map(|_| used[rng.below(used.len())]));
    v.retain(|&o| o < len);
    v.sort_unstable();
    v.dedup();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_command_on_a_damaged_store_errors_clearly_or_reads_true() {
    let tmp = tempfile::tempdir().unwrap();
    let data: PathBuf = tmp.path().join("data");
    let mut opts = SimOptions::new(
        tests::beijing(),
        t(FROM),
        t(TO),
        data.clone(),
        tests::agent_bin(),
    );
    opts.screens = SCREENS.iter().map(|s| s.to_string()).collect();
    opts.topics = playlists::wire::Topics::new("corruption/v1");
    let outcome = simulate(opts, CancellationToken::new())
        .await
        .expect("simulation");
    assert!(
        outcome.delivered > 50,
        "too few plays: {}",
        outcome.delivered
    );
    drop(outcome);

    // The undamaged outputs, from a copy at the same path the damaged ones use.
    let work = tmp.path().join("work");
    let dirs: Vec<PathBuf> = (0..2).map(|w| work.join(format!("w{w}"))).collect();
    damaged_copy(&data, &dirs[0], None);
    let clean: Vec<Run> = reads(dirs[0].to_str().unwrap())
        .iter()
        .map(|args| run(args))
        .collect();
    for (args, r) in reads("DIR").iter().zip(&clean) {
        assert_eq!(
            r.code,
            Some(0),
            "{args:?} on the undamaged store: {}",
            r.stderr
        );
    }
    assert!(
        clean[1].stdout.lines().count() > 50,
        "the plays export is too short to mean anything"
    );
    // The damaged copies must have the same path as the clean one for outputs that name
    // it: run the clean pass in every worker's directory too.
    let clean1: Vec<Run> = {
        damaged_copy(&data, &dirs[1], None);
        reads(dirs[1].to_str().unwrap())
            .iter()
            .map(|a| run(a))
            .collect()
    };

    let bytes = std::fs::read(data.join(FILE)).unwrap();
    let offsets = offsets(&bytes);
    assert!(offsets.len() > 100, "{} offsets", offsets.len());
    let (mut failures, mut refused, mut identical) = (Vec::new(), 0usize, 0usize);
    std::thread::scope(|scope| {
        let workers: Vec<_> = dirs
            .iter()
            .zip([&clean, &clean1])
            .enumerate()
            .map(|(w, (dir, clean))| {
                let data = &data;
                let mine: Vec<usize> = offsets.iter().copied().skip(w).step_by(2).collect();
                scope.spawn(move || {
                    let mut out = Vec::new();
                    for offset in mine {
                        damaged_copy(data, dir, Some(offset));
                        for (args, clean) in reads(dir.to_str().unwrap()).iter().zip(clean) {
                            let r = run(args);
                            out.push((offset, args[..2].join(" "), r.code, judge(&r, clean)));
                        }
                    }
                    out
                })
            })
            .collect();
        for w in workers {
            for (offset, cmd, code, verdict) in w.join().expect("worker") {
                match verdict {
                    Some(why) => failures.push(format!("offset {offset}, {cmd}: {why}")),
                    None if code == Some(0) => identical += 1,
                    None => refused += 1,
                }
            }
        }
    });
    eprintln!(
        "{} offsets: {refused} runs refused with a clear error, {identical} read the same as undamaged",
        offsets.len()
    );
    assert!(
        failures.is_empty(),
        "{} bad runs of {}:\n{}",
        failures.len(),
        offsets.len() * 5,
        failures[..failures.len().min(40)].join("\n")
    );
    // Damage that reaches data must be noticed somewhere: not every run can be "identical".
    assert!(refused > 0, "no damage was ever noticed");
}
