//! Fault attribution: a key rests only for its own fault, a request's fault stays with that
//! request, and a provider's fault opens the provider's circuit instead of resting keys.

use crate::common;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    chat_body, client, completion, config, eventually, raw_exchange, MockUpstream, Proxy, Received, RefusingPort, Reply,
};
use serde_json::{json, Value};

const THREE_KEYS: (&str, &str) = ("CEREBRAS_API_KEYS", r#"{"key1":"sk-1","key2":"sk-2","key3":"sk-3"}"#);

/// The marker that makes the mocks fail a request: the request's own fault.
const POISON: &str = "POISON";

fn poisoned(received: &Received) -> bool {
    String::from_utf8_lossy(&received.body).contains(POISON)
}

fn chat_saying(text: &str) -> Value {
    json!({"model": "llama-3.3-70b", "messages": [{"role": "user", "content": text}]})
}

/// Status, headers and JSON body of a chat completion.
async fn chat(proxy: &Proxy, body: &Value) -> (u16, awc::http::header::HeaderMap, Value) {
    let mut response = client().post(proxy.at("/v1/chat/completions")).send_json(body).await.unwrap();
    let json = response.json::<Value>().await.unwrap_or(Value::Null);
    (response.status().as_u16(), response.headers().clone(), json)
}

/// Every key available, never rested nor rejected.
fn keys_untouched(status: &Value) -> bool {
    status["keys"].as_array().unwrap().iter().all(|k| k["available"] == true && k["state"] == "available")
}

#[actix_web::test]
async fn a_403_caused_by_the_request_goes_back_after_a_second_key_and_rests_no_key() {
    let upstream = MockUpstream::start(|r| match poisoned(r) {
        true => Reply::status(403, json!({"error": {"message": "this content is not allowed"}})),
        false => Reply::ok(completion("fine")),
    });
    let proxy = Proxy::start(config(&upstream.url, &[THREE_KEYS]));

    let (status, headers, body) = chat(&proxy, &chat_saying(POISON)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["message"], "this content is not allowed", "the upstream's answer, as sent");
    assert_eq!(headers.get("x-glm-proxy-provider").unwrap(), "cerebras");
    assert_eq!(upstream.keys_used(), ["sk-1", "sk-2"], "a second key proves it is the request's");

    for _ in 0..3 {
        assert_eq!(chat(&proxy, &chat_saying("hello")).await.0, 200);
    }
    assert_eq!(upstream.keys_used()[2..], ["sk-1", "sk-1", "sk-1"], "the sticky key keeps serving");
    let status = proxy.status().await;
    assert!(keys_untouched(&status), "{status}");
    assert_eq!(status["current_key"], "key1");
}

#[actix_web::test]
async fn a_500_caused_by_the_request_fails_over_after_a_second_key_and_rests_no_key() {
    let script = |r: &Received| match poisoned(r) {
        true => Reply::status(500, json!({"error": {"message": "internal error on this input"}})),
        false => Reply::ok(completion("cerebras")),
    };
    let cerebras = MockUpstream::start(script);
    let synthetic = MockUpstream::start(|_| Reply::ok(completion("synthetic")));
    let proxy = Proxy::start(config(
        &cerebras.url,
        &[THREE_KEYS, ("SYNTHETIC_API_KEY", "sk-synthetic"), ("SYNTHETIC_BASE_URL", &synthetic.url)],
    ));

    let (status, headers, body) = chat(&proxy, &chat_saying(POISON)).await;
    assert_eq!((status, body), (200, completion("synthetic")));
    assert_eq!(headers.get("x-glm-proxy-provider").unwrap(), "synthetic");
    assert_eq!(cerebras.keys_used(), ["sk-1", "sk-2"]);

    assert_eq!(chat(&proxy, &chat_saying("hello")).await.2, completion("cerebras"));
    assert_eq!(cerebras.keys_used()[2], "sk-1");
    let status = proxy.status().await;
    assert!(keys_untouched(&status), "{status}");
    assert_eq!(status["providers"]["cerebras"]["state"], "closed", "the request's fault says nothing of Cerebras");

    // Without an alternative the client gets the upstream's own answer.
    let alone = Proxy::start(config(&MockUpstream::start(script).url, &[THREE_KEYS]));
    let (status, _, body) = chat(&alone, &chat_saying(POISON)).await;
    assert_eq!(status, 500);
    assert_eq!(body["error"]["message"], "internal error on this input");
    assert!(keys_untouched(&alone.status().await));
}

const WRONG_KEY: &str =
    r#"{"message":"Wrong API Key","type":"invalid_request_error","param":"api_key","code":"wrong_api_key"}"#;

fn wrong_key(_: &Received) -> Reply {
    Reply::Json { status: 401, headers: vec![], body: WRONG_KEY.to_owned() }
}

#[actix_web::test]
async fn a_pool_the_upstream_rejects_gets_upstream_keys_rejected_at_once_with_the_upstreams_words() {
    let upstream = MockUpstream::start(wrong_key);
    let proxy = Proxy::start(config(&upstream.url, &[("MAX_KEY_WAIT", "60")]));

    for round in 0..2 {
        let started = Instant::now();
        let (status, _, body) = chat(&proxy, &chat_saying("hello")).await;
        assert!(started.elapsed() < Duration::from_secs(2), "no wait for keys that will not come back");
        assert_eq!(status, 502, "{body}");
        assert_eq!(body["error"]["code"], "upstream_keys_rejected");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("Wrong API Key") && !message.contains("sk-"), "{message}");
        assert_eq!(upstream.received().len(), 2, "round {round}: each key tried once, then no more");
    }
    let status = proxy.status().await;
    for key in status["keys"].as_array().unwrap() {
        assert_eq!(key["state"], "invalid", "{key}");
        assert!(key["last_error"].as_str().unwrap().contains("Wrong API Key"), "{key}");
    }
}

