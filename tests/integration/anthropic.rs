//! The Anthropic Messages front door, through real HTTP against OpenAI-speaking mock upstreams:
//! plain and streamed answers, tools, images, failover, key rotation, auth, `count_tokens`,
//! errors in Anthropic's shape and pings while an answer is slow.

use crate::common;

use std::time::Duration;

use common::{client, config, reasoned_completion, tool_call_stream, MockUpstream, Providers, Proxy, Received, Reply};
use serde_json::{json, Value};

const CATALOGUE: [(&str, &str); 2] = [
    ("MODELS", r#"{"glm": {"cerebras": "zai-glm-4.7", "synthetic": "hf:zai-org/GLM-4.7", "zai": "glm-4.7"}}"#),
    ("MODEL_ALIASES", r#"{"claude-*": "glm"}"#),
];

fn answer(text: &'static str) -> impl Fn(&Received) -> Reply {
    move |_| Reply::ok(reasoned_completion(text))
}

fn unavailable(_: &Received) -> Reply {
    Reply::status(503, json!({"error": {"message": "service unavailable"}}))
}

fn message(stream: bool) -> Value {
    json!({
        "model": "claude-sonnet-4-5-20250929", "max_tokens": 1024, "stream": stream,
        "system": [{"type": "text", "text": "You are a coding agent.", "cache_control": {"type": "ephemeral"}}],
        "tools": [{"name": "weather", "description": "Weather now", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "messages": [{"role": "user", "content": "Weather in Paris?"}]
    })
}

async fn post(
    proxy: &Proxy,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, awc::http::header::HeaderMap, Vec<u8>) {
    let mut request = client().post(proxy.at(path)).insert_header(("anthropic-version", "2023-06-01"));
    for header in headers {
        request = request.insert_header(*header);
    }
    let mut response = request.send_json(body).await.unwrap();
    let bytes = response.body().limit(1 << 22).await.unwrap();
    (response.status().as_u16(), response.headers().clone(), bytes.to_vec())
}

async fn post_json(proxy: &Proxy, body: &Value) -> (u16, Value) {
    let (status, _, bytes) = post(proxy, "/v1/messages", body, &[]).await;
    (status, serde_json::from_slice(&bytes).unwrap())
}

/// Each event of an SSE body: its name and its data.
fn events(body: &[u8]) -> Vec<(String, Value)> {
    let text = std::str::from_utf8(body).unwrap();
    text.split("\n\n")
        .filter(|event| !event.trim().is_empty())
        .map(|event| {
            let name = event.lines().find_map(|l| l.strip_prefix("event: ")).unwrap().to_owned();
            let data = event.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            (name, serde_json::from_str(data).unwrap())
        })
        .collect()
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(name, _)| name.as_str()).collect()
}

#[actix_web::test]
async fn a_plain_message_is_translated_both_ways() {
    let cerebras = MockUpstream::start(answer("Sunny in Paris."));
    let proxy = Proxy::start(config(&cerebras.url, &CATALOGUE));
    let (status, headers, body) = post(&proxy, "/v1/messages?beta=true", &message(false), &[]).await;
    assert_eq!(status, 200);
    assert!(headers.get("request-id").is_some());
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["type"], "message");
    assert_eq!(body["model"], "claude-sonnet-4-5-20250929", "the model the client named");
    assert_eq!(
        body["content"],
        json!([{"type": "thinking", "thinking": "Thinking it over.", "signature": ""}, {"type": "text", "text": "Sunny in Paris."}])
    );
    assert_eq!(body["stop_reason"], "end_turn");
    assert_eq!((body["usage"]["input_tokens"].as_u64(), body["usage"]["output_tokens"].as_u64()), (Some(21), Some(5)));

    let sent = cerebras.received()[0].json();
    assert_eq!(cerebras.received()[0].path_and_query, "/v1/chat/completions");
    assert_eq!(sent["model"], "zai-glm-4.7", "the alias, then the catalogue");
    assert_eq!(
        sent["messages"],
        json!([{"role": "system", "content": "You are a coding agent."}, {"role": "user", "content": "Weather in Paris?"}])
    );
    assert_eq!(sent["tools"][0]["function"]["name"], "weather");
    assert_eq!(sent["max_tokens"], 1024);
    assert!(!cerebras.received()[0].headers.contains_key("x-api-key"));
}

#[actix_web::test]
async fn a_streamed_message_with_a_tool_call_is_the_anthropic_event_sequence() {
    let cerebras =
        MockUpstream::start(|_| Reply::Sse { chunks: tool_call_stream(), delay: Duration::ZERO, gate: None });
    let proxy = Proxy::start(config(&cerebras.url, &CATALOGUE));
    let (status, headers, body) = post(&proxy, "/v1/messages", &message(true), &[]).await;
    assert_eq!(status, 200);
    assert!(headers.get("content-type").unwrap().to_str().unwrap().starts_with("text/event-stream"));
    let events = events(&body);
    assert_eq!(
        names(&events),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let indices: Vec<u64> = events.iter().filter_map(|(_, e)| e["index"].as_u64()).collect();
    assert_eq!(indices, [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]);
    assert_eq!(events[1].1["content_block"]["type"], "thinking");
    assert_eq!(events[5].1["delta"], json!({"type": "text_delta", "text": "Let me look."}));
    assert_eq!(
        events[7].1["content_block"],
        json!({"type": "tool_use", "id": "call_w1", "name": "weather", "input": {}})
    );
    let arguments: String = events[8..10].iter().map(|(_, e)| e["delta"]["partial_json"].as_str().unwrap()).collect();
    assert_eq!(serde_json::from_str::<Value>(&arguments).unwrap(), json!({"city": "Paris"}));
    assert_eq!(events[11].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(events[11].1["usage"]["output_tokens"], 12);
    let sent = cerebras.received()[0].json();
    assert_eq!((sent["stream"].as_bool(), sent["stream_options"]["include_usage"].as_bool()), (Some(true), Some(true)));
}

#[actix_web::test]
async fn a_tool_result_round_trip_keeps_the_call_ids() {
    let cerebras = MockUpstream::start(answer("It is sunny."));
    let proxy = Proxy::start(config(&cerebras.url, &CATALOGUE));
    let mut request = message(false);
    request["messages"] = json!([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "call_w1", "name": "weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_w1", "content": "sunny, 21 °C"}, {"type": "text", "text": "Thanks"}]}
    ]);
    let (status, body) = post_json(&proxy, &request).await;
    assert_eq!((status, body["content"][1]["text"].as_str()), (200, Some("It is sunny.")));
    let sent = cerebras.received()[0].json();
    assert_eq!(sent["messages"][2]["tool_calls"][0]["id"], "call_w1");
    assert_eq!(sent["messages"][3], json!({"role": "tool", "tool_call_id": "call_w1", "content": "sunny, 21 °C"}));
    assert_eq!(sent["messages"][4], json!({"role": "user", "content": "Thanks"}));
}

#[actix_web::test]
async fn an_image_goes_to_the_vision_model_of_an_alternative() {
    let providers = Providers::start(answer("cerebras"), answer("a cat"), unavailable, &[]);
    let request = json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "text", "text": "What is this?"}
    ]}]});
    let (status, body) = post_json(&providers.proxy, &request).await;
    assert_eq!((status, body["content"][1]["text"].as_str()), (200, Some("a cat")));
    assert_eq!(providers.hits(), (0, 1, 0));
    let sent = providers.synthetic.received()[0].json();
    assert_eq!(sent["model"], "hf:Qwen/Qwen3-VL-235B-A22B-Instruct");
    assert_eq!(sent["messages"][0]["content"][0]["image_url"]["url"], "data:image/png;base64,iVBORw0KGgo=");
}

