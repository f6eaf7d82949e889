//! Forwarding: paths, headers, bodies and the proxy's own errors.

use crate::common;

use common::{chat_body, client, completion, config, MockUpstream, Proxy, Reply};
use serde_json::{json, Value};

#[actix_web::test]
async fn a_chat_completion_reaches_cerebras_with_the_pool_key_and_comes_back_unchanged() {
    let upstream = MockUpstream::start(|_| Reply::ok(completion("Hi there")));
    let proxy = Proxy::start(config(&upstream.url, &[]));

    let body = chat_body(false).to_string();
    let mut response = client()
        .post(proxy.at("/v1/chat/completions?trace=1"))
        .insert_header(("authorization", "Bearer sk-client-own-key"))
        .insert_header(("x-api-key", "sk-client-own-key"))
        .insert_header(("content-type", "application/json"))
        .insert_header(("openai-organization", "org-7"))
        .send_body(body.clone())
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("x-glm-proxy-provider").unwrap(), "cerebras");
    assert_eq!(response.headers().get("x-glm-proxy-key").unwrap(), "key1");
    assert_eq!(response.json::<Value>().await.unwrap(), completion("Hi there"));

    let received = upstream.received();
    assert_eq!(received.len(), 1);
    let seen = &received[0];
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path_and_query, "/v1/chat/completions?trace=1");
    assert_eq!(seen.key(), "sk-1");
    assert_eq!(seen.body, body.as_bytes(), "the body is forwarded byte for byte");
    assert_eq!(seen.headers["openai-organization"], "org-7");
    assert!(!seen.headers.contains_key("x-api-key"), "the client's key never goes upstream");
    assert!(!seen.headers.values().any(|v| v.contains("sk-client-own-key")));
}

#[actix_web::test]
async fn other_paths_drop_a_leading_v1_and_keep_the_query() {
    let upstream = MockUpstream::start(|_| Reply::ok(json!({"data": []})));
    let proxy = Proxy::start(config(&upstream.url, &[]));

    for path in ["/chat/completions", "/v1/models?limit=5", "/v1/completions"] {
        let method = if path.contains("models") { "GET" } else { "POST" };
        let request = client().request(method.parse().unwrap(), proxy.at(path));
        let response = request.send_body(chat_body(false).to_string()).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    let seen: Vec<_> = upstream.received().iter().map(|r| (r.method.clone(), r.path_and_query.clone())).collect();
    assert_eq!(
        seen,
        [
            ("POST".to_owned(), "/v1/chat/completions".to_owned()),
            ("GET".to_owned(), "/v1/models?limit=5".to_owned()),
            ("POST".to_owned(), "/v1/completions".to_owned()),
        ]
    );
}

async fn error_of(
    response: &mut awc::ClientResponse<
        impl futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
    >,
) -> Value {
    assert_eq!(response.headers().get("content-type").unwrap(), "application/json");
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    body["error"].clone()
}

#[actix_web::test]
async fn bodies_that_are_not_json_objects_get_400_and_never_reach_upstream() {
    let upstream = MockUpstream::start(|_| Reply::ok(completion("unused")));
    let proxy = Proxy::start(config(&upstream.url, &[]));

    let not_utf8 = &b"{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}"[..];
    for bad in [&b"{\"model\":"[..], b"[1,2,3]", b"", b"plain text", not_utf8] {
        let mut response = client().post(proxy.at("/v1/chat/completions")).send_body(bad).await.unwrap();
        assert_eq!(response.status(), 400, "{bad:?}");
        let error = error_of(&mut response).await;
        assert_eq!(error["code"], "invalid_json");
        assert_eq!(error["type"], "invalid_request_error");
    }
    assert!(upstream.received().is_empty());
}

#[actix_web::test]
async fn large_bodies_pass_and_bodies_over_the_limit_get_413() {
    let upstream = MockUpstream::start(|_| Reply::ok(completion("read it all")));
    let proxy = Proxy::start(config(&upstream.url, &[("MAX_BODY_BYTES", "8000000")]));

    let big_text = "x".repeat(6_000_000);
    let big = json!({"model": "m", "messages": [{"role": "user", "content": big_text}]}).to_string();
    let response = client().post(proxy.at("/v1/chat/completions")).send_body(big.clone()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(upstream.received()[0].body.len(), big.len());

    let too_big = format!("{{\"pad\":\"{}\"}}", "y".repeat(8_000_001));
    let mut response = client().post(proxy.at("/v1/chat/completions")).send_body(too_big).await.unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(error_of(&mut response).await["code"], "payload_too_large");
    assert_eq!(upstream.received().len(), 1);
}

#[actix_web::test]
async fn an_ordinary_400_goes_back_to_the_client_at_once_without_retry() {
    let upstream_error = json!({"error": {"message": "temperature must be <= 2", "code": "invalid_parameter"}});
    let expected = upstream_error.clone();
    let upstream = MockUpstream::start(move |_| Reply::status(400, upstream_error.clone()));
    let proxy = Proxy::start(config(&upstream.url, &[]));

    let mut response =
        client().post(proxy.at("/v1/chat/completions")).send_body(chat_body(false).to_string()).await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<Value>().await.unwrap(), expected);
    assert_eq!(upstream.keys_used(), ["sk-1"], "no retry on an ordinary 400");
    assert_eq!(proxy.status().await["keys"][0]["error_count"], 0);
}

/// An upstream that closes a kept-alive connection when the next request arrives on it,
/// without answering: the race between an idle timeout and reuse, made certain.
fn closes_reused_connections() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut buffer = [0u8; 65536];
                // Answer the first request on this connection (its body is small), then hang up.
                if stream.read(&mut buffer).unwrap_or(0) == 0 {
                    return;
                }
                let body = completion("fresh").to_string();
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(body.as_bytes()));
                let _ = stream.read(&mut buffer);
            });
        }
    });
    url
}

#[actix_web::test]
async fn a_pooled_connection_closed_by_the_upstream_is_replaced_without_blaming_the_key() {
    let url = closes_reused_connections();
    let proxy = Proxy::start(config(
        &url,
        &[("CEREBRAS_API_KEYS", r#"{"only":"sk-only"}"#), ("MAX_KEY_WAIT", "1"), ("WORKERS", "1")],
    ));
    for _ in 0..3 {
        let mut response = client().post(proxy.at("/v1/chat/completions")).send_json(&chat_body(false)).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.json::<Value>().await.unwrap(), completion("fresh"));
    }
    let status = proxy.status().await;
    assert_eq!(status["keys"][0]["error_count"], 0, "{status}");
    assert_eq!(status["keys"][0]["available"], true);
}
