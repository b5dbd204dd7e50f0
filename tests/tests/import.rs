//! `signage import` of broken scenarios: each error names the culprit and its field, the
//! command exits non-zero, and the store is left exactly as it was.

use std::path::Path;
use std::process::Command;

use server::store::OpenMode;
use tests::{copy_beijing, edit_scenario, signage_bin, TestStore};

/// A snapshot of everything an import could change.
fn snapshot(test_store: &TestStore, data: &Path) -> (String, Vec<String>) {
    let store = test_store.open(data, OpenMode::Existing);
    let scenarios = format!(
        "{:?}\n{:?}",
        store.snapshot().expect("snapshot"),
        store.revisions(0, usize::MAX).expect("revisions")
    );
    let mut media: Vec<String> = std::fs::read_dir(data.join("media"))
        .expect("media")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    media.sort();
    (scenarios, media)
}

/// Imports a broken copy (made by `breaking`) into a store already holding the good
/// scenario, through the real binary; checks the message and that nothing changed.
fn check(breaking: impl FnOnce(&Path), expect: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let store = TestStore::new();
    let good = Command::new(signage_bin())
        .arg("import")
        .arg(tests::beijing())
        .arg("--data-dir")
        .arg(&data)
        .args(store.args())
        .output()
        .unwrap();
    assert!(
        good.status.success(),
        "good import failed: {}",
        String::from_utf8_lossy(&good.stderr)
    );
    // A second scenario name, so a successful import would visibly change the store.
    let broken = copy_beijing(tmp.path());
    edit_scenario(&broken, |v| v["name"] = "broken copy".into());
    breaking(&broken);
    let before = snapshot(&store, &data);
    let out = Command::new(signage_bin())
        .arg("import")
        .arg(&broken)
        .arg("--data-dir")
        .arg(&data)
        .args(store.args())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "broken import succeeded");
    for e in expect {
        assert!(
            stderr.contains(e),
            "error {stderr:?} does not mention {e:?}"
        );
    }
    assert_eq!(snapshot(&store, &data), before, "the store changed");
}

fn set(v: &mut serde_json::Value, list: &str, id: &str, field: &str, value: serde_json::Value) {
    let item = v[list]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|x| x["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {list}"));
    item[field] = value;
}

#[test]
fn bad_cron_names_venue_and_field() {
    check(
        |d| {
            edit_scenario(d, |v| {
                set(
                    v,
                    "venues",
                    "bj-metro-xidan",
                    "operating_hours",
                    "* 5-25 * * *".into(),
                )
            })
        },
        &["venue \"bj-metro-xidan\"", "operating_hours", "hour"],
    );
    check(
        |d| {
            edit_scenario(d, |v| {
                set(
                    v,
                    "campaigns",
                    "civility-rush-hour",
                    "dayparts",
                    serde_json::json!(["* 7-8 * * 1-5", "0 0 * * * *"]),
                )
            })
        },
        &[
            "campaign \"civility-rush-hour\"",
            "dayparts[1]",
            "expected 5 fields",
        ],
    );
}

#[test]
fn unknown_venue_type() {
    check(
        |d| {
            edit_scenario(d, |v| {
                set(
                    v,
                    "venues",
                    "bj-metro-xidan",
                    "type",
                    "transit.hoverboard".into(),
                )
            })
        },
        &["venue \"bj-metro-xidan\"", "\"type\"", "transit.hoverboard"],
    );
}

#[test]
fn campaign_naming_a_missing_creative() {
    check(
        |d| {
            edit_scenario(d, |v| {
                set(
                    v,
                    "campaigns",
                    "rm2023-vote",
                    "creatives",
                    serde_json::json!(["rm2023-vote-l", "no-such-creative"]),
                )
            })
        },
        &[
            "campaign \"rm2023-vote\"",
            "creatives[1]",
            "no-such-creative",
        ],
    );
}

#[test]
fn hash_and_size_mismatch() {
    check(
        |d| {
            edit_scenario(d, |v| {
                set(
                    v,
                    "creatives",
                    "rm2023-w51-1",
                    "sha256",
                    "0".repeat(64).into(),
                )
            })
        },
        &["creative \"rm2023-w51-1\"", "sha256"],
    );
    check(
        |d| {
            edit_scenario(d, |v| {
                set(v, "creatives", "rm2023-w51-1", "bytes", 12.into())
            })
        },
        &["creative \"rm2023-w51-1\"", "bytes"],
    );
}

