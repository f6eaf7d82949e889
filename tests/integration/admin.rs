//! The admin API: absent without `ADMIN_TOKEN`, behind its bearer token with it, and doing to
//! client keys what the `keys` CLI does, checked through real HTTP and the keys' next requests.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::{command, completion, config, until, MockUpstream, Proxy, Received, Reply};
use serde_json::{json, Value};

const TOKEN: &str = "admin-token-0123456789abcdef0123456789";

/// A proxy with client keys on, the admin API on `token` (if any), and a mock that answers.
struct Admin {
    dir: tempfile::TempDir,
    upstream: MockUpstream,
    proxy: Proxy,
}

impl Admin {
    fn start(token: Option<&str>) -> Self {
        Self::with(token, |_| Reply::ok(completion("ok")), |_| Vec::new())
    }

    /// The same with the mock answering by `script`, and the variables `vars` gives for the
    /// test's folder added.
    fn with(
        token: Option<&str>,
        script: impl Fn(&Received) -> Reply + Send + Sync + 'static,
        vars: impl FnOnce(&Path) -> Vec<(&'static str, String)>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let upstream = MockUpstream::start(script);
        let db = dir.path().join("keys.db");
        let mut all = vec![("ENABLE_INCOMING_AUTH", "true".to_owned()), ("INCOMING_KEY_DB", db.display().to_string())];
        all.extend(token.map(|token| ("ADMIN_TOKEN", token.to_owned())));
        all.extend(vars(dir.path()));
        let all: Vec<(&str, &str)> = all.iter().map(|(name, value)| (*name, value.as_str())).collect();
        let proxy = Proxy::start(config(&upstream.url, &all));
        Self { dir, upstream, proxy }
    }

    /// An admin call with `bearer` (the right token by default): status and JSON body.
    async fn call(&self, method: &str, path: &str, body: Option<&str>, bearer: Option<&str>) -> (u16, Value) {
        let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = common::client().request(method, self.proxy.at(path));
        if let Some(bearer) = bearer {
            request = request.insert_header(("authorization", format!("Bearer {bearer}")));
        }
        let mut response = match body {
            Some(body) => request.insert_header(("content-type", "application/json")).send_body(body.to_owned()),
            None => request.send(),
        }
        .await
        .unwrap();
        let body = response.body().await.unwrap();
        (response.status().as_u16(), serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn admin(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        self.call(method, path, body, Some(TOKEN)).await
    }

    /// A new client key, made through the API.
    async fn client_key(&self) -> String {
        let (status, made) = self.admin("POST", "/admin/keys", Some(r#"{"name": "team"}"#)).await;
        assert_eq!(status, 201, "{made}");
        made["key"].as_str().unwrap().to_owned()
    }

    /// The Cerebras keys as the API lists them.
    async fn upstream_keys(&self) -> Vec<Value> {
        let (status, pool) = self.admin("GET", "/admin/upstream-keys", None).await;
        assert_eq!(status, 200, "{pool}");
        pool["providers"]["cerebras"]["keys"].as_array().unwrap().clone()
    }

    async fn upstream_key(&self, name: &str) -> Value {
        self.upstream_keys().await.into_iter().find(|key| key["name"] == name).unwrap()
    }

    /// A chat with the client key `key`: its status.
    async fn chat(&self, key: &str) -> u16 {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}]});
        let request = common::client().post(self.proxy.at("/v1/chat/completions"));
        let request = request.insert_header(("authorization", format!("Bearer {key}")));
        request.send_json(&body).await.unwrap().status().as_u16()
    }
}

const ROUTES: [(&str, &str); 10] = [
    ("GET", "/admin/keys"),
    ("POST", "/admin/keys"),
    ("PATCH", "/admin/keys/1"),
    ("POST", "/admin/keys/1/revoke"),
    ("POST", "/admin/keys/1/enable"),
    ("GET", "/admin/usage"),
    ("GET", "/admin/upstream-keys"),
    ("POST", "/admin/upstream-keys/key1/reset"),
    ("POST", "/admin/upstream-keys/reload"),
    ("GET", "/admin/anything"),
];

#[actix_web::test]
async fn without_a_token_every_admin_path_is_not_there() {
    let admin = Admin::start(None);
    for (method, path) in ROUTES {
        for bearer in [None, Some(TOKEN)] {
            let (status, body) = admin.call(method, path, Some("{}"), bearer).await;
            assert_eq!(status, 404, "{method} {path}: {body}");
            assert_eq!(body["error"]["code"], "not_found");
        }
    }
    assert!(admin.upstream.received().is_empty(), "nothing went upstream");
}

#[actix_web::test]
async fn with_a_token_a_call_without_it_or_with_another_gets_401() {
    let admin = Admin::start(Some(TOKEN));
    let wrong = format!("{TOKEN}x");
    for (method, path) in ROUTES {
        for bearer in [None, Some(wrong.as_str()), Some("")] {
            let (status, body) = admin.call(method, path, Some("{}"), bearer).await;
            assert_eq!(status, 401, "{method} {path} with {bearer:?}: {body}");
            assert_eq!(body["error"]["code"], "invalid_admin_token");
            assert!(!body.to_string().contains(TOKEN));
        }
    }
    assert_eq!(admin.admin("GET", "/admin/keys", None).await, (200, json!({"keys": []})));
}

#[actix_web::test]
async fn a_key_made_through_the_api_is_shown_once_then_its_limits_and_revocation_hold_within_2_s() {
    let admin = Admin::start(Some(TOKEN));
    let (status, made) = admin.admin("POST", "/admin/keys", Some(r#"{"name": "ci", "daily_tokens": "5M"}"#)).await;
    assert_eq!(status, 201, "{made}");
    let key = made["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("sk-"), "{made}");
    assert_eq!((made["name"].clone(), made["daily_tokens"].clone()), (json!("ci"), json!(5_000_000)));
    let id = made["id"].as_i64().unwrap();
    assert_eq!(admin.chat(&key).await, 200);

    let (status, listed) = admin.admin("GET", "/admin/keys", None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["keys"][0]["name"], "ci");
    assert!(!listed.to_string().contains(&key), "the key is never shown again: {listed}");

    // One request a minute: the key used one already, so the next is refused once the proxy
    // reloads (within 2 s).
    let (status, changed) = admin.admin("PATCH", &format!("/admin/keys/{id}"), Some(r#"{"rpm": 1}"#)).await;
    assert_eq!((status, changed["rpm"].clone()), (200, json!(1)), "{changed}");
    let limited = until(async || admin.chat(&key).await == 429).await;
    assert!(limited.expect("the rpm never held") < Duration::from_secs(3));
    let (status, cleared) = admin.admin("PATCH", &format!("/admin/keys/{id}"), Some(r#"{"rpm": null}"#)).await;
    assert_eq!((status, cleared["rpm"].clone()), (200, Value::Null));

    let (status, revoked) = admin.admin("POST", &format!("/admin/keys/{id}/revoke"), None).await;
    assert_eq!((status, revoked["revoked"].clone()), (200, json!(true)));
    let refused = until(async || admin.chat(&key).await == 401).await;
    assert!(refused.expect("the revocation never held") < Duration::from_secs(3));
    let (status, _) = admin.admin("POST", &format!("/admin/keys/{id}/enable"), None).await;
    assert_eq!(status, 200);
    assert!(until(async || admin.chat(&key).await == 200).await.is_some(), "enabled again");

    let (status, usage) = admin.admin("GET", "/admin/usage?days=2", None).await;
    assert_eq!((status, usage["days"].clone()), (200, json!(2)), "{usage}");
}

#[actix_web::test]
async fn bad_input_gets_a_400_or_404_with_the_usual_error_never_a_500() {
    let admin = Admin::start(Some(TOKEN));
    let (_, made) = admin.admin("POST", "/admin/keys", Some(r#"{"name": "agent"}"#)).await;
    let patch = format!("/admin/keys/{}", made["id"]);
    let cases: [(&str, &str, Option<&str>, u16, &str); 14] = [
        ("POST", "/admin/keys", Some(r#"{"name": "x", "colour": "red"}"#), 400, "unknown field"),
        ("POST", "/admin/keys", Some(r#"{"name": 7}"#), 400, "name must be a string"),
        ("POST", "/admin/keys", Some(r#"{"rpm": 5}"#), 400, "needs a name"),
        ("POST", "/admin/keys", Some(r#"{"name": "  "}"#), 400, "non-empty name"),
        ("POST", "/admin/keys", Some(r#"{"name": "x", "rpm": -1}"#), 400, "rpm"),
        ("POST", "/admin/keys", Some(r#"{"name": "x", "expires": "2001-01-01"}"#), 400, "expires"),
        ("POST", "/admin/keys", Some(r#"{"name": "x", "rpm": true}"#), 400, ""),
        ("POST", "/admin/keys", Some(r#"{"name": "x""#), 400, "cut short at line 1"),
        ("POST", "/admin/keys", Some("[]"), 400, "JSON object"),
        ("PATCH", &patch, Some("{}"), 400, "nothing to change"),
        ("PATCH", "/admin/keys/999", Some(r#"{"rpm": 5}"#), 404, "no client key"),
        ("POST", "/admin/keys/abc/revoke", None, 404, "no client key"),
        ("GET", "/admin/usage?days=0", None, 400, "days"),
        ("GET", "/admin/usage?weeks=2", None, 400, "unknown field"),
    ];
    for (method, path, body, expected, says) in cases {
        let (status, answer) = admin.admin(method, path, body).await;
        assert_eq!(status, expected, "{method} {path} {body:?}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{method} {path} {body:?}: {answer}");
    }
    let (_, listed) = admin.admin("GET", "/admin/keys", None).await;
    assert_eq!(listed["keys"].as_array().unwrap().len(), 1, "nothing was made: {listed}");
    // A route's other methods get 405 with what it takes.
    let response = common::client()
        .delete(admin.proxy.at("/admin/keys/1"))
        .insert_header(("authorization", format!("Bearer {TOKEN}")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (response.status().as_u16(), response.headers().get("allow").unwrap().to_str().unwrap()),
        (405, "PATCH")
    );
}

#[actix_web::test]
async fn the_upstream_keys_are_named_with_their_state_never_their_value() {
    let admin = Admin::start(Some(TOKEN));
    let (status, pool) = admin.admin("GET", "/admin/upstream-keys", None).await;
    assert_eq!(status, 200, "{pool}");
    let keys = pool["providers"]["cerebras"]["keys"].as_array().unwrap();
    let names: Vec<&str> = keys.iter().map(|key| key["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["key1", "key2"]);
    assert_eq!(keys[0]["state"], "available");
    assert!(!pool.to_string().contains("sk-1"), "{pool}");
}

#[test]
fn a_short_admin_token_stops_the_start_with_exit_2_and_never_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let vars = [("CEREBRAS_API_KEYS", common::PROCESS_KEYS), ("ADMIN_TOKEN", "short-secret-token")];
    let output = command(dir.path(), &vars).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("ADMIN_TOKEN must be at least 32 characters"), "{stderr}");
    assert!(!stderr.contains("short-secret-token"), "{stderr}");
}

/// Key 1 is rate limited for ten minutes; the others answer, streams slowly.
fn key1_limited(request: &Received) -> Reply {
    match request.key() {
        "sk-1" => Reply::rate_limited(Some(600)),
        _ if request.json()["stream"] == true => Reply::sse(5, Duration::from_millis(100)),
        _ => Reply::ok(completion("ok")),
    }
}

#[actix_web::test]
async fn a_reset_lifts_a_keys_rest_at_once() {
    let admin = Admin::with(Some(TOKEN), key1_limited, |_| Vec::new());
    let key = admin.client_key().await;
    assert_eq!(admin.chat(&key).await, 200);
    assert_eq!(admin.upstream_key("key1").await["state"], "cooling_down");

    let (status, reset) = admin.admin("POST", "/admin/upstream-keys/key1/reset", None).await;
    assert_eq!(status, 200, "{reset}");
    assert_eq!(reset, json!({"provider": "cerebras", "key": "key1", "was_resting": true, "state": "available"}));
    let key1 = admin.upstream_key("key1").await;
    assert_eq!((key1["state"].clone(), key1["rate_limited_for"].clone()), (json!("available"), json!(0.0)));
    let (_, again) = admin.admin("POST", "/admin/upstream-keys/key1/reset?provider=cerebras", None).await;
    assert_eq!(again["was_resting"], false);

    for (path, expected, code) in [
        ("/admin/upstream-keys/key9/reset", 404, "upstream_key_not_found"),
        ("/admin/upstream-keys/key1/reset?provider=nowhere", 404, "provider_not_found"),
        ("/admin/upstream-keys/key1/reset?colour=red", 400, "invalid_request"),
        ("/admin/upstream-keys/reload", 404, "keys_file_off"),
    ] {
        let (status, answer) = admin.admin("POST", path, None).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (expected, Some(code)), "{path}: {answer}");
    }
}

/// The Cerebras keys from a file in the test's folder, `keys.json`, holding `keys` at first.
fn keys_file(keys: &str) -> impl FnOnce(&Path) -> Vec<(&'static str, String)> {
    let keys = keys.to_owned();
    move |dir| {
        let path = dir.join("keys.json");
        std::fs::write(&path, keys).unwrap();
        vec![("CEREBRAS_API_KEYS", String::new()), ("CEREBRAS_API_KEYS_FILE", path.display().to_string())]
    }
}

#[actix_web::test]
async fn a_reload_adds_and_removes_keys_keeps_a_resting_one_and_a_broken_file_changes_nothing() {
    let admin = Admin::with(Some(TOKEN), key1_limited, keys_file(r#"{"key1": "sk-1", "key2": "sk-2"}"#));
    let client_key = admin.client_key().await;
    assert_eq!(admin.chat(&client_key).await, 200);
    assert_eq!(admin.upstream_key("key1").await["state"], "cooling_down");
    // A stream on key2, still running when key2 is removed.
    let streaming = common::client()
        .post(admin.proxy.at("/v1/chat/completions"))
        .insert_header(("authorization", format!("Bearer {client_key}")))
        .send_json(&common::chat_body(true));
    let stream = actix_rt::spawn(async move {
        let mut response = streaming.await.unwrap();
        (response.status().as_u16(), response.body().await.unwrap())
    });
    assert!(common::eventually(|| admin.upstream.received().len() == 3).await, "the stream reached the mock");

    let file = admin.dir.path().join("keys.json");
    std::fs::write(&file, r#"{"key1": "sk-1", "key3": "sk-3"}"#).unwrap();
    let (status, reloaded) = admin.admin("POST", "/admin/upstream-keys/reload", None).await;
    assert_eq!(status, 200, "{reloaded}");
    assert_eq!(reloaded, json!({"added": ["key3"], "removed": ["key2"], "unchanged": ["key1"]}));
    let (status, body) = stream.await.unwrap();
    let body = String::from_utf8(body.to_vec()).unwrap();
    assert_eq!(status, 200);
    assert!(body.ends_with("data: [DONE]\n\n") && body.matches("data: ").count() == 6, "{body}");

    let keys = admin.upstream_keys().await;
    let names: Vec<&str> = keys.iter().map(|key| key["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["key1", "key3"]);
    assert_eq!(keys[0]["state"], "cooling_down", "an unchanged key keeps its rest");
    assert_eq!(keys[1]["state"], "available");
    assert_eq!(admin.chat(&client_key).await, 200);
    assert_eq!(admin.upstream.keys_used().last().map(String::as_str), Some("sk-3"));

    for (broken, says) in [
        (r#"{"key1": "sk-1", "key4": "sk-sec"#, "line 1, column 32"),
        ("{}", "holds no key"),
        (r#"{"key1": 7}"#, r#"entry "key1""#),
    ] {
        std::fs::write(&file, broken).unwrap();
        let (status, answer) = admin.admin("POST", "/admin/upstream-keys/reload", None).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("invalid_keys_file")), "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(says) && message.contains("CEREBRAS_API_KEYS_FILE"), "{message}");
        assert!(!message.contains("sk-"), "{message}");
    }
    let names: Vec<Value> = admin.upstream_keys().await.iter().map(|key| key["name"].clone()).collect();
    assert_eq!(names, ["key1", "key3"], "the old list stays");
    let failed = common::metric(&admin.proxy.url, r#"glm_proxy_key_reloads_total{outcome="failed"}"#).await;
    let reloaded = common::metric(&admin.proxy.url, r#"glm_proxy_key_reloads_total{outcome="reloaded"}"#).await;
    assert_eq!((failed, reloaded), (3.0, 1.0));
}

#[actix_web::test]
async fn sighup_reloads_the_keys_file_and_a_broken_one_is_logged_with_its_place_only() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start(|_| Reply::ok(completion("ok")));
    let file = dir.path().join("keys.json");
    std::fs::write(&file, r#"{"key1": "sk-1"}"#).unwrap();
    let path = file.display().to_string();
    let vars =
        [("CEREBRAS_BASE_URL", upstream.url.as_str()), ("CEREBRAS_API_KEYS", ""), ("CEREBRAS_API_KEYS_FILE", &path)];
    let running = common::ProxyProcess::start(dir.path(), &vars);
    let names = async || {
        let status: Value =
            common::client().get(format!("{}/_status", running.url)).send().await.unwrap().json().await.unwrap();
        status["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|key| key["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(names().await, ["key1"]);
    let hangup = || {
        let pid = running.child.id().to_string();
        assert!(std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    };

    std::fs::write(&file, r#"{"key1": "sk-1", "key2": "sk-2"}"#).unwrap();
    hangup();
    assert!(until(async || names().await == ["key1", "key2"]).await.is_some(), "{:?}", names().await);

    std::fs::write(&file, r#"{"key1": "sk-secret-1""#).unwrap();
    hangup();
    let logged = async || running.log_lines().iter().any(|line| line.contains("event=key_reload_failed"));
    assert!(until(logged).await.is_some());
    assert_eq!(names().await, ["key1", "key2"]);
    let log = running.log_lines().join("\n");
    assert!(!log.contains("sk-secret-1") && !log.contains("sk-2"), "{log}");
}

#[actix_web::test]
async fn a_schema_checker_driving_every_documented_route_finds_no_5xx_and_no_answer_off_the_document() {
    let schemathesis = crate::sdk::python().with_file_name("schemathesis");
    let admin = Admin::with(Some(TOKEN), |_| Reply::ok(completion("ok")), keys_file(r#"{"key1": "sk-1"}"#));
    let (status, document) = admin.admin("GET", "/admin/openapi.json", None).await;
    assert_eq!((status, document["openapi"].as_str()), (200, Some("3.1.0")));
    let mut command = std::process::Command::new(schemathesis);
    command.current_dir(admin.dir.path()).arg("run").arg(admin.proxy.at("/admin/openapi.json"));
    command.args(["-H", &format!("Authorization: Bearer {TOKEN}"), "--checks", "all", "--max-examples", "40"]);
    command.args(["--seed", "21", "--generation-database", "none", "--no-color", "--workers", "1"]);
    // It blocks: it runs on a thread while this test's system serves the proxy.
    let run = std::thread::spawn(move || command.output().expect("run schemathesis"));
    while !run.is_finished() {
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    let output = run.join().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    // Every operation but the document's own, which it leaves out.
    let operations: usize =
        document["paths"].as_object().unwrap().values().map(|path| path.as_object().unwrap().len()).sum();
    assert!(stdout.contains(&format!("Tested: {}", operations - 1)), "every operation was exercised: {stdout}");
    assert!(admin.upstream.received().is_empty(), "nothing went upstream");
}
