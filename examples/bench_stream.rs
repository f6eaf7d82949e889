//! The streaming client of `bench/run`: opens streams, and per stream records the time to
//! the first chunk, every gap between chunks, each chunk's delay from the mock's `sent_us`
//! stamp to its arrival, how much wider each gap arrived than the mock sent it, the chunk
//! count and order, and stalls. Delays and widenings take the mock's timer jitter out of the
//! picture; gaps do not.
//!
//! Usage: `bench_stream URL CONCURRENCY TOTAL [HEADER:VALUE ...]`; prints one JSON line.
//! A stall is a gap over 10 × the upstream's gap (`x-bench-gap-ms`, or 1 s for slow streams),
//! or over 10 ms when the upstream sends without pause.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use serde_json::json;

struct StreamStats {
    ttfb: Duration,
    gaps: Vec<Duration>,
    /// From the mock's stamp to arrival, for every chunk after the first.
    delays: Vec<Duration>,
    /// How much longer each gap was at the client than at the mock, in µs (may be negative).
    widenings: Vec<i64>,
    chunks: usize,
    in_order: bool,
    complete: bool,
}

async fn one_stream(client: &awc::Client, url: &str, headers: &[(String, String)]) -> Option<StreamStats> {
    let mut request = client.post(url).insert_header(("content-type", "application/json"));
    for (name, value) in headers {
        request = request.insert_header((name.as_str(), value.as_str()));
    }
    let started = Instant::now();
    // Each front door gets a request in its API; the answer's text carries the stamps.
    let body = if url.ends_with("/messages") {
        r#"{"model":"bench","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#
    } else if url.ends_with("/responses") {
        r#"{"model":"bench","stream":true,"input":"hi"}"#
    } else {
        r#"{"model":"bench","stream":true,"messages":[{"role":"user","content":"hi"}]}"#
    };
    let mut response = request.send_body(body).await.ok()?;
    let (mut ttfb, mut last, mut gaps, mut delays, mut widenings) =
        (None, Instant::now(), Vec::new(), Vec::<Duration>::new(), Vec::new());
    let (mut text, mut read) = (Vec::new(), 0);
    while let Some(chunk) = response.next().await {
        let chunk = chunk.ok()?;
        let now = Instant::now();
        match ttfb {
            None => ttfb = Some(now - started),
            Some(_) => gaps.push(now - last),
        }
        last = now;
        text.extend_from_slice(&chunk);
        let arrived_us = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_micros();
        while let Some(end) = memchr::memmem::find(&text[read..], b"\n\n") {
            let sent_us = sent_us(&text[read..read + end]);
            if let (true, Some(sent)) = (read > 0, sent_us) {
                let delay = arrived_us.saturating_sub(sent) as u64;
                if let Some(previous) = delays.last() {
                    widenings.push(delay as i64 - previous.as_micros() as i64);
                }
                delays.push(Duration::from_micros(delay));
            }
            read += end + 2;
        }
    }
    let text = String::from_utf8_lossy(&text);
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    let numbers: Vec<usize> =
        events.iter().filter_map(|e| text_of(e.as_bytes())?.split(' ').next()?.parse().ok()).collect();
    let in_order = numbers.iter().enumerate().all(|(i, n)| i == *n);
    let complete = events
        .last()
        .is_some_and(|e| e.contains("[DONE]") || e.contains("message_stop") || e.contains("response.completed"));
    Some(StreamStats { ttfb: ttfb?, gaps, delays, widenings, chunks: events.len(), in_order, complete })
}

/// The `sent_us` stamp of one event: the second number of its text, `"3 1764…"`.
fn sent_us(event: &[u8]) -> Option<u128> {
    text_of(event)?.split(' ').nth(1)?.parse().ok()
}

