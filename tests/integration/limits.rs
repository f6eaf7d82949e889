//! Per-client limits through every door: rpm, tpm, max_parallel, budgets, expiry, model lists,
//! the rate-limit headers, usage that adds up exactly, and fair waiting for a key.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use awc::http::header::HeaderMap;
use common::{command, config, sse_data, sse_delta, MockUpstream, Proxy, Received, Reply};
use serde_json::{json, Value};
use tokio::sync::Notify;

/// The usage every mock answer reports.
const PROMPT: u64 = 11;
const COMPLETION: u64 = 7;

fn usage() -> Value {
    json!({"prompt_tokens": PROMPT, "completion_tokens": COMPLETION, "total_tokens": PROMPT + COMPLETION})
}

/// A whole answer, or a stream whose usage comes in a last chunk of its own (as OpenAI's does,
/// when asked), each reporting `usage()`.
fn answer(request: &Received) -> Reply {
    let body = request.json();
    if body["stream"] != true {
        return Reply::ok(json!({
            "id": "c1", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
            "usage": usage(),
        }));
    }
    let mut chunks = vec![sse_delta(json!({"role": "assistant", "content": "Hi"}))];
    chunks.push(sse_data(json!({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})));
    if body["stream_options"]["include_usage"] == true {
        chunks.push(sse_data(json!({"id": "c", "object": "chat.completion.chunk", "choices": [], "usage": usage()})));
    }
    chunks.push("data: [DONE]\n\n".to_owned());
    Reply::Sse { chunks, delay: Duration::ZERO, gate: None }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Door {
    OpenAi,
    Anthropic,
    Responses,
}

const DOORS: [Door; 3] = [Door::OpenAi, Door::Anthropic, Door::Responses];

impl Door {
    fn path(self) -> &'static str {
        match self {
            Door::OpenAi => "/v1/chat/completions",
            Door::Anthropic => "/v1/messages",
            Door::Responses => "/v1/responses",
        }
    }

    fn body(self, model: &str, stream: bool) -> Value {
        match self {
            Door::OpenAi => {
                json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "Hello!"}]})
            }
            Door::Anthropic => {
                json!({"model": model, "max_tokens": 50, "stream": stream, "messages": [{"role": "user", "content": "Hello!"}]})
            }
            Door::Responses => json!({"model": model, "stream": stream, "input": "Hello!"}),
        }
    }

    /// The `remaining` header of `what` (`requests`, `tokens`) in this door's names.
    fn remaining(self, headers: &HeaderMap, what: &str) -> Option<u64> {
        let name = match self {
            Door::Anthropic => format!("anthropic-ratelimit-{what}-remaining"),
            _ => format!("x-ratelimit-remaining-{what}"),
        };
        headers.get(name.as_str())?.to_str().ok()?.parse().ok()
    }

    /// The error's code on the OpenAI-shaped doors; Anthropic's error type on its own.
    fn error_kind(self, body: &Value) -> String {
        let kind = match self {
            Door::Anthropic => &body["error"]["type"],
            _ => &body["error"]["code"],
        };
        kind.as_str().unwrap_or_default().to_owned()
    }
}

/// A proxy with client auth on, in front of a mock that answers `answer`.
struct Shared {
    dir: tempfile::TempDir,
    upstream: MockUpstream,
    proxy: Proxy,
}

impl Shared {
    fn start(vars: &[(&str, &str)]) -> Self {
        Self::start_with(answer, vars)
    }

    fn start_with(script: impl Fn(&Received) -> Reply + Send + Sync + 'static, vars: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let upstream = MockUpstream::start(script);
        // The database exists before the proxy starts.
        let db = dir.path().join("keys.db");
        let first = keys(&db, &["add", "operator", "--quiet"]);
        assert_eq!(first.0, Some(0), "{}", first.2);
        let mut all = vec![("ENABLE_INCOMING_AUTH", "true"), ("INCOMING_KEY_DB", db.to_str().unwrap())];
        all.extend_from_slice(vars);
        let proxy = Proxy::start(config(&upstream.url, &all));
        Self { dir, upstream, proxy }
    }

