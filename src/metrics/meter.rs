//! One answer's share of the metrics: counted in flight (and as a stream, for SSE) until it is
//! done, then how long the whole answer took and the tokens it reports.

use std::sync::Arc;
use std::time::Instant;

use super::Metrics;
use crate::wire::chat::Usage;

pub struct Meter {
    metrics: Arc<Metrics>,
    provider: &'static str,
    started: Instant,
    stream: bool,
    /// For an upstream's successful answer, the model label its tokens are counted under.
    model: Option<Arc<str>>,
}

impl Meter {
    /// Counts the answer; `started` is when the request arrived (already counted in flight).
    pub fn new(
        metrics: Arc<Metrics>,
        provider: &'static str,
        started: Instant,
        stream: bool,
        model: Option<Arc<str>>,
    ) -> Self {
        if stream {
            metrics.in_flight_streams.inc();
        }
        Self { metrics, provider, started, stream, model }
    }

    /// Whether the answer's usage counts: it is an upstream's successful answer.
    pub fn counts_tokens(&self) -> bool {
        self.model.is_some()
    }

    pub fn tokens(&self, usage: Usage) {
        if let Some(model) = &self.model {
            let count = |kind, n| self.metrics.tokens.with_label_values(&[self.provider, model, kind]).inc_by(n);
            count("prompt", usage.prompt_tokens);
            count("completion", usage.completion_tokens);
        }
    }
}

/// The answer is done when its meter goes, however it ended.
impl Drop for Meter {
    fn drop(&mut self) {
        self.metrics.in_flight_requests.dec();
        if self.stream {
            self.metrics.in_flight_streams.dec();
        }
        let seconds = self.started.elapsed().as_secs_f64();
        self.metrics.request_duration.with_label_values(&[self.provider]).observe(seconds);
    }
}
