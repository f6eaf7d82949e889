//! Bounded under hostile input: linear time on adversarial bodies, bounded memory and waits,
//! and a timeout on every phase of a client's request.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{client, completion, config, MockUpstream, Proxy, ProxyProcess, Reply};
use serde_json::{json, Value};

fn chat_saying(text: &str) -> Value {
    json!({"model": "m", "messages": [{"role": "user", "content": text}]})
}

/// A request head for a chat completion whose body is `length` bytes.
fn head(length: usize) -> String {
    format!("POST /v1/chat/completions HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n")
}

fn connect(proxy_url: &str) -> TcpStream {
    let stream = TcpStream::connect(proxy_url.trim_start_matches("http://")).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream
}

/// Reads what the server sends until it closes the connection.
fn read_to_close(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[actix_web::test]
async fn an_adversarial_tool_history_is_answered_in_linear_time_and_the_worker_stays_responsive() {
    let upstream = MockUpstream::start(|_| Reply::ok(completion("repaired")));
    let proxy = Proxy::start(config(&upstream.url, &[("WORKERS", "1")]));
    // One assistant message with 20 000 calls, then 20 000 tool messages that answer none of
    // them: a search per answer costs 400 million comparisons.
    let calls: Vec<Value> = (0..20_000).map(|i| json!({"id": format!("call_{i}"), "type": "function"})).collect();
    let mut messages = vec![json!({"role": "assistant", "tool_calls": calls})];
    messages.extend((0..20_000).map(|i| json!({"role": "tool", "tool_call_id": format!("other_{i}"), "content": "x"})));
    let body = json!({"model": "m", "messages": messages});

    let probing = Arc::new(AtomicBool::new(true));
    let slowest_health = {
        let (probing, url) = (probing.clone(), proxy.at("/health"));
        actix_rt::spawn(async move {
            let mut slowest = Duration::ZERO;
            while probing.load(Ordering::SeqCst) {
                let started = Instant::now();
                assert_eq!(client().get(&url).send().await.unwrap().status(), 200);
                slowest = slowest.max(started.elapsed());
                actix_rt::time::sleep(Duration::from_millis(5)).await;
            }
            slowest
        })
    };
    let started = Instant::now();
    let response = client().post(proxy.at("/v1/chat/completions")).send_json(&body).await.unwrap();
    let took = started.elapsed();
    probing.store(false, Ordering::SeqCst);
    assert_eq!(response.status(), 200);
    assert!(took < Duration::from_secs(1), "answered in {took:?}");
    let slowest = slowest_health.await.unwrap();
    // 400 million comparisons would hold the one worker for seconds; a loaded CI machine (the
    // browser and schema tests run beside this one) can delay a probe by a few hundred ms.
    assert!(slowest < Duration::from_millis(500), "/health took up to {slowest:?} meanwhile");
    let sent = upstream.received()[0].json();
    assert_eq!(sent["messages"].as_array().unwrap().len(), 20_001, "the calls answered as failed, the orphans removed");
    assert_eq!(proxy.status().await["tool_call_repairs"]["removed_answers"], 20_000);
}

#[actix_web::test]
async fn a_repair_that_would_pass_the_body_limit_gets_413_and_nothing_goes_upstream() {
    let upstream = MockUpstream::start(|_| Reply::ok(completion("unused")));
    let proxy = Proxy::start(config(&upstream.url, &[("MAX_BODY_BYTES", "20000")]));
    // 1 000 calls of 11 bytes each: their "failed" answers take about 55 bytes each.
    let calls: Vec<Value> = (0..1000).map(|_| json!({"id": "a"})).collect();
    let body = json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": calls}]});
    assert!(body.to_string().len() < 20_000);
    let mut response = client().post(proxy.at("/v1/chat/completions")).send_json(&body).await.unwrap();
    assert_eq!(response.status(), 413);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "payload_too_large");
    assert!(error["error"]["message"].as_str().unwrap().contains("once repaired"), "{error}");
    assert!(upstream.received().is_empty());
}