    /// A proxy whose streams hold after their first chunk until the gate is notified; whole
    /// answers come at once.
    fn holding_streams() -> (Self, Arc<Notify>) {
        let gate = Arc::new(Notify::new());
        let held = gate.clone();
        let script = move |request: &Received| match request.json()["stream"] == true {
            true => Reply::Sse { chunks: common::sse_chunks(1), delay: Duration::ZERO, gate: Some(held.clone()) },
            false => answer(request),
        };
        (Self::start_with(script, &[]), gate)
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("keys.db")
    }

    /// A new client key with these limit flags; a running proxy knows it at its first use.
    fn key(&self, name: &str, flags: &[&str]) -> String {
        let mut args = vec!["add", name, "--quiet"];
        args.extend_from_slice(flags);
        keys_ok(&self.db(), &args).unwrap().trim().to_owned()
    }

    async fn send(&self, door: Door, key: &str, body: &Value) -> (u16, HeaderMap, Value, String) {
        let mut response = common::client()
            .post(self.proxy.at(door.path()))
            .insert_header(("authorization", format!("Bearer {key}")))
            .insert_header(("anthropic-version", "2023-06-01"))
            .send_json(body)
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = String::from_utf8(response.body().limit(1 << 20).await.unwrap().to_vec()).unwrap();
        (status, headers, serde_json::from_str(&text).unwrap_or(Value::Null), text)
    }

    async fn chat(&self, door: Door, key: &str) -> (u16, HeaderMap, Value, String) {
        self.send(door, key, &door.body("llama-3.3-70b", false)).await
    }
}

/// `glm-proxy keys --db DB ARGS`: exit code, stdout, stderr.
fn keys(db: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let output = command(db.parent().unwrap(), &[]).arg("keys").arg("--db").arg(db).args(args).output().unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.code(), text(&output.stdout), text(&output.stderr))
}

fn keys_ok(db: &Path, args: &[&str]) -> Result<String, String> {
    match keys(db, args) {
        (Some(0), out, _) => Ok(out),
        (_, _, err) => Err(err),
    }
}