#[actix_web::test]
async fn failover_sends_the_alternative_its_catalogue_model() {
    let providers = Providers::start(unavailable, answer("from synthetic"), unavailable, &CATALOGUE);
    let (status, body) = post_json(&providers.proxy, &message(false)).await;
    assert_eq!((status, body["content"][1]["text"].as_str()), (200, Some("from synthetic")));
    assert_eq!(providers.synthetic.received()[0].json()["model"], "hf:zai-org/GLM-4.7");
    assert_eq!(body["model"], "claude-sonnet-4-5-20250929");
}

#[actix_web::test]
async fn a_rate_limited_key_rotates_to_the_next() {
    let cerebras = MockUpstream::start(|request| match request.key() {
        "sk-1" => Reply::rate_limited(Some(30)),
        _ => Reply::Sse { chunks: tool_call_stream(), delay: Duration::ZERO, gate: None },
    });
    let proxy = Proxy::start(config(&cerebras.url, &CATALOGUE));
    let (status, headers, body) = post(&proxy, "/v1/messages", &message(true), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(headers.get("x-glm-proxy-key").unwrap(), "key2");
    assert_eq!(events(&body).last().unwrap().0, "message_stop");
    assert_eq!(cerebras.keys_used(), ["sk-1", "sk-2"]);
}

#[actix_web::test]
async fn client_keys_are_read_from_x_api_key_and_refusals_are_anthropic_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (db, key) = common::client_key(dir.path(), "agent");
    let cerebras = MockUpstream::start(answer("hello"));
    let auth = [("ENABLE_INCOMING_AUTH", "true"), ("INCOMING_KEY_DB", db.to_str().unwrap())];
    let proxy = Proxy::start(config(&cerebras.url, &[CATALOGUE[0], CATALOGUE[1], auth[0], auth[1]]));
    let (status, _, body) = post(&proxy, "/v1/messages", &message(false), &[("x-api-key", &key)]).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (status, _, body) = post(&proxy, "/v1/messages", &message(false), &[("x-api-key", "sk-wrong")]).await;
    assert_eq!(status, 401);
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (error["type"].as_str(), error["error"]["type"].as_str()),
        (Some("error"), Some("authentication_error"))
    );
    assert_eq!(cerebras.received().len(), 1);
}

