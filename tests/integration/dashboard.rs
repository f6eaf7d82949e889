//! The dashboard: off without an admin token, served with a strict CSP with one, and driven in
//! headless Chromium (`tests/browser/dashboard.cjs`) as an operator would: the token typed, the
//! keys seen, a 429 seen as a countdown, the charts moving, a client key revoked by its button.
//!
//! `.ci/run` installs the pinned playwright-core into `target/browser` and Debian's chromium;
//! without them the browser test says SKIPPED.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{completion, config, MockUpstream, Proxy, Received, Reply};

const TOKEN: &str = "admin-token-0123456789abcdef0123456789";

async fn get(proxy: &Proxy, path: &str) -> (u16, awc::http::header::HeaderMap, String) {
    let mut response = common::client().get(proxy.at(path)).send().await.unwrap();
    let body = response.body().await.unwrap();
    (response.status().as_u16(), response.headers().clone(), String::from_utf8(body.to_vec()).unwrap())
}

#[actix_web::test]
async fn without_a_token_the_page_says_how_to_turn_it_on_and_shows_nothing_else() {
    let upstream = MockUpstream::start(|_| Reply::ok(completion("ok")));
    let proxy = Proxy::start(config(&upstream.url, &[]));
    let (status, headers, page) = get(&proxy, "/dashboard").await;
    assert_eq!(status, 200);
    assert!(page.contains("The dashboard is off") && page.contains("ADMIN_TOKEN"), "{page}");
    assert!(!page.contains("<script"), "{page}");
    assert!(headers.get("content-security-policy").is_some());
    for file in ["/dashboard/app.js", "/dashboard/app.css", "/dashboard/favicon.svg"] {
        assert_eq!(get(&proxy, file).await.0, 404, "{file}");
    }
    assert!(upstream.received().is_empty());
}

#[actix_web::test]
async fn with_a_token_the_page_and_its_files_come_under_a_strict_policy() {
    let upstream = MockUpstream::start(|_| Reply::ok(completion("ok")));
    let proxy = Proxy::start(config(&upstream.url, &[("ADMIN_TOKEN", TOKEN)]));
    for (file, kind) in [
        ("/dashboard", "text/html"),
        ("/dashboard/app.js", "text/javascript"),
        ("/dashboard/app.css", "text/css"),
        ("/dashboard/favicon.svg", "image/svg+xml"),
    ] {
        let (status, headers, body) = get(&proxy, file).await;
        assert_eq!(status, 200, "{file}");
        let header = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_owned();
        assert!(header("content-type").starts_with(kind), "{file}");
        let policy = header("content-security-policy");
        assert!(policy.starts_with("default-src 'none'; script-src 'self';") && !policy.contains("unsafe"), "{policy}");
        assert_eq!(header("x-frame-options"), "DENY");
        // Nothing from elsewhere: the one URL is SVG's namespace, a name and not a place.
        let body = body.replace("http://www.w3.org/2000/svg", "");
        assert!(!body.contains(TOKEN) && !body.contains("http://") && !body.contains("https://"), "{file}");
    }
    let (status, _, page) = get(&proxy, "/dashboard").await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"<script src="/dashboard/app.js" defer></script>"#), "{page}");
    assert!(!page.contains("style=") && !page.contains("onclick"), "no inline style or handler: {page}");
}

/// playwright-core's folder and Chromium, when installed.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let modules = std::env::var_os("PLAYWRIGHT_NODE_MODULES")
        .map_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("../browser/node_modules"), PathBuf::from);
    let chromium = std::env::var_os("CHROMIUM_BIN").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    (modules.join("playwright-core").exists() && chromium.exists()).then_some((modules, chromium))
}

/// Key 1 is rate limited for ten minutes; key 2 answers. `GET /models` lists `m` alone.
fn key1_limited(request: &Received) -> Reply {
    if request.path_and_query.ends_with("/models") {
        return Reply::ok(serde_json::json!({"object": "list", "data": [{"id": "m", "object": "model"}]}));
    }
    match request.key() {
        "sk-1" => Reply::rate_limited(Some(600)),
        _ => Reply::ok(completion("ok")),
    }
}

#[actix_web::test]
async fn an_operator_sees_the_pool_watches_a_key_rest_and_revokes_a_client_key_in_the_browser() {
    let Some((modules, chromium)) = browser() else {
        let why = "playwright-core or chromium is not installed: .ci/run installs both (tests/browser/install)";
        let _ = writeln!(std::io::stderr(), "\ndashboard: SKIPPED, {why}\n");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start(key1_limited);
    let db = dir.path().join("keys.db").display().to_string();
    // `zai-glm-4.7` is no longer listed: the page marks it stale.
    let models = r#"{"m": {"cerebras": "m"}, "old": {"cerebras": "zai-glm-4.7"}}"#;
    let vars = [
        ("ENABLE_INCOMING_AUTH", "true"),
        ("INCOMING_KEY_DB", db.as_str()),
        ("ADMIN_TOKEN", TOKEN),
        ("MODELS", models),
        ("MODEL_CHECK_INTERVAL", "60"),
    ];
    let proxy = Proxy::start(config(&upstream.url, &vars));
    let made = common::client()
        .post(proxy.at("/admin/keys"))
        .insert_header(("authorization", format!("Bearer {TOKEN}")))
        .send_json(&serde_json::json!({"name": "team", "rpm": 600}))
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let client_key = made["key"].as_str().unwrap().to_owned();
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../dashboard.png");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/dashboard.cjs");
    let mut command = std::process::Command::new("node");
    command.arg(script).args([&proxy.url, TOKEN, &client_key]).arg(&screenshot);
    command.env("NODE_PATH", modules).env("CHROMIUM_BIN", chromium).env("HOME", dir.path());
    // The browser blocks: it runs on a thread while this test's system serves the proxy.
    let run = std::thread::spawn(move || command.output().expect("run node"));
    while !run.is_finished() {
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    let output = run.join().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && stdout.contains("dashboard: ok"), "{stdout}\n{stderr}");
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 10_000, "a screenshot at {}", screenshot.display());
    let chats = upstream.received().into_iter().filter(|r| !r.path_and_query.ends_with("/models"));
    assert_eq!(chats.take(2).map(|r| r.key().to_owned()).collect::<Vec<_>>(), ["sk-1", "sk-2"]);
}
