//! The Responses door (Codex CLI's API), through real HTTP against OpenAI chat mock upstreams:
//! plain and streamed answers, each kind of tool, images, failover with catalogue ids, key
//! rotation, auth, unsupported parameters, streams that break, keepalives, and errors in
//! OpenAI's shape with the right status.

use crate::common;

use std::time::Duration;

use common::{
    client, config, reasoned_completion, sse_data, sse_delta, tool_call_stream, MockUpstream, Providers, Proxy,
    Received, Reply,
};
use serde_json::{json, Value};

const CATALOGUE: [(&str, &str); 2] = [
    ("MODELS", r#"{"glm": {"cerebras": "zai-glm-4.7", "synthetic": "hf:zai-org/GLM-4.7", "zai": "glm-4.7"}}"#),
    ("MODEL_ALIASES", r#"{"gpt-5*": "glm"}"#),
];

fn answer(text: &'static str) -> impl Fn(&Received) -> Reply {
    move |_| Reply::ok(reasoned_completion(text))
}

fn unavailable(_: &Received) -> Reply {
    Reply::status(503, json!({"error": {"message": "service unavailable"}}))
}

fn stream_of(chunks: Vec<String>) -> impl Fn(&Received) -> Reply {
    move |_| Reply::Sse { chunks: chunks.clone(), delay: Duration::ZERO, gate: None }
}

/// A request as Codex sends one.
fn codex_request(stream: bool) -> Value {
    json!({
        "model": "gpt-5-codex", "stream": stream, "store": false, "tool_choice": "auto", "parallel_tool_calls": true,
        "include": ["reasoning.encrypted_content"], "reasoning": {"summary": "auto"}, "prompt_cache_key": "s-1",
        "client_metadata": {"x-codex-turn-metadata": "{}"},
        "instructions": "You are Codex.",
        "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Sandbox: read-only."}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "What is the weather?"}]}
        ],
        "tools": [
            {"type": "function", "name": "weather", "description": "Weather now", "strict": false,
             "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
            {"type": "web_search", "external_web_access": false}
        ]
    })
}

async fn post(
    proxy: &Proxy,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, awc::http::header::HeaderMap, Vec<u8>) {
    let mut request = client().post(proxy.at(path));
    for header in headers {
        request = request.insert_header(*header);
    }
    let mut response = request.send_json(body).await.unwrap();
    let bytes = response.body().limit(1 << 22).await.unwrap();
    (response.status().as_u16(), response.headers().clone(), bytes.to_vec())
}

async fn post_json(proxy: &Proxy, body: &Value) -> (u16, Value) {
    let (status, _, bytes) = post(proxy, "/v1/responses", body, &[]).await;
    (status, serde_json::from_slice(&bytes).unwrap())
}

/// Each event of an SSE body (comments aside): its name and its data.
fn events(body: &[u8]) -> Vec<(String, Value)> {
    let text = std::str::from_utf8(body).unwrap();
    let events: Vec<(String, Value)> = text
        .split("\n\n")
        .filter(|event| !event.trim().is_empty() && !event.starts_with(':'))
        .map(|event| {
            let name = event.lines().find_map(|l| l.strip_prefix("event: ")).unwrap().to_owned();
            let data = event.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            (name, serde_json::from_str(data).unwrap())
        })
        .collect();
    for (number, (_, data)) in events.iter().enumerate() {
        assert_eq!(data["sequence_number"], number as u64, "{data}");
    }
    events
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(name, _)| name.as_str()).collect()
}

/// The text of a whole response, as the SDKs' `output_text` reads it.
fn output_text(response: &Value) -> String {
    let messages = response["output"].as_array().unwrap().iter().filter(|item| item["type"] == "message");
    messages.flat_map(|m| m["content"].as_array().unwrap().iter()).filter_map(|p| p["text"].as_str()).collect()
}

