//! Routing and failover across three scripted providers: Cerebras, Synthetic and Z.ai.

use crate::common;

use common::{chat_body, client, completion, config, respond_as, sse_chunks, MockUpstream, Providers, Proxy, Reply};
use futures_util::StreamExt;
use serde_json::{json, Value};

fn long_chat() -> Value {
    // 400 characters at 1.7 per token is ~235 tokens, over the test threshold of 100.
    json!({"model": "llama-3.3-70b", "stream": false, "temperature": 0.2,
           "messages": [{"role": "user", "content": "x".repeat(400)}]})
}

fn unavailable(_: &common::Received) -> Reply {
    Reply::status(503, json!({"error": {"message": "service unavailable"}}))
}

#[actix_web::test]
async fn a_long_request_goes_to_synthetic_with_only_the_model_rewritten() {
    let providers = Providers::start(unavailable, |_| Reply::ok(completion("synthetic")), unavailable, &[]);
    let (status, headers, body) = providers.chat(&long_chat()).await;
    assert_eq!((status, body), (200, completion("synthetic")));
    assert_eq!(headers.get("x-glm-proxy-provider").unwrap(), "synthetic");
    assert_eq!(headers.get("x-glm-proxy-key").unwrap(), "key1", "a single key is a pool of one named key1");
    assert_eq!(providers.hits(), (0, 1, 0));

    let seen = &providers.synthetic.received()[0];
    assert_eq!(seen.key(), "sk-synthetic");
    assert_eq!(seen.path_and_query, "/v1/chat/completions");
    let mut expected = long_chat();
    expected["model"] = json!("hf:zai-org/GLM-4.6");
    assert_eq!(seen.json(), expected);
    let keys: Vec<String> = seen.json().as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["model", "stream", "temperature", "messages"], "field order is kept");
    assert_eq!(providers.proxy.status().await["routed"], json!({"too_long": 1}));
}

#[actix_web::test]
async fn a_long_request_falls_back_to_zai_when_synthetic_fails() {
    let providers = Providers::start(unavailable, unavailable, |_| Reply::ok(completion("zai")), &[]);
    let (status, headers, body) = providers.chat(&long_chat()).await;
    assert_eq!((status, body), (200, completion("zai")));
    assert_eq!(headers.get("x-glm-proxy-provider").unwrap(), "zai");
    assert_eq!(providers.hits(), (0, 1, 1));
    let seen = &providers.zai.received()[0];
    assert_eq!((seen.key(), seen.json()["model"].clone()), ("sk-zai", json!("glm-4.6")));
}

#[actix_web::test]
async fn a_long_request_goes_to_cerebras_when_no_alternative_is_configured() {
    let cerebras = MockUpstream::start(respond_as("cerebras"));
    let proxy = Proxy::start(config(&cerebras.url, &[("TOKEN_THRESHOLD", "100")]));
    let mut response = client().post(proxy.at("/v1/chat/completions")).send_json(&long_chat()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), completion("cerebras"));
    assert_eq!(cerebras.received()[0].json(), long_chat(), "the model is not rewritten for Cerebras");
}

#[actix_web::test]
async fn an_image_request_goes_to_the_synthetic_vision_model() {
    let providers = Providers::start(unavailable, |_| Reply::ok(completion("vision")), unavailable, &[]);
    let request = json!({"model": "llama-3.3-70b", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    ]}]});
    let (status, _, body) = providers.chat(&request).await;
    assert_eq!((status, body), (200, completion("vision")));
    assert_eq!(providers.hits(), (0, 1, 0));
    assert_eq!(providers.synthetic.received()[0].json()["model"], "hf:Qwen/Qwen3-VL-235B-A22B-Instruct");
}

#[actix_web::test]
async fn context_length_exceeded_fails_over_in_both_error_shapes() {
    for shape in [
        json!({"error": {"message": "too long", "code": "context_length_exceeded"}}),
        json!({"message": "Current length is 132032 while limit is 131072", "code": "context_length_exceeded"}),
    ] {
        let providers =
            Providers::start(move |_| Reply::status(400, shape.clone()), respond_as("synthetic"), unavailable, &[]);
        let (status, _, body) = providers.chat(&chat_body(false)).await;
        assert_eq!((status, body), (200, completion("synthetic")));
        assert_eq!(providers.hits(), (1, 1, 0));
        assert_eq!(providers.cerebras.received()[0].key(), "sk-1");
    }
}