#[actix_web::test]
async fn a_pool_the_upstream_rejects_sends_requests_to_the_alternatives() {
    let cerebras = MockUpstream::start(wrong_key);
    let synthetic = MockUpstream::start(|_| Reply::ok(completion("synthetic")));
    let proxy = Proxy::start(config(
        &cerebras.url,
        &[("SYNTHETIC_API_KEY", "sk-synthetic"), ("SYNTHETIC_BASE_URL", &synthetic.url)],
    ));
    for _ in 0..2 {
        assert_eq!(chat(&proxy, &chat_saying("hello")).await.2, completion("synthetic"));
    }
    assert_eq!(cerebras.received().len(), 2, "the rejected pool is not asked again");
}

#[actix_web::test]
async fn an_unreachable_upstream_gets_a_fast_502_and_is_served_right_after_the_circuit_deadline() {
    let refusing = RefusingPort::new();
    let proxy =
        Proxy::start(config(&refusing.url(), &[("CIRCUIT_OPEN_TIME", "0.5"), ("UPSTREAM_CONNECT_TIMEOUT", "2")]));

    let started = Instant::now();
    let (status, _, body) = chat(&proxy, &chat_saying("hello")).await;
    assert!(started.elapsed() < Duration::from_secs(3), "within UPSTREAM_CONNECT_TIMEOUT + 1 s");
    assert_eq!(status, 502);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("cerebras/key1 (cannot connect"), "{message}");
    assert_eq!(message.matches("cerebras/").count(), 1, "no other key is tried: {message}");

    // While the circuit is open: a 502 at once, saying when to come back.
    let mut response = client().post(proxy.at("/v1/chat/completions")).send_json(&chat_saying("hi")).await.unwrap();
    assert_eq!(response.status(), 502);
    assert!(response.headers().get("retry-after").is_some());
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("circuit open"), "{body}");
    let status = proxy.status().await;
    assert!(keys_untouched(&status), "{status}");
    assert_eq!(status["providers"]["cerebras"]["state"], "open");
    assert_eq!(status["providers"]["cerebras"]["circuit_opens"], 1);

    // The network comes back; past the deadline the next request is served.
    let port = refusing.port;
    drop(refusing);
    let upstream = MockUpstream::start_at(port, |_| Reply::ok(completion("back")), None);
    actix_rt::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(chat(&proxy, &chat_saying("hello")).await.2, completion("back"));
    assert_eq!(upstream.keys_used(), ["sk-1"]);
    assert_eq!(proxy.status().await["providers"]["cerebras"]["state"], "closed");
}

