//! Relays an upstream body to the client chunk by chunk, as it arrives.
//!
//! A silence longer than the idle limit, or a broken upstream, ends the relay. For an SSE
//! stream the client then gets a final `data: {"error": ...}` event instead of a silent cut.
//!
//! awc reports a connection closed in the middle of a chunked body as a clean end, so an
//! OpenAI-style stream is only complete once its `data: [DONE]` terminator has passed.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio_stream::{StreamExt as _, Timeout};

use crate::error::error_body;

pub struct Relay<S> {
    /// Dropped as soon as the relay ends, which closes a broken upstream connection at once.
    upstream: Option<Pin<Box<Timeout<S>>>>,
    sse: bool,
    /// The last bytes relayed, to see the `[DONE]` terminator even when split across chunks.
    tail: Vec<u8>,
}

const DONE: &[u8] = b"data: [DONE]";
const TAIL_LEN: usize = 32;

impl<S, E> Relay<S>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    pub fn new(upstream: S, idle: Duration, sse: bool) -> Self {
        Self { upstream: Some(Box::pin(upstream.timeout(idle))), sse, tail: Vec::with_capacity(2 * TAIL_LEN) }
    }
}

impl<S> Relay<S> {
    fn remember_tail(&mut self, chunk: &[u8]) {
        self.tail.extend_from_slice(&chunk[chunk.len().saturating_sub(TAIL_LEN)..]);
        let excess = self.tail.len().saturating_sub(TAIL_LEN);
        self.tail.drain(..excess);
    }
}

/// The error a relay ends with, as the client's connection sees it.
#[derive(Debug, thiserror::Error)]
#[error("upstream stream interrupted: {0}")]
pub struct Interrupted(String);

fn sse_error_event(reason: &str) -> Bytes {
    let body = error_body(&format!("upstream stream interrupted: {reason}"), "upstream_error", "stream_interrupted");
    Bytes::from(format!("data: {body}\n\n"))
}

impl<S, E> Stream for Relay<S>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
{
    type Item = Result<Bytes, Interrupted>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(upstream) = self.upstream.as_mut() else {
            return Poll::Ready(None);
        };
        let reason = match upstream.as_mut().poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) if !self.sse || self.tail.trim_ascii_end().ends_with(DONE) => {
                self.upstream = None;
                return Poll::Ready(None);
            }
            Poll::Ready(None) => "the upstream closed the stream before data: [DONE]".to_owned(),
            Poll::Ready(Some(Ok(Ok(chunk)))) => {
                if self.sse {
                    self.remember_tail(&chunk);
                }
                return Poll::Ready(Some(Ok(chunk)));
            }
            Poll::Ready(Some(Ok(Err(error)))) => error.to_string(),
            Poll::Ready(Some(Err(_elapsed))) => "no data within UPSTREAM_IDLE_TIMEOUT".to_owned(),
        };
        self.upstream = None;
        log::warn!("event=stream_interrupted reason={reason:?}");
        Poll::Ready(Some(if self.sse { Ok(sse_error_event(&reason)) } else { Err(Interrupted(reason)) }))
    }
}

#[cfg(test)]
mod tests {
    use super::Relay;
    use bytes::Bytes;
    use futures_util::{stream, Stream, StreamExt};
    use std::time::Duration;

    fn chunks(items: Vec<Result<&'static str, &'static str>>) -> impl Stream<Item = Result<Bytes, &'static str>> {
        stream::iter(items.into_iter().map(|r| r.map(|s: &'static str| Bytes::from_static(s.as_bytes()))))
    }

    #[actix_rt::test]
    async fn chunks_pass_through_unchanged() {
        let relay =
            Relay::new(chunks(vec![Ok("data: 1\n\n"), Ok("data: [DO"), Ok("NE]\n\n")]), Duration::from_secs(1), true);
        let out: Vec<_> = relay.map(|r| r.unwrap()).collect().await;
        assert_eq!(out, ["data: 1\n\n", "data: [DO", "NE]\n\n"], "a split terminator still counts");
    }

    #[actix_rt::test]
    async fn a_broken_sse_stream_ends_with_an_error_event() {
        let relay = Relay::new(
            chunks(vec![Ok("data: 1\n\n"), Err("reset by peer"), Ok("never")]),
            Duration::from_secs(1),
            true,
        );
        let out: Vec<_> = relay.map(|r| r.unwrap()).collect().await;
        assert_eq!(out.len(), 2);
        let event = std::str::from_utf8(&out[1]).unwrap();
        assert!(event.starts_with("data: {\"error\""), "{event}");
        assert!(event.contains("reset by peer") && event.ends_with("\n\n"));
    }

    #[actix_rt::test]
    async fn an_sse_stream_closed_before_done_ends_with_an_error_event() {
        let relay = Relay::new(chunks(vec![Ok("data: 1\n\n")]), Duration::from_secs(1), true);
        let out: Vec<_> = relay.map(|r| r.unwrap()).collect().await;
        assert_eq!(out.len(), 2);
        assert!(std::str::from_utf8(&out[1]).unwrap().contains("before data: [DONE]"));
    }

    #[actix_rt::test]
    async fn a_plain_body_ends_when_the_upstream_ends() {
        let relay = Relay::new(chunks(vec![Ok("{\"a\":1}")]), Duration::from_secs(1), false);
        let out: Vec<_> = relay.map(|r| r.unwrap()).collect().await;
        assert_eq!(out, ["{\"a\":1}"]);
    }

    #[actix_rt::test]
    async fn a_silent_plain_body_ends_with_an_error() {
        let silent = chunks(vec![Ok("{\"partial\":")]).chain(stream::pending());
        let out: Vec<_> = Relay::new(silent, Duration::from_millis(20), false).collect().await;
        assert!(out[0].is_ok());
        assert!(out[1].as_ref().unwrap_err().to_string().contains("UPSTREAM_IDLE_TIMEOUT"));
        assert_eq!(out.len(), 2);
    }
}
