//! Streaming: chunks flow as they arrive, disconnects reach the upstream, many streams at once.

use crate::common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{chat_body, client, config, sse_chunks, MockUpstream, Proxy, Reply};
use futures_util::StreamExt;
use tokio::sync::Notify;

async fn start_stream(
    proxy: &Proxy,
) -> awc::ClientResponse<impl futures_util::Stream<Item = Result<Bytes, awc::error::PayloadError>> + Unpin> {
    client().post(proxy.at("/v1/chat/completions")).send_body(chat_body(true).to_string()).await.unwrap()
}

/// Reads the rest of a body as text.
async fn read_all(
    body: &mut (impl futures_util::Stream<Item = Result<Bytes, awc::error::PayloadError>> + Unpin),
) -> String {
    let mut text = String::new();
    while let Some(chunk) = body.next().await {
        text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    text
}

#[actix_web::test]
async fn the_first_chunk_reaches_the_client_before_the_upstream_has_finished() {
    let gate = Arc::new(Notify::new());
    let upstream_gate = gate.clone();
    let upstream = MockUpstream::start(move |_| Reply::Sse {
        chunks: sse_chunks(3),
        delay: Duration::ZERO,
        gate: Some(upstream_gate.clone()),
    });
    let proxy = Proxy::start(config(&upstream.url, &[]));

    let mut response = start_stream(&proxy).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("content-type").unwrap(), "text/event-stream");
    assert!(response.headers().get("content-length").is_none());

    // The upstream holds everything after its first chunk until we open the gate.
    let first = response.next().await.unwrap().unwrap();
    assert_eq!(first, sse_chunks(3)[0].as_bytes());
    assert_eq!(upstream.streams_finished.load(Ordering::SeqCst), 0);

    gate.notify_one();
    let rest = read_all(&mut response).await;
    assert_eq!(rest, sse_chunks(3)[1..].concat());
}

#[actix_web::test]
async fn the_upstream_sees_the_clients_disconnect() {
    let upstream = MockUpstream::start(|_| Reply::sse(1000, Duration::from_millis(20)));
    let proxy = Proxy::start(config(&upstream.url, &[]));

    let mut response = start_stream(&proxy).await;
    response.next().await.unwrap().unwrap();
    drop(response);

    assert!(
        common::eventually(|| upstream.streams_cut.load(Ordering::SeqCst) == 1).await,
        "the upstream stream must be dropped when the client goes away"
    );
    assert_eq!(upstream.streams_finished.load(Ordering::SeqCst), 0);
}

#[actix_web::test]
async fn two_hundred_concurrent_streams_all_complete_in_order() {
    let upstream = MockUpstream::start(|_| Reply::sse(16, Duration::from_millis(5)));
    let proxy = Proxy::start(config(&upstream.url, &[]));
    let expected = sse_chunks(16).concat();

    let streams = (0..200).map(|_| async {
        let mut response = start_stream(&proxy).await;
        assert_eq!(response.status(), 200);
        read_all(&mut response).await
    });
    let bodies = futures_util::future::join_all(streams).await;
    assert_eq!(bodies.len(), 200);
    assert!(bodies.iter().all(|body| *body == expected), "every stream complete and in order");
    assert_eq!(upstream.streams_finished.load(Ordering::SeqCst), 200);
}

#[actix_web::test]
async fn a_stream_that_breaks_after_its_first_byte_ends_with_an_sse_error_event() {
    let upstream = MockUpstream::start(|_| Reply::SseThenBreak { chunks: sse_chunks(2)[..2].to_vec() });
    let proxy = Proxy::start(config(&upstream.url, &[]));

    let mut response = start_stream(&proxy).await;
    assert_eq!(response.status(), 200);
    let text = read_all(&mut response).await;
    assert!(text.starts_with(&sse_chunks(2)[..2].concat()), "{text}");
    let last_event = text.trim_end().rsplit("\n\n").next().unwrap();
    let error: serde_json::Value = serde_json::from_str(last_event.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(error["error"]["code"], "stream_interrupted", "{text}");
}

#[actix_web::test]
async fn a_stream_that_breaks_mid_event_ends_with_an_error_event_that_parses_on_its_own() {
    let chunks = vec![
        "data: {\"choices\":[{\"delta\":{\"content\":\"hel\"}}]}\n\n".to_owned(),
        "data: {\"choices\":[{\"delta\":{\"content\":\"lo wo".to_owned(),
    ];
    let upstream = MockUpstream::start(move |_| Reply::SseThenBreak { chunks: chunks.clone() });
    let proxy = Proxy::start(config(&upstream.url, &[]));

    let text = read_all(&mut start_stream(&proxy).await).await;
    let events: Vec<serde_json::Value> = text
        .split("\n\n")
        .filter(|event| !event.is_empty())
        .map(|event| serde_json::from_str(event.strip_prefix("data: ").unwrap()).expect("every event parses"))
        .collect();
    assert_eq!(events.len(), 2, "{text}");
    assert_eq!(events[0]["choices"][0]["delta"]["content"], "hel");
    assert_eq!(events[1]["error"]["code"], "stream_interrupted");
}

#[actix_web::test]
async fn a_stream_to_an_http_1_0_client_is_close_delimited_not_chunked() {
    let upstream = MockUpstream::start(|_| Reply::sse(3, Duration::ZERO));
    let proxy = Proxy::start(config(&upstream.url, &[]));
    let (head, body) = common::http_1_0_post(&proxy.url, "/v1/chat/completions", &chat_body(true).to_string()).await;
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("transfer-encoding"), "HTTP/1.0 has no chunked encoding: {head}");
    assert_eq!(body, sse_chunks(3).concat(), "the body as sent, ended by the close");
}

#[actix_web::test]
async fn a_stream_silent_for_longer_than_the_idle_limit_ends_with_an_error_event() {
    let upstream = MockUpstream::start(|_| Reply::sse(100, Duration::from_secs(2)));
    let proxy = Proxy::start(config(&upstream.url, &[("UPSTREAM_IDLE_TIMEOUT", "0.3")]));

    let mut response = start_stream(&proxy).await;
    let text = read_all(&mut response).await;
    assert!(text.starts_with(&sse_chunks(100)[0]), "{text}");
    assert!(text.contains("UPSTREAM_IDLE_TIMEOUT") && text.contains("stream_interrupted"), "{text}");
    assert!(common::eventually(|| upstream.streams_cut.load(Ordering::SeqCst) == 1).await);
}
