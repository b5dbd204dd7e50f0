//! Dashboard login over real HTTP (the in-process server with its redb store holding the
//! Beijing scenario): a wrong password is a 401 and a `login-failed` entry in the change
//! log; the session cookie is HttpOnly and SameSite=Strict and never stored as such; a
//! state change through the session needs its CSRF token (without or with a wrong one:
//! 403, nothing changed); API tokens need none; a 403 for a missing role lands in the
//! change log with the user's name; logout and a password change end the session; the
//! security headers are on every response. The CLI sets passwords too.

use serde_json::{json, Value};
use tests::{send_json, TestEnv};

const PASSWORD: &str = "olga's long password";

/// The session cookie's value in a login response, and the whole `Set-Cookie` line.
fn session_cookie(resp: &reqwest::Response) -> (String, String) {
    let line = resp
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("signage_session="))
        .unwrap_or_else(|| panic!("no session cookie in {:?}", resp.headers()))
        .to_owned();
    let value = line["signage_session=".len()..]
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned();
    (value, line)
}

/// Every event entry of the change log: (event, author, comment).
async fn events(env: &TestEnv) -> Vec<(String, String, String)> {
    let (status, page) = send_json(
        reqwest::Client::new()
            .get(format!("{}/api/v1/changes?limit=1000", env.http_url()))
            .bearer_auth(env.admin_token()),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|r| r.get("event").is_some())
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (s("event"), s("author"), s("comment"))
        })
        .collect()
}

/// Whether an emergency of this id is stored.
fn has_emergency(env: &TestEnv, id: &str) -> bool {
    env.store
        .snapshot()
        .expect("snapshot")
        .emergencies
        .contains_key(id)
}

