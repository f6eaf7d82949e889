//! Key rotation: stickiness, cooldowns, Retry-After, rejected keys, waiting, bounded attempts.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{chat_body, client, completion, config, MockUpstream, Proxy, Reply};
use serde_json::Value;

const THREE_KEYS: (&str, &str) = ("CEREBRAS_API_KEYS", r#"{"key1":"sk-1","key2":"sk-2","key3":"sk-3"}"#);

async fn chat(
    proxy: &Proxy,
) -> awc::ClientResponse<impl futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>>> {
    client().post(proxy.at("/v1/chat/completions")).send_body(chat_body(false).to_string()).await.unwrap()
}

fn key(status: &Value, name: &str) -> Value {
    status["keys"].as_array().unwrap().iter().find(|k| k["name"] == name).unwrap().clone()
}

#[actix_web::test]
async fn the_current_key_is_kept_until_it_fails() {
    let upstream = MockUpstream::start(|_| Reply::ok(completion("ok")));
    let proxy = Proxy::start(config(&upstream.url, &[THREE_KEYS]));
    for _ in 0..3 {
        assert_eq!(chat(&proxy).await.status(), 200);
    }
    assert_eq!(upstream.keys_used(), ["sk-1", "sk-1", "sk-1"]);
}

#[actix_web::test]
async fn a_429_with_retry_after_moves_to_the_next_key_and_cools_the_first_for_that_long() {
    let upstream = MockUpstream::start(|r| match r.key() {
        "sk-1" => Reply::rate_limited(Some(40)),
        _ => Reply::ok(completion("from key2")),
    });
    let proxy = Proxy::start(config(&upstream.url, &[("CEREBRAS_COOLDOWN", "1")]));

    let mut response = chat(&proxy).await;
    assert_eq!(response.status(), 200, "the client never sees the 429");
    assert_eq!(response.headers().get("x-glm-proxy-key").unwrap(), "key2");
    assert_eq!(response.json::<Value>().await.unwrap(), completion("from key2"));
    assert_eq!(upstream.keys_used(), ["sk-1", "sk-2"]);

    let status = proxy.status().await;
    let key1 = key(&status, "key1");
    assert_eq!(key1["available"], false);
    assert!(key1["rate_limited_for"].as_f64().unwrap() > 30.0, "Retry-After 40 beats a 1 s cooldown: {key1}");
    assert_eq!(key1["error_count"], 1);
    assert_eq!(status["current_key"], "key2");

    // The next request goes straight to key2.
    assert_eq!(chat(&proxy).await.status(), 200);
    assert_eq!(upstream.keys_used(), ["sk-1", "sk-2", "sk-2"]);
}

#[actix_web::test]
async fn a_429_without_retry_after_cools_for_the_configured_cooldown() {
    let upstream = MockUpstream::start(|r| match r.key() {
        "sk-1" => Reply::rate_limited(None),
        _ => Reply::ok(completion("ok")),
    });
    let proxy = Proxy::start(config(&upstream.url, &[("CEREBRAS_COOLDOWN", "30")]));
    assert_eq!(chat(&proxy).await.status(), 200);
    let cooling = proxy.status().await["keys"][0]["rate_limited_for"].as_f64().unwrap();
    assert!(cooling > 25.0 && cooling <= 30.0, "{cooling}");
}

#[actix_web::test]
async fn an_error_only_one_key_gets_moves_the_sticky_key_on_without_resting_it() {
    let upstream = MockUpstream::start(|r| match r.key() {
        "sk-1" => Reply::status(500, serde_json::json!({"error": {"message": "boom"}})),
        _ => Reply::ok(completion("key2 answers")),
    });
    let proxy = Proxy::start(config(&upstream.url, &[THREE_KEYS]));

    let mut response = chat(&proxy).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), completion("key2 answers"));
    assert_eq!(upstream.keys_used(), ["sk-1", "sk-2"]);
    let status = proxy.status().await;
    let key1 = key(&status, "key1");
    assert_eq!((key1["available"].as_bool(), key1["error_count"].as_u64()), (Some(true), Some(1)), "{key1}");
    assert_eq!(key1["last_error"], "HTTP 500");
    assert_eq!(status["current_key"], "key2", "the sticky key moved past the key that failed alone");

    assert_eq!(chat(&proxy).await.status(), 200);
    assert_eq!(upstream.keys_used(), ["sk-1", "sk-2", "sk-2"]);
}