#[actix_web::test]
async fn a_plain_response_is_translated_both_ways() {
    let cerebras = MockUpstream::start(answer("Sunny in Paris."));
    let proxy = Proxy::start(config(&cerebras.url, &CATALOGUE));
    let (status, headers, body) = post(&proxy, "/v1/responses", &codex_request(false), &[]).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(headers.get("x-request-id").is_some());
    let response: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((response["object"].as_str(), response["status"].as_str()), (Some("response"), Some("completed")));
    assert!(response["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(response["model"], "gpt-5-codex", "the model the client named");
    assert_eq!(output_text(&response), "Sunny in Paris.");
    assert_eq!(response["output"][0]["type"], "reasoning");
    assert_eq!(response["output"][0]["summary"][0]["text"], "Thinking it over.");
    assert_eq!(
        (response["usage"]["input_tokens"].as_u64(), response["usage"]["output_tokens"].as_u64()),
        (Some(21), Some(5))
    );

    let sent = cerebras.received()[0].json();
    assert_eq!(cerebras.received()[0].path_and_query, "/v1/chat/completions");
    assert_eq!(sent["model"], "zai-glm-4.7", "the alias, then the catalogue");
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "system", "content": "You are Codex."},
            {"role": "system", "content": "Sandbox: read-only."},
            {"role": "user", "content": "What is the weather?"}
        ])
    );
    assert_eq!(sent["tools"].as_array().unwrap().len(), 1, "the hosted web search is not sent");
    assert_eq!(sent["tools"][0]["function"]["name"], "weather");
    assert_eq!((sent["tool_choice"].as_str(), sent["parallel_tool_calls"].as_bool()), (Some("auto"), Some(true)));
    for dropped in ["store", "include", "reasoning", "prompt_cache_key", "client_metadata", "input", "instructions"] {
        assert!(sent.get(dropped).is_none(), "{dropped} is not a chat field");
    }
}