/// Sends `body` (64 MiB) to `path` on a proxy process of its own and returns the process's peak
/// RSS in kB, with what the upstream received.
fn peak_rss_kb_after(path: &str, body: String) -> (u64, Vec<common::Received>) {
    let system = actix_rt::System::new();
    system.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let upstream = MockUpstream::start(|_| Reply::ok(completion("64 MiB")));
        let running = ProxyProcess::start(dir.path(), &[("CEREBRAS_BASE_URL", &upstream.url)]);
        let response = client()
            .post(format!("{}{path}", running.url))
            .insert_header(("content-type", "application/json"))
            .send_body(body)
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let status = std::fs::read_to_string(format!("/proc/{}/status", running.child.id())).unwrap();
        let peak_kb = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).unwrap().trim().trim_end_matches(" kB");
        (peak_kb.parse().unwrap(), upstream.received())
    })
}

/// `{"messages":[<first>,<filler>,<filler>,…]}`, 64 MiB long (less a kilobyte).
fn history_of_64_mib(first: &str, filler: &str) -> String {
    list_of_64_mib("messages", first, filler)
}

/// `{"<key>":[<first>,<filler>,<filler>,…]}`, 64 MiB long (less a kilobyte).
fn list_of_64_mib(key: &str, first: &str, filler: &str) -> String {
    let mut body = String::with_capacity(64 << 20);
    body.push_str(&format!("{{\"model\":\"m\",\"max_tokens\":8,\"{key}\":["));
    body.push_str(first);
    // A kilobyte of room, for what a repair adds within MAX_BODY_BYTES.
    while body.len() < (64 << 20) - 1024 {
        body.push(',');
        body.push_str(filler);
    }
    body.push_str("]}");
    body
}

#[test]
fn a_64_mib_array_of_zeros_keeps_the_proxy_well_under_a_gigabyte() {
    let (peak_kb, _) = peak_rss_kb_after("/v1/chat/completions", history_of_64_mib("0", "0"));
    assert!(peak_kb < 1 << 20, "peak RSS {} MB", peak_kb / 1024);
}

/// A small multiple of a 64 MiB body, in kB: what reading it may cost at the most. A JSON tree
/// of many small values costs 10 to 50 times the body.
const EIGHT_BODIES_KB: u64 = (8 * 64) << 10;

