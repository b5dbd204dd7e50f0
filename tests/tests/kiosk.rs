//! The web player in a real browser: the real server (embedded broker, redb store) and one
//! real `signage-agent --player web` on the scaled clock at real speed from 08:10 local,
//! shown by Debian's headless Chromium. The page must show the creative the shared planner
//! plans for the slot, fill a 1920x1080 screenshot with something other than black, and its
//! report of the play must reach the ledger's proof of play.
//!
//! Needs `/usr/bin/chromium` (`scripts/setup.sh --with-browser`, or
//! `apt-get install -y chromium`); without it the test fails and says so.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};

use playlists::{Planner, ScreenId};
use tests::agent_proc::{scaled_args, wait_for, AgentProc};
use tests::ledger_check::screen_plays;

const SCREEN: &str = "bj-metro-xidan-s1";
const CHROMIUM: &str = "/usr/bin/chromium";
const START: &str = "2023-12-20T08:10:00+08:00";

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Runs headless Chromium on `url` with `args` (after the common ones); its stdout.
async fn chromium(profile: &Path, url: &str, args: &[String]) -> String {
    let mut cmd = tokio::process::Command::new(CHROMIUM);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--mute-audio",
        "--virtual-time-budget=3000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .arg(url)
    .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("chromium did not finish within 90 s")
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed with {}:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 DOM")
}

/// The value of attribute `name` in `html` (the first one).
fn attr<'a>(html: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("{name}=\"");
    let from = html.find(&key)? + key.len();
    let len = html[from..].find('"')?;
    Some(&html[from..from + len])
}

/// The creative the planner plans for the slot at `at` and the next one, with their starts.
fn planned(env: &tests::TestEnv, at: DateTime<Utc>) -> Vec<(DateTime<Utc>, String)> {
    let catalogue = env.catalogue();
    let schedule = catalogue
        .schedule_for(&ScreenId::parse(SCREEN).unwrap())
        .expect("schedule");
    let planner = Planner::new(&schedule);
    let slot = planner.slot_at(at);
    let (from, to) = (planner.slot_start(slot), planner.slot_start(slot + 2));
    planner
        .plan_range(from, to)
        .into_iter()
        .map(|p| {
            (
                planner.slot_start(p.slot),
                schedule.creatives[p.creative].id.to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_shows_the_planned_creative_and_reports_it() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: the kiosk test drives Debian's Chromium. Install it with \
         `scripts/setup.sh --with-browser` (or `apt-get install -y chromium chromium-driver`)."
    );
    let env = tests::TestEnv::spawn(None).await;
    let (handle, tmp) = (&env.handle, &env.tmp);
    let config = env.provision(SCREEN);

    let mut agent = AgentProc::new(&tmp.path().join("agent"), &config);
    let anchor_ms = Utc::now().timestamp_millis();
    let mut args = scaled_args(t(START), anchor_ms, 1.0);
    args.extend(["--player".into(), "web".into()]);
    args.extend(["--web-addr".into(), "127.0.0.1:0".into()]);
    agent.spawn(&args);
    let virtual_now =
        || t(START) + chrono::Duration::milliseconds(Utc::now().timestamp_millis() - anchor_ms);

    let addr_file: PathBuf = agent.data_dir().join("web.addr");
    wait_for(
        "the agent to write web.addr",
        Duration::from_secs(30),
        || std::fs::read_to_string(&addr_file).is_ok_and(|s| !s.trim().is_empty()),
        || agent.log_tail(),
    )
    .await;
    let addr = std::fs::read_to_string(&addr_file).unwrap();
    let url = format!("http://{}/", addr.trim());
    assert!(
        agent.log().contains("web player listening"),
        "the bound address is not logged:\n{}",
        agent.log_tail()
    );
    env.wait_media_ready(SCREEN, &agent).await;
    // Everything planned for the prefetch horizon (a week by default) is cached: the runway
    // is that week, less the moments since the fetcher looked.
    let runway = env.status(SCREEN).expect("status").runway_hours;
    assert!(
        (167.0..=168.0).contains(&runway),
        "runway {runway} h with every creative cached"
    );
    // Plays started before the media arrived failed; let one slot start with it cached.
    let first_slot_with_media = {
        let plan = planned(&env, virtual_now());
        plan.get(1).map(|(at, _)| *at).expect("a play planned next")
    };
    let wait = (first_slot_with_media - virtual_now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(300)).await;

    // The DOM: the planned creative of the slot at the dump's start (or the next one).
    let at = virtual_now();
    let expect = planned(&env, at);
    let profile = tmp.path().join("chromium-dom");
    let dom = chromium(&profile, &url, &["--dump-dom".into()]).await;
    let shown = attr(&dom, "data-creative-id")
        .unwrap_or_else(|| panic!("no creative in the page at {at}:\n{dom}"));
    let shown_slot = attr(&dom, "data-slot-start").expect("data-slot-start");
    assert!(
        expect.iter().any(|(_, c)| c == shown),
        "the page shows {shown} (slot {shown_slot}) but the planner plans {expect:?} at {at}"
    );
    assert!(
        dom.contains(&format!("<title>{shown}</title>")),
        "document.title is not the creative id:\n{dom}"
    );
    assert!(
        dom.contains("<img") || dom.contains("<video"),
        "no media element:\n{dom}"
    );
    let shown_slot = t(shown_slot);

    // The screenshot: full HD, not uniformly black.
    let png = tmp.path().join("kiosk.png");
    let profile = tmp.path().join("chromium-shot");
    chromium(
        &profile,
        &url,
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1920,1080".into(),
        ],
    )
    .await;
    assert!(png.exists(), "chromium wrote no screenshot");
    let img = image::open(&png).expect("decode the screenshot").to_rgb8();
    assert_eq!(img.dimensions(), (1920, 1080), "screenshot size");
    let lit = img.pixels().filter(|p| p.0.iter().any(|&c| c > 16)).count();
    assert!(
        lit > 1920 * 1080 / 100,
        "the screenshot is (nearly) black: {lit} lit pixels"
    );

    // The page's report reaches the proof of play: the shown slot's record, with the
    // screen's times, in the ledger once the slot ended and its batch went out.
    wait_for(
        "the shown play in the ledger",
        Duration::from_secs(40),
        || {
            screen_plays(&*handle.shared.ledger, SCREEN)
                .iter()
                .any(|r| r.slot_start == shown_slot && r.creative_id == shown)
        },
        || {
            format!(
                "ledger {:?}\n{}",
                screen_plays(&*handle.shared.ledger, SCREEN),
                agent.log_tail()
            )
        },
    )
    .await;
    assert!(
        agent.log().contains("play times from the screen"),
        "the agent never used the page's report:\n{}",
        agent.log_tail()
    );

    agent.terminate().await;
    env.stop().await;
}