#[actix_web::test]
async fn a_streamed_response_with_a_tool_call_is_the_responses_event_sequence() {
    let cerebras = MockUpstream::start(stream_of(tool_call_stream()));
    let proxy = Proxy::start(config(&cerebras.url, &CATALOGUE));
    let (status, headers, body) = post(&proxy, "/v1/responses", &codex_request(true), &[]).await;
    assert_eq!(status, 200);
    assert!(headers.get("content-type").unwrap().to_str().unwrap().starts_with("text/event-stream"));
    let events = events(&body);
    assert_eq!(
        names(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(events[10].1["delta"], "Let me look.");
    let call = &events[18].1["item"];
    assert_eq!(
        (call["type"].as_str(), call["call_id"].as_str(), call["name"].as_str()),
        (Some("function_call"), Some("call_w1"), Some("weather"))
    );
    assert_eq!(serde_json::from_str::<Value>(call["arguments"].as_str().unwrap()).unwrap(), json!({"city": "Paris"}));
    let completed = &events[19].1["response"];
    assert_eq!(
        (completed["status"].as_str(), completed["usage"]["output_tokens"].as_u64()),
        (Some("completed"), Some(12))
    );
    assert_eq!(completed["output"].as_array().unwrap().len(), 3);
    let sent = cerebras.received()[0].json();
    assert_eq!((sent["stream"].as_bool(), sent["stream_options"]["include_usage"].as_bool()), (Some(true), Some(true)));
}

#[actix_web::test]
async fn every_kind_of_tool_round_trips() {
    let calls = vec![
        sse_delta(json!({"tool_calls": [{"index": 0, "id": "call_n", "type": "function",
            "function": {"name": "multi_agent_v1__close_agent", "arguments": "{\"target\":\"a1\"}"}}]})),
        sse_delta(json!({"tool_calls": [{"index": 1, "id": "call_p", "type": "function",
            "function": {"name": "apply_patch", "arguments": "{\"input\":\"*** Begin Patch\\n*** End Patch\"}"}}]})),
        sse_delta(json!({"tool_calls": [{"index": 2, "id": "call_s", "type": "function",
            "function": {"name": "local_shell", "arguments": "{\"command\":[\"ls\"],\"workdir\":\"/w\"}"}}]})),
        sse_data(json!({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})),
        "data: [DONE]\n\n".to_owned(),
    ];
    let cerebras = MockUpstream::start(stream_of(calls));
    let proxy = Proxy::start(config(&cerebras.url, &[]));
    let mut request = codex_request(true);
    request["tools"] = json!([
        {"type": "namespace", "name": "multi_agent_v1", "description": "Agents", "tools": [
            {"type": "function", "name": "close_agent", "parameters": {"type": "object", "properties": {"target": {"type": "string"}}}}]},
        {"type": "custom", "name": "apply_patch", "description": "Edit files",
         "format": {"type": "grammar", "syntax": "lark", "definition": "start: begin_patch hunk+ end_patch"}},
        {"type": "local_shell"}
    ]);
    request["input"] = json!([
        {"type": "message", "role": "user", "content": "Fix it"},
        {"type": "function_call", "call_id": "call_0", "name": "close_agent", "namespace": "multi_agent_v1", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_0", "output": "closed"},
        {"type": "custom_tool_call", "call_id": "call_1", "name": "apply_patch", "input": "*** Begin Patch"},
        {"type": "custom_tool_call_output", "call_id": "call_1", "output": "applied"}
    ]);
    let (status, _, body) = post(&proxy, "/v1/responses", &request, &[]).await;
    assert_eq!(status, 200);
    let events = events(&body);
    let done: Vec<&Value> =
        events.iter().filter(|(name, _)| name == "response.output_item.done").map(|(_, e)| &e["item"]).collect();
    assert_eq!(
        (done[0]["type"].as_str(), done[0]["name"].as_str(), done[0]["namespace"].as_str()),
        (Some("function_call"), Some("close_agent"), Some("multi_agent_v1"))
    );
    assert_eq!(
        (done[1]["type"].as_str(), done[1]["input"].as_str()),
        (Some("custom_tool_call"), Some("*** Begin Patch\n*** End Patch"))
    );
    assert_eq!(done[2]["type"], "local_shell_call");
    assert_eq!(done[2]["action"]["command"], json!(["ls"]));
    assert_eq!(done[2]["action"]["working_directory"], "/w");
    assert!(names(&events).contains(&"response.custom_tool_call_input.done"));

    let sent = cerebras.received()[0].json();
    let offered: Vec<&str> =
        sent["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert_eq!(offered, ["multi_agent_v1__close_agent", "apply_patch", "local_shell"]);
    assert_eq!(sent["tools"][1]["function"]["parameters"]["required"], json!(["input"]));
    assert_eq!(sent["messages"][1], json!({"role": "user", "content": "Fix it"}), "after the instructions");
    assert_eq!(sent["messages"][2]["tool_calls"][0]["function"]["name"], "multi_agent_v1__close_agent");
    assert_eq!(sent["messages"][3], json!({"role": "tool", "tool_call_id": "call_0", "content": "closed"}));
    assert_eq!(sent["messages"][4]["tool_calls"][0]["function"]["arguments"], "{\"input\":\"*** Begin Patch\"}");
}

#[actix_web::test]
async fn an_image_goes_to_the_vision_model_of_an_alternative() {
    let providers = Providers::start(answer("cerebras"), answer("a cat"), unavailable, &[]);
    let request = json!({"model": "glm", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"}
    ]}]});
    let (status, body) = post_json(&providers.proxy, &request).await;
    assert_eq!((status, output_text(&body)), (200, "a cat".to_owned()));
    assert_eq!(providers.hits(), (0, 1, 0));
    let sent = providers.synthetic.received()[0].json();
    assert_eq!(sent["model"], "hf:Qwen/Qwen3-VL-235B-A22B-Instruct");
    assert_eq!(sent["messages"][0]["content"][1]["image_url"]["url"], "data:image/png;base64,iVBORw0KGgo=");
}

#[actix_web::test]
async fn failover_sends_the_alternative_its_catalogue_model() {
    let providers = Providers::start(unavailable, answer("from synthetic"), unavailable, &CATALOGUE);
    let (status, headers, body) = post(&providers.proxy, "/v1/responses", &codex_request(false), &[]).await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((status, output_text(&body)), (200, "from synthetic".to_owned()));
    assert_eq!(headers.get("x-glm-proxy-provider").unwrap(), "synthetic");
    assert_eq!(providers.synthetic.received()[0].json()["model"], "hf:zai-org/GLM-4.7");
    assert_eq!(body["model"], "gpt-5-codex");
}

#[actix_web::test]
async fn a_rate_limited_key_rotates_to_the_next() {
    let cerebras = MockUpstream::start(|request| match request.key() {
        "sk-1" => Reply::rate_limited(Some(30)),
        _ => Reply::Sse { chunks: tool_call_stream(), delay: Duration::ZERO, gate: None },
    });
    let proxy = Proxy::start(config(&cerebras.url, &CATALOGUE));
    let (status, headers, body) = post(&proxy, "/v1/responses", &codex_request(true), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(headers.get("x-glm-proxy-key").unwrap(), "key2");
    assert_eq!(events(&body).last().unwrap().0, "response.completed");
    assert_eq!(cerebras.keys_used(), ["sk-1", "sk-2"]);
}

#[actix_web::test]
async fn client_keys_are_required_and_refusals_are_openai_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (db, key) = common::client_key(dir.path(), "codex");
    let cerebras = MockUpstream::start(answer("hello"));
    let auth = [("ENABLE_INCOMING_AUTH", "true"), ("INCOMING_KEY_DB", db.to_str().unwrap())];
    let proxy = Proxy::start(config(&cerebras.url, &[CATALOGUE[0], CATALOGUE[1], auth[0], auth[1]]));
    let bearer = format!("Bearer {key}");
    let (status, _, body) = post(&proxy, "/v1/responses", &codex_request(false), &[("authorization", &bearer)]).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (status, headers, body) =
        post(&proxy, "/v1/responses", &codex_request(true), &[("authorization", "Bearer sk-wrong")]).await;
    assert_eq!(status, 401);
    assert_eq!(headers.get("www-authenticate").unwrap(), "Bearer");
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["error"]["code"], "invalid_api_key");
    assert_eq!(cerebras.received()[0].key(), "sk-1", "the provider's key goes upstream, never the client's");
    assert_eq!(cerebras.received().len(), 1);
}