#[test]
fn a_64_mib_history_that_needs_repair_is_repaired_in_a_small_multiple_of_it() {
    let call = r#"{"role":"assistant","tool_calls":[{"id":"a"}]}"#;
    let (peak_kb, received) = peak_rss_kb_after("/v1/chat/completions", history_of_64_mib(call, "{}"));
    assert!(peak_kb < EIGHT_BODIES_KB, "peak RSS {} MB", peak_kb / 1024);
    let failed = r#"{"role":"tool","tool_call_id":"a","content":"failed"}"#;
    let expected = format!(r#""messages":[{call},{failed},{{}},{{}}"#);
    let start = memchr::memmem::find(&received[0].body, b"\"messages\"").unwrap();
    assert!(received[0].body[start..].starts_with(expected.as_bytes()), "the call answered right after it");
}

#[test]
fn a_64_mib_anthropic_history_of_small_messages_is_translated_in_a_small_multiple_of_it() {
    let first = r#"{"role":"user","content":[{"type":"text","text":"x"}]}"#;
    let body = history_of_64_mib(first, r#"{"role":"user","content":""}"#);
    let sent = body.matches("\"role\"").count();
    let (peak_kb, received) = peak_rss_kb_after("/v1/messages", body);
    assert!(peak_kb < EIGHT_BODIES_KB, "peak RSS {} MB", peak_kb / 1024);
    let chat: Value = serde_json::from_slice(&received[0].body).unwrap();
    let messages = chat["messages"].as_array().unwrap();
    assert_eq!(messages.len(), sent);
    assert_eq!(messages[0], json!({"role": "user", "content": "x"}));
    assert_eq!(messages[sent - 1], json!({"role": "user", "content": ""}));
}

#[test]
fn a_64_mib_responses_input_of_small_items_is_translated_in_a_small_multiple_of_it() {
    let first = r#"{"type":"message","role":"user","content":[{"type":"input_text","text":"x"}]}"#;
    let body = list_of_64_mib("input", first, r#"{"role":"user","content":""}"#);
    let sent = body.matches("\"role\"").count();
    let (peak_kb, received) = peak_rss_kb_after("/v1/responses", body);
    assert!(peak_kb < EIGHT_BODIES_KB, "peak RSS {} MB", peak_kb / 1024);
    let chat: Value = serde_json::from_slice(&received[0].body).unwrap();
    let messages = chat["messages"].as_array().unwrap();
    assert_eq!(messages.len(), sent);
    assert_eq!(messages[0], json!({"role": "user", "content": "x"}));
    assert_eq!(messages[sent - 1], json!({"role": "user", "content": ""}));
}

#[actix_web::test]
async fn a_body_that_does_not_arrive_in_time_gets_a_408_and_its_connection_is_closed() {
    let upstream = MockUpstream::start(|_| Reply::ok(completion("unused")));
    let proxy = Proxy::start(config(&upstream.url, &[("CLIENT_BODY_TIMEOUT", "0.5")]));
    let url = proxy.url.clone();
    let started = Instant::now();
    let answer = actix_web::rt::task::spawn_blocking(move || {
        let mut stream = connect(&url);
        stream.write_all(head(100).as_bytes()).unwrap();
        stream.write_all(b"{\"messages\":").unwrap();
        read_to_close(&mut stream)
    })
    .await
    .unwrap();
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"body_timeout\""), "{answer}");
    assert!(upstream.received().is_empty());
}

#[actix_web::test]
async fn a_request_that_would_pass_the_body_budget_gets_503_at_once_and_the_others_are_unharmed() {
    let upstream = MockUpstream::start(|_| Reply::ok(completion("ok")));
    let proxy = Proxy::start(config(
        &upstream.url,
        &[("MAX_BUFFERED_BODY_BYTES", "1000"), ("MAX_BODY_BYTES", "1000"), ("CLIENT_BODY_TIMEOUT", "10")],
    ));
    // A body of 800 bytes is on its way: its declared length is reserved.
    let held = chat_saying(&"x".repeat(700)).to_string();
    let mut slow = connect(&proxy.url);
    slow.write_all(head(held.len()).as_bytes()).unwrap();
    slow.write_all(&held.as_bytes()[..10]).unwrap();
    actix_rt::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    let mut refused =
        client().post(proxy.at("/v1/chat/completions")).send_json(&chat_saying(&"y".repeat(300))).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers().get("retry-after").unwrap(), "1");
    assert_eq!(refused.json::<Value>().await.unwrap()["error"]["code"], "overloaded");
    let small = client().post(proxy.at("/v1/chat/completions")).send_json(&chat_saying("hi")).await.unwrap();
    assert_eq!(small.status(), 200, "what fits in the budget still goes");

    let answer = actix_web::rt::task::spawn_blocking(move || {
        slow.write_all(&held.as_bytes()[10..]).unwrap();
        let mut buffer = [0u8; 4096];
        let read = slow.read(&mut buffer).unwrap();
        String::from_utf8_lossy(&buffer[..read]).into_owned()
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "the request in flight is unharmed: {answer}");
    let metrics = client().get(proxy.at("/metrics")).send().await.unwrap().body().await.unwrap();
    assert!(String::from_utf8_lossy(&metrics).contains("glm_proxy_body_bytes_buffered 0"));
}

#[actix_web::test]
async fn past_the_waiting_cap_a_request_gets_503_at_once() {
    let upstream = MockUpstream::start(|_| Reply::rate_limited(Some(60)));
    let proxy = Proxy::start(config(
        &upstream.url,
        &[("CEREBRAS_API_KEYS", r#"{"only":"sk-only"}"#), ("MAX_WAITING_REQUESTS", "1"), ("MAX_KEY_WAIT", "120")],
    ));
    // The first request rests the key and waits for it.
    let waiting = actix_rt::spawn(client().post(proxy.at("/v1/chat/completions")).send_json(&chat_saying("a")));
    assert!(proxy.status_reaches("/requests_waiting_for_key", json!(1)).await);

    let started = Instant::now();
    let mut refused = client().post(proxy.at("/v1/chat/completions")).send_json(&chat_saying("b")).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(refused.status(), 503);
    let retry_after: u64 = refused.headers().get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
    assert!((50..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(refused.json::<Value>().await.unwrap()["error"]["code"], "all_keys_cooling_down");
    assert_eq!(upstream.received().len(), 1, "the second request never reached the upstream");
    waiting.abort();
}

/// A client that sends its request a byte a second: the head only, or a whole head and then
/// its body. Returns when the server closed the connection, or after `give_up`.
fn slowloris(proxy_url: String, body_phase: bool, give_up: Duration) -> std::thread::JoinHandle<Option<Duration>> {
    std::thread::spawn(move || {
        let started = Instant::now();
        let mut stream = connect(&proxy_url);
        stream.set_read_timeout(Some(Duration::from_millis(1000))).unwrap();
        let request = head(4096);
        let (ready, dripped) = if body_phase { (request.as_str(), "x") } else { ("", request.as_str()) };
        if stream.write_all(ready.as_bytes()).is_err() {
            return Some(started.elapsed());
        }
        for byte in dripped.bytes().cycle() {
            if started.elapsed() > give_up {
                return None;
            }
            if stream.write_all(&[byte]).is_err() {
                return Some(started.elapsed());
            }
            let mut buffer = [0u8; 1024];
            match stream.read(&mut buffer) {
                Ok(0) => return Some(started.elapsed()),
                // An answer (the 408) then the close, or a reset.
                Ok(_) => return Some(started.elapsed()),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return Some(started.elapsed()),
            }
        }
        None
    })
}

#[actix_web::test]
async fn fifty_slowloris_connections_are_closed_in_time_and_a_normal_client_is_served_meanwhile() {
    let upstream = MockUpstream::start(|_| Reply::ok(completion("prompt")));
    let proxy = Proxy::start(config(&upstream.url, &[("CLIENT_HEADER_TIMEOUT", "1"), ("CLIENT_BODY_TIMEOUT", "1.5")]));
    let give_up = Duration::from_secs(8);
    let slow: Vec<_> = (0..50).map(|i| slowloris(proxy.url.clone(), i % 2 == 1, give_up)).collect();

    let mut slowest = Duration::ZERO;
    let serving = Instant::now();
    while serving.elapsed() < Duration::from_secs(3) {
        let started = Instant::now();
        let mut response = client().post(proxy.at("/v1/chat/completions")).send_json(&chat_saying("hi")).await.unwrap();
        assert_eq!(response.json::<Value>().await.unwrap(), completion("prompt"));
        slowest = slowest.max(started.elapsed());
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(slowest < Duration::from_millis(500), "the normal client waited up to {slowest:?}");

    let closed: Vec<Option<Duration>> =
        actix_web::rt::task::spawn_blocking(move || slow.into_iter().map(|t| t.join().unwrap()).collect())
            .await
            .unwrap();
    for (i, closed) in closed.iter().enumerate() {
        // The head timeout is 1 s and the body timeout 1.5 s; a second of slack for a loaded
        // machine. actix's timers run on a coarse clock (its date service ticks every 500 ms),
        // so a connection may be closed a little before its full second from the client's view.
        let bound = if i % 2 == 1 { Duration::from_millis(2500) } else { Duration::from_millis(2000) };
        let closed = closed.unwrap_or_else(|| panic!("slow connection {i} was never closed"));
        assert!(closed > Duration::from_millis(500) && closed < bound, "slow connection {i} closed after {closed:?}");
    }
}
