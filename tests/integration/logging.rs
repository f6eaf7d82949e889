//! Request logs: what a record holds, streams, failovers, redaction, drops, retention, shutdown.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{chat_body, client, completion, config, sse_chunks, MockUpstream, Proxy, ProxyProcess, Reply};
use futures_util::StreamExt;
use serde_json::{json, Value};

fn today_file(dir: &Path) -> PathBuf {
    dir.join(chrono::Utc::now().format("%Y-%m-%d").to_string()).join("requests.jsonl")
}

/// The records written so far.
fn records(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(today_file(dir))
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is one JSON record"))
        .collect()
}

/// Waits until `n` records are written, and returns them.
async fn wait_for_records(dir: &Path, n: usize) -> Vec<Value> {
    assert!(common::eventually(|| records(dir).len() >= n).await, "{} records, wanted {n}", records(dir).len());
    records(dir)
}

fn logging_proxy(upstream_url: &str, dir: &Path, extra: &[(&str, &str)]) -> Proxy {
    let mut vars = vec![("LOG_REQUESTS", "true"), ("LOG_DIR", dir.to_str().unwrap())];
    vars.extend_from_slice(extra);
    Proxy::start(config(upstream_url, &vars))
}

#[actix_web::test]
async fn a_non_streaming_request_is_logged_under_its_request_id() {
    let logs = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start(|_| Reply::ok(completion("logged")));
    let proxy = logging_proxy(&upstream.url, logs.path(), &[]);

    let response = client()
        .post(proxy.at("/v1/chat/completions?debug=1"))
        .insert_header(("x-request-id", "req-42"))
        .send_json(&chat_body(false))
        .await
        .unwrap();
    assert_eq!(response.headers().get("x-request-id").unwrap(), "req-42");

    let record = wait_for_records(logs.path(), 1).await.remove(0);
    assert_eq!(record["request_id"], "req-42");
    assert_eq!(
        (record["model"].as_str(), record["upstream_model"].as_str()),
        (Some("llama-3.3-70b"), Some("llama-3.3-70b"))
    );
    assert_eq!((record["provider"].as_str(), record["key"].as_str()), (Some("cerebras"), Some("key1")));
    assert!(record["ttfb_ms"].as_f64().unwrap() > 0.0);
    assert_eq!((record["method"].as_str(), record["path"].as_str()), (Some("POST"), Some("/v1/chat/completions")));
    assert_eq!(record["query"], "debug=1");
    assert_eq!(record["request_body"], chat_body(false));
    assert_eq!(record["status"], 200);
    assert_eq!(record["response"]["content"], "logged", "the answer as its message: jq -r .response.content");
    assert_eq!(record["finish_reason"], "stop");
    assert_eq!(record["response_complete"], true);
    assert!(record["duration_ms"].as_f64().unwrap() >= 0.0);
    assert!(record["started_at"].as_str().unwrap().ends_with('Z'));
    let attempts = record["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!((attempts[0]["provider"].as_str(), attempts[0]["key"].as_str()), (Some("cerebras"), Some("key1")));
    assert_eq!(attempts[0]["status"], 200);

    // A proxy without a client id makes one up, and every answer carries it.
    let mut status = client().get(proxy.at("/_status")).send().await.unwrap();
    assert!(!status.headers().get("x-request-id").unwrap().is_empty());
    assert_eq!(status.json::<Value>().await.unwrap()["log_records_dropped"], 0);
}

#[actix_web::test]
async fn a_streaming_request_is_logged_as_the_message_it_streamed_with_its_usage() {
    let logs = tempfile::tempdir().unwrap();
    let mut chunks = sse_chunks(5);
    chunks.insert(
        5,
        "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":5}}\n\n".to_owned(),
    );
    let sent = chunks.clone();
    let upstream =
        MockUpstream::start(move |_| Reply::Sse { chunks: sent.clone(), delay: Duration::from_millis(5), gate: None });
    let proxy = logging_proxy(&upstream.url, logs.path(), &[]);

    let mut response = client().post(proxy.at("/v1/chat/completions")).send_json(&chat_body(true)).await.unwrap();
    let mut received = Vec::new();
    while let Some(chunk) = response.next().await {
        received.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(received, chunks.concat().as_bytes());
    let record = wait_for_records(logs.path(), 1).await.remove(0);
    assert_eq!(record["response"]["content"], "01234");
    assert!(record.get("response_body").is_none(), "not the raw SSE");
    assert_eq!(record["response_body_bytes"].as_u64(), Some(received.len() as u64));
    assert_eq!((record["prompt_tokens"].as_u64(), record["completion_tokens"].as_u64()), (Some(11), Some(5)));
    assert_eq!(record["finish_reason"], "stop");
    assert_eq!(record["response_headers"]["content-type"], "text/event-stream");
}