#[actix_web::test]
async fn count_tokens_answers_from_the_proxys_estimate_without_going_upstream() {
    let cerebras = MockUpstream::start(answer("never"));
    let proxy = Proxy::start(config(&cerebras.url, &[("CHARS_PER_TOKEN", "1")]));
    let short = json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "abcd"}]});
    let (status, _, body) = post(&proxy, "/v1/messages/count_tokens", &short, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), json!({"input_tokens": 4}));
    let (_, _, body) = post(&proxy, "/v1/messages/count_tokens", &message(false), &[]).await;
    let tokens = serde_json::from_slice::<Value>(&body).unwrap()["input_tokens"].as_u64().unwrap();
    assert!(tokens > 40, "the system prompt and tools count: {tokens}");
    assert!(cerebras.received().is_empty());
}

#[actix_web::test]
async fn errors_take_anthropics_shape_and_status() {
    let cerebras = MockUpstream::start(|_| {
        Reply::status(400, json!({"error": {"message": "max_tokens is too large", "type": "invalid_request_error"}}))
    });
    let proxy = Proxy::start(config(&cerebras.url, &CATALOGUE));
    let (status, body) = post_json(&proxy, &message(false)).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens is too large"}})
    );
    // A streamed request's early error keeps its HTTP status too.
    let (status, _, body) = post(&proxy, "/v1/messages", &message(true), &[]).await;
    assert_eq!(
        (status, serde_json::from_slice::<Value>(&body).unwrap()["error"]["type"].as_str()),
        (400, Some("invalid_request_error"))
    );

    let mut unknown = message(false);
    unknown["model"] = json!("gpt-4o");
    let (status, body) = post_json(&proxy, &unknown).await;
    assert_eq!((status, body["error"]["type"].as_str()), (404, Some("not_found_error")));
    let (status, body) = post_json(&proxy, &json!({"model": "glm", "messages": "hi"})).await;
    assert_eq!((status, body["error"]["type"].as_str()), (400, Some("invalid_request_error")));
    let mut wrong_method = client().get(proxy.at("/v1/messages")).send().await.unwrap();
    assert_eq!(
        (wrong_method.status().as_u16(), wrong_method.headers().get("allow").unwrap().to_str().unwrap()),
        (405, "POST")
    );
    assert_eq!(wrong_method.json::<Value>().await.unwrap()["type"], "error");
    let (status, _, body) = post(&proxy, "/v1/messages/batches", &message(false), &[]).await;
    assert_eq!(
        (status, serde_json::from_slice::<Value>(&body).unwrap()["error"]["type"].as_str()),
        (404, Some("not_found_error"))
    );
    assert_eq!(cerebras.received().len(), 2, "only the two chat requests went upstream");
}

