//! Prometheus metrics, served at `GET /metrics` in the text exposition format.
//!
//! One registry per proxy (tests run several in one process). Label values come from small
//! fixed sets (providers, status codes, key names, reason kinds), never from client input.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// Final answers by the provider that gave them (`proxy` for the proxy's own) and status.
    pub requests: IntCounterVec,
    /// Requests that left a provider for the next, by provider and kind of reason.
    pub failovers: IntCounterVec,
    pub key_cooldowns: IntCounterVec,
    /// Times a provider's circuit opened.
    pub circuit_opens: IntCounterVec,
    /// 1 while a provider's circuit is open or probing, else 0.
    pub circuit_open: IntGaugeVec,
    pub key_wait: Histogram,
    /// From sending to an upstream until its answer's head arrived.
    pub upstream_ttfb: HistogramVec,
    /// From the request's arrival until the last byte of the answer was handed to the client.
    pub request_duration: HistogramVec,
    pub auth_failures: IntCounterVec,
    pub log_records_dropped: IntCounter,
    pub in_flight_requests: IntGauge,
    pub in_flight_streams: IntGauge,
    /// Request body bytes reserved from `MAX_BUFFERED_BODY_BYTES` now.
    pub body_bytes_buffered: IntGauge,
    /// Requests waiting for a Cerebras key now (at most `MAX_WAITING_REQUESTS`).
    pub requests_waiting_for_key: IntGauge,
    /// Client-key cache reloads that failed.
    pub auth_reload_failures: IntCounter,
    /// Seconds since the client-key cache was last reloaded.
    pub auth_cache_age_seconds: IntGauge,
    /// Unknown key hashes remembered (at most `AUTH_MISS_CACHE_SIZE`).
    pub auth_missed_keys: IntGauge,
    /// Client keys looked up in the database because the cache did not know them.
    pub auth_lookups: IntCounter,
    /// Bytes of request log records waiting for the writer (at most `LOG_QUEUE_MAX_BYTES`).
    pub log_queue_bytes: IntGauge,
    /// Records written without their bodies because the day reached `LOG_MAX_DAY_BYTES`.
    pub log_bodies_omitted: IntCounter,
}

/// Buckets from 1 ms to 5 min: fast first bytes and long streams both land somewhere useful.
const SECONDS: &[f64] =
    &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("glm_proxy".to_owned()), None)?;
        let counter = |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
            let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(metric.clone()))?;
            Ok(metric)
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| -> Result<HistogramVec, prometheus::Error> {
            let metric = HistogramVec::new(HistogramOpts::new(name, help).buckets(SECONDS.to_vec()), labels)?;
            registry.register(Box::new(metric.clone()))?;
            Ok(metric)
        };
        let gauge = |name: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
            let metric = IntGauge::new(name, help)?;
            registry.register(Box::new(metric.clone()))?;
            Ok(metric)
        };
        let circuit_open = IntGaugeVec::new(
            Opts::new("circuit_open", "1 while a provider's circuit is open or half-open"),
            &["provider"],
        )?;
        registry.register(Box::new(circuit_open.clone()))?;
        let key_wait = Histogram::with_opts(
            HistogramOpts::new("key_wait_seconds", "Time requests waited for a Cerebras key to come free")
                .buckets(SECONDS.to_vec()),
        )?;
        registry.register(Box::new(key_wait.clone()))?;
        let auth_reload_failures =
            IntCounter::new("auth_reload_failures_total", "Client-key cache reloads from the database that failed")?;
        registry.register(Box::new(auth_reload_failures.clone()))?;
        let auth_lookups =
            IntCounter::new("auth_lookups_total", "Client keys looked up in the database (not in the cache)")?;
        registry.register(Box::new(auth_lookups.clone()))?;
        let log_bodies_omitted = IntCounter::new(
            "log_bodies_omitted_total",
            "Request log records written without bodies: the day's file reached LOG_MAX_DAY_BYTES",
        )?;
        registry.register(Box::new(log_bodies_omitted.clone()))?;
        let log_records_dropped =
            IntCounter::new("log_records_dropped_total", "Request log records dropped because the writer fell behind")?;
        registry.register(Box::new(log_records_dropped.clone()))?;
        Ok(Self {
            requests: counter("requests_total", "Answers sent to clients", &["provider", "status"])?,
            failovers: counter("failovers_total", "Requests that moved on to the next provider", &["from", "reason"])?,
            key_cooldowns: counter("key_cooldowns_total", "Cerebras keys put to rest", &["key"])?,
            circuit_opens: counter("circuit_opens_total", "Times a provider's circuit opened", &["provider"])?,
            circuit_open,
            key_wait,
            upstream_ttfb: histogram(
                "upstream_ttfb_seconds",
                "Time to an upstream answer's first byte",
                &["provider"],
            )?,
            request_duration: histogram(
                "request_duration_seconds",
                "Time from a request's arrival to the end of its answer",
                &["provider"],
            )?,
            auth_failures: counter("auth_failures_total", "Requests refused for their client key", &["code"])?,
            log_records_dropped,
            in_flight_requests: gauge("in_flight_requests", "Requests being answered")?,
            in_flight_streams: gauge("in_flight_streams", "SSE answers being streamed")?,
            body_bytes_buffered: gauge(
                "body_bytes_buffered",
                "Request body bytes held at once (MAX_BUFFERED_BODY_BYTES)",
            )?,
            auth_reload_failures,
            auth_lookups,
            log_bodies_omitted,
            log_queue_bytes: gauge("log_queue_bytes", "Bytes of request log records waiting for the writer")?,
            auth_cache_age_seconds: gauge("auth_cache_age_seconds", "Seconds since the client-key cache was reloaded")?,
            auth_missed_keys: gauge("auth_missed_keys", "Unknown client-key hashes remembered (AUTH_MISS_CACHE_SIZE)")?,
            requests_waiting_for_key: gauge(
                "requests_waiting_for_key",
                "Requests waiting for a Cerebras key to come free (MAX_WAITING_REQUESTS)",
            )?,
            registry,
        })
    }

    /// The exposition text.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut text = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut text)?;
        String::from_utf8(text).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

/// Keeps a response counted as in flight (and as a stream, for SSE) until its body is done,
/// then records how long the whole answer took.
pub struct MeteredBody {
    body: actix_web::body::BoxBody,
    metrics: std::sync::Arc<Metrics>,
    provider: &'static str,
    started: std::time::Instant,
    stream: bool,
}

impl MeteredBody {
    /// Counts the answer; `started` is when the request arrived (already counted in flight).
    pub fn new(
        body: actix_web::body::BoxBody,
        metrics: std::sync::Arc<Metrics>,
        provider: &'static str,
        started: std::time::Instant,
        stream: bool,
    ) -> Self {
        if stream {
            metrics.in_flight_streams.inc();
        }
        Self { body, metrics, provider, started, stream }
    }
}

impl actix_web::body::MessageBody for MeteredBody {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> actix_web::body::BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<bytes::Bytes, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_next(cx)
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_with_the_prefix() {
        let metrics = Metrics::new().unwrap();
        metrics.requests.with_label_values(&["cerebras", "200"]).inc();
        metrics.in_flight_streams.inc();
        let text = metrics.render().unwrap();
        assert!(text.contains("glm_proxy_requests_total{provider=\"cerebras\",status=\"200\"} 1"), "{text}");
        assert!(text.contains("glm_proxy_in_flight_streams 1"));
    }
}
