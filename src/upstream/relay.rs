//! Relays an upstream body to the client as it arrives.
//!
//! A silence longer than the idle limit, or a broken upstream, ends the relay. For an SSE
//! stream the client then gets a final `data: {"error": ...}` event instead of a silent cut,
//! and that event must parse on its own. So SSE is relayed whole events at a time: the bytes of
//! an event still arriving are held until its blank line comes (clients dispatch nothing before
//! that anyway), and a stream that breaks drops the half event rather than leave it for the
//! error to join. An event too large to hold goes out as it arrives, and an error after it
//! first closes it.
//!
//! awc reports a connection closed in the middle of a chunked body as a clean end, so an
//! OpenAI-style stream is only complete once its `data: [DONE]` terminator has passed.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio_stream::{StreamExt as _, Timeout};

use crate::error::error_body;
use crate::policy::fault::Reason;
use crate::wire::sse::{self, event_end};

/// The most of one unfinished event held back; a larger event flows through as it arrives.
const HOLD_LIMIT: usize = 1 << 20;
const DONE: &[u8] = b"data: [DONE]";

pub struct Relay<S> {
    /// Dropped as soon as the relay ends, which closes a broken upstream connection at once.
    upstream: Option<Pin<Box<Timeout<S>>>>,
    /// For an SSE stream, the event framing; `None` relays bytes as they come.
    events: Option<Events>,
    /// What goes out after the upstream ended: the last bytes, an error.
    ending: VecDeque<Result<Bytes, Interrupted>>,
}

/// The error a relay ends with, as the client's connection sees it.
#[derive(Debug, thiserror::Error)]
#[error("upstream stream interrupted: {0}")]
pub struct Interrupted(Reason);

impl<S, E> Relay<S>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    pub fn new(upstream: S, idle: Duration, sse: bool) -> Self {
        Self {
            upstream: Some(Box::pin(upstream.timeout(idle))),
            events: sse.then(Events::default),
            ending: VecDeque::new(),
        }
    }
}

impl<S> Relay<S> {
    /// The upstream ended, cleanly (`broke` is `None`) or not: queue what the client gets last.
    fn end(&mut self, broke: Option<Reason>) {
        self.upstream = None;
        let reason = match (&mut self.events, broke) {
            (None, None) => return,
            (None, Some(reason)) => {
                self.ending.push_back(Err(Interrupted(reason.clone())));
                reason
            }
            (Some(events), broke) => match events.finish(broke) {
                Ok(last) => {
                    self.ending.extend(last.map(Ok));
                    return;
                }
                Err((reason, event)) => {
                    self.ending.push_back(Ok(event));
                    reason
                }
            },
        };
        log::warn!("event=stream_interrupted reason={:?}", reason.to_string());
    }
}

impl<S, E> Stream for Relay<S>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
{
    type Item = Result<Bytes, Interrupted>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            let Some(upstream) = this.upstream.as_mut() else {
                return Poll::Ready(this.ending.pop_front());
            };
            match upstream.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(Ok(chunk)))) => match &mut this.events {
                    None => return Poll::Ready(Some(Ok(chunk))),
                    Some(events) => {
                        if let Some(ready) = events.complete(chunk) {
                            return Poll::Ready(Some(Ok(ready)));
                        }
                    }
                },
                Poll::Ready(None) => this.end(None),
                Poll::Ready(Some(Ok(Err(error)))) => this.end(Some(Reason::ConnectionLost(error.to_string()))),
                Poll::Ready(Some(Err(_elapsed))) => this.end(Some(Reason::IdleTimeout)),
            }
        }
    }
}

/// SSE framing: which bytes form whole events, and whether the stream was complete.
#[derive(Default)]
struct Events {
    /// The start of an event whose blank line has not come yet.
    partial: BytesMut,
    /// An event too large to hold went out unfinished; the next blank line closes it.
    open: bool,
    /// The last event relayed was the `[DONE]` terminator. Events go out whole, so the
    /// terminator is never split across what was relayed.
    done: bool,
}

impl Events {
    /// The whole events `chunk` completes, if any; the start of the next is held.
    fn complete(&mut self, chunk: Bytes) -> Option<Bytes> {
        let ready = if self.partial.is_empty() && chunk.ends_with(b"\n\n") {
            // The common case: a chunk of whole events goes on as it came, without a copy.
            self.open = false;
            chunk
        } else if self.partial.is_empty() {
            match event_end(&chunk, 0) {
                Some(end) => {
                    self.open = false;
                    self.partial.extend_from_slice(&chunk[end..]);
                    chunk.slice(..end)
                }
                None if self.open => chunk,
                None => {
                    self.partial.extend_from_slice(&chunk);
                    Bytes::new()
                }
            }
        } else {
            // Only the new bytes can end the held event (it holds no blank line of its own).
            let from = self.partial.len();
            self.partial.extend_from_slice(&chunk);
            match event_end(&self.partial, from) {
                Some(end) => self.partial.split_to(end).freeze(),
                None => Bytes::new(),
            }
        };
        let ready = if self.partial.len() > HOLD_LIMIT {
            self.open = true;
            let mut all = BytesMut::with_capacity(ready.len() + self.partial.len());
            all.extend_from_slice(&ready);
            all.extend_from_slice(&self.partial.split());
            all.freeze()
        } else {
            ready
        };
        if ready.is_empty() {
            return None;
        }
        self.done = ready.trim_ascii_end().ends_with(DONE);
        Some(ready)
    }

