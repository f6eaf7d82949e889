//! The admin API: absent without `ADMIN_TOKEN`, behind its bearer token with it, and doing to
//! client keys what the `keys` CLI does, checked through real HTTP and the keys' next requests.

use crate::common;

use std::time::Duration;

use common::{command, completion, config, until, MockUpstream, Proxy, Reply};
use serde_json::{json, Value};

const TOKEN: &str = "admin-token-0123456789abcdef0123456789";

/// A proxy with client keys on, the admin API on `token` (if any), and a mock that answers.
struct Admin {
    _dir: tempfile::TempDir,
    upstream: MockUpstream,
    proxy: Proxy,
}

impl Admin {
    fn start(token: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let upstream = MockUpstream::start(|_| Reply::ok(completion("ok")));
        let db = dir.path().join("keys.db");
        let mut vars = vec![("ENABLE_INCOMING_AUTH", "true"), ("INCOMING_KEY_DB", db.to_str().unwrap())];
        vars.extend(token.map(|token| ("ADMIN_TOKEN", token)));
        let proxy = Proxy::start(config(&upstream.url, &vars));
        Self { _dir: dir, upstream, proxy }
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

    /// A chat with the client key `key`: its status.
    async fn chat(&self, key: &str) -> u16 {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}]});
        let request = common::client().post(self.proxy.at("/v1/chat/completions"));
        let request = request.insert_header(("authorization", format!("Bearer {key}")));
        request.send_json(&body).await.unwrap().status().as_u16()
    }
}

const ROUTES: [(&str, &str); 8] = [
    ("GET", "/admin/keys"),
    ("POST", "/admin/keys"),
    ("PATCH", "/admin/keys/1"),
    ("POST", "/admin/keys/1/revoke"),
    ("POST", "/admin/keys/1/enable"),
    ("GET", "/admin/usage"),
    ("GET", "/admin/upstream-keys"),
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
