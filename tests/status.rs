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

/// Parses Prometheus text into `name{labels}` → value.
fn samples(text: &str) -> std::collections::HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

#[actix_web::test]
async fn metrics_count_requests_cooldowns_failovers_and_waits() {
    let cerebras = MockUpstream::start(|r| match (r.key(), r.json()["stream"].as_bool()) {
        ("sk-1", _) => Reply::rate_limited(Some(30)),
        (_, Some(true)) => Reply::status(503, serde_json::json!({"error": {"message": "down"}})),
        _ => Reply::ok(completion("ok")),
    });
    let synthetic = MockUpstream::start(|_| Reply::sse(2, std::time::Duration::ZERO));
    let proxy = Proxy::start(config(
        &cerebras.url,
        &[("SYNTHETIC_API_KEY", "sk-synthetic"), ("SYNTHETIC_BASE_URL", synthetic.url.as_str())],
    ));

    let ok = client().post(proxy.at("/v1/chat/completions")).send_json(&common::chat_body(false)).await.unwrap();
    assert_eq!(ok.status(), 200);
    let mut streamed =
        client().post(proxy.at("/v1/chat/completions")).send_json(&common::chat_body(true)).await.unwrap();
    assert_eq!(streamed.status(), 200);
    streamed.body().await.unwrap();
    let bad = client().post(proxy.at("/v1/chat/completions")).send_body("not json").await.unwrap();
    assert_eq!(bad.status(), 400);

    let mut response = client().get(proxy.at("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("content-type").unwrap().to_str().unwrap().starts_with("text/plain"));
    let text = String::from_utf8(response.body().await.unwrap().to_vec()).unwrap();
    let metrics = samples(&text);
    let value = |series: &str| metrics.get(series).copied().unwrap_or_else(|| panic!("{series} missing from\n{text}"));

    assert_eq!(value(r#"glm_proxy_requests_total{provider="cerebras",status="200"}"#), 1.0);
    assert_eq!(value(r#"glm_proxy_requests_total{provider="synthetic",status="200"}"#), 1.0);
    assert_eq!(value(r#"glm_proxy_requests_total{provider="proxy",status="400"}"#), 1.0);
    assert_eq!(value(r#"glm_proxy_key_cooldowns_total{key="key1"}"#), 1.0);
    assert_eq!(value(r#"glm_proxy_failovers_total{from="cerebras",reason="server_error"}"#), 1.0);
    assert!(value(r#"glm_proxy_upstream_ttfb_seconds_count{provider="cerebras"}"#) >= 3.0);
    assert_eq!(value(r#"glm_proxy_request_duration_seconds_count{provider="synthetic"}"#), 1.0);
    assert!(
        metrics.contains_key("glm_proxy_in_flight_streams") && metrics.contains_key("glm_proxy_in_flight_requests")
    );
    assert_eq!(value("glm_proxy_log_records_dropped_total"), 0.0);
    assert_eq!(value("glm_proxy_key_wait_seconds_count"), 0.0);
    assert!(!text.contains("sk-"), "no key value in metrics");
}