/// The text an event carries: OpenAI's `content`, Anthropic's `text` delta, or the Responses
/// API's `delta` (its other events repeat the whole text, or carry none).
fn text_of(event: &[u8]) -> Option<&str> {
    let event = std::str::from_utf8(event).ok()?;
    let keys: &[&str] = match (event.contains("response.output_text.delta"), event.contains("\"type\":\"response.")) {
        (true, _) => &["\"delta\":\""],
        (false, true) => return None,
        (false, false) => &["\"content\":\"", "\"text\":\""],
    };
    let start = keys.iter().find_map(|key| Some(event.find(key)? + key.len()))?;
    let rest = &event[start..];
    Some(&rest[..rest.find('"')?])
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1e6
}

#[actix_web::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = args.first().cloned().unwrap_or_else(|| "http://127.0.0.1:19002/v1/chat/completions".into());
    let concurrency: usize = args.get(1).and_then(|c| c.parse().ok()).unwrap_or(16);
    let total: usize = args.get(2).and_then(|t| t.parse().ok()).unwrap_or(400);
    let headers: Vec<(String, String)> = args
        .iter()
        .skip(3)
        .filter_map(|h| h.split_once(':').map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned())))
        .collect();
    let upstream_gap = match headers.iter().find(|(n, _)| n == "x-bench-slow-seconds") {
        Some(_) => Duration::from_secs(1),
        None => headers
            .iter()
            .find(|(n, _)| n == "x-bench-gap-ms")
            .and_then(|(_, v)| v.parse().ok())
            .map_or(Duration::from_millis(1), Duration::from_millis),
    };

    let client =
        awc::Client::builder().connector(awc::Connector::new().limit(0)).timeout(Duration::from_secs(600)).finish();
    let started = Instant::now();
    let per_task = total.div_ceil(concurrency);
    let tasks = (0..concurrency).map(|_| {
        let (client, url, headers) = (&client, &url, &headers);
        async move {
            let mut stats = Vec::new();
            for _ in 0..per_task {
                stats.push(one_stream(client, url, headers).await);
            }
            stats
        }
    });
    let results: Vec<Option<StreamStats>> = futures_util::future::join_all(tasks).await.into_iter().flatten().collect();
    let elapsed = started.elapsed();

    let done: Vec<&StreamStats> = results.iter().flatten().collect();
    let mut ttfb: Vec<Duration> = done.iter().map(|s| s.ttfb).collect();
    let mut gaps: Vec<Duration> = done.iter().flat_map(|s| s.gaps.iter().copied()).collect();
    let mut delays: Vec<Duration> = done.iter().flat_map(|s| s.delays.iter().copied()).collect();
    ttfb.sort();
    gaps.sort();
    delays.sort();
    let mut widenings: Vec<i64> = done.iter().flat_map(|s| s.widenings.iter().copied()).collect();
    widenings.sort();
    let widening =
        |p: f64| widenings.get(((widenings.len().max(1) - 1) as f64 * p).round() as usize).copied().unwrap_or(0);
    let stall = (upstream_gap * 10).max(Duration::from_millis(10));
    let summary = json!({
        "streams": results.len(),
        "completed": done.iter().filter(|s| s.complete).count(),
        "in_order": done.iter().all(|s| s.in_order),
        "chunks": done.iter().map(|s| s.chunks).sum::<usize>(),
        "ttfb_p50_us": percentile(&ttfb, 0.5),
        "ttfb_p99_us": percentile(&ttfb, 0.99),
        "gap_p50_us": percentile(&gaps, 0.5),
        "gap_p99_us": percentile(&gaps, 0.99),
        "delay_p50_us": percentile(&delays, 0.5),
        "delay_p99_us": percentile(&delays, 0.99),
        "widening_p50_us": widening(0.5),
        "widening_p99_us": widening(0.99),
        "stalls": gaps.iter().filter(|g| **g > stall).count(),
        "streams_per_s": results.len() as f64 / elapsed.as_secs_f64(),
    });
    println!("{summary}");
}