#[actix_web::test]
async fn a_rejected_key_is_taken_out_of_rotation_for_long_and_shown_as_invalid() {
    let upstream = MockUpstream::start(|r| match r.key() {
        "sk-1" => Reply::status(401, serde_json::json!({"error": {"message": "invalid api key"}})),
        _ => Reply::ok(completion("ok")),
    });
    let proxy = Proxy::start(config(&upstream.url, &[("CEREBRAS_COOLDOWN", "0.01")]));

    assert_eq!(chat(&proxy).await.status(), 200);
    // Far past the ordinary cooldown, key1 is still out.
    actix_rt::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(chat(&proxy).await.status(), 200);
    assert_eq!(upstream.keys_used(), ["sk-1", "sk-2", "sk-2"]);
    let key1 = key(&proxy.status().await, "key1");
    assert_eq!(key1["state"], "invalid");
    assert_eq!(key1["available"], false);
    assert!(key1["rate_limited_for"].as_f64().unwrap() > 3000.0);
}

#[actix_web::test]
async fn concurrent_failures_of_one_key_do_not_skip_the_good_ones() {
    let first_two = Arc::new(AtomicUsize::new(0));
    let counter = first_two.clone();
    let upstream = MockUpstream::start(move |r| match r.key() {
        // Both requests that hold key1 fail, the second after the first already moved on.
        "sk-1" if counter.fetch_add(1, Ordering::SeqCst) < 2 => Reply::rate_limited(None),
        _ => Reply::ok(completion("ok")),
    });
    let proxy = Proxy::start(config(&upstream.url, &[THREE_KEYS]));

    // Both requests must hold key1 before either fails: send them together.
    let (a, b) = tokio::join!(chat(&proxy), chat(&proxy));
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let keys = upstream.keys_used();
    assert!(!keys.contains(&"sk-3".to_owned()), "key2 is good and must not be skipped: {keys:?}");
    assert_eq!(proxy.status().await["current_key"], "key2");
}

#[actix_web::test]
async fn when_every_key_cools_the_request_waits_for_the_first_free_one_and_status_still_answers() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let upstream = MockUpstream::start(move |_| match counter.fetch_add(1, Ordering::SeqCst) {
        0 => Reply::rate_limited(None),
        // key2 rests longer, so key1 is the first to come free.
        1 => Reply::rate_limited(Some(4)),
        _ => Reply::ok(completion("after the wait")),
    });
    let proxy = Proxy::start(config(&upstream.url, &[("CEREBRAS_COOLDOWN", "1.5")]));

    let started = Instant::now();
    let waiting = chat(&proxy);
    let observe = async {
        // While the request waits, /_status answers and shows it waiting.
        assert!(common::eventually(|| calls.load(Ordering::SeqCst) >= 2).await);
        let status = proxy.status().await;
        assert_eq!(status["keys"][0]["available"], false);
        assert_eq!(status["keys"][1]["available"], false);
        status["requests_waiting_for_key"].as_u64().unwrap()
    };
    let (mut response, waiting_seen) = tokio::join!(waiting, observe);
    assert_eq!(waiting_seen, 1);
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), completion("after the wait"));
    assert!(started.elapsed() >= Duration::from_millis(1400), "it waited for the cooldown");
    assert_eq!(upstream.keys_used(), ["sk-1", "sk-2", "sk-1"]);
}

#[actix_web::test]
async fn a_wait_longer_than_max_key_wait_answers_503_with_retry_after() {
    let upstream = MockUpstream::start(|_| Reply::rate_limited(Some(60)));
    let proxy = Proxy::start(config(&upstream.url, &[("MAX_KEY_WAIT", "2")]));

    let mut response = chat(&proxy).await;
    assert_eq!(response.status(), 503);
    let retry_after: u64 = response.headers().get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
    assert!((55..=60).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "all_keys_cooling_down");
    assert_eq!(upstream.keys_used(), ["sk-1", "sk-2"], "no hopeless waiting, no extra attempts");
}

#[actix_web::test]
async fn attempts_are_bounded_when_every_key_keeps_being_rate_limited() {
    let upstream = MockUpstream::start(|_| Reply::rate_limited(None));
    let proxy = Proxy::start(config(&upstream.url, &[("CEREBRAS_COOLDOWN", "0.05")]));
    let response = chat(&proxy).await;
    assert_eq!(response.status(), 429, "the last upstream answer, once the attempts are spent");
    assert_eq!(upstream.received().len(), 5, "two passes over both keys, plus one");
}

#[actix_web::test]
async fn a_gateway_error_is_the_providers_and_without_alternatives_goes_back_after_one_attempt() {
    let upstream =
        MockUpstream::start(|_| Reply::status(502, serde_json::json!({"error": {"message": "bad gateway upstream"}})));
    let proxy = Proxy::start(config(&upstream.url, &[]));
    let mut response = chat(&proxy).await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["message"], "bad gateway upstream");
    assert_eq!(upstream.received().len(), 1, "no other key is tried for the provider's fault");
    let status = proxy.status().await;
    assert!(status["keys"].as_array().unwrap().iter().all(|k| k["available"] == true && k["error_count"] == 0));
}
