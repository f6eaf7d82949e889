//! The model catalogue: public names to each provider's id, aliases, `/v1/models`, and the
//! behaviour without one.

use crate::common;

use common::{client, completion, config, respond_as, MockUpstream, Providers, Proxy, Reply};
use serde_json::{json, Value};

const MODELS: &str = r#"{
    "glm": {"cerebras": "zai-glm-4.7", "synthetic": "hf:zai-org/GLM-4.7", "zai": {"id": "glm-4.7", "vision": "glm-4.6v"}},
    "glm-5": {"synthetic": "hf:zai-org/GLM-5", "zai": "glm-5"},
    "glm-flash": {"zai": "glm-4.5-flash"},
    "glm-vision-only-on-cerebras": {"cerebras": "zai-glm-4.7"}
}"#;
const ALIASES: &str = r#"{"claude-*haiku*": "glm-flash", "claude-*": "glm", "gpt-4o": "glm"}"#;

fn catalogue() -> [(&'static str, &'static str); 2] {
    [("MODELS", MODELS), ("MODEL_ALIASES", ALIASES)]
}

fn chat(model: &str) -> Value {
    json!({"model": model, "temperature": 0.5, "messages": [{"role": "user", "content": "Hello!"}]})
}

fn unavailable(_: &common::Received) -> Reply {
    Reply::status(503, json!({"error": {"message": "service unavailable"}}))
}

#[actix_web::test]
async fn a_public_name_goes_to_cerebras_as_its_id_with_nothing_else_changed() {
    let providers = Providers::start(respond_as("cerebras"), respond_as("synthetic"), respond_as("zai"), &catalogue());
    let (status, headers, body) = providers.chat(&chat("glm")).await;
    assert_eq!((status, body), (200, completion("cerebras")));
    assert_eq!(headers.get("x-glm-proxy-provider").unwrap(), "cerebras");
    let seen = providers.cerebras.received()[0].body.clone();
    assert_eq!(
        std::str::from_utf8(&seen).unwrap(),
        chat("glm").to_string().replace(r#""model":"glm""#, r#""model":"zai-glm-4.7""#),
        "only the model changes, byte for byte"
    );
}

#[actix_web::test]
async fn failover_takes_each_alternatives_own_id() {
    let providers = Providers::start(unavailable, unavailable, respond_as("zai"), &catalogue());
    let (status, _, body) = providers.chat(&chat("glm")).await;
    assert_eq!((status, body), (200, completion("zai")));
    let models = |upstream: &MockUpstream| -> Vec<Value> {
        upstream.received().iter().map(|r| r.json()["model"].clone()).collect()
    };
    assert!(models(&providers.cerebras).iter().all(|m| m == "zai-glm-4.7"));
    assert_eq!(models(&providers.synthetic), ["hf:zai-org/GLM-4.7"]);
    assert_eq!(models(&providers.zai), ["glm-4.7"]);
}

#[actix_web::test]
async fn a_provider_with_no_id_for_the_model_is_skipped() {
    let providers = Providers::start(respond_as("cerebras"), unavailable, respond_as("zai"), &catalogue());
    let (status, headers, _) = providers.chat(&chat("glm-5")).await;
    assert_eq!(status, 200);
    assert_eq!(headers.get("x-glm-proxy-provider").unwrap(), "zai");
    assert_eq!(providers.hits(), (0, 1, 1), "Cerebras has no glm-5");
    assert_eq!(providers.zai.received()[0].json()["model"], "glm-5");
}

#[actix_web::test]
async fn aliases_map_client_names_in_the_order_written() {
    let providers = Providers::start(respond_as("cerebras"), respond_as("synthetic"), respond_as("zai"), &catalogue());
    assert_eq!(providers.chat(&chat("claude-sonnet-4-5-20250929")).await.0, 200);
    assert_eq!(providers.cerebras.received()[0].json()["model"], "zai-glm-4.7");
    assert_eq!(providers.chat(&chat("claude-3-5-haiku-20241022")).await.0, 200);
    assert_eq!(providers.zai.received()[0].json()["model"], "glm-4.5-flash", "the haiku alias comes first");
    assert_eq!(providers.hits(), (1, 0, 1));
}

#[actix_web::test]
async fn a_model_nobody_serves_is_a_404_from_the_proxy_naming_the_models() {
    let providers = Providers::start(respond_as("cerebras"), respond_as("synthetic"), respond_as("zai"), &catalogue());
    let (status, headers, body) = providers.chat(&chat("llama-3.3-70b")).await;
    assert_eq!(status, 404);
    assert_eq!(headers.get("x-glm-proxy-provider"), None);
    assert_eq!(body["error"]["code"], "model_not_found");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("\"llama-3.3-70b\"") && message.contains("glm, glm-5, glm-flash"), "{message}");
    let (status, _, _) = providers.chat(&json!({"messages": []})).await;
    assert_eq!(status, 404, "no model at all");
    assert_eq!(providers.hits(), (0, 0, 0));
}