fn alert(id: &str) -> Value {
    json!({
        "id": id, "name": "Session alert",
        "creatives": ["alert-epidemic-l"],
        "target": {"districts": ["dongcheng"]},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_csrf_logout_and_the_change_log() {
    let env = TestEnv::spawn(None).await;
    let base = env.http_url();
    let admin = env.admin_token();
    let http = reqwest::Client::new();
    let login = |name: &str, password: &str| {
        http.post(format!("{base}/api/v1/session"))
            .json(&json!({"name": name, "password": password}))
    };

    // An operator with a password, made over the API; a password too short is refused.
    let (status, body) = send_json(
        http.post(format!("{base}/api/v1/users"))
            .bearer_auth(&admin)
            .json(&json!({"name": "olga", "roles": ["operator"], "password": "short"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("password")),
        "{body}"
    );
    let (status, body) = send_json(
        http.post(format!("{base}/api/v1/users"))
            .bearer_auth(&admin)
            .json(&json!({"name": "olga", "roles": ["operator"], "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(!body.to_string().contains("argon2"), "{body}");

    // A wrong password: 401, no cookie, and a login-failed entry by olga.
    let resp = login("olga", "not olga's password")
        .send()
        .await
        .expect("login");
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().get(reqwest::header::SET_COOKIE).is_none());
    let logged = events(&env).await;
    assert_eq!(
        logged
            .iter()
            .map(|(e, a, _)| (e.as_str(), a.as_str()))
            .collect::<Vec<_>>(),
        [("login-failed", "olga")]
    );
    // A login that is not JSON (what a cross-site form could send) is refused.
    let resp = http
        .post(format!("{base}/api/v1/session"))
        .header(reqwest::header::CONTENT_TYPE, "text/plain")
        .body(json!({"name": "olga", "password": PASSWORD}).to_string())
        .send()
        .await
        .expect("login");
    assert_eq!(resp.status(), 415);

    // The right password: a session cookie, HttpOnly, SameSite=Strict, not Secure over
    // plain HTTP; the answer names the user and carries the CSRF token.
    let resp = login("olga", PASSWORD).send().await.expect("login");
    assert_eq!(resp.status(), 200);
    let (cookie, line) = session_cookie(&resp);
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(line.contains(attr), "{attr} in {line}");
    }
    assert!(!line.contains("Secure"), "{line}");
    assert_eq!(cookie.len(), 64, "{line}");
    let session: Value = resp.json().await.expect("json");
    assert_eq!(session["name"], "olga");
    assert_eq!(session["roles"], json!(["operator"]));
    let csrf = session["csrf_token"]
        .as_str()
        .expect("csrf token")
        .to_owned();
    assert_eq!(csrf.len(), 64);
    assert_ne!(csrf, cookie);
    // The store holds the session (its CSRF token) but never the cookie itself: every byte
    // of the redb file, or every session row of the PostgreSQL database as text.
    let stored: Vec<u8> = match env.test_store.url() {
        None => std::fs::read(env.store.dir().join("signage.redb")).expect("store file"),
        Some(url) => tokio::task::spawn_blocking(move || {
            let mut db = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
            db.query("SELECT s::text FROM sessions s", &[])
                .expect("the sessions table")
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<_>>()
                .concat()
                .into_bytes()
        })
        .await
        .expect("read the sessions"),
    };
    let holds = |s: &str| stored.windows(s.len()).any(|w| w == s.as_bytes());
    assert!(holds(&csrf), "the session is stored");
    assert!(!holds(&cookie), "the cookie is stored only hashed");

    let with_cookie = |req: reqwest::RequestBuilder, c: &str| {
        req.header(reqwest::header::COOKIE, format!("signage_session={c}"))
    };
    let (status, me) = send_json(with_cookie(
        http.get(format!("{base}/api/v1/session")),
        &cookie,
    ))
    .await;
    assert_eq!(
        (status, me["csrf_token"].as_str()),
        (200, Some(csrf.as_str()))
    );

    // Security headers, on the API and on the page.
    let resp = with_cookie(http.get(format!("{base}/api/v1/emergencies")), &cookie)
        .send()
        .await
        .expect("emergencies");
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    let csp = h["content-security-policy"].to_str().expect("csp");
    for part in [
        "default-src 'self'",
        "script-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{part} in {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(h.get("strict-transport-security").is_none(), "plain HTTP");
    let page = http.get(format!("{base}/")).send().await.expect("page");
    assert!(page.headers().contains_key("content-security-policy"));
    let html = page.text().await.expect("html");
    assert!(
        !html.contains("<script>") && !html.contains("<style"),
        "no inline script or style"
    );
    // Every module the page loads: served as JavaScript, none parses text as HTML, none
    // keeps anything in web storage but the language preference.
    let app = http
        .get(format!("{base}/ui/app.js"))
        .send()
        .await
        .expect("app.js");
    assert_eq!(
        app.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let app = app.text().await.expect("app.js");
    let modules: Vec<&str> = app
        .lines()
        .filter_map(|l| l.strip_prefix("import "))
        .filter_map(|l| l.split('\'').nth(1))
        .collect();
    assert!(modules.len() >= 4, "app.js imports its pages: {modules:?}");
    for m in modules {
        let name = m.trim_start_matches("./");
        let js = http
            .get(format!("{base}/ui/{name}"))
            .send()
            .await
            .expect("module")
            .text()
            .await
            .expect("module text");
        for bad in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "sessionStorage",
        ] {
            assert!(!js.contains(bad), "{name} uses {bad}");
        }
        for (i, _) in js.match_indices("localStorage.") {
            assert!(
                js[i..].contains("('signage.lang'") && js[i..i + 40].contains("'signage.lang'"),
                "{name} keeps something but the language in localStorage"
            );
        }
    }

    // A state change through the session without the CSRF token, or with a wrong one:
    // 403, nothing stored.
    let start = || with_cookie(http.post(format!("{base}/api/v1/emergencies")), &cookie);
    let (status, body) = send_json(start().json(&alert("no-csrf"))).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("X-CSRF-Token"),
        "{body}"
    );
    let (status, _) = send_json(
        start()
            .header("X-CSRF-Token", "0".repeat(64))
            .json(&alert("no-csrf")),
    )
    .await;
    assert_eq!(status, 403);
    assert!(!has_emergency(&env, "no-csrf"));
    // With it: started.
    let (status, body) = send_json(
        start()
            .header("X-CSRF-Token", &csrf)
            .json(&alert("with-csrf")),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(has_emergency(&env, "with-csrf"));
    // An API token needs no CSRF token.
    let (status, body) = send_json(
        http.post(format!("{base}/api/v1/emergencies/with-csrf/end"))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // A role olga lacks: 403 naming it, and a refusal by olga in the change log.
    let (status, body) = send_json(with_cookie(
        http.get(format!("{base}/api/v1/users")),
        &cookie,
    ))
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("admin"),
        "{body}"
    );
    // A token user refused too: its name is logged.
    let (status, made) = send_json(
        http.post(format!("{base}/api/v1/users"))
            .bearer_auth(&admin)
            .json(&json!({"name": "sam", "roles": ["staff"]})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let (status, _) = send_json(
        http.get(format!("{base}/api/v1/users"))
            .bearer_auth(made["token"].as_str().expect("token")),
    )
    .await;
    assert_eq!(status, 403);

    // Logout needs the CSRF token too; then the cookie is dead.
    let out = || with_cookie(http.delete(format!("{base}/api/v1/session")), &cookie);
    assert_eq!(out().send().await.expect("logout").status(), 403);
    let resp = out()
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .expect("logout");
    assert_eq!(resp.status(), 204);
    let (_, line) = session_cookie(&resp);
    assert!(line.contains("Max-Age=0"), "{line}");
    for path in ["session", "emergencies"] {
        let (status, _) = send_json(with_cookie(
            http.get(format!("{base}/api/v1/{path}")),
            &cookie,
        ))
        .await;
        assert_eq!(status, 401, "{path} after logout");
    }

    // A password change (by olga herself: her current password is needed) ends her other
    // sessions; the old password no longer logs in.
    let resp = login("olga", PASSWORD).send().await.expect("login");
    let (cookie2, _) = session_cookie(&resp);
    let csrf2 = resp.json::<Value>().await.expect("json")["csrf_token"]
        .as_str()
        .expect("csrf")
        .to_owned();
    let change = |current: &str| {
        with_cookie(
            http.put(format!("{base}/api/v1/users/olga/password")),
            &cookie2,
        )
        .header("X-CSRF-Token", &csrf2)
        .json(&json!({"password": "a new long password", "current_password": current}))
    };
    let (status, body) = send_json(change("wrong current password")).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("current_password"))
    );
    let resp = change(PASSWORD).send().await.expect("change");
    assert_eq!(resp.status(), 204);
    let (status, _) = send_json(with_cookie(
        http.get(format!("{base}/api/v1/session")),
        &cookie2,
    ))
    .await;
    assert_eq!(status, 401, "a password change ends the sessions");
    assert_eq!(
        login("olga", PASSWORD)
            .send()
            .await
            .expect("login")
            .status(),
        401
    );
    let resp = login("olga", "a new long password")
        .send()
        .await
        .expect("login");
    assert_eq!(resp.status(), 200);
    let (cookie3, _) = session_cookie(&resp);
    let csrf3 = resp.json::<Value>().await.expect("json")["csrf_token"]
        .as_str()
        .expect("csrf")
        .to_owned();
    // Olga may not set another user's password.
    let (status, _) = send_json(
        with_cookie(
            http.put(format!("{base}/api/v1/users/sam/password")),
            &cookie3,
        )
        .header("X-CSRF-Token", &csrf3)
        .json(&json!({"password": "a new long password"})),
    )
    .await;
    assert_eq!(status, 403);
    // A made-up cookie is no session.
    let (status, _) = send_json(with_cookie(
        http.get(format!("{base}/api/v1/session")),
        &"0".repeat(64),
    ))
    .await;
    assert_eq!(status, 401);

    let logged: Vec<(String, String)> = events(&env)
        .await
        .into_iter()
        .map(|(e, a, c)| {
            if e == "refused" {
                (e, format!("{a}: {c}"))
            } else {
                (e, a)
            }
        })
        .collect();
    let want = |e: &str, a: &str| (e.to_owned(), a.to_owned());
    assert_eq!(
        logged[..2],
        [want("login-failed", "olga"), want("login", "olga")]
    );
    let refused: Vec<&str> = logged
        .iter()
        .filter(|(e, _)| e == "refused")
        .map(|(_, a)| a.as_str())
        .collect();
    assert_eq!(refused.len(), 6, "{refused:#?}");
    assert!(
        refused[0].starts_with("olga: refused POST /api/v1/emergencies")
            && refused[0].contains("missing")
    );
    assert!(
        refused[1].starts_with("olga: refused POST /api/v1/emergencies")
            && refused[1].contains("wrong")
    );
    assert!(
        refused[2].starts_with("olga: refused GET /api/v1/users") && refused[2].contains("admin")
    );
    assert!(
        refused[3].starts_with("sam: refused GET /api/v1/users")
            && refused[3].contains("this needs the role admin; sam has staff")
    );
    assert!(refused[4].starts_with("olga: refused DELETE /api/v1/session"));
    assert!(
        refused[5].starts_with("olga: refused PUT /api/v1/users/sam/password")
            && refused[5].contains("admin")
    );
    let others: Vec<(String, String)> =
        logged.into_iter().filter(|(e, _)| e != "refused").collect();
    assert_eq!(
        others,
        [
            want("login-failed", "olga"),
            want("login", "olga"),
            want("logout", "olga"),
            want("login", "olga"),
            // The wrong current password given to change it.
            want("login-failed", "olga"),
            // The old password after the change.
            want("login-failed", "olga"),
            want("login", "olga"),
        ]
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sets_passwords_on_a_store_and_over_the_api() {
    let env = TestEnv::spawn(None).await;
    let base = env.http_url();
    let dir = env.tmp.path();
    let token_file = dir.join("admin.token");
    std::fs::write(&token_file, env.admin_token()).expect("token file");
    let pw_file = dir.join("pw");
    std::fs::write(&pw_file, "ann's first password\n").expect("pw");
    // `signage users passwd NAME` with the password in `pw_file`, over the API.
    let passwd = |name: &str| {
        tests::signage(&[
            "users",
            "passwd",
            name,
            "--password-file",
            pw_file.to_str().expect("utf-8"),
            "--server",
            &base,
            "--token-file",
            token_file.to_str().expect("utf-8"),
        ])
    };
    let (ok, out, err) = tests::signage(&[
        "users",
        "add",
        "ann",
        "--role",
        "auditor",
        "--password-file",
        pw_file.to_str().expect("utf-8"),
        "--server",
        &base,
        "--token-file",
        token_file.to_str().expect("utf-8"),
    ]);
    assert!(ok, "{out}{err}");
    let http = reqwest::Client::new();
    let login = |pw: &str| {
        http.post(format!("{base}/api/v1/session"))
            .json(&json!({"name": "ann", "password": pw}))
            .send()
    };
    assert_eq!(
        login("ann's first password").await.expect("login").status(),
        200
    );

    std::fs::write(&pw_file, "ann's second password\n").expect("pw");
    let (ok, out, err) = passwd("ann");
    assert!(ok, "{out}{err}");
    assert_eq!(
        login("ann's first password").await.expect("login").status(),
        401
    );
    assert_eq!(
        login("ann's second password")
            .await
            .expect("login")
            .status(),
        200
    );

    // A password too short, and an unknown user: clear errors, exit non-zero.
    std::fs::write(&pw_file, "short\n").expect("pw");
    let (ok, _, err) = passwd("ann");
    assert!(!ok && err.contains("at least 10 characters"), "{err}");
    std::fs::write(&pw_file, "long enough password\n").expect("pw");
    let (ok, _, err) = passwd("nobody");
    assert!(!ok && err.contains("nobody"), "{err}");
    env.stop().await;

    // On a store directly (no server holds it): a user with a password before any serve.
    let data = tempfile::tempdir().expect("tempdir");
    let pw_file = data.path().join("pw");
    std::fs::write(&pw_file, "long enough password\n").expect("pw");
    let data_dir = data.path().join("store");
    let d = data_dir.to_str().expect("utf-8");
    let (ok, out, err) = tests::signage(&[
        "users",
        "add",
        "ed",
        "--role",
        "staff",
        "--password-file",
        pw_file.to_str().expect("utf-8"),
        "--data-dir",
        d,
    ]);
    assert!(ok, "{out}{err}");
    let store = server::store::open(&data_dir, server::store::OpenMode::Existing).expect("store");
    let ed = store.user("ed").expect("read").expect("ed");
    let phc = ed.password_phc.expect("a password");
    assert!(phc.starts_with("$argon2id$"), "{phc}");
    assert!(server::auth::verify_password("long enough password", &phc));
    drop(store);
    std::fs::write(&pw_file, "ed's other password\n").expect("pw");
    let (ok, out, err) = tests::signage(&[
        "users",
        "passwd",
        "ed",
        "--password-file",
        pw_file.to_str().expect("utf-8"),
        "--data-dir",
        d,
    ]);
    assert!(ok, "{out}{err}");
    let store = server::store::open(&data_dir, server::store::OpenMode::Existing).expect("store");
    let phc = store
        .user("ed")
        .expect("read")
        .expect("ed")
        .password_phc
        .expect("pw");
    assert!(server::auth::verify_password("ed's other password", &phc));
    assert!(!server::auth::verify_password("long enough password", &phc));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_slowed_per_name_and_logged() {
    let env = TestEnv::spawn(None).await;
    let base = env.http_url();
    let http = reqwest::Client::new();
    for name in ["lena", "max"] {
        let (status, body) = send_json(
            http.post(format!("{base}/api/v1/users"))
                .bearer_auth(env.admin_token())
                .json(&json!({"name": name, "roles": ["auditor"], "password": PASSWORD})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let login = |name: &str, password: &str| {
        http.post(format!("{base}/api/v1/session"))
            .json(&json!({"name": name, "password": password}))
            .send()
    };
    // Wrong passwords until the server makes the name wait (the wait doubles with each
    // failure, so requests soon come faster than it, however slow the machine).
    let mut refused = 0;
    let mut wait = None;
    for _ in 0..30 {
        let resp = login("lena", "a wrong password").await.expect("login");
        match resp.status().as_u16() {
            401 => refused += 1,
            429 => {
                let secs: u64 = resp.headers()["retry-after"]
                    .to_str()
                    .expect("retry-after")
                    .parse()
                    .expect("seconds");
                if secs >= 2 {
                    wait = Some(secs);
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
            }
            other => panic!("status {other}"),
        }
    }
    let wait = wait.expect("the name was made to wait");
    assert!(refused >= 3, "three failures are free: {refused}");
    // While it waits, even the right password is not checked; another name is not slowed.
    let resp = login("lena", PASSWORD).await.expect("login");
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().get(reqwest::header::SET_COOKIE).is_none());
    assert_eq!(login("max", PASSWORD).await.expect("login").status(), 200);
    // After the wait, the right password logs in.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(wait + 60);
    loop {
        let status = login("lena", PASSWORD).await.expect("login").status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 429);
        assert!(
            std::time::Instant::now() < deadline,
            "still refused after the wait"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    // Each checked failure is in the change log (the ones refused unchecked are not).
    let failed = events(&env)
        .await
        .into_iter()
        .filter(|(e, a, _)| e == "login-failed" && a == "lena")
        .count();
    assert_eq!(failed, refused);
    env.stop().await;
}