#[actix_web::test]
async fn every_key_resting_is_overloaded_529_with_retry_after() {
    let cerebras = MockUpstream::start(|_| Reply::rate_limited(Some(30)));
    let proxy = Proxy::start(config(&cerebras.url, &[("MAX_KEY_WAIT", "0")]));
    let (status, headers, body) = post(&proxy, "/v1/messages", &message(false), &[]).await;
    assert_eq!(status, 529, "{}", String::from_utf8_lossy(&body));
    assert!(headers.get("retry-after").is_some());
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["error"]["type"], "overloaded_error");
}

#[actix_web::test]
async fn a_slow_first_byte_is_met_with_pings_then_the_answer() {
    let cerebras = MockUpstream::start(|_| Reply::Late {
        delay: Duration::from_millis(400),
        reply: Box::new(Reply::Sse { chunks: tool_call_stream(), delay: Duration::ZERO, gate: None }),
    });
    let proxy = Proxy::start(config(&cerebras.url, &[("ANTHROPIC_PING_INTERVAL", "0.1")]));
    let (status, _, body) = post(&proxy, "/v1/messages", &message(true), &[]).await;
    assert_eq!(status, 200);
    let events = events(&body);
    let names = names(&events);
    assert_eq!(names[..2], ["message_start", "ping"]);
    assert!(names.iter().filter(|&&n| n == "ping").count() >= 2, "{names:?}");
    assert_eq!(names.iter().filter(|&&n| n == "message_start").count(), 1);
    assert_eq!(*names.last().unwrap(), "message_stop");
    assert!(names.contains(&"content_block_delta"));
}

#[actix_web::test]
async fn an_upstream_that_fails_after_the_pings_began_ends_with_an_error_event() {
    let cerebras = MockUpstream::start(|_| Reply::Late {
        delay: Duration::from_millis(300),
        reply: Box::new(Reply::status(400, json!({"error": {"message": "bad tool schema"}}))),
    });
    let proxy = Proxy::start(config(&cerebras.url, &[("ANTHROPIC_PING_INTERVAL", "0.1")]));
    let (status, _, body) = post(&proxy, "/v1/messages", &message(true), &[]).await;
    assert_eq!(status, 200, "the head went out with the first ping");
    let events = events(&body);
    let (name, error) = events.last().unwrap();
    assert_eq!(
        (name.as_str(), &error["error"]),
        ("error", &json!({"type": "invalid_request_error", "message": "bad tool schema"}))
    );
}

#[actix_web::test]
async fn a_stream_broken_midway_ends_with_an_error_event() {
    let cerebras = MockUpstream::start(|_| Reply::SseThenBreak { chunks: tool_call_stream()[..3].to_vec() });
    let proxy = Proxy::start(config(&cerebras.url, &[]));
    let (status, _, body) = post(&proxy, "/v1/messages", &message(true), &[]).await;
    assert_eq!(status, 200);
    let events = events(&body);
    assert_eq!(events.last().unwrap().0, "error");
    assert!(!names(&events).contains(&"message_stop"));
}

#[actix_web::test]
async fn an_http_1_0_client_gets_the_event_stream_close_delimited() {
    let cerebras =
        MockUpstream::start(|_| Reply::Sse { chunks: tool_call_stream(), delay: Duration::ZERO, gate: None });
    let proxy = Proxy::start(config(&cerebras.url, &[]));
    let (head, events_text) = common::http_1_0_post(&proxy.url, "/v1/messages", &message(true).to_string()).await;
    assert!(head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("transfer-encoding: chunked"), "{head}");
    assert_eq!(events(events_text.as_bytes()).last().unwrap().0, "message_stop");
}

#[actix_web::test]
async fn a_silence_in_the_middle_of_the_stream_is_met_with_pings() {
    let cerebras = MockUpstream::start(|_| Reply::Sse {
        chunks: tool_call_stream(),
        delay: Duration::from_millis(250),
        gate: None,
    });
    let proxy = Proxy::start(config(&cerebras.url, &[("ANTHROPIC_PING_INTERVAL", "0.1")]));
    let (status, _, body) = post(&proxy, "/v1/messages", &message(true), &[]).await;
    assert_eq!(status, 200);
    let events = events(&body);
    let names = names(&events);
    let first_delta = names.iter().position(|&n| n == "content_block_delta").unwrap();
    assert!(names[first_delta..].contains(&"ping"), "pings after the stream began: {names:?}");
    assert_eq!(*names.last().unwrap(), "message_stop");
}