#[actix_web::test]
async fn stored_state_is_an_unsupported_parameter_and_nothing_goes_upstream() {
    let cerebras = MockUpstream::start(answer("never"));
    let proxy = Proxy::start(config(&cerebras.url, &[]));
    for field in ["previous_response_id", "conversation"] {
        let mut request = codex_request(true);
        request[field] = json!("resp_123");
        let (status, body) = post_json(&proxy, &request).await;
        assert_eq!(status, 400);
        assert_eq!(
            (body["error"]["code"].as_str(), body["error"]["param"].as_str(), body["error"]["type"].as_str()),
            (Some("unsupported_parameter"), Some(field), Some("invalid_request_error"))
        );
    }
    let file =
        json!({"model": "glm", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]});
    let (status, body) = post_json(&proxy, &file).await;
    assert_eq!((status, body["error"]["param"].as_str()), (400, Some("input")));
    let (status, body) = post_json(&proxy, &json!({"model": "glm", "input": 5})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_json")));
    assert!(cerebras.received().is_empty());
}

#[actix_web::test]
async fn errors_before_the_first_byte_keep_their_status_and_openai_shape() {
    let cerebras = MockUpstream::start(|_| Reply::rate_limited(Some(30)));
    let proxy = Proxy::start(config(&cerebras.url, &[("MAX_KEY_WAIT", "0")]));
    let (status, headers, body) = post(&proxy, "/v1/responses", &codex_request(true), &[]).await;
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    assert!(headers.get("retry-after").is_some(), "Codex and the SDKs retry after it");
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["error"]["code"], "all_keys_cooling_down");

    let bad = MockUpstream::start(|_| {
        Reply::status(
            400,
            json!({"error": {"message": "prompt is too long", "type": "invalid_request_error", "code": "context_length_exceeded"}}),
        )
    });
    let proxy = Proxy::start(config(&bad.url, &[]));
    let (status, body) = post_json(&proxy, &codex_request(true)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("context_length_exceeded")));

    let mut stored = client().get(proxy.at("/v1/responses/resp_1")).send().await.unwrap();
    assert_eq!(stored.status().as_u16(), 404);
    assert!(stored.json::<Value>().await.unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("stores no responses"));
    let wrong_method = client().get(proxy.at("/responses")).send().await.unwrap();
    assert_eq!(
        (wrong_method.status().as_u16(), wrong_method.headers().get("allow").unwrap().to_str().unwrap()),
        (405, "POST")
    );
}