#[actix_web::test]
async fn rpm_answers_429_with_retry_after_and_the_headers_count_down_on_every_door() {
    let shared = Shared::start(&[]);
    for door in DOORS {
        let key = shared.key(&format!("rpm-{door:?}"), &["--rpm", "2"]);
        let before = shared.upstream.received().len();
        let (status, headers, _, text) = shared.chat(door, &key).await;
        assert_eq!(status, 200, "{door:?}: {text}");
        assert_eq!(door.remaining(&headers, "requests"), Some(1), "{door:?}: {headers:?}");
        let (status, headers, _, _) = shared.chat(door, &key).await;
        assert_eq!((status, door.remaining(&headers, "requests")), (200, Some(0)), "{door:?}");
        let (status, headers, body, text) = shared.chat(door, &key).await;
        assert_eq!(status, 429, "{door:?}: {text}");
        let expected = if door == Door::Anthropic { "rate_limit_error" } else { "client_rate_limited" };
        assert_eq!(door.error_kind(&body), expected, "{door:?}: {text}");
        assert!(text.contains("2 requests per minute (rpm)"), "{door:?}: {text}");
        let retry: u64 = headers.get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
        assert!((55..=61).contains(&retry), "{door:?}: Retry-After {retry}");
        assert_eq!(door.remaining(&headers, "requests"), Some(0), "the refusal carries the headers too");
        assert_eq!(shared.upstream.received().len(), before + 2, "{door:?}: the refused request never went upstream");
    }
    let metrics = common::client().get(shared.proxy.at("/metrics")).send().await.unwrap().body().await.unwrap();
    let metrics = String::from_utf8(metrics.to_vec()).unwrap();
    assert!(metrics.contains(r#"glm_proxy_client_limited_total{client="rpm-OpenAi",limit="rpm"} 1"#), "{metrics}");
}

#[actix_web::test]
async fn a_stream_carries_the_headers_on_every_door() {
    let shared = Shared::start(&[]);
    for door in DOORS {
        let key = shared.key(&format!("stream-{door:?}"), &["--rpm", "5", "--tpm", "100000"]);
        let (status, headers, _, text) = shared.send(door, &key, &door.body("llama-3.3-70b", true)).await;
        assert_eq!(status, 200, "{door:?}: {text}");
        assert!(text.contains("data:"), "{door:?}: a stream: {text}");
        assert_eq!(door.remaining(&headers, "requests"), Some(4), "{door:?}: {headers:?}");
        assert!(door.remaining(&headers, "tokens").is_some_and(|left| left < 100_000), "{door:?}: {headers:?}");
    }
}

#[actix_web::test]
async fn a_stream_counts_against_max_parallel_until_it_ends() {
    let (shared, gate) = Shared::holding_streams();
    for door in DOORS {
        let key = shared.key(&format!("parallel-{door:?}"), &["--max-parallel", "1"]);
        let streaming = common::client()
            .post(shared.proxy.at(door.path()))
            .insert_header(("authorization", format!("Bearer {key}")))
            .send_json(&door.body("llama-3.3-70b", true))
            .await
            .unwrap();
        assert_eq!(streaming.status().as_u16(), 200);
        let (status, _, body, text) = shared.chat(door, &key).await;
        assert_eq!(status, 429, "{door:?}: {text}");
        assert!(text.contains("max_parallel"), "{door:?}: {text}");
        if door != Door::Anthropic {
            assert_eq!(body["error"]["code"], "client_rate_limited");
        }
        gate.notify_one();
        let mut streaming = streaming;
        streaming.body().limit(1 << 20).await.unwrap();
        let (status, _, _, text) = shared.chat(door, &key).await;
        assert_eq!(status, 200, "{door:?}: once the stream ended: {text}");
    }
}

#[actix_web::test]
async fn tpm_is_corrected_by_the_reported_usage() {
    let shared = Shared::start(&[]);
    for door in DOORS {
        // One answer reports 18 tokens: the minute's 20 are nearly spent, whatever the estimate.
        let key = shared.key(&format!("tpm-{door:?}"), &["--tpm", "20"]);
        let (status, headers, _, text) = shared.chat(door, &key).await;
        assert_eq!(status, 200, "{door:?}: {text}");
        assert!(door.remaining(&headers, "tokens").is_some(), "{door:?}: {headers:?}");
        let (status, _, body, text) = shared.chat(door, &key).await;
        assert_eq!(status, 429, "{door:?}: {text}");
        assert!(text.contains("20 tokens per minute (tpm)"), "{door:?}: {text}");
        if door != Door::Anthropic {
            assert_eq!(body["error"]["code"], "client_rate_limited");
        }
    }
}

#[actix_web::test]
async fn a_budget_spent_by_a_stream_refuses_the_next_request_until_it_renews() {
    let shared = Shared::start(&[]);
    for door in DOORS {
        let key = shared.key(&format!("budget-{door:?}"), &["--daily-tokens", "10"]);
        let (status, _, _, text) = shared.send(door, &key, &door.body("llama-3.3-70b", true)).await;
        assert_eq!(status, 200, "{door:?}: {text}");
        if door == Door::OpenAi {
            assert!(
                text.contains("\"content\":\"Hi\"")
                    && !text.contains("prompt_tokens")
                    && text.ends_with("data: [DONE]\n\n"),
                "the usage chunk is hidden: {text}"
            );
        }
        let sent = shared.upstream.received().last().unwrap().json();
        assert_eq!(sent["stream_options"]["include_usage"], true, "{door:?}: the stream was asked for its usage");
        let (status, headers, body, text) = shared.chat(door, &key).await;
        assert_eq!(status, 429, "{door:?}: {text}");
        let expected = if door == Door::Anthropic { "rate_limit_error" } else { "client_budget_exceeded" };
        assert_eq!(door.error_kind(&body), expected, "{door:?}: {text}");
        assert!(text.contains("daily budget of 10 tokens"), "{text}");
        let retry: u64 = headers.get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
        let midnight = (chrono::Utc::now().date_naive().succ_opt().unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc()
            - chrono::Utc::now())
        .num_seconds() as u64;
        assert!(retry.abs_diff(midnight) <= 2, "Retry-After {retry} is the time to midnight UTC ({midnight})");
    }
}

#[actix_web::test]
async fn a_client_that_asked_for_the_usage_chunk_still_gets_it() {
    let shared = Shared::start(&[]);
    let key = shared.key("asks", &[]);
    let mut body = Door::OpenAi.body("llama-3.3-70b", true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, _, _, text) = shared.send(Door::OpenAi, &key, &body).await;
    assert_eq!(status, 200);
    assert!(text.contains(r#""prompt_tokens":11"#), "{text}");
}

#[actix_web::test]
async fn an_expired_key_gets_401_expired_api_key() {
    let shared = Shared::start(&[]);
    let key = shared.key("short-lived", &["--expires", "1s"]);
    for door in DOORS {
        let mut last = (0, Value::Null);
        for _ in 0..40 {
            let (status, _, body, _) = shared.chat(door, &key).await;
            last = (status, body);
            if status == 401 {
                break;
            }
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(last.0, 401, "{door:?}: {:?}", last.1);
        let expected = if door == Door::Anthropic { "authentication_error" } else { "expired_api_key" };
        assert_eq!(door.error_kind(&last.1), expected, "{door:?}: {:?}", last.1);
    }
}

#[actix_web::test]
async fn a_model_list_allows_its_models_after_aliases_and_names_them_otherwise() {
    let catalogue = [
        ("MODELS", r#"{"glm": {"cerebras": "zai-glm-4.7"}, "qwen": {"cerebras": "qwen-3-235b"}}"#),
        ("MODEL_ALIASES", r#"{"claude-*": "glm", "gpt-4o": "qwen"}"#),
    ];
    let shared = Shared::start(&catalogue);
    let key = shared.key("glm-only", &["--models", "glm"]);
    for door in DOORS {
        let before = shared.upstream.received().len();
        let (status, _, _, text) = shared.send(door, &key, &door.body("claude-sonnet-4", false)).await;
        assert_eq!(status, 200, "{door:?}: an alias of glm is glm: {text}");
        let (status, _, body, text) = shared.send(door, &key, &door.body("gpt-4o", false)).await;
        assert_eq!(status, 403, "{door:?}: {text}");
        let expected = if door == Door::Anthropic { "permission_error" } else { "model_not_allowed" };
        assert_eq!(door.error_kind(&body), expected, "{door:?}: {text}");
        assert!(text.contains("\\\"qwen\\\"") && text.contains("it may use: glm"), "{door:?}: {text}");
        assert_eq!(shared.upstream.received().len(), before + 1, "{door:?}: the refused request never went upstream");
    }
}

#[actix_web::test]
async fn the_model_listing_shows_a_key_the_models_it_may_use() {
    let catalogue = [
        ("MODELS", r#"{"glm": {"cerebras": "zai-glm-4.7"}, "qwen": {"cerebras": "qwen-3-235b"}}"#),
        ("MODEL_ALIASES", r#"{"claude-*": "glm", "gpt-4o": "qwen", "glm-latest": "glm"}"#),
    ];
    let shared = Shared::start(&catalogue);
    let get = |key: String, path: &'static str| {
        let request =
            common::client().get(shared.proxy.at(path)).insert_header(("authorization", format!("Bearer {key}")));
        async move {
            let mut response = request.send().await.unwrap();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (response.status().as_u16(), body)
        }
    };
    let ids = |body: &Value| -> Vec<String> {
        body["data"].as_array().unwrap().iter().map(|model| model["id"].as_str().unwrap().to_owned()).collect()
    };
    let (glm_only, everything) = (shared.key("list-glm", &["--models", "glm"]), shared.key("list-all", &[]));
    let (status, body) = get(glm_only.clone(), "/v1/models").await;
    assert_eq!(
        (status, ids(&body)),
        (200, vec!["glm".to_owned(), "glm-latest".to_owned()]),
        "an alias of glm is glm: {body}"
    );
    let (status, body) = get(everything, "/v1/models").await;
    assert_eq!((status, ids(&body).len()), (200, 4), "{body}");
    let (status, body) = get(glm_only.clone(), "/v1/models/gpt-4o").await;
    assert_eq!((status, &body["error"]["code"]), (403, &json!("model_not_allowed")), "{body}");
    assert_eq!(get(glm_only, "/v1/models/glm-latest").await.0, 200);
    assert!(shared.upstream.received().is_empty(), "the listing is the proxy's own");
}

#[actix_web::test]
async fn keys_set_reaches_a_running_proxy_within_two_seconds_and_none_clears() {
    let shared = Shared::start(&[]);
    let key = shared.key("changing", &[]);
    assert_eq!(shared.chat(Door::OpenAi, &key).await.0, 200);
    let (_, headers, _, _) = shared.chat(Door::OpenAi, &key).await;
    assert_eq!(Door::OpenAi.remaining(&headers, "requests"), None, "no limits, no headers");
    keys_ok(&shared.db(), &["set", "changing", "--rpm", "1"]).unwrap();
    let started = std::time::Instant::now();
    let mut refused = false;
    while started.elapsed() < Duration::from_secs(3) {
        if shared.chat(Door::OpenAi, &key).await.0 == 429 {
            refused = true;
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused && started.elapsed() <= Duration::from_millis(2500), "took {:?}", started.elapsed());
    keys_ok(&shared.db(), &["set", "changing", "--rpm", "none"]).unwrap();
    let mut cleared = false;
    for _ in 0..30 {
        if shared.chat(Door::OpenAi, &key).await.0 == 200 {
            cleared = true;
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cleared, "a cleared limit no longer refuses");
}

#[actix_web::test]
async fn keys_usage_and_metrics_show_exactly_the_tokens_the_mock_reported() {
    let shared = Shared::start(&[]);
    let key = shared.key("counted", &[]);
    for door in DOORS {
        assert_eq!(shared.chat(door, &key).await.0, 200);
        assert_eq!(shared.send(door, &key, &door.body("llama-3.3-70b", true)).await.0, 200);
    }
    let db = shared.db();
    let flushed = common::eventually(|| {
        let out = keys_ok(&db, &["usage", "counted", "--json"]).unwrap();
        let usage: Value = serde_json::from_str(&out).unwrap();
        usage["total"]["requests"] == 6
    })
    .await;
    assert!(flushed, "six requests reach the daily rows");
    let usage: Value = serde_json::from_str(&keys_ok(&db, &["usage", "counted", "--json"]).unwrap()).unwrap();
    assert_eq!(usage["total"]["prompt_tokens"], 6 * PROMPT, "{usage}");
    assert_eq!(usage["total"]["completion_tokens"], 6 * COMPLETION, "{usage}");
    assert_eq!(usage["usage"][0]["model"], "llama-3.3-70b");
    let table = keys_ok(&db, &["usage"]).unwrap();
    assert!(table.contains("counted") && table.contains(&(6 * PROMPT).to_string()), "{table}");
    let listed: Value = serde_json::from_str(&keys_ok(&db, &["list", "--json"]).unwrap()).unwrap();
    let counted = listed["keys"].as_array().unwrap().iter().find(|k| k["name"] == "counted").unwrap().clone();
    assert_eq!(counted["tokens_today"], 6 * (PROMPT + COMPLETION));
    let metrics = common::client().get(shared.proxy.at("/metrics")).send().await.unwrap().body().await.unwrap();
    let metrics = String::from_utf8(metrics.to_vec()).unwrap();
    assert!(
        metrics
            .contains(&format!("glm_proxy_client_tokens_total{{client=\"counted\",direction=\"in\"}} {}", 6 * PROMPT)),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "glm_proxy_client_tokens_total{{client=\"counted\",direction=\"out\"}} {}",
            6 * COMPLETION
        )),
        "{metrics}"
    );
}

#[test]
fn bad_limits_exit_2_in_one_line_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keys.db");
    keys_ok(&db, &["add", "first", "--rpm", "5"]).unwrap();
    for args in [
        &["add", "x", "--rpm", "-1"][..],
        &["add", "x", "--expires", "2020-01-01"],
        &["add", "x", "--models", "glm,qwen?"],
        &["set", "first", "--tpm", "lots"],
        &["set", "first"],
    ] {
        let (code, _, stderr) = keys(&db, args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        let problem: Vec<&str> = stderr.lines().filter(|l| !l.contains("database")).collect();
        assert_eq!(problem.len(), 1, "{args:?}: one line: {stderr}");
    }
    let listed: Value = serde_json::from_str(&keys_ok(&db, &["list", "--json"]).unwrap()).unwrap();
    assert_eq!(listed["total"], 1, "nothing was added");
    assert_eq!(listed["keys"][0]["rpm"], 5, "nothing was changed");
}

/// Every key rests; client A queues 50 requests, then client B one. When a key frees, the mock
/// sees B's request among the first two.
#[actix_web::test]
async fn waiting_requests_are_woken_client_by_client() {
    const N: usize = 50;
    let resting = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let rest = resting.clone();
    let shared = Shared::start_with(
        move |request| {
            if request.json()["messages"][0]["content"] != "prime" {
                // Each wave of woken requests reaches the mock before the next is woken.
                return Reply::Late { delay: Duration::from_millis(200), reply: Box::new(answer(request)) };
            }
            if rest.load(std::sync::atomic::Ordering::SeqCst) {
                return Reply::rate_limited(None);
            }
            answer(request)
        },
        // One worker: the woken requests start in the order they were woken.
        &[("WORKERS", "1"), ("CEREBRAS_COOLDOWN", "2")],
    );
    let (primer, a, b) = (shared.key("primer", &[]), shared.key("a", &[]), shared.key("b", &[]));
    let send = |key: String, content: String| {
        let url = shared.proxy.at("/v1/chat/completions");
        async move {
            let body = json!({"model": "m", "messages": [{"role": "user", "content": content}]});
            let response = common::client()
                .post(url)
                .insert_header(("authorization", format!("Bearer {key}")))
                .send_json(&body)
                .await;
            match response {
                Ok(r) => r.status().as_u16(),
                Err(e) => panic!("{e}"),
            }
        }
    };
    // Both keys rate limited: the primer waits for one, and rests them.
    let primed = actix_rt::spawn(send(primer, "prime".into()));
    assert!(shared.proxy.status_reaches("/requests_waiting_for_key", json!(1)).await);
    resting.store(false, std::sync::atomic::Ordering::SeqCst);
    let mut waiting = Vec::new();
    for i in 0..N {
        waiting.push(actix_rt::spawn(send(a.clone(), format!("a{i}"))));
    }
    assert!(shared.proxy.status_reaches("/requests_waiting_for_key", json!(N + 1)).await);
    waiting.push(actix_rt::spawn(send(b.clone(), "b".into())));
    assert!(shared.proxy.status_reaches("/requests_waiting_for_key", json!(N + 2)).await);
    for request in waiting {
        assert_eq!(request.await.unwrap(), 200);
    }
    assert_eq!(primed.await.unwrap(), 200);
    let order: Vec<String> = shared
        .upstream
        .received()
        .iter()
        .map(|r| r.json()["messages"][0]["content"].as_str().unwrap_or_default().to_owned())
        .filter(|content| content != "prime")
        .collect();
    assert_eq!(order.len(), N + 1);
    let b_at = order.iter().position(|c| c == "b").unwrap();
    assert!(b_at < 2, "B's one request came {b_at}th of 51: {order:?}");
}

/// The OpenAI Python SDK, default retries: its first attempt meets `max_parallel` (a stream
/// holds the key's one place), it waits the `Retry-After` and gets through by itself.
#[actix_web::test]
async fn the_openai_sdk_gets_through_a_client_rate_limit_by_itself() {
    let (shared, gate) = Shared::holding_streams();
    let key = shared.key("sdk", &["--max-parallel", "1"]);
    let mut streaming = common::client()
        .post(shared.proxy.at("/v1/chat/completions"))
        .insert_header(("authorization", format!("Bearer {key}")))
        .send_json(&Door::OpenAi.body("llama-3.3-70b", true))
        .await
        .unwrap();
    let (python, script, url) =
        (crate::sdk::python(), crate::sdk::sdk_dir().join("openai_retry_client.py"), shared.proxy.url.clone());
    let sdk_key = key.clone();
    let run = std::thread::spawn(move || {
        std::process::Command::new(python).arg(script).arg(url).arg(sdk_key).output().unwrap()
    });
    // Once the SDK has met the limit, the stream ends and frees the key's place.
    let limited = r#"glm_proxy_client_limited_total{client="sdk",limit="max_parallel"} 1"#;
    let mut seen = false;
    for _ in 0..300 {
        let metrics = common::client().get(shared.proxy.at("/metrics")).send().await.unwrap().body().await.unwrap();
        if String::from_utf8_lossy(&metrics).contains(limited) {
            seen = true;
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen, "the SDK's first attempt was refused");
    gate.notify_one();
    streaming.body().limit(1 << 20).await.unwrap();
    while !run.is_finished() {
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    let output = run.join().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the SDK failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("openai sdk retry: ok"), "{stdout}");
}
