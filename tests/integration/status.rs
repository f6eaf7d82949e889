//! `/_status` keeps the seed's shape and never shows a key; `/health` answers cheaply.

use crate::common;

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
    assert_eq!(value(r#"glm_proxy_key_cooldowns_total{key="key1",provider="cerebras"}"#), 1.0);
    assert_eq!(value(r#"glm_proxy_failovers_total{from="cerebras",reason="server_error"}"#), 1.0);
    assert!(value(r#"glm_proxy_upstream_ttfb_seconds_count{provider="cerebras"}"#) >= 3.0);
    assert_eq!(value(r#"glm_proxy_request_duration_seconds_count{provider="synthetic"}"#), 1.0);
    assert!(
        metrics.contains_key("glm_proxy_in_flight_streams") && metrics.contains_key("glm_proxy_in_flight_requests")
    );
    assert_eq!(value("glm_proxy_log_records_dropped_total"), 0.0);
    assert_eq!(value(r#"glm_proxy_key_wait_seconds_count{provider="cerebras"}"#), 0.0);
    assert!(!text.contains("sk-"), "no key value in metrics");
}

#[actix_web::test]
async fn every_family_has_samples_from_the_start_and_the_key_gauges_follow_a_429() {
    let upstream = MockUpstream::start(|r| match r.key() {
        "sk-1" => Reply::rate_limited(Some(30)),
        _ => Reply::ok(serde_json::json!({"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}],
                                          "usage": {"prompt_tokens": 12, "completion_tokens": 5}})),
    });
    let proxy = Proxy::start(config(&upstream.url, &[]));
    let metrics_now = || async {
        let text = client().get(proxy.at("/metrics")).send().await.unwrap().body().await.unwrap();
        String::from_utf8(text.to_vec()).unwrap()
    };

    let text = metrics_now().await;
    let at_start = samples(&text);
    for series in [
        r#"glm_proxy_keys{provider="cerebras",state="available"}"#,
        r#"glm_proxy_key_state{key="key1",provider="cerebras",state="available"}"#,
        r#"glm_proxy_failovers_total{from="cerebras",reason="server_error"}"#,
        r#"glm_proxy_key_cooldowns_total{key="key2",provider="cerebras"}"#,
        r#"glm_proxy_circuit_opens_total{provider="cerebras"}"#,
        r#"glm_proxy_auth_failures_total{code="invalid_api_key"}"#,
        r#"glm_proxy_requests_total{provider="cerebras",status="200"}"#,
        r#"glm_proxy_tokens_total{kind="prompt",model="",provider="cerebras"}"#,
    ] {
        assert!(at_start.contains_key(series), "{series} missing at start from\n{text}");
    }
    assert_eq!(at_start[r#"glm_proxy_keys{provider="cerebras",state="available"}"#], 2.0);
    assert!(text.contains("glm_proxy_build_info{version="));
    // The process' own, unprefixed as dashboards and alerts expect them.
    let process = text.lines().any(|line| line.starts_with("process_resident_memory_bytes "));
    assert!(process || !cfg!(target_os = "linux"), "{text}");
    assert!(!text.contains("glm_proxy_process_"), "{text}");
    // Every family in the exposition has at least one sample.
    for family in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).map(|l| l.split(' ').next().unwrap()) {
        assert!(text.lines().any(|l| !l.starts_with('#') && l.starts_with(family)), "{family} has no sample");
    }

    let mut response =
        client().post(proxy.at("/v1/chat/completions")).send_json(&common::chat_body(false)).await.unwrap();
    assert_eq!(response.status(), 200);
    response.body().await.unwrap();
    // Tokens are counted when the answer's body is done, just after the client has it all.
    let prompt = r#"glm_proxy_tokens_total{kind="prompt",model="llama-3.3-70b",provider="cerebras"}"#;
    let mut after = samples(&metrics_now().await);
    for _ in 0..100 {
        if after.contains_key(prompt) {
            break;
        }
        actix_rt::time::sleep(std::time::Duration::from_millis(10)).await;
        after = samples(&metrics_now().await);
    }
    assert_eq!(after[r#"glm_proxy_keys{provider="cerebras",state="available"}"#], 1.0);
    assert_eq!(after[r#"glm_proxy_keys{provider="cerebras",state="cooling"}"#], 1.0);
    assert_eq!(after[r#"glm_proxy_key_state{key="key1",provider="cerebras",state="cooling"}"#], 1.0);
    assert_eq!(after[r#"glm_proxy_key_state{key="key1",provider="cerebras",state="available"}"#], 0.0);
    assert_eq!(after[prompt], 12.0);
    assert_eq!(after[r#"glm_proxy_tokens_total{kind="completion",model="llama-3.3-70b",provider="cerebras"}"#], 5.0);
}
