//! Client keys: the CLI, the proxy's checks, usage counts, revocation while running.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{chat_body, client, command, completion, config, MockUpstream, Proxy, ProxyProcess, Reply};
use serde_json::Value;

/// Runs `glm-proxy keys --db <db> <args>`; returns stdout, or panics with stderr.
fn keys(db: &Path, args: &[&str]) -> String {
    // The tempdir root: the data folder is the CLI's to create.
    let dir = db.parent().unwrap().parent().unwrap();
    let output = command(dir, &[]).arg("keys").arg("--db").arg(db).args(args).output().unwrap();
    assert!(output.status.success(), "keys {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

fn key_list(db: &Path) -> Vec<Value> {
    let list: Value = serde_json::from_str(&keys(db, &["list", "--json"])).unwrap();
    list["keys"].as_array().unwrap().clone()
}

fn db_path() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data/incoming_keys.db");
    (dir, path)
}

fn auth_proxy(upstream: &MockUpstream, db: &Path) -> Proxy {
    Proxy::start(config(&upstream.url, &[("ENABLE_INCOMING_AUTH", "true"), ("INCOMING_KEY_DB", db.to_str().unwrap())]))
}

async fn chat_with(proxy: &Proxy, header: (&str, &str)) -> (u16, Value) {
    let mut response = client()
        .post(proxy.at("/v1/chat/completions"))
        .insert_header(header)
        .send_json(&chat_body(false))
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Polls `check` every 50 ms until it holds; returns how long that took, or panics after 5 s.
async fn within(mut check: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        if check().await {
            return started.elapsed();
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not met within 5 s");
}

#[actix_web::test]
async fn the_whole_life_of_a_key() {
    let (_dir, db) = db_path();
    let key = keys(&db, &["add", "laptop", "--quiet"]).trim().to_owned();
    assert!(key.starts_with("sk-") && key.len() == 46, "{key}");
    let upstream = MockUpstream::start(|_| Reply::ok(completion("ok")));
    let proxy = auth_proxy(&upstream, &db);
    let bearer = format!("Bearer {key}");

    assert_eq!(chat_with(&proxy, ("authorization", &bearer)).await.0, 200);
    assert_eq!(chat_with(&proxy, ("x-api-key", &key)).await.0, 200);
    assert!(upstream.received().iter().all(|r| r.key() == "sk-1" && !r.headers.values().any(|v| v.contains(&key))));

    // Usage reaches the database within the flush interval.
    within(async || key_list(&db)[0]["request_count"] == 2).await;
    assert!(key_list(&db)[0]["last_used_at"].is_string());

    // Revoked from the CLI while the server runs: refused within 2 s, no restart.
    keys(&db, &["revoke", "laptop"]);
    let took = within(async || chat_with(&proxy, ("authorization", &bearer)).await.0 == 401).await;
    assert!(took < Duration::from_millis(2500), "revocation took {took:?}");
    let (_, body) = chat_with(&proxy, ("authorization", &bearer)).await;
    assert_eq!(body["error"]["code"], "invalid_api_key");

    keys(&db, &["enable", &key]);
    within(async || chat_with(&proxy, ("authorization", &bearer)).await.0 == 200).await;
}

#[actix_web::test]
async fn refusals_have_their_own_codes_and_status_stays_open() {
    let (_dir, db) = db_path();
    let upstream = MockUpstream::start(|_| Reply::ok(completion("ok")));
    let proxy = auth_proxy(&upstream, &db);

    let missing = client().post(proxy.at("/v1/chat/completions")).send_json(&chat_body(false)).await;
    let mut missing = missing.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(missing.headers().get("www-authenticate").unwrap(), "Bearer");
    assert_eq!(missing.json::<Value>().await.unwrap()["error"]["code"], "missing_authorization");
    let (status, body) = chat_with(&proxy, ("authorization", "Basic dXNlcjpwYXNz")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_authorization")));
    let (status, body) = chat_with(&proxy, ("authorization", "Bearer sk-made-up")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_api_key")));
    assert!(!body.to_string().contains("sk-made-up"), "the key is not echoed");
    assert!(upstream.received().is_empty());

    for open in ["/_status", "/health", "/metrics"] {
        assert_eq!(client().get(proxy.at(open)).send().await.unwrap().status(), 200, "{open}");
    }
    let metrics = client().get(proxy.at("/metrics")).send().await.unwrap().body().await.unwrap();
    let metrics = String::from_utf8(metrics.to_vec()).unwrap();
    for code in ["missing_authorization", "invalid_authorization", "invalid_api_key"] {
        assert!(metrics.contains(&format!("glm_proxy_auth_failures_total{{code=\"{code}\"}} 1")), "{code}: {metrics}");
    }
}

#[actix_web::test]
async fn the_cli_writes_while_the_server_is_under_load() {
    let (_dir, db) = db_path();
    let key = keys(&db, &["add", "load", "-q"]).trim().to_owned();
    let upstream = MockUpstream::start(|_| Reply::ok(completion("ok")));
    let proxy = auth_proxy(&upstream, &db);
    let bearer = format!("Bearer {key}");

    let cli_db = db.clone();
    let writers = actix_web::rt::task::spawn_blocking(move || {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let db = cli_db.clone();
                std::thread::spawn(move || keys(&db, &["add", &format!("client-{i}"), "-q"]))
            })
            .collect();
        handles.into_iter().map(|h| h.join().is_ok()).filter(|ok| *ok).count()
    });
    let load = futures_util::future::join_all((0..8).map(|_| async {
        let mut ok = 0;
        for _ in 0..25 {
            ok += usize::from(chat_with(&proxy, ("authorization", &bearer)).await.0 == 200);
        }
        ok
    }));
    let (written, served) = tokio::join!(writers, load);
    assert_eq!(written.unwrap(), 8, "every CLI write succeeded");
    assert_eq!(served.iter().sum::<usize>(), 200, "every request was served");
    assert_eq!(key_list(&db).len(), 9);
    within(async || key_list(&db)[0]["request_count"] == 200).await;
}

#[actix_web::test]
async fn counts_survive_a_graceful_restart_and_the_raw_key_is_never_stored() {
    let (dir, db) = db_path();
    let key = keys(&db, &["add", "restart", "-q"]).trim().to_owned();
    let upstream = MockUpstream::start(|_| Reply::ok(completion("ok")));
    let vars = [
        ("CEREBRAS_BASE_URL", upstream.url.as_str()),
        ("ENABLE_INCOMING_AUTH", "true"),
        ("INCOMING_KEY_DB", db.to_str().unwrap()),
    ];
    for (round, expected) in [(1, 7), (2, 14)] {
        let proxy = ProxyProcess::start(dir.path(), &vars);
        for _ in 0..7 {
            let response = client()
                .post(format!("{}/v1/chat/completions", proxy.url))
                .insert_header(("authorization", format!("Bearer {key}")))
                .send_json(&chat_body(false))
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
        // Stopped at once, before a periodic flush can be relied on: the shutdown flush counts.
        assert!(proxy.terminate().await.success());
        assert_eq!(key_list(&db)[0]["request_count"], expected, "round {round}");
    }

    for file in std::fs::read_dir(db.parent().unwrap()).unwrap() {
        let bytes = std::fs::read(file.unwrap().path()).unwrap();
        assert!(!bytes.windows(key.len()).any(|w| w == key.as_bytes()), "the raw key is in the database files");
    }
}

#[test]
fn names_that_match_several_keys_need_all_and_unknown_selectors_fail() {
    let (_dir, db) = db_path();
    keys(&db, &["add", "team", "-q"]);
    keys(&db, &["add", "team", "-q"]);
    let dir = db.parent().unwrap().parent().unwrap();
    let refused = command(dir, &[]).args(["keys", "--db"]).arg(&db).args(["revoke", "team"]).output().unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--all"));
    assert!(key_list(&db).iter().all(|k| k["revoked"] == false), "nothing changed");

    keys(&db, &["revoke", "team", "--all"]);
    assert!(key_list(&db).iter().all(|k| k["revoked"] == true));
    let missing = command(dir, &[]).args(["keys", "--db"]).arg(&db).args(["enable", "nobody"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(1));
    let stats = keys(&db, &["stats"]);
    assert!(stats.contains("Total keys: 2") && stats.contains("Revoked:    2"), "{stats}");
}

/// A counter from the proxy's `/metrics`.
async fn metric(proxy: &Proxy, name: &str) -> f64 {
    let text = client().get(proxy.at("/metrics")).send().await.unwrap().body().await.unwrap();
    let text = String::from_utf8(text.to_vec()).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{name} missing"))
        .parse()
        .unwrap()
}

#[actix_web::test]
async fn a_repeated_unknown_key_reaches_the_database_once_a_window() {
    let (_dir, db) = db_path();
    keys(&db, &["add", "someone"]);
    let upstream = MockUpstream::start(|_| Reply::ok(completion("ok")));
    let proxy = auth_proxy(&upstream, &db);
    for _ in 0..10 {
        assert_eq!(chat_with(&proxy, ("authorization", "Bearer sk-not-a-key-at-all")).await.0, 401);
    }
    assert_eq!(metric(&proxy, "glm_proxy_auth_lookups_total").await, 1.0);
    assert_eq!(metric(&proxy, "glm_proxy_auth_missed_keys").await, 1.0);
}

#[actix_web::test]
async fn a_flood_of_random_keys_never_delays_a_revocation_past_two_seconds() {
    let (_dir, db) = db_path();
    let key = keys(&db, &["add", "good", "--quiet"]).trim().to_owned();
    let upstream = MockUpstream::start(|_| Reply::ok(completion("ok")));
    let proxy = Proxy::start(config(
        &upstream.url,
        &[("ENABLE_INCOMING_AUTH", "true"), ("INCOMING_KEY_DB", db.to_str().unwrap()), ("AUTH_LOOKUP_QUEUE", "8")],
    ));
    let bearer = format!("Bearer {key}");
    assert_eq!(chat_with(&proxy, ("authorization", &bearer)).await.0, 200);

    let flooding = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let flood: Vec<_> = (0..48)
        .map(|worker| {
            let (flooding, sent, url) = (flooding.clone(), sent.clone(), proxy.at("/v1/chat/completions"));
            actix_rt::spawn(async move {
                let client = client();
                let mut n = 0;
                while flooding.load(std::sync::atomic::Ordering::SeqCst) {
                    n += 1;
                    let bearer = format!("Bearer sk-random-{worker}-{n}");
                    let response = client.post(&url).insert_header(("authorization", bearer)).send_body("{}").await;
                    let status = response.unwrap().status().as_u16();
                    assert!(status == 401 || status == 503, "a bad key gets 401, or 503 when lookups are full");
                    sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            })
        })
        .collect();
    actix_rt::time::sleep(Duration::from_millis(500)).await;

    let flood_started = (Instant::now(), sent.load(std::sync::atomic::Ordering::SeqCst));
    let revoke_db = db.clone();
    actix_web::rt::task::spawn_blocking(move || keys(&revoke_db, &["revoke", "good"])).await.unwrap();
    let took = within(async || chat_with(&proxy, ("authorization", &bearer)).await.0 == 401).await;
    let rate = (sent.load(std::sync::atomic::Ordering::SeqCst) - flood_started.1) as f64
        / flood_started.0.elapsed().as_secs_f64();
    flooding.store(false, std::sync::atomic::Ordering::SeqCst);
    for task in flood {
        task.await.unwrap();
    }
    assert!(took < Duration::from_secs(2), "revocation took {took:?} under {rate:.0} bad keys a second");
    assert!(rate > 500.0, "the flood ran at {rate:.0} requests a second");
}

#[actix_web::test]
async fn a_key_cache_that_cannot_be_reloaded_stops_being_trusted() {
    use diesel::RunQueryDsl;
    let (_dir, db) = db_path();
    let key = keys(&db, &["add", "someone", "--quiet"]).trim().to_owned();
    let upstream = MockUpstream::start(|_| Reply::ok(completion("ok")));
    let proxy = Proxy::start(config(
        &upstream.url,
        &[("ENABLE_INCOMING_AUTH", "true"), ("INCOMING_KEY_DB", db.to_str().unwrap()), ("AUTH_CACHE_MAX_AGE", "1.5")],
    ));
    let bearer = format!("Bearer {key}");
    assert_eq!(chat_with(&proxy, ("authorization", &bearer)).await.0, 200);

    // The key table becomes unreadable: every reload fails from now on.
    let mut conn = glm_proxy::db::open(&glm_proxy::db::Location::Sqlite(db.clone())).unwrap();
    diesel::sql_query("DROP TABLE api_keys").execute(&mut conn).unwrap();
    within(async || chat_with(&proxy, ("authorization", &bearer)).await.0 == 503).await;
    let (_, body) = chat_with(&proxy, ("authorization", &bearer)).await;
    assert_eq!(body["error"]["code"], "auth_unavailable");
    assert!(metric(&proxy, "glm_proxy_auth_reload_failures_total").await >= 1.0);
}

/// Runs `glm-proxy keys <args>` in `dir` with `vars`: exit code, stdout, stderr.
fn keys_in(dir: &Path, vars: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String, String) {
    let output = command(dir, vars).arg("keys").args(args).output().unwrap();
    (output.status.code(), String::from_utf8(output.stdout).unwrap(), String::from_utf8(output.stderr).unwrap())
}

#[test]
fn only_add_creates_a_database_and_every_verb_names_the_one_it_uses() {
    let dir = tempfile::tempdir().unwrap();
    for verb in [&["list"][..], &["stats"], &["revoke", "x"], &["enable", "x"]] {
        let (code, _, stderr) = keys_in(dir.path(), &[], verb);
        assert_eq!(code, Some(2), "{verb:?}: {stderr}");
        assert!(stderr.contains("database ./data/incoming_keys.db"), "{stderr}");
        assert!(stderr.contains("no key database at ./data/incoming_keys.db") && stderr.contains("glm-proxy keys add"));
    }
    assert!(!dir.path().join("data").exists(), "nothing was created");
    let (code, _, stderr) = keys_in(dir.path(), &[], &["add", "first", "--quiet"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(dir.path().join("data/incoming_keys.db").is_file());
}

#[test]
fn database_url_comes_before_incoming_key_db_and_a_disagreement_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let vars = [("DATABASE_URL", "sqlite://./url.db"), ("INCOMING_KEY_DB", "./incoming.db")];
    let (code, _, stderr) = keys_in(dir.path(), &vars, &["add", "someone"]);
    assert_eq!(code, Some(0));
    assert!(stderr.contains("database ./url.db"), "{stderr}");
    assert!(stderr.contains("warning: DATABASE_URL (./url.db) and INCOMING_KEY_DB (./incoming.db)"), "{stderr}");
    assert!(dir.path().join("url.db").is_file() && !dir.path().join("incoming.db").exists());
    let (code, _, _) = keys_in(dir.path(), &vars, &["--db", "./incoming.db", "list"]);
    assert_eq!(code, Some(2), "--db comes first of all");
}

#[test]
fn the_cli_speaks_utc_plurals_and_says_what_it_did_not_do() {
    let (_dir, db) = db_path();
    keys(&db, &["add", "solo"]);
    let table = keys(&db, &["list"]);
    assert!(table.contains("REVOKED") && table.contains("1 key: 1 active, 0 revoked; 0 requests"), "{table}");
    let created = key_list(&db)[0]["created_at"].as_str().unwrap().to_owned();
    assert!(created.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(&created).is_ok(), "{created}");
    assert!(table.contains(&created), "the table shows the same RFC 3339 time: {table}");

    let dir = db.parent().unwrap().parent().unwrap();
    let db_arg = db.to_str().unwrap();
    let (code, _, stderr) = keys_in(dir, &[], &["--db", db_arg, "add", "solo"]);
    assert_eq!(code, Some(0));
    assert!(stderr.contains("warning: a key is named \"solo\" already (ID 1)"), "{stderr}");

    assert!(keys(&db, &["revoke", "1"]).contains("Revoked key 1"));
    assert!(keys(&db, &["revoke", "1"]).contains("Key 1 (solo, "), "a second revoke says it was already done");
    assert!(keys(&db, &["revoke", "1"]).contains("was already revoked"));
    let revoked_at = key_list(&db)[0]["revoked_at"].as_str().unwrap().to_owned();
    assert!(revoked_at.ends_with('Z'), "{revoked_at}");

    let stats: Value = serde_json::from_str(&keys(&db, &["stats", "--json"])).unwrap();
    assert_eq!(
        (stats["total"].as_u64(), stats["active"].as_u64(), stats["revoked"].as_u64()),
        (Some(2), Some(1), Some(1))
    );
    let help = command(dir, &[]).args(["keys", "list", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("Print JSON instead of a table"));
}

#[actix_web::test]
async fn requests_are_counted_by_client_name_from_zero() {
    let (_dir, db) = db_path();
    let key = keys(&db, &["add", "ci-bot", "--quiet"]).trim().to_owned();
    keys(&db, &["add", "idle-laptop"]);
    let upstream = MockUpstream::start(|_| Reply::ok(completion("ok")));
    let proxy = auth_proxy(&upstream, &db);
    assert_eq!(chat_with(&proxy, ("authorization", &format!("Bearer {key}"))).await.0, 200);
    assert_eq!(metric(&proxy, r#"glm_proxy_client_requests_total{client="ci-bot"}"#).await, 1.0);
    within(async || {
        let text = client().get(proxy.at("/metrics")).send().await.unwrap().body().await.unwrap();
        String::from_utf8_lossy(&text).contains(r#"glm_proxy_client_requests_total{client="idle-laptop"} 0"#)
    })
    .await;
}