#[actix_web::test]
async fn a_failover_is_logged_with_every_attempt_and_no_secret_reaches_any_log_file() {
    let logs = tempfile::tempdir().unwrap();
    let cerebras = MockUpstream::start(|r| match r.key() {
        "sk-1" => Reply::rate_limited(Some(30)),
        _ => Reply::status(503, json!({"error": {"message": "down"}})),
    });
    let synthetic = MockUpstream::start(|_| Reply::ok(completion("synthetic")));
    let proxy = logging_proxy(
        &cerebras.url,
        logs.path(),
        &[("SYNTHETIC_API_KEY", "sk-synthetic-secret"), ("SYNTHETIC_BASE_URL", &synthetic.url)],
    );

    let response = client()
        .post(proxy.at("/v1/chat/completions"))
        .insert_header(("authorization", "Bearer sk-client-secret"))
        .insert_header(("x-api-key", "sk-client-other"))
        .insert_header(("x-session-token", "tok-secret"))
        .send_json(&chat_body(false))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let record = wait_for_records(logs.path(), 1).await.remove(0);
    let attempts: Vec<(String, Value, Value)> = record["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["provider"].as_str().unwrap().to_owned(), a["key"].clone(), a["status"].clone()))
        .collect();
    assert_eq!(
        attempts,
        [
            ("cerebras".to_owned(), json!("key1"), json!(429)),
            ("cerebras".to_owned(), json!("key2"), json!(503)),
            ("synthetic".to_owned(), json!("key1"), json!(200)),
        ]
    );
    assert_eq!(record["attempts"][1]["error"], "HTTP 503");
    assert_eq!(record["request_headers"]["authorization"], "[redacted]");

    for entry in walk(logs.path()) {
        let text = std::fs::read_to_string(&entry).unwrap();
        for secret in ["sk-client-secret", "sk-client-other", "tok-secret", "sk-synthetic-secret", "sk-1", "sk-2"] {
            assert!(!text.contains(secret), "{secret} found in {}", entry.display());
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[actix_web::test]
async fn a_stalled_writer_drops_records_not_requests() {
    let logs = tempfile::tempdir().unwrap();
    // A FIFO nobody reads: opening it blocks the writer, like a hung disk.
    let file = today_file(logs.path());
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(&file).status().unwrap().success());
    let upstream = MockUpstream::start(|_| Reply::ok(completion("ok")));
    let proxy = logging_proxy(&upstream.url, logs.path(), &[("LOG_QUEUE_CAPACITY", "2")]);

    for _ in 0..30 {
        let response = client().post(proxy.at("/v1/chat/completions")).send_json(&chat_body(false)).await.unwrap();
        assert_eq!(response.status(), 200);
    }
    // The queue holds two and the stuck writer one: the rest were dropped, and counted.
    let dropped = proxy.status().await["log_records_dropped"].as_u64().unwrap();
    assert!(dropped >= 20, "most records dropped while the writer is stuck: {dropped}");

    // Unblock the writer so its thread can finish.
    std::thread::spawn(move || std::fs::read(file));
}

#[actix_web::test]
async fn old_day_folders_are_deleted_at_start() {
    let logs = tempfile::tempdir().unwrap();
    let old = logs.path().join("2020-01-01");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(old.join("requests.jsonl"), "{}\n").unwrap();
    let kept = logs.path().join(chrono::Utc::now().format("%Y-%m-%d").to_string());
    std::fs::create_dir_all(&kept).unwrap();
    let upstream = MockUpstream::start(|_| Reply::ok(completion("ok")));
    let _proxy = logging_proxy(&upstream.url, logs.path(), &[("LOG_RETENTION_DAYS", "3")]);
    assert!(common::eventually(|| !old.exists()).await, "the 2020 folder is past retention");
    assert!(kept.exists());
}

/// Sends `signal` to a proxy process while a stream is in flight: the stream must finish, the
/// process exit 0, and the record be written.
async fn a_stop_signal_drains_a_stream(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start(|_| Reply::sse(10, Duration::from_millis(100)));
    let proxy = ProxyProcess::start(
        dir.path(),
        &[("CEREBRAS_BASE_URL", &upstream.url), ("LOG_REQUESTS", "true"), ("LOG_DIR", "logs")],
    );
    let mut response =
        client().post(format!("{}/v1/chat/completions", proxy.url)).send_json(&chat_body(true)).await.unwrap();
    let mut received = response.next().await.unwrap().unwrap().to_vec();

    let pid = proxy.child.id().to_string();
    assert!(std::process::Command::new("kill").args([signal, &pid]).status().unwrap().success());
    while let Some(chunk) = response.next().await {
        received.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(received, sse_chunks(10).concat().as_bytes(), "the stream completed");
    assert!(proxy.terminate_wait().await.success());

    let records = records(&dir.path().join("logs"));
    assert_eq!(records.len(), 1, "the record was written before exit");
    assert_eq!(records[0]["response"]["content"], "0123456789");
}

#[actix_web::test]
async fn sigterm_during_a_stream_lets_it_finish_and_writes_its_record() {
    a_stop_signal_drains_a_stream("-TERM").await;
}

#[actix_web::test]
async fn sigint_drains_like_sigterm() {
    a_stop_signal_drains_a_stream("-INT").await;
}

#[actix_web::test]
async fn bodies_are_cut_at_the_limit_with_their_whole_length_recorded() {
    let logs = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start(|_| Reply::sse(40, Duration::ZERO));
    let proxy = logging_proxy(&upstream.url, logs.path(), &[("LOG_BODY_MAX_BYTES", "100")]);
    let request = json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "x".repeat(1000)}]});
    let mut response = client().post(proxy.at("/v1/chat/completions")).send_json(&request).await.unwrap();
    let received = response.body().await.unwrap();
    assert_eq!(received, sse_chunks(40).concat(), "the client gets everything; only the record is cut");

    let record = wait_for_records(logs.path(), 1).await.remove(0);
    let request_text = request.to_string();
    assert_eq!(record["request_body"], request_text[..100]);
    assert_eq!(
        (record["request_body_bytes"].as_u64(), record["request_body_cut"].as_bool()),
        (Some(request_text.len() as u64), Some(true))
    );
    assert_eq!(record["response_body_bytes"].as_u64(), Some(received.len() as u64));
    assert_eq!(record["response_body_cut"], true);
    let content = record["response"]["content"].as_str().unwrap();
    assert!(!content.is_empty() && "0123456789".starts_with(content), "the message of what was kept: {content}");
}