#[actix_web::test]
async fn a_tls_handshake_that_never_ends_is_the_providers_fault_within_the_connect_timeout() {
    // Accepts TCP (the kernel does) but never answers the TLS hello.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://localhost:{}/v1", silent.local_addr().unwrap().port());
    let proxy = Proxy::start(config(&url, &[("UPSTREAM_CONNECT_TIMEOUT", "0.3")]));

    let started = Instant::now();
    let (status, _, body) = chat(&proxy, &chat_saying("hello")).await;
    assert!(started.elapsed() < Duration::from_millis(1300), "{:?}", started.elapsed());
    assert_eq!(status, 502);
    assert!(body["error"]["message"].as_str().unwrap().contains("cannot connect"), "{body}");
    assert!(keys_untouched(&proxy.status().await));
}

#[actix_web::test]
async fn no_answer_within_the_upstream_timeout_is_the_providers_fault() {
    let upstream = MockUpstream::start(|_| Reply::Hang);
    let proxy = Proxy::start(config(&upstream.url, &[THREE_KEYS, ("UPSTREAM_TIMEOUT", "0.3")]));
    let (status, _, body) = chat(&proxy, &chat_saying("hello")).await;
    assert_eq!(status, 502);
    assert!(body["error"]["message"].as_str().unwrap().contains("no answer within UPSTREAM_TIMEOUT"), "{body}");
    assert_eq!(upstream.received().len(), 1);
    assert!(keys_untouched(&proxy.status().await));
}

#[actix_web::test]
async fn three_lost_requests_in_a_row_open_the_circuit_and_requests_go_straight_to_the_alternative() {
    let cerebras = MockUpstream::start(|_| Reply::status(503, json!({"error": {"message": "overloaded"}})));
    let synthetic = MockUpstream::start(|_| Reply::ok(completion("synthetic")));
    let proxy = Proxy::start(config(
        &cerebras.url,
        &[("SYNTHETIC_API_KEY", "sk-synthetic"), ("SYNTHETIC_BASE_URL", &synthetic.url), ("CIRCUIT_OPEN_TIME", "30")],
    ));
    for _ in 0..4 {
        assert_eq!(chat(&proxy, &chat_saying("hello")).await.2, completion("synthetic"));
    }
    assert_eq!(cerebras.received().len(), 3, "after three in a row, Cerebras is passed over");
    let status = proxy.status().await;
    assert!(keys_untouched(&status), "{status}");
    let cerebras_status = &status["providers"]["cerebras"];
    assert_eq!((cerebras_status["state"].as_str(), cerebras_status["circuit_opens"].as_u64()), (Some("open"), Some(1)));
    assert_eq!(cerebras_status["last_error"], "HTTP 503");
    assert!(cerebras_status["open_for"].as_f64().unwrap() > 25.0);

    let metrics = client().get(proxy.at("/metrics")).send().await.unwrap().body().await.unwrap();
    let metrics = String::from_utf8(metrics.to_vec()).unwrap();
    for series in [
        r#"glm_proxy_circuit_opens_total{provider="cerebras"} 1"#,
        r#"glm_proxy_circuit_open{provider="cerebras"} 1"#,
        r#"glm_proxy_failovers_total{from="cerebras",reason="circuit_open"} 1"#,
        r#"glm_proxy_failovers_total{from="cerebras",reason="server_error"} 3"#,
    ] {
        assert!(metrics.contains(series), "{series} in\n{metrics}");
    }
}

