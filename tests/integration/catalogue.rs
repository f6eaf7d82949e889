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

const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef0123456789";

/// A mock that lists `listed` (while `retired` is unset, `zai-glm-4.7` too) at `GET /models`.
fn listing(retired: std::sync::Arc<std::sync::atomic::AtomicBool>) -> impl common::Script {
    move |received: &common::Received| {
        if received.method != "GET" || !received.path_and_query.ends_with("/models") {
            return Reply::ok(completion("cerebras"));
        }
        let mut ids = vec!["gpt-oss-120b", "qwen-3.8-27b"];
        if !retired.load(std::sync::atomic::Ordering::SeqCst) {
            ids.push("zai-glm-4.7");
        }
        let data: Vec<Value> = ids.iter().map(|id| json!({"id": id, "object": "model"})).collect();
        Reply::ok(json!({"object": "list", "data": data}))
    }
}

async fn admin_models(proxy: &Proxy) -> Value {
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let mut response =
        client().get(proxy.at("/admin/models")).insert_header(("Authorization", bearer)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[actix_web::test]
async fn ids_a_providers_listing_leaves_out_are_flagged_and_cleared_when_it_lists_them_again() {
    let retired = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let models = r#"{"glm": {"cerebras": "zai-glm-4.7", "zai": "glm-5.2"}, "fast": {"cerebras": "gpt-oss-120b"}}"#;
    // Z.ai's mock answers `/models` with a completion, which is no listing.
    let vars = [("MODELS", models), ("MODEL_CHECK_INTERVAL", "0.2"), ("ADMIN_TOKEN", ADMIN_TOKEN)];
    let providers = Providers::start(listing(retired.clone()), respond_as("synthetic"), respond_as("zai"), &vars);
    let proxy = &providers.proxy;
    assert!(proxy.status_reaches("/providers/cerebras/stale_models", json!(["zai-glm-4.7"])).await);
    let read = providers.cerebras.received().into_iter().find(|r| r.path_and_query.ends_with("/models")).unwrap();
    assert_eq!(read.key(), "sk-1", "read with the current key");
    let status = proxy.status().await;
    assert_eq!(status["providers"]["zai"]["stale_models"], json!([]), "no listing flags nothing");
    assert_eq!(status["providers"]["synthetic"]["stale_models"], json!([]));

    let watched = admin_models(proxy).await;
    let cerebras = &watched["providers"]["cerebras"];
    assert_eq!(cerebras["listing"], json!({"state": "listed", "models": 2}));
    assert!(cerebras["checked_at"].is_string());
    assert_eq!(
        cerebras["models"],
        json!([
            {"id": "gpt-oss-120b", "public": ["fast"], "stale": null},
            {"id": "zai-glm-4.7", "public": ["glm"], "stale": "not_listed"},
        ])
    );
    assert_eq!(watched["providers"]["zai"]["listing"]["state"], "unavailable");
    assert_eq!(watched["providers"]["zai"]["stale_models"], json!([]));
    let stale = |provider: &str| format!(r#"glm_proxy_stale_models{{provider="{provider}"}}"#);
    assert_eq!(common::metric(&proxy.url, &stale("cerebras")).await, 1.0);
    assert_eq!(common::metric(&proxy.url, &stale("zai")).await, 0.0);
    let unavailable = r#"glm_proxy_model_checks_total{outcome="unavailable",provider="zai"}"#;
    assert!(common::metric(&proxy.url, unavailable).await >= 1.0);

    retired.store(false, std::sync::atomic::Ordering::SeqCst);
    assert!(proxy.status_reaches("/providers/cerebras/stale_models", json!([])).await);
    assert_eq!(common::metric(&proxy.url, &stale("cerebras")).await, 0.0);
}

#[actix_web::test]
async fn a_providers_404_model_not_found_flags_the_id_it_was_sent() {
    let gone = |_: &common::Received| {
        let error = json!({"message": "Model hf:zai-org/GLM-4.7 does not exist", "type": "not_found_error",
            "param": "model", "code": "model_not_found"});
        Reply::status(404, json!({ "error": error }))
    };
    let vars = [("MODELS", MODELS), ("ADMIN_TOKEN", ADMIN_TOKEN)];
    let providers = Providers::start(unavailable, gone, respond_as("zai"), &vars);
    let (status, _, body) = providers.chat(&chat("glm")).await;
    assert_eq!((status, body), (200, completion("zai")), "the request fails over");
    let proxy = &providers.proxy;
    assert!(proxy.status_reaches("/providers/synthetic/stale_models", json!(["hf:zai-org/GLM-4.7"])).await);
    let watched = admin_models(proxy).await;
    let synthetic = &watched["providers"]["synthetic"];
    let flagged: Vec<&Value> =
        synthetic["models"].as_array().unwrap().iter().filter(|m| !m["stale"].is_null()).collect();
    assert_eq!(flagged, [&json!({"id": "hf:zai-org/GLM-4.7", "public": ["glm"], "stale": "not_found"})]);
    assert_eq!(synthetic["listing"]["state"], "unchecked", "MODEL_CHECK_INTERVAL=0 reads no listing");
    assert_eq!(proxy.status().await["providers"]["cerebras"]["stale_models"], json!([]), "a 503 flags nothing");
}