#[actix_web::test]
async fn past_the_days_size_cap_records_keep_their_metadata_and_lose_their_bodies() {
    let logs = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start(|_| Reply::ok(completion("logged")));
    let proxy = logging_proxy(&upstream.url, logs.path(), &[("LOG_MAX_DAY_BYTES", "1")]);
    for _ in 0..2 {
        client()
            .post(proxy.at("/v1/chat/completions"))
            .send_json(&chat_body(false))
            .await
            .unwrap()
            .body()
            .await
            .unwrap();
    }
    let records = wait_for_records(logs.path(), 2).await;
    assert_eq!(records[0]["request_body"], chat_body(false), "the first record of the day fits");
    assert_eq!((records[1]["request_body"].is_null(), records[1]["response_body"].is_null()), (true, true));
    assert_eq!(records[1]["bodies_omitted"], true);
    assert_eq!(records[1]["status"], 200);
    assert!(records[1]["request_body_bytes"].as_u64().unwrap() > 0);
    let metrics = client().get(proxy.at("/metrics")).send().await.unwrap().body().await.unwrap();
    assert!(String::from_utf8_lossy(&metrics).contains("glm_proxy_log_bodies_omitted_total 1"));
}

#[actix_web::test]
async fn records_past_the_queues_byte_bound_are_dropped_and_counted() {
    let logs = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start(|_| Reply::ok(completion("logged")));
    // Every record weighs more than a kilobyte: none fits in a queue of 100 bytes.
    let proxy = logging_proxy(&upstream.url, logs.path(), &[("LOG_QUEUE_MAX_BYTES", "100")]);
    let response = client().post(proxy.at("/v1/chat/completions")).send_json(&chat_body(false)).await.unwrap();
    assert_eq!(response.status(), 200, "the request never pays for its record");
    assert!(proxy.status_reaches("/log_records_dropped", json!(1)).await);
    assert!(records(logs.path()).is_empty());
}

#[actix_web::test]
async fn without_bodies_a_record_keeps_every_other_field_and_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let logs = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start(|_| {
        Reply::ok(json!({"choices": [{"message": {"content": "private"}, "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 4, "completion_tokens": 1}}))
    });
    let proxy = logging_proxy(&upstream.url, logs.path(), &[("LOG_BODIES", "false")]);
    let response = client()
        .post(proxy.at("/v1/chat/completions?api_key=sk-in-the-query&limit=1"))
        .send_json(&chat_body(false))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let record = wait_for_records(logs.path(), 1).await.remove(0);
    assert!(
        record["request_body"].is_null() && record.get("response").is_none() && record.get("response_body").is_none()
    );
    assert_eq!((record["prompt_tokens"].as_u64(), record["finish_reason"].as_str()), (Some(4), Some("stop")));
    assert_eq!((record["model"].as_str(), record["provider"].as_str()), (Some("llama-3.3-70b"), Some("cerebras")));
    assert_eq!(record["query"], "api_key=[redacted]&limit=1");
    let file = today_file(logs.path());
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(file.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
    assert!(!std::fs::read_to_string(&file).unwrap().contains("private"), "no body, not even the answer's text");
}