#[actix_web::test]
async fn with_no_alternative_an_open_circuit_answers_502_with_retry_after_at_once() {
    let cerebras = MockUpstream::start(|_| Reply::status(503, json!({"error": {"message": "overloaded"}})));
    let proxy = Proxy::start(config(&cerebras.url, &[("CIRCUIT_FAILURE_THRESHOLD", "2"), ("CIRCUIT_OPEN_TIME", "30")]));
    for _ in 0..2 {
        assert_eq!(chat(&proxy, &chat_saying("hello")).await.0, 503, "the upstream's own answer");
    }
    let mut response = client().post(proxy.at("/v1/chat/completions")).send_json(&chat_saying("hi")).await.unwrap();
    assert_eq!(response.status(), 502);
    let retry_after: u64 = response.headers().get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
    assert!((25..=30).contains(&retry_after), "{retry_after}");
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "upstream_unavailable");
    assert_eq!(cerebras.received().len(), 2);
}

#[actix_web::test]
async fn a_request_that_keeps_failing_is_its_own_problem_and_answers_in_between_keep_the_circuit_closed() {
    let cerebras = MockUpstream::start(|r| match poisoned(r) {
        true => Reply::status(503, json!({"error": {"message": "cannot do this one"}})),
        false => Reply::ok(completion("cerebras")),
    });
    let synthetic = MockUpstream::start(|_| Reply::ok(completion("synthetic")));
    let proxy = Proxy::start(config(
        &cerebras.url,
        &[THREE_KEYS, ("SYNTHETIC_API_KEY", "sk-synthetic"), ("SYNTHETIC_BASE_URL", &synthetic.url)],
    ));
    for _ in 0..3 {
        for _ in 0..2 {
            assert_eq!(chat(&proxy, &chat_saying(POISON)).await.2, completion("synthetic"));
        }
        assert_eq!(chat(&proxy, &chat_saying("hello")).await.2, completion("cerebras"));
    }
    assert_eq!(cerebras.received().len(), 9, "each poisoned request tried Cerebras once, with one key");
    let status = proxy.status().await;
    assert_eq!(status["providers"]["cerebras"]["state"], "closed");
    assert!(keys_untouched(&status), "{status}");
}

#[actix_web::test]
async fn huge_rate_limit_waits_rest_a_key_no_longer_than_max_cooldown_and_never_crash_the_rotator() {
    let upstream = MockUpstream::start(|r| {
        let retry_after = match r.key() {
            "sk-1" => "10000000000000000000",
            "sk-2" => "Fri, 31 Dec 9999 23:59:59 GMT",
            _ => return Reply::ok(completion("key3")),
        };
        Reply::Json { status: 429, headers: vec![("retry-after", retry_after.to_owned())], body: "{}".to_owned() }
    });
    let proxy = Proxy::start(config(&upstream.url, &[THREE_KEYS, ("MAX_COOLDOWN", "100")]));

    assert_eq!(chat(&proxy, &chat_saying("hello")).await.2, completion("key3"));
    let status = proxy.status().await;
    for key in &status["keys"].as_array().unwrap()[..2] {
        let resting = key["rate_limited_for"].as_f64().unwrap();
        assert!(resting > 90.0 && resting <= 100.0, "clamped to MAX_COOLDOWN: {key}");
    }
    // The rotator kept its state (a restart would have made key1 current again).
    assert_eq!(chat(&proxy, &chat_saying("hello")).await.2, completion("key3"));
    assert_eq!(upstream.keys_used(), ["sk-1", "sk-2", "sk-3", "sk-3"]);
}

#[actix_web::test]
async fn expect_100_continue_on_a_bodyless_request_is_answered_and_rests_nothing() {
    let upstream = MockUpstream::start(|_| Reply::ok(json!({"object": "list", "data": []})));
    let proxy = Proxy::start(config(&upstream.url, &[]));
    let request = "GET /v1/models HTTP/1.1\r\nHost: proxy\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n";
    let answer = raw_exchange(&proxy.url, request.as_bytes().to_vec()).await;
    assert!(answer.contains("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.contains(r#""object":"list""#), "{answer}");
    let received = upstream.received();
    assert_eq!(received.len(), 1);
    assert!(!received[0].headers.contains_key("expect"), "Expect is the proxy's to answer");
    assert!(keys_untouched(&proxy.status().await));
}

#[actix_web::test]
async fn a_gzip_capable_client_still_gets_failover_on_a_context_length_400() {
    let cerebras = MockUpstream::start(|_| {
        Reply::status(400, json!({"error": {"message": "too long", "code": "context_length_exceeded"}}))
    });
    let synthetic = MockUpstream::start(|_| Reply::ok(completion("synthetic")));
    let proxy = Proxy::start(config(
        &cerebras.url,
        &[("SYNTHETIC_API_KEY", "sk-synthetic"), ("SYNTHETIC_BASE_URL", &synthetic.url)],
    ));
    let mut response = client()
        .post(proxy.at("/v1/chat/completions"))
        .insert_header(("accept-encoding", "gzip, deflate"))
        .send_json(&chat_body(false))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), completion("synthetic"));
    assert_eq!(cerebras.received()[0].headers["accept-encoding"], "identity");
}