#[actix_web::test]
async fn a_retired_model_fails_over_to_the_alternatives_with_their_own_model() {
    let retired = |_: &common::Received| {
        Reply::status(
            404,
            json!({"message": "Model zai-glm-4.6 does not exist or you do not have access to it.",
            "type": "not_found_error", "param": "model", "code": "model_not_found"}),
        )
    };
    let providers = Providers::start(retired, respond_as("synthetic"), unavailable, &[]);
    let (status, _, body) = providers.chat(&chat_body(false)).await;
    assert_eq!((status, body), (200, completion("synthetic")));
    assert_eq!(providers.synthetic.received()[0].json()["model"], "hf:zai-org/GLM-4.6");
    assert_eq!(providers.hits(), (1, 1, 0), "a retired model is the same for every key");

    // Without an alternative, the client sees the 404 as Cerebras sent it.
    let cerebras = MockUpstream::start(retired);
    let proxy = Proxy::start(config(&cerebras.url, &[]));
    let mut response = client().post(proxy.at("/v1/chat/completions")).send_json(&chat_body(false)).await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.json::<Value>().await.unwrap()["code"], "model_not_found");
}

#[actix_web::test]
async fn a_cerebras_503_fails_over_without_cooling_the_key() {
    let providers = Providers::start(unavailable, |_| Reply::ok(completion("synthetic")), unavailable, &[]);
    let (status, headers, _) = providers.chat(&chat_body(false)).await;
    assert_eq!(status, 200);
    assert_eq!(headers.get("x-glm-proxy-provider").unwrap(), "synthetic");
    assert_eq!(providers.hits(), (1, 1, 0), "one Cerebras try: a provider outage is not a key's fault");

    let status = providers.proxy.status().await;
    assert!(status["keys"].as_array().unwrap().iter().all(|k| k["available"] == true));
    assert_eq!(status["providers"]["cerebras"]["failovers"], 1);
    assert_eq!(status["providers"]["cerebras"]["errors"], 1);
    assert_eq!(status["providers"]["synthetic"]["requests"], 1);
    assert_eq!(status["providers"]["synthetic"]["errors"], 0);
    assert_eq!(status["providers"]["zai"]["requests"], 0);
}

#[actix_web::test]
async fn an_unreachable_cerebras_fails_over_at_once() {
    let synthetic = MockUpstream::start(respond_as("synthetic"));
    let dead = common::RefusingPort::new();
    let proxy = Proxy::start(config(
        &dead.url(),
        &[("SYNTHETIC_API_KEY", "sk-synthetic"), ("SYNTHETIC_BASE_URL", &synthetic.url)],
    ));
    let mut response = client().post(proxy.at("/v1/chat/completions")).send_json(&chat_body(false)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), completion("synthetic"));
    let status = proxy.status().await;
    assert!(status["keys"].as_array().unwrap().iter().all(|k| k["available"] == true && k["error_count"] == 0));
}

#[actix_web::test]
async fn a_200_that_says_the_quota_is_exhausted_fails_over() {
    let providers = Providers::start(
        |_| Reply::ok(completion("Error: token quota is not enough, please recharge")),
        |_| Reply::ok(completion("synthetic")),
        unavailable,
        &[],
    );
    let (status, _, body) = providers.chat(&chat_body(false)).await;
    assert_eq!((status, body), (200, completion("synthetic")));
    assert_eq!(providers.hits(), (1, 1, 0));
}

#[actix_web::test]
async fn an_ordinary_400_goes_back_to_the_client_and_the_alternatives_stay_untouched() {
    let providers = Providers::start(
        |_| Reply::status(400, json!({"error": {"message": "bad temperature", "code": "invalid_parameter"}})),
        respond_as("synthetic"),
        respond_as("zai"),
        &[],
    );
    let (status, headers, body) = providers.chat(&chat_body(false)).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["message"], "bad temperature");
    assert_eq!(headers.get("x-glm-proxy-provider").unwrap(), "cerebras");
    assert_eq!(providers.hits(), (1, 0, 0));
}

#[actix_web::test]
async fn when_everything_is_down_the_client_gets_the_last_upstream_answer() {
    let providers = Providers::start(
        unavailable,
        unavailable,
        |_| Reply::status(500, json!({"error": {"message": "zai is broken"}})),
        &[],
    );
    let (status, headers, body) = providers.chat(&chat_body(false)).await;
    assert_eq!(status, 500);
    assert_eq!(body["error"]["message"], "zai is broken");
    assert_eq!(headers.get("x-glm-proxy-provider").unwrap(), "zai");
    assert_eq!(providers.hits(), (1, 1, 1), "each provider tried once, in order");
}

