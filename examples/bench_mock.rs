//! The fast mock upstream that `bench/run` puts behind nginx and glm-proxy.
//!
//! `POST .../chat/completions` answers a fixed small completion, or with `"stream":true` a
//! fixed SSE stream of 16 chunks. Headers shape the stream: `x-bench-gap-ms` waits between
//! chunks, `x-bench-slow-seconds: N` sends one chunk per second for N seconds (the soak).
//! Each chunk carries `sent_us`, the wall-clock time it was sent, in microseconds, also in its
//! text after the chunk's number (`"3 1764…"`), where a translated stream still has it. Under
//! `/down/` it answers 503, a provider that is out.
//!
//! Usage: `bench_mock PORT [WORKERS]`

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use futures_util::stream::{self, StreamExt};

const COMPLETION: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1,"model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the bench mock."},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":6,"total_tokens":15}}"#;

/// Chunk `i`, stamped with when it was sent so the client can measure each chunk's delay.
fn chunk(i: usize) -> Bytes {
    let sent_us = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |t| t.as_micros());
    Bytes::from(format!(
        "data: {{\"id\":\"chatcmpl-bench\",\"sent_us\":{sent_us},\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{i} {sent_us} \"}}}}]}}\n\n"
    ))
}

fn header_number(request: &HttpRequest, name: &str) -> Option<u64> {
    request.headers().get(name)?.to_str().ok()?.parse().ok()
}

async fn answer(request: HttpRequest, body: Bytes) -> HttpResponse {
    if request.path().starts_with("/down/") {
        return HttpResponse::ServiceUnavailable()
            .content_type("application/json")
            .body(r#"{"error":{"message":"down"}}"#);
    }
    let streaming = memchr::memmem::find(&body, b"\"stream\":true").is_some();
    if !streaming {
        return HttpResponse::Ok().content_type("application/json").body(COMPLETION);
    }
    let (count, gap) = match header_number(&request, "x-bench-slow-seconds") {
        Some(seconds) => (seconds as usize, Duration::from_secs(1)),
        None => (16, Duration::from_millis(header_number(&request, "x-bench-gap-ms").unwrap_or(0))),
    };
    let chunks = stream::iter(0..=count).then(move |i| async move {
        if i > 0 && !gap.is_zero() {
            actix_web::rt::time::sleep(gap).await;
        }
        let data = if i == count { Bytes::from_static(b"data: [DONE]\n\n") } else { chunk(i) };
        Ok::<_, actix_web::Error>(data)
    });
    HttpResponse::Ok().content_type("text/event-stream").streaming(chunks)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(19001);
    let workers: usize = args.next().and_then(|w| w.parse().ok()).unwrap_or(1);
    HttpServer::new(|| App::new().default_service(web::to(answer)))
        .workers(workers)
        .tcp_nodelay(true)
        .backlog(4096)
        .max_connections(100_000)
        .disable_signals()
        .bind(("127.0.0.1", port))?
        .run()
        .await
}
