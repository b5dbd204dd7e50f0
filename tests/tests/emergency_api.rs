//! The emergency API over real HTTP (the in-process server on a bound port, its redb store
//! holding the Beijing scenario): every kind of bad input gets a 4xx with a JSON error that
//! names the problem and leaves the store (emergencies, catalogue, published schedule
//! versions) exactly as it was; a good start and end change it; the `signage emergency`
//! CLI prints what happened and exits non-zero with the server's message.

use serde_json::{json, Value};
use tests::store::off_runtime;
use tests::TestEnv;

const SCREEN: &str = "bj-metro-xidan-s1";

/// What a refused request must leave alone.
fn snapshot(env: &TestEnv) -> String {
    let published: std::collections::BTreeMap<_, _> = off_runtime(|| env.store.published())
        .expect("published")
        .into_iter()
        .collect();
    format!(
        "{:?}\n{:?}\n{:?}",
        off_runtime(|| env.store.snapshot())
            .expect("snapshot")
            .emergencies,
        env.catalogue().campaigns,
        published
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_changes_nothing() {
    let env = TestEnv::spawn(None).await;
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/emergencies", env.http_url());
    let token = env.admin_token();
    let good = json!({
        "id": "alert-test", "name": "Test alert",
        "creatives": ["alert-epidemic-l"],
        "target": {"screens": [SCREEN]},
    });
    let with = |patch: Value| {
        let mut v = good.clone();
        for (k, x) in patch.as_object().expect("object") {
            v[k] = x.clone();
        }
        serde_json::to_vec(&v).expect("json")
    };
    // The first publication (on connecting to the broker) is part of the starting state.
    let screens = env.catalogue().screens.len();
    tests::agent_proc::wait_for(
        "the server's first schedule publication",
        std::time::Duration::from_secs(30),
        || {
            off_runtime(|| env.store.published())
                .expect("published")
                .len()
                == screens
        },
        String::new,
    )
    .await;
    let before = snapshot(&env);

    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "no token",
            http.post(&url).body(with(json!({}))),
            401,
            "missing Authorization",
        ),
        (
            "wrong token",
            http.post(&url)
                .bearer_auth("00".repeat(32))
                .body(with(json!({}))),
            401,
            "unknown or malformed API token",
        ),
        (
            "bad JSON",
            http.post(&url).bearer_auth(&token).body("{\"id\": "),
            400,
            "request body is not the expected JSON: EOF",
        ),
        (
            "unknown field",
            http.post(&url)
                .bearer_auth(&token)
                .body(with(json!({"priority": "high"}))),
            400,
            "unknown field `priority`",
        ),
        (
            "bad id",
            http.post(&url)
                .bearer_auth(&token)
                .body(with(json!({"id": "no spaces please"}))),
            400,
            "id:",
        ),
        (
            "unknown creative",
            http.post(&url)
                .bearer_auth(&token)
                .body(with(json!({"creatives": ["alert-epidemic-l", "nope"]}))),
            400,
            "creative \"nope\" is not in the catalogue",
        ),
        (
            "a portrait creative on a landscape screen",
            http.post(&url).bearer_auth(&token).body(with(
                json!({"creatives": ["alert-epidemic-l", "alert-epidemic-p"]}),
            )),
            400,
            "creative \"alert-epidemic-p\" fits none of the 1 targeted screens",
        ),
        (
            "a target that matches nothing",
            http.post(&url)
                .bearer_auth(&token)
                .body(with(json!({"target": {"districts": ["atlantis"]}}))),
            400,
            "emergency \"alert-test\" targets no screen",
        ),
        (
            "an unknown venue type",
            http.post(&url).bearer_auth(&token).body(with(
                json!({"target": {"venue_types": ["transit.teleporter"]}}),
            )),
            400,
            "transit.teleporter",
        ),
        (
            "an unknown targeting key",
            http.post(&url)
                .bearer_auth(&token)
                .body(with(json!({"target": {"planets": ["mars"]}}))),
            400,
            "planets",
        ),
        (
            "the id of a scenario campaign",
            http.post(&url)
                .bearer_auth(&token)
                .body(with(json!({"id": "alert-epidemic-2023-12-20"}))),
            409,
            "id \"alert-epidemic-2023-12-20\" is already used",
        ),
        (
            "until in the past",
            http.post(&url)
                .bearer_auth(&token)
                .body(with(json!({"until": "2020-01-01T00:00:00Z"}))),
            400,
            "until 2020-01-01 00:00:00 UTC is not after now",
        ),
        (
            "ending an unknown emergency",
            http.post(format!("{url}/ghost/end")).bearer_auth(&token),
            404,
            "no emergency \"ghost\"",
        ),
        (
            "ending without the token",
            http.post(format!("{url}/ghost/end")),
            401,
            "missing Authorization",
        ),
    ];
    for (what, req, status, needle) in cases {
        let (got, body) = tests::send_json(req).await;
        let error = body["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(got, status, "{what}: {body}");
        assert!(
            error.contains(needle),
            "{what}: {error:?} should say {needle:?}"
        );
        assert!(snapshot(&env) == before, "{what} changed the store");
    }

    // A good request is stored, listed as active, and refused a second time.
    let (status, body) =
        tests::send_json(http.post(&url).bearer_auth(&token).body(with(json!({})))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["screens"], json!([SCREEN]));
    let (_, list) = tests::send_json(http.get(&url).bearer_auth(&token)).await;
    let listed = list
        .as_array()
        .expect("a list")
        .iter()
        .find(|e| e["id"] == "alert-test")
        .unwrap_or_else(|| panic!("alert-test not listed: {list}"));
    assert_eq!(listed["active"], true);
    let after_start = snapshot(&env);
    assert!(after_start != before, "the start changed nothing");
    let (status, body) =
        tests::send_json(http.post(&url).bearer_auth(&token).body(with(json!({})))).await;
    assert_eq!(
        (status, body["error"]["message"].as_str().is_some()),
        (409, true)
    );
    assert!(
        snapshot(&env) == after_start,
        "a duplicate start changed the store"
    );

    // The CLI: a wrong token file fails with the server's message; list and end work.
    let bad_token = env.tmp.path().join("wrong.token");
    std::fs::write(&bad_token, "11".repeat(32)).expect("token file");
    let good_token = env.store.dir().join(server::admin::FILE);
    let cli = tests::signage;
    let server_url = env.http_url();
    let end_with = |token: &std::path::Path| {
        tokio::task::block_in_place(|| {
            cli(&[
                "emergency",
                "end",
                "--server",
                &server_url,
                "--token-file",
                token.to_str().unwrap(),
                "alert-test",
            ])
        })
    };
    let (ok, _, err) = end_with(&bad_token);
    assert!(!ok);
    assert!(
        err.contains("401") && err.contains("unknown or malformed API token"),
        "{err}"
    );
    let (ok, out, _) = tokio::task::block_in_place(|| {
        cli(&[
            "emergency",
            "list",
            "--server",
            &server_url,
            "--token-file",
            good_token.to_str().unwrap(),
        ])
    });
    assert!(ok);
    assert!(out.contains("alert-test\ttrue"), "{out}");
    let (ok, out, err) = end_with(&good_token);
    assert!(ok, "{err}");
    assert!(out.contains("emergency alert-test ended at"), "{out}");
    let (ok, _, err) = end_with(&good_token);
    assert!(!ok);
    assert!(
        err.contains("409") && err.contains("already ended"),
        "{err}"
    );
    let (ok, out, err) = tokio::task::block_in_place(|| {
        cli(&[
            "emergency",
            "start",
            "--server",
            &server_url,
            "--token-file",
            good_token.to_str().unwrap(),
            "--id",
            "alert-cli",
            "--name",
            "CLI alert",
            "--creative",
            "alert-epidemic-l",
            "--district",
            "xicheng",
            "--venue-type",
            "transit.subway",
        ])
    });
    assert!(ok, "{err}");
    assert!(out.contains("emergency alert-cli started at"), "{out}");
    let (_, list) = tests::send_json(http.get(&url).bearer_auth(&token)).await;
    let active: Vec<(&str, bool)> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|e| (e["id"].as_str().unwrap(), e["active"].as_bool().unwrap()))
        .collect();
    // The scenario's own epidemic alert (an event of the imported file) ended long ago.
    assert_eq!(
        active,
        [
            ("alert-cli", true),
            ("alert-epidemic-2023-12-20", false),
            ("alert-test", false)
        ]
    );
    env.stop().await;
}