#[actix_web::test]
async fn when_nothing_answers_the_client_gets_a_502_naming_each_provider() {
    let (cerebras, synthetic, zai) =
        (common::RefusingPort::new(), common::RefusingPort::new(), common::RefusingPort::new());
    let proxy = Proxy::start(config(
        &cerebras.url(),
        &[
            ("SYNTHETIC_API_KEY", "sk-synthetic"),
            ("SYNTHETIC_BASE_URL", &synthetic.url()),
            ("ZAI_API_KEY", "sk-zai"),
            ("ZAI_BASE_URL", &zai.url()),
            ("CEREBRAS_COOLDOWN", "0.01"),
        ],
    ));
    let mut response = client().post(proxy.at("/v1/chat/completions")).send_json(&chat_body(false)).await.unwrap();
    assert_eq!(response.status(), 502);
    let message = response.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().to_owned();
    for target in ["cerebras/key1 (cannot connect", "synthetic/key1 (cannot connect", "zai/key1 (cannot connect"] {
        assert!(message.contains(target), "{target} in {message}");
    }
    assert!(!message.contains("sk-"), "{message}");
}

#[actix_web::test]
async fn a_streaming_request_fails_over_before_anything_was_sent() {
    let providers = Providers::start(
        unavailable,
        |_| Reply::Sse { chunks: sse_chunks(3), delay: std::time::Duration::ZERO, gate: None },
        unavailable,
        &[],
    );
    let mut response =
        client().post(providers.proxy.at("/v1/chat/completions")).send_json(&chat_body(true)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("x-glm-proxy-provider").unwrap(), "synthetic");
    let mut text = String::new();
    while let Some(chunk) = response.next().await {
        text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    assert_eq!(text, sse_chunks(3).concat());
    assert_eq!(providers.synthetic.received()[0].json()["stream"], true, "stream is forwarded as is");
}

#[actix_web::test]
async fn with_fallback_on_cooldown_a_request_skips_the_wait_and_goes_to_the_alternatives() {
    let providers = Providers::start(
        |_| Reply::rate_limited(Some(60)),
        respond_as("synthetic"),
        unavailable,
        &[("FALLBACK_ON_COOLDOWN", "true")],
    );
    let (status, _, body) = providers.chat(&chat_body(false)).await;
    assert_eq!((status, body), (200, completion("synthetic")));
    assert_eq!(providers.cerebras.keys_used(), ["sk-1", "sk-2"]);

    // Every key now rests: the next request does not touch Cerebras at all.
    let (status, _, _) = providers.chat(&chat_body(false)).await;
    assert_eq!(status, 200);
    assert_eq!(providers.hits(), (2, 2, 0));
}

#[actix_web::test]
async fn without_fallback_on_cooldown_a_request_waits_for_cerebras() {
    let providers = Providers::start(
        |_| Reply::rate_limited(Some(60)),
        respond_as("synthetic"),
        unavailable,
        &[("MAX_KEY_WAIT", "1")],
    );
    let (status, _, body) = providers.chat(&chat_body(false)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "all_keys_cooling_down");
    assert_eq!(providers.hits(), (2, 0, 0));
}

#[actix_web::test]
async fn a_broken_tool_call_history_is_repaired_before_it_goes_upstream() {
    let providers = Providers::start(respond_as("cerebras"), respond_as("synthetic"), respond_as("zai"), &[]);
    let request = json!({"model": "m", "messages": [
        {"role": "user", "content": "list files"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "ls", "arguments": "{}"}},
            {"id": "call_b", "type": "function", "function": {"name": "pwd", "arguments": "{}"}}
        ]},
        {"role": "tool", "tool_call_id": "call_b", "content": "/home"},
        {"role": "tool", "tool_call_id": "call_ghost", "content": "orphan"},
        {"role": "user", "content": "and then?"}
    ]});
    let (status, _, _) = providers.chat(&request).await;
    assert_eq!(status, 200);
    let messages = providers.cerebras.received()[0].json()["messages"].clone();
    assert_eq!(
        messages,
        json!([
            {"role": "user", "content": "list files"},
            request["messages"][1],
            {"role": "tool", "tool_call_id": "call_b", "content": "/home"},
            {"role": "tool", "tool_call_id": "call_a", "content": "failed"},
            {"role": "user", "content": "and then?"}
        ])
    );
    let repairs = &providers.proxy.status().await["tool_call_repairs"];
    assert_eq!((repairs["requests"].as_u64(), repairs["inserted_answers"].as_u64()), (Some(1), Some(1)));
    assert_eq!(repairs["removed_answers"], 1);
}

#[actix_web::test]
async fn a_history_that_needs_no_repair_is_forwarded_byte_for_byte() {
    let providers = Providers::start(respond_as("cerebras"), respond_as("synthetic"), respond_as("zai"), &[]);
    // Odd spacing and key order: any re-serialisation would change these bytes.
    let raw = "{ \"messages\" : [ {\"content\":\"hi\",  \"role\":\"user\"} ],\n \"model\":\"m\" , \"n\": 1.0 }";
    let response = client().post(providers.proxy.at("/v1/chat/completions")).send_body(raw).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(providers.cerebras.received()[0].body, raw.as_bytes());
    assert_eq!(providers.proxy.status().await["tool_call_repairs"]["requests"], 0);
}