#[actix_web::test]
async fn a_model_only_unconfigured_providers_serve_is_a_404() {
    let cerebras = MockUpstream::start(respond_as("cerebras"));
    let proxy = Proxy::start(config(&cerebras.url, &catalogue()));
    let mut response = client().post(proxy.at("/v1/chat/completions")).send_json(&chat("glm-flash")).await.unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_found");
    assert!(cerebras.received().is_empty());
}

#[actix_web::test]
async fn images_go_to_each_providers_vision_id() {
    let providers = Providers::start(respond_as("cerebras"), unavailable, respond_as("zai"), &catalogue());
    let image = json!({"model": "glm", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}
    ]}]});
    let (status, _, _) = providers.chat(&image).await;
    assert_eq!(status, 200);
    assert_eq!(providers.hits(), (0, 1, 1));
    // Synthetic names no vision id for glm: its configured vision model.
    assert_eq!(providers.synthetic.received()[0].json()["model"], "hf:Qwen/Qwen3-VL-235B-A22B-Instruct");
    assert_eq!(providers.zai.received()[0].json()["model"], "glm-4.6v");
    // A model only Cerebras serves takes its images there.
    let mut only_cerebras = image.clone();
    only_cerebras["model"] = json!("glm-vision-only-on-cerebras");
    assert_eq!(providers.chat(&only_cerebras).await.0, 200);
    assert_eq!(providers.hits(), (1, 1, 1));
}

#[actix_web::test]
async fn the_models_list_is_the_catalogue_and_status_shows_it() {
    let cerebras = MockUpstream::start(|_| Reply::ok(json!({"object": "list", "data": [{"id": "zai-glm-4.7"}]})));
    let proxy = Proxy::start(config(&cerebras.url, &catalogue()));
    for path in ["/v1/models", "/models"] {
        let list: Value = client().get(proxy.at(path)).send().await.unwrap().json().await.unwrap();
        let ids: Vec<&str> = list["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["glm", "glm-5", "glm-flash", "glm-vision-only-on-cerebras", "gpt-4o"], "{path}");
        assert_eq!((list["object"].as_str(), list["data"][0]["object"].as_str()), (Some("list"), Some("model")));
    }
    let one: Value = client().get(proxy.at("/v1/models/gpt-4o")).send().await.unwrap().json().await.unwrap();
    assert_eq!(one["id"], "gpt-4o");
    let missing = client().get(proxy.at("/v1/models/zai-glm-4.7")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let anthropic: Value = client()
        .get(proxy.at("/v1/models"))
        .insert_header(("anthropic-version", "2023-06-01"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((anthropic["data"][0]["type"].as_str(), anthropic["has_more"].as_bool()), (Some("model"), Some(false)));
    assert!(cerebras.received().is_empty(), "the proxy answers from the catalogue");

    let status = proxy.status().await;
    assert_eq!(status["catalogue"]["models"]["glm"]["cerebras"], "zai-glm-4.7");
    assert_eq!(status["catalogue"]["models"]["glm"]["zai"], json!({"id": "glm-4.7", "vision": "glm-4.6v"}));
    assert_eq!(status["catalogue"]["aliases"]["claude-*"], "glm");
}

#[actix_web::test]
async fn without_a_catalogue_models_pass_as_they_are() {
    let cerebras = MockUpstream::start(|request| match request.path_and_query.as_str() {
        "/v1/models" => Reply::ok(json!({"object": "list", "data": [{"id": "zai-glm-4.7"}]})),
        _ => Reply::ok(completion("cerebras")),
    });
    let proxy = Proxy::start(config(&cerebras.url, &[]));
    let list: Value = client().get(proxy.at("/v1/models")).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["data"][0]["id"], "zai-glm-4.7", "forwarded");
    let body = chat("anything-at-all");
    let response = client().post(proxy.at("/v1/chat/completions")).send_json(&body).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(cerebras.received()[1].body, body.to_string(), "the client's bytes, untouched");
    assert_eq!(proxy.status().await["catalogue"], Value::Null);
}