    /// The end of the stream: `Ok` with the last bytes to relay if it was complete, else the
    /// reason and the error event that ends it. A held half event is dropped, unless it is the
    /// terminator itself.
    fn finish(&mut self, broke: Option<Reason>) -> Result<Option<Bytes>, (Reason, Bytes)> {
        let rest = self.partial.split().freeze();
        if broke.is_none() && !rest.is_empty() && rest.trim_ascii_end().ends_with(DONE) {
            return Ok(Some(rest));
        }
        if !rest.is_empty() {
            log::debug!("event=partial_event_dropped bytes={}", rest.len());
        }
        let reason = match broke {
            None if self.done => return Ok(None),
            None => Reason::ConnectionLost("the upstream closed the stream before data: [DONE]".to_owned()),
            Some(reason) => reason,
        };
        let body =
            error_body(&format!("upstream stream interrupted: {reason}"), "upstream_error", "stream_interrupted");
        // A blank line first closes an event that went out unfinished.
        let mut event = if self.open { b"\n\n".to_vec() } else { Vec::new() };
        sse::event(&mut event, None, &body);
        Err((reason, Bytes::from(event)))
    }
}

#[cfg(test)]
mod tests {
    use super::{Relay, HOLD_LIMIT};
    use bytes::Bytes;
    use futures_util::{stream, Stream, StreamExt};
    use std::time::Duration;

    fn chunks(items: Vec<Result<&'static str, &'static str>>) -> impl Stream<Item = Result<Bytes, &'static str>> {
        stream::iter(items.into_iter().map(|r| r.map(|s: &'static str| Bytes::from_static(s.as_bytes()))))
    }

    async fn relayed(items: Vec<Result<&'static str, &'static str>>) -> Vec<String> {
        let relay = Relay::new(chunks(items), Duration::from_secs(1), true);
        relay.map(|r| String::from_utf8(r.unwrap().to_vec()).unwrap()).collect().await
    }

    /// Every event of an SSE text, as its data lines joined.
    fn events(text: &str) -> Vec<String> {
        text.split("\n\n").filter(|e| !e.trim().is_empty()).map(|e| e.replace("data: ", "")).collect()
    }

    #[actix_rt::test]
    async fn whole_events_pass_through_unchanged() {
        let out = relayed(vec![Ok("data: 1\n\n"), Ok("data: 2\n\ndata: 3\n\n"), Ok("data: [DONE]\n\n")]).await;
        assert_eq!(out, ["data: 1\n\n", "data: 2\n\ndata: 3\n\n", "data: [DONE]\n\n"]);
    }

    #[actix_rt::test]
    async fn an_event_split_across_chunks_goes_out_when_it_is_whole() {
        let out = relayed(vec![Ok("data: 1\n\ndata: {\"a\""), Ok(":1}\n"), Ok("\ndata: [DO"), Ok("NE]\n\n")]).await;
        assert_eq!(out, ["data: 1\n\n", "data: {\"a\":1}\n\n", "data: [DONE]\n\n"]);
        let crlf = relayed(vec![Ok("data: 1\r\n"), Ok("\r\ndata: [DONE]\r\n\r\n")]).await;
        assert_eq!(crlf, ["data: 1\r\n\r\ndata: [DONE]\r\n\r\n"], "the blank line came with the second chunk");
    }

    #[actix_rt::test]
    async fn a_stream_broken_mid_event_drops_the_half_event_and_ends_with_an_error_event_of_its_own() {
        let out = relayed(vec![Ok("data: {\"content\":\"hel\"}\n\ndata: {\"content\":\"lo wo"), Err("reset by peer")])
            .await
            .concat();
        let events = events(&out);
        assert_eq!(events.len(), 2, "{out}");
        assert_eq!(events[0], "{\"content\":\"hel\"}");
        let error: serde_json::Value = serde_json::from_str(&events[1]).expect("the error event parses on its own");
        assert_eq!(error["error"]["code"], "stream_interrupted");
        assert!(error["error"]["message"].as_str().unwrap().contains("reset by peer"));
        assert!(out.ends_with("\n\n"));
    }

    #[actix_rt::test]
    async fn an_sse_stream_closed_before_done_ends_with_an_error_event() {
        let out = relayed(vec![Ok("data: 1\n\n"), Ok("data: {\"half")]).await;
        assert_eq!(out.len(), 2);
        assert!(out[1].starts_with("data: {\"error\"") && out[1].contains("before data: [DONE]"), "{out:?}");
    }

    #[actix_rt::test]
    async fn a_terminator_without_its_blank_line_still_completes_the_stream() {
        let out = relayed(vec![Ok("data: 1\n\n"), Ok("data: [DONE]")]).await;
        assert_eq!(out, ["data: 1\n\n", "data: [DONE]"]);
    }

    #[actix_rt::test]
    async fn an_event_too_large_to_hold_flows_and_an_error_first_closes_it() {
        let big: &'static str = Box::leak(format!("data: {}", "x".repeat(HOLD_LIMIT)).into_boxed_str());
        let out = relayed(vec![Ok(big), Ok("yyy"), Err("reset")]).await;
        assert_eq!(out[0], big);
        assert_eq!(out[1], "yyy", "the rest of the open event flows");
        assert!(out[2].starts_with("\n\ndata: {\"error\""), "closed first: {:?}", &out[2][..20]);
    }

    #[actix_rt::test]
    async fn a_plain_body_ends_when_the_upstream_ends_and_an_error_aborts_it() {
        let relay = Relay::new(chunks(vec![Ok("{\"a\":1}")]), Duration::from_secs(1), false);
        let out: Vec<_> = relay.map(|r| r.unwrap()).collect().await;
        assert_eq!(out, ["{\"a\":1}"]);
        let broken = Relay::new(chunks(vec![Ok("{\"a\":"), Err("reset")]), Duration::from_secs(1), false);
        let out: Vec<_> = broken.collect().await;
        assert!(out[0].is_ok() && out[1].as_ref().unwrap_err().to_string().contains("reset"));
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