#[actix_web::test]
async fn a_stream_broken_midway_ends_with_response_failed() {
    let cerebras = MockUpstream::start(|_| Reply::SseThenBreak { chunks: tool_call_stream()[..3].to_vec() });
    let proxy = Proxy::start(config(&cerebras.url, &[]));
    let (status, _, body) = post(&proxy, "/v1/responses", &codex_request(true), &[]).await;
    assert_eq!(status, 200);
    let events = events(&body);
    let (name, failed) = events.last().unwrap();
    assert_eq!(name, "response.failed");
    assert_eq!(failed["response"]["status"], "failed");
    assert_eq!(failed["response"]["error"]["code"], "stream_interrupted");
    assert!(!names(&events).contains(&"response.completed"));
}

#[actix_web::test]
async fn a_slow_first_byte_is_met_with_keepalives_then_the_answer_or_its_failure() {
    let slow = MockUpstream::start(|_| Reply::Late {
        delay: Duration::from_millis(400),
        reply: Box::new(Reply::Sse { chunks: tool_call_stream(), delay: Duration::ZERO, gate: None }),
    });
    let proxy = Proxy::start(config(&slow.url, &[("ANTHROPIC_PING_INTERVAL", "0.1")]));
    let (status, _, body) = post(&proxy, "/v1/responses", &codex_request(true), &[]).await;
    assert_eq!(status, 200);
    let text = String::from_utf8(body.clone()).unwrap();
    assert!(text.matches(": keepalive\n\n").count() >= 2, "{text}");
    let answered = events(&body);
    assert_eq!(names(&answered)[..2], ["response.created", "response.in_progress"]);
    assert_eq!(answered.last().unwrap().0, "response.completed");

    let refused = MockUpstream::start(|_| Reply::Late {
        delay: Duration::from_millis(300),
        reply: Box::new(Reply::status(400, json!({"error": {"message": "bad tool schema", "code": "invalid_tools"}}))),
    });
    let proxy = Proxy::start(config(&refused.url, &[("ANTHROPIC_PING_INTERVAL", "0.1")]));
    let (status, _, body) = post(&proxy, "/v1/responses", &codex_request(true), &[]).await;
    assert_eq!(status, 200, "the head went out with the first keepalive");
    let events = events(&body);
    let (name, failed) = events.last().unwrap();
    assert_eq!(name, "response.failed");
    assert_eq!(failed["response"]["error"], json!({"code": "invalid_tools", "message": "bad tool schema"}));
}

#[actix_web::test]
async fn a_provider_that_answers_whole_is_streamed_as_events() {
    let cerebras = MockUpstream::start(answer("Whole."));
    let proxy = Proxy::start(config(&cerebras.url, &[]));
    let (status, _, body) = post(&proxy, "/responses", &codex_request(true), &[]).await;
    assert_eq!(status, 200);
    let events = events(&body);
    assert_eq!(events.last().unwrap().0, "response.completed");
    assert_eq!(output_text(&events.last().unwrap().1["response"]), "Whole.");
}

#[actix_web::test]
async fn a_silence_in_the_middle_of_the_stream_is_met_with_keepalives() {
    let chunks = vec![
        sse_delta(json!({"content": "Thinking"})),
        sse_delta(json!({"content": " done."})),
        sse_data(json!({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})),
        "data: [DONE]\n\n".to_owned(),
    ];
    let cerebras = MockUpstream::start(move |_| Reply::Sse {
        chunks: chunks.clone(),
        delay: Duration::from_millis(350),
        gate: None,
    });
    let proxy = Proxy::start(config(&cerebras.url, &[("ANTHROPIC_PING_INTERVAL", "0.1")]));
    let (status, _, body) = post(&proxy, "/v1/responses", &codex_request(true), &[]).await;
    assert_eq!(status, 200);
    let text = String::from_utf8(body.clone()).unwrap();
    let first_delta = text.find("response.output_text.delta").unwrap();
    let between = &text[first_delta..text.rfind("response.output_text.delta").unwrap()];
    assert!(between.matches(": keepalive").count() >= 2, "keepalives between the deltas: {text}");
    assert_eq!(events(&body).last().unwrap().0, "response.completed");
}
