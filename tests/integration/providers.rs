//! Every provider a key pool: Synthetic's and Z.ai's keys rotate as Cerebras' do, a resting
//! alternative pool is passed over at once, and `PROVIDERS_FILE` adds providers of its own.

use crate::common;

use common::{completion, config, respond_as, MockUpstream, Providers, Proxy, Received, Reply};
use serde_json::{json, Value};

fn long_chat() -> Value {
    // 400 characters at 1.7 per token is ~235 tokens, over the test threshold of 100: the
    // request goes to the alternatives first.
    json!({"model": "llama-3.3-70b", "stream": false, "messages": [{"role": "user", "content": "x".repeat(400)}]})
}

fn unavailable(_: &Received) -> Reply {
    Reply::status(503, json!({"error": {"message": "service unavailable"}}))
}

fn keys_seen(upstream: &MockUpstream) -> Vec<String> {
    upstream.received().iter().map(|r| r.key().to_owned()).collect()
}

const SYNTHETIC_PACKS: (&str, &str) = ("SYNTHETIC_API_KEYS", r#"{"pack1":"sk-s1","pack2":"sk-s2"}"#);

#[actix_web::test]
async fn a_429_on_synthetics_first_key_is_served_by_its_second_and_rests_only_the_first() {
    let providers = Providers::start(
        unavailable,
        |r: &Received| if r.key() == "sk-s1" { Reply::rate_limited(Some(60)) } else { Reply::ok(completion("pack2")) },
        respond_as("zai"),
        &[("SYNTHETIC_API_KEY", ""), SYNTHETIC_PACKS],
    );
    let (status, headers, body) = providers.chat(&long_chat()).await;
    assert_eq!((status, body), (200, completion("pack2")));
    assert_eq!(headers.get("x-glm-proxy-provider").unwrap(), "synthetic");
    assert_eq!(headers.get("x-glm-proxy-key").unwrap(), "pack2");
    assert_eq!(keys_seen(&providers.synthetic), ["sk-s1", "sk-s2"], "the next Synthetic key before Z.ai");
    assert_eq!(providers.hits(), (0, 2, 0));

    let proxy = &providers.proxy;
    assert!(proxy.status_reaches("/providers/synthetic/keys/0/state", json!("cooling_down")).await);
    let status = proxy.status().await;
    let pool = &status["providers"]["synthetic"];
    assert_eq!(pool["keys"][0]["name"], "pack1");
    assert!(pool["keys"][0]["rate_limited_for"].as_f64().unwrap() > 50.0, "Retry-After is honoured: {pool}");
    assert_eq!((&pool["keys"][1]["name"], &pool["keys"][1]["available"]), (&json!("pack2"), &json!(true)));
    assert_eq!(pool["current_key"], "pack2");
    assert!(status["keys"].as_array().unwrap().iter().all(|k| k["available"] == true), "Cerebras' keys untouched");
    assert!(!status.to_string().contains("sk-s"), "no key value in /_status");

    // Sticky: the next request goes to pack2 straight away.
    let (status, headers, _) = providers.chat(&long_chat()).await;
    assert_eq!((status, headers.get("x-glm-proxy-key").unwrap().to_str().unwrap()), (200, "pack2"));
    assert_eq!(keys_seen(&providers.synthetic), ["sk-s1", "sk-s2", "sk-s2"]);
}

#[actix_web::test]
async fn a_pool_of_zai_keys_rotates_past_a_rejected_key() {
    let providers = Providers::start(
        unavailable,
        unavailable,
        |r: &Received| match r.key() {
            "sk-z1" => Reply::status(401, json!({"error": {"message": "invalid api key"}})),
            _ => Reply::ok(completion("z2")),
        },
        &[("SYNTHETIC_API_KEY", ""), ("ZAI_API_KEY", ""), ("ZAI_API_KEYS", r#"{"z1":"sk-z1","z2":"sk-z2"}"#)],
    );
    for _ in 0..2 {
        let (status, headers, body) = providers.chat(&long_chat()).await;
        assert_eq!((status, body), (200, completion("z2")));
        assert_eq!(headers.get("x-glm-proxy-provider").unwrap(), "zai");
        assert_eq!(headers.get("x-glm-proxy-key").unwrap(), "z2");
    }
    assert_eq!(keys_seen(&providers.zai), ["sk-z1", "sk-z2", "sk-z2"], "the rejected key is not tried again");
    assert!(providers.proxy.status_reaches("/providers/zai/keys/0/state", json!("invalid")).await);
    assert_eq!(providers.proxy.status().await["providers"]["zai"]["current_key"], "z2");
}

#[actix_web::test]
async fn a_whole_resting_synthetic_pool_sends_the_request_straight_to_zai() {
    // A wait for Synthetic would last a minute, past the client's 30 s timeout.
    let providers = Providers::start(
        unavailable,
        |_: &Received| Reply::rate_limited(Some(60)),
        respond_as("zai"),
        &[("SYNTHETIC_API_KEY", ""), SYNTHETIC_PACKS, ("MAX_KEY_WAIT", "120")],
    );
    let (status, headers, body) = providers.chat(&long_chat()).await;
    assert_eq!((status, body), (200, completion("zai")));
    assert_eq!(headers.get("x-glm-proxy-provider").unwrap(), "zai");
    assert_eq!(keys_seen(&providers.synthetic), ["sk-s1", "sk-s2"]);

    assert!(providers.proxy.status_reaches("/providers/synthetic/keys/1/state", json!("cooling_down")).await);
    let (status, headers, _) = providers.chat(&long_chat()).await;
    assert_eq!((status, headers.get("x-glm-proxy-provider").unwrap().to_str().unwrap()), (200, "zai"));
    assert_eq!(providers.hits(), (0, 2, 2), "no Synthetic key is asked while the pool rests");
    let status = providers.proxy.status().await;
    assert_eq!(status["providers"]["synthetic"]["requests_waiting_for_key"], 0);
}

#[actix_web::test]
async fn the_last_provider_that_could_serve_is_waited_for_within_max_key_wait() {
    // Z.ai's one key rests for a second after its first answer; nothing follows Z.ai.
    let first = std::sync::atomic::AtomicBool::new(true);
    let providers = Providers::start(
        unavailable,
        unavailable,
        move |_: &Received| {
            if first.swap(false, std::sync::atomic::Ordering::SeqCst) {
                Reply::rate_limited(Some(1))
            } else {
                Reply::ok(completion("zai after a rest"))
            }
        },
        // The floor under Retry-After, for every pool, short for the test.
        &[("MAX_KEY_WAIT", "10"), ("CEREBRAS_COOLDOWN", "0.01")],
    );
    let (status, headers, body) = providers.chat(&long_chat()).await;
    assert_eq!((status, body), (200, completion("zai after a rest")));
    assert_eq!(headers.get("x-glm-proxy-provider").unwrap(), "zai");
    assert_eq!(keys_seen(&providers.zai), ["sk-zai", "sk-zai"]);
}

#[actix_web::test]
async fn the_single_key_variables_still_make_a_pool_of_one() {
    let providers = Providers::start(unavailable, unavailable, respond_as("zai"), &[]);
    let (status, headers, _) = providers.chat(&long_chat()).await;
    assert_eq!((status, headers.get("x-glm-proxy-key").unwrap().to_str().unwrap()), (200, "key1"));
    assert_eq!(
        (keys_seen(&providers.synthetic), keys_seen(&providers.zai)),
        (vec!["sk-synthetic".into()], vec!["sk-zai".into()])
    );
    let status = providers.proxy.status().await;
    for provider in ["synthetic", "zai"] {
        let pool = &status["providers"][provider];
        assert_eq!(pool["keys"].as_array().unwrap().len(), 1, "{pool}");
        assert_eq!((&pool["keys"][0]["name"], &pool["current_key"]), (&json!("key1"), &json!("key1")));
    }
}

#[actix_web::test]
async fn a_provider_from_providers_file_serves_its_models_and_takes_its_place_in_failover() {
    let cerebras = MockUpstream::start(unavailable);
    let local = MockUpstream::start(|r: &Received| Reply::ok(completion(&format!("local {}", r.json()["model"]))));
    let zai = MockUpstream::start(respond_as("zai"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("providers.json");
    let entry = json!([{"name": "local-vllm", "base_url": local.url, "keys": {"gpu1": "sk-local"},
                        "after": "cerebras", "models": {"glm": "glm-local"}}]);
    std::fs::write(&file, entry.to_string()).unwrap();
    let models = r#"{"glm": {"cerebras": "zai-glm-4.7", "zai": "glm-4.7"}, "qwen": {"local-vllm": "qwen-local"}}"#;
    let proxy = Proxy::start(config(
        &cerebras.url,
        &[
            ("ZAI_API_KEY", "sk-zai"),
            ("ZAI_BASE_URL", &zai.url),
            ("PROVIDERS_FILE", file.to_str().unwrap()),
            ("MODELS", models),
        ],
    ));
    let chat = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});

    // A model only it serves goes to it alone, with its id.
    let mut response = common::client().post(proxy.at("/v1/chat/completions")).send_json(&chat("qwen")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("x-glm-proxy-provider").unwrap(), "local-vllm");
    assert_eq!(response.headers().get("x-glm-proxy-key").unwrap(), "gpu1");
    assert_eq!(response.json::<Value>().await.unwrap(), completion("local \"qwen-local\""));
    assert!(cerebras.received().is_empty());

    // After Cerebras, before Z.ai: a Cerebras outage fails over to it.
    let mut response = common::client().post(proxy.at("/v1/chat/completions")).send_json(&chat("glm")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), completion("local \"glm-local\""));
    assert_eq!(cerebras.received()[0].json()["model"], "zai-glm-4.7");
    assert_eq!(keys_seen(&local), ["sk-local", "sk-local"]);
    assert!(zai.received().is_empty());

    let status = proxy.status().await;
    assert_eq!(status["providers"]["local-vllm"]["keys"][0]["name"], "gpu1");
    assert_eq!(status["providers"]["local-vllm"]["requests"], 2);
    assert!(!status.to_string().contains("sk-local"));
    let metrics = common::client().get(proxy.at("/metrics")).send().await.unwrap().body().await.unwrap();
    let metrics = String::from_utf8(metrics.to_vec()).unwrap();
    assert!(metrics.contains(r#"glm_proxy_key_state{key="gpu1",provider="local-vllm",state="available"} 1"#));
    assert!(metrics.contains(r#"glm_proxy_upstream_attempts_total{provider="local-vllm"} 2"#));
}