/// Replaces a creative's file and fixes its declared hash and size, so only decoding fails.
fn replace_media(dir: &Path, id: &str, file: &str, data: &[u8]) {
    std::fs::write(dir.join(file), data).unwrap();
    let sha = media::sha256_hex(data);
    edit_scenario(dir, |v| {
        set(v, "creatives", id, "sha256", sha.clone().into());
        set(v, "creatives", id, "bytes", data.len().into());
    });
}

#[test]
fn corrupt_and_unreadable_media() {
    check(
        |d| {
            let data = std::fs::read(d.join("media/rm2023-w51-2.jpg")).unwrap();
            replace_media(
                d,
                "rm2023-w51-2",
                "media/rm2023-w51-2.jpg",
                &data[..data.len() / 2],
            );
        },
        &["creative \"rm2023-w51-2\"", "media/rm2023-w51-2.jpg"],
    );
    check(
        |d| {
            let data = std::fs::read(d.join("media/rm2023-vote-video.mp4")).unwrap();
            replace_media(
                d,
                "rm2023-vote-video",
                "media/rm2023-vote-video.mp4",
                &data[..data.len() / 2],
            );
        },
        &[
            "creative \"rm2023-vote-video\"",
            "media/rm2023-vote-video.mp4",
        ],
    );
    check(
        |d| std::fs::remove_file(d.join("media/rm2023-w51-3.jpg")).unwrap(),
        &["creative \"rm2023-w51-3\"", "cannot read"],
    );
    check(
        |d| {
            edit_scenario(d, |v| {
                set(
                    v,
                    "creatives",
                    "rm2023-w51-3",
                    "file",
                    "../../etc/passwd".into(),
                )
            })
        },
        &["creative \"rm2023-w51-3\"", "inside the scenario directory"],
    );
}

#[test]
fn decompression_bomb() {
    check(
        |d| {
            // A valid PNG header claiming 100000 x 100000 pixels.
            let mut png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
            let ihdr = [
                &100_000u32.to_be_bytes()[..],
                &100_000u32.to_be_bytes()[..],
                &[8, 2, 0, 0, 0],
            ]
            .concat();
            png.extend_from_slice(&ihdr);
            let mut crc_input = b"IHDR".to_vec();
            crc_input.extend_from_slice(&ihdr);
            png.extend_from_slice(&tests::crc32(&crc_input).to_be_bytes());
            for (kind, data) in [
                (&b"IDAT"[..], &b"\x78\x9c\x03\x00\x00\x00\x00\x01"[..]),
                (&b"IEND"[..], &b""[..]),
            ] {
                png.extend_from_slice(&(data.len() as u32).to_be_bytes());
                let chunk = [kind, data].concat();
                png.extend_from_slice(&chunk);
                png.extend_from_slice(&tests::crc32(&chunk).to_be_bytes());
            }
            replace_media(d, "rm2023-w51-4", "media/rm2023-w51-4.jpg", &png);
        },
        &["creative \"rm2023-w51-4\"", "100000"],
    );
}

#[test]
fn malformed_json_and_reimport_is_idempotent() {
    check(
        |d| {
            std::fs::write(
                d.join("scenario.json"),
                "{\"format\": \"signage-scenario/1\", ",
            )
            .unwrap()
        },
        &["scenario.json", "line"],
    );
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let store = TestStore::new();
    let run = || {
        Command::new(signage_bin())
            .arg("import")
            .arg(tests::beijing())
            .arg("--data-dir")
            .arg(&data)
            .args(store.args())
            .output()
            .unwrap()
    };
    let first = run();
    assert!(first.status.success());
    let before = snapshot(&store, &data);
    let second = run();
    assert!(second.status.success());
    assert!(String::from_utf8_lossy(&second.stdout).contains("unchanged"));
    assert_eq!(snapshot(&store, &data), before);
    let s = store.open(&data, OpenMode::Existing);
    let c = server::catalogue::build(&s.snapshot().unwrap()).unwrap();
    assert_eq!(
        (c.venues.len(), c.screens.len(), c.creatives.len()),
        (42, 67, 46)
    );
}
