//! `/_status` keeps the seed's shape and never shows a key; `/health` answers cheaply.

mod common;

use common::{client, completion, config, MockUpstream, Proxy, Reply};
use serde_json::Value;

#[actix_web::test]
async fn status_has_the_seeds_shape_and_no_key_value() {
    let upstream = MockUpstream::start(|_| Reply::ok(completion("ok")));
    let proxy = Proxy::start(config(
        &upstream.url,
        &[("CEREBRAS_API_KEYS", r#"{"alpha":"sk-alpha-secret","beta":"sk-beta-secret"}"#)],
    ));

    let mut response = client().get(proxy.at("/_status")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = String::from_utf8(response.body().await.unwrap().to_vec()).unwrap();
    assert!(!text.contains("secret"), "no key value in /_status: {text}");

    let status: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(status["current_key"], "alpha");
    let keys = status["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    for key in keys {
        assert!(key["name"].is_string());
        assert_eq!(key["available"], true);
        assert_eq!(key["rate_limited_for"].as_f64(), Some(0.0));
        assert_eq!(key["error_count"], 0);
    }
    assert_eq!(keys[1]["name"], "beta");
    assert!(upstream.received().is_empty(), "/_status is answered by the proxy itself");
}

#[actix_web::test]
async fn health_answers_ok() {
    let upstream = MockUpstream::start(|_| Reply::ok(completion("ok")));
    let proxy = Proxy::start(config(&upstream.url, &[]));
    let mut response = client().get(proxy.at("/health")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "ok");
}
