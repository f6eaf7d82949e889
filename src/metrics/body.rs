//! A response body that keeps its request counted in flight (and as a stream, for SSE) until
//! it is done, then records how long the whole answer took and the tokens it reports.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use bytes::Bytes;

use super::Metrics;
use crate::transform::answer_tail::Tail;

pub struct MeteredBody {
    body: BoxBody,
    metrics: Arc<Metrics>,
    provider: &'static str,
    started: Instant,
    stream: bool,
    /// For an upstream's successful answer: its model label, and the end of the answer, which
    /// holds its token usage.
    tokens: Option<(Arc<str>, Tail)>,
}

impl MeteredBody {
    /// Counts the answer; `started` is when the request arrived (already counted in flight).
    /// With `model`, the tokens the answer reports are counted under it.
    pub fn new(
        body: BoxBody,
        metrics: Arc<Metrics>,
        provider: &'static str,
        started: Instant,
        stream: bool,
        model: Option<Arc<str>>,
    ) -> Self {
        if stream {
            metrics.in_flight_streams.inc();
        }
        let tokens = model.map(|model| (model, Tail::default()));
        Self { body, metrics, provider, started, stream, tokens }
    }
}

impl MessageBody for MeteredBody {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.body).poll_next(cx);
        if let (Poll::Ready(Some(Ok(chunk))), Some((_, tail))) = (&polled, &mut this.tokens) {
            tail.push(chunk);
        }
        polled
    }
}

impl Drop for MeteredBody {
    fn drop(&mut self) {
        self.metrics.in_flight_requests.dec();
        if self.stream {
            self.metrics.in_flight_streams.dec();
        }
        let seconds = self.started.elapsed().as_secs_f64();
        self.metrics.request_duration.with_label_values(&[self.provider]).observe(seconds);
        if let Some((model, usage)) = self.tokens.as_ref().and_then(|(model, tail)| Some((model, tail.usage()?))) {
            let count = |kind, n| self.metrics.tokens.with_label_values(&[self.provider, model, kind]).inc_by(n);
            count("prompt", usage.prompt_tokens);
            count("completion", usage.completion_tokens);
        }
    }
}