#[actix_web::test]
async fn an_upstream_that_compresses_anyway_is_relayed_untouched() {
    let events = common::sse_chunks(3).concat();
    let compressed = common::gzip(events.as_bytes());
    let sent = compressed.clone();
    let upstream = MockUpstream::start(move |_| Reply::Raw {
        status: 200,
        headers: vec![("content-type", "text/event-stream".into()), ("content-encoding", "gzip".into())],
        body: sent.clone(),
    });
    let proxy = Proxy::start(config(&upstream.url, &[]));
    let mut response = client().post(proxy.at("/v1/chat/completions")).send_json(&chat_body(true)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("content-encoding").unwrap(), "gzip");
    let body = response.body().await.unwrap();
    assert_eq!(body, compressed, "no event appended to compressed bytes");
    let mut plain = String::new();
    flate2::read::GzDecoder::new(&body[..]).read_to_string(&mut plain).unwrap();
    assert_eq!(plain, events);
}

#[actix_web::test]
async fn errors_an_upstream_compresses_anyway_are_read_decoded_and_relayed_as_they_came() {
    let gzipped = |status: u16, body: &str| Reply::Raw {
        status,
        headers: vec![("content-type", "application/json".into()), ("content-encoding", "gzip".into())],
        body: common::gzip(body.as_bytes()),
    };
    let too_long = r#"{"error":{"message":"too long","code":"context_length_exceeded"}}"#;
    let cerebras =
        MockUpstream::start(
            move |received| {
                if poisoned(received) {
                    gzipped(400, too_long)
                } else {
                    gzipped(401, WRONG_KEY)
                }
            },
        );
    let synthetic = MockUpstream::start(|_| Reply::ok(completion("synthetic")));
    let with_alternative = Proxy::start(config(
        &cerebras.url,
        &[("SYNTHETIC_API_KEY", "sk-synthetic"), ("SYNTHETIC_BASE_URL", &synthetic.url)],
    ));
    let (status, headers, body) = chat(&with_alternative, &chat_saying(POISON)).await;
    assert_eq!((status, body), (200, completion("synthetic")), "the compressed context-length 400 failed over");
    assert_eq!(headers.get("x-glm-proxy-provider").unwrap(), "synthetic");

    let alone = Proxy::start(config(&cerebras.url, &[]));
    let (status, _, body) = chat(&alone, &chat_saying("hello")).await;
    assert_eq!(status, 502);
    assert_eq!(body["error"]["code"], "upstream_keys_rejected");
    assert!(body["error"]["message"].as_str().unwrap().contains("Wrong API Key"), "{body}");

    // A proxy whose keys are not yet rejected relays the 400 itself, compressed.
    let fresh = Proxy::start(config(&cerebras.url, &[]));
    let mut response = client().post(fresh.at("/v1/chat/completions")).send_json(&chat_saying(POISON)).await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers().get("content-encoding").unwrap(), "gzip", "relayed as it came");
    assert_eq!(response.body().await.unwrap(), common::gzip(too_long.as_bytes()));
}

/// Sends a chat completion on a raw connection and hangs up once `leave` is set.
fn client_that_leaves(address: &str, leave: Arc<AtomicBool>) -> actix_web::rt::task::JoinHandle<()> {
    let address = address.trim_start_matches("http://").to_owned();
    let body = chat_saying("hello").to_string();
    actix_web::rt::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        let head = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body.as_bytes()).unwrap();
        while !leave.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
    })
}

#[actix_web::test]
async fn a_client_that_leaves_while_waiting_for_a_key_is_forgotten_and_never_sent_upstream() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let upstream = MockUpstream::start(move |_| match counter.fetch_add(1, Ordering::SeqCst) {
        0 => Reply::rate_limited(None),
        _ => Reply::ok(completion("later")),
    });
    let proxy = Proxy::start(config(
        &upstream.url,
        &[("CEREBRAS_API_KEYS", r#"{"only":"sk-only"}"#), ("CEREBRAS_COOLDOWN", "0.5")],
    ));

    let leave = Arc::new(AtomicBool::new(false));
    let gone = client_that_leaves(&proxy.url, leave.clone());
    let waiting = proxy.status_reaches("/requests_waiting_for_key", json!(1)).await;
    assert!(waiting, "the request waits for the key to come free");
    leave.store(true, Ordering::SeqCst);
    gone.await.unwrap();

    let forgotten = proxy.status_reaches("/requests_waiting_for_key", json!(0)).await;
    assert!(forgotten, "no wait is left in the rotator's queue");
    // Past the key's rest, nothing was sent for the client that left.
    actix_rt::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(upstream.received().len(), 1);
    assert_eq!(chat(&proxy, &chat_saying("hello")).await.2, completion("later"));
}

#[actix_web::test]
async fn a_client_that_leaves_before_the_first_byte_cancels_the_upstream_request() {
    let upstream = MockUpstream::start(|_| Reply::Hang);
    let proxy = Proxy::start(config(&upstream.url, &[("UPSTREAM_TIMEOUT", "60")]));

    let leave = Arc::new(AtomicBool::new(false));
    let gone = client_that_leaves(&proxy.url, leave.clone());
    assert!(eventually(|| upstream.received().len() == 1).await);
    leave.store(true, Ordering::SeqCst);
    gone.await.unwrap();
    assert!(
        eventually(|| upstream.hangs_dropped.load(Ordering::SeqCst) == 1).await,
        "the upstream request ends with the client, long before UPSTREAM_TIMEOUT"
    );
    assert!(keys_untouched(&proxy.status().await));
}

/// An upstream that hangs up, without an answer, on any request carrying `POISON`, and answers
/// the others; it counts the poisoned requests it read.
fn hangs_up_on_poison(poisoned_seen: Arc<AtomicUsize>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let poisoned_seen = poisoned_seen.clone();
            std::thread::spawn(move || {
                while let Some(request) = read_request(&mut stream) {
                    if request.contains(POISON) {
                        poisoned_seen.fetch_add(1, Ordering::SeqCst);
                        return; // dropping the stream closes it
                    }
                    let body = completion("fine").to_string();
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    );
                    if stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(body.as_bytes())).is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

/// One HTTP/1.1 request with a `content-length` body, as text; `None` at end of stream.
fn read_request(stream: &mut std::net::TcpStream) -> Option<String> {
    let mut data = Vec::new();
    let mut byte = [0u8; 1];
    while !data.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        data.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&data).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    data.extend_from_slice(&body);
    Some(String::from_utf8_lossy(&data).into_owned())
}

#[actix_web::test]
async fn an_upstream_that_hangs_up_on_one_request_sees_it_at_most_twice_and_rests_no_key() {
    let poisoned_seen = Arc::new(AtomicUsize::new(0));
    let url = hangs_up_on_poison(poisoned_seen.clone());
    let proxy = Proxy::start(config(&url, &[THREE_KEYS]));

    let (status, _, body) = chat(&proxy, &chat_saying(POISON)).await;
    assert_eq!(status, 502, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("connection lost"), "{body}");
    let seen = poisoned_seen.load(Ordering::SeqCst);
    assert!((1..=2).contains(&seen), "billed at most twice, seen {seen} times");

    let started = Instant::now();
    assert_eq!(chat(&proxy, &chat_saying("hello")).await.2, completion("fine"));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(keys_untouched(&proxy.status().await));
}
