//! Prometheus metrics, served at `GET /metrics` in the text exposition format.
//!
//! One registry per proxy (tests run several in one process). Label values come from small
//! fixed or bounded sets (providers, status codes, key names, reason kinds, at most
//! `MAX_MODEL_LABELS` models), never from free client input. Every family has its samples from
//! the start ([`Metrics::preset`]), so dashboards and alerts see zeros, not "no data".

mod meter;
pub mod timeline;

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::RwLock;
use prometheus::core::Collector;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

pub use self::meter::Meter;
use crate::policy::fault::Reason;

pub struct Metrics {
    registry: Registry,
    /// The last 15 minutes by the second, for the dashboard.
    pub timeline: timeline::Timeline,
    /// The process' own (`process_cpu_seconds_total`, `process_resident_memory_bytes`, …).
    process: Registry,
    /// Final answers by the provider that gave them (`proxy` for the proxy's own) and status.
    pub requests: IntCounterVec,
    /// Requests that left a provider for the next, by provider and kind of reason.
    pub failovers: IntCounterVec,
    /// Keys put to rest or rejected, by provider and key name.
    pub key_cooldowns: IntCounterVec,
    /// Keys by provider and state (`available`, `cooling`, `invalid`).
    pub keys: IntGaugeVec,
    /// 1 for each key's current state, by provider, key name and state.
    pub key_state: IntGaugeVec,
    /// Reloads of `CEREBRAS_API_KEYS_FILE`, by outcome (`reloaded`, `failed`).
    pub key_reloads: IntCounterVec,
    /// Model ids the proxy sends a provider that it no longer serves, by provider.
    pub stale_models: IntGaugeVec,
    /// Reads of providers' `GET /models`, by provider and outcome (`listed`, `unavailable`).
    pub model_checks: IntCounterVec,
    /// Times a provider's circuit opened.
    pub circuit_opens: IntCounterVec,
    /// 1 while a provider's circuit is open or half-open, else 0.
    pub circuit_open: IntGaugeVec,
    /// Time requests waited for a key, by provider.
    pub key_wait: HistogramVec,
    /// Attempts sent to each provider.
    pub attempts: IntCounterVec,
    /// From sending to an upstream until its answer's head arrived.
    pub upstream_ttfb: HistogramVec,
    /// From the request's arrival until the last byte of the answer was handed to the client.
    pub request_duration: HistogramVec,
    /// Tokens the answers report (`usage`), by provider, model and kind (`prompt`, `completion`).
    pub tokens: IntCounterVec,
    /// Requests by client key name (with client authentication on).
    pub client_requests: IntCounterVec,
    /// Tokens the providers reported by client key name and direction (`in`, `out`).
    pub client_tokens: IntCounterVec,
    /// Requests refused by a client key's own limits, by key name and limit.
    pub client_limited: IntCounterVec,
    /// Requests that waited for Redis past their key's credit (replicas sharing limits).
    pub client_limit_waits: IntCounter,
    /// 1 while client limits hold over every replica through Redis.
    pub client_limits_shared: IntGauge,
    pub auth_failures: IntCounterVec,
    pub log_records_dropped: IntCounter,
    pub in_flight_requests: IntGauge,
    pub in_flight_streams: IntGauge,
    /// Request body bytes reserved from `MAX_BUFFERED_BODY_BYTES` now.
    pub body_bytes_buffered: IntGauge,
    /// Requests waiting for a key now, by provider (at most `MAX_WAITING_REQUESTS` each).
    pub requests_waiting_for_key: IntGaugeVec,
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
    /// 1 while Redis answers (with `REDIS_URL`), else 0.
    pub redis_up: IntGauge,
    /// Redis commands and subscriptions that failed.
    pub redis_errors: IntCounter,
    /// Model names used as labels so far.
    models: RwLock<HashSet<Arc<str>>>,
}

/// One provider's series to preset: its name and its keys' names.
pub struct Preset<'a> {
    pub name: &'a str,
    pub keys: Vec<&'a str>,
}

/// Buckets from 1 ms to 5 min: fast first bytes and long streams both land somewhere useful.
const SECONDS: &[f64] =
    &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

/// Distinct model names used as labels; later ones are counted as `other`.
const MAX_MODEL_LABELS: usize = 64;

/// Registers a metric and hands it back.
fn registered<M: Collector + Clone + 'static>(registry: &Registry, metric: M) -> Result<M, prometheus::Error> {
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("glm_proxy".to_owned()), None)?;
        let r = &registry;
        let counters =
            |name: &str, help: &str, labels: &[&str]| registered(r, IntCounterVec::new(Opts::new(name, help), labels)?);
        let counter = |name: &str, help: &str| registered(r, IntCounter::new(name, help)?);
        let gauges =
            |name: &str, help: &str, labels: &[&str]| registered(r, IntGaugeVec::new(Opts::new(name, help), labels)?);
        let gauge = |name: &str, help: &str| registered(r, IntGauge::new(name, help)?);
        let seconds = |name: &str, help: &str| HistogramOpts::new(name, help).buckets(SECONDS.to_vec());
        let histograms =
            |name: &str, help: &str, labels: &[&str]| registered(r, HistogramVec::new(seconds(name, help), labels)?);
        // Unprefixed, as the convention (and the dashboards and alerts built on it) expects.
        let process = Registry::new();
        #[cfg(target_os = "linux")]
        process.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
        let build = gauges("build_info", "The running build, by version", &["version"])?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        Ok(Self {
            requests: counters("requests_total", "Answers sent to clients", &["provider", "status"])?,
            failovers: counters("failovers_total", "Requests that moved on to the next provider", &["from", "reason"])?,
            key_cooldowns: counters(
                "key_cooldowns_total",
                "Provider keys put to rest or rejected",
                &["provider", "key"],
            )?,
            keys: gauges("keys", "Provider keys by state", &["provider", "state"])?,
            key_state: gauges("key_state", "1 for each provider key's current state", &["provider", "key", "state"])?,
            key_reloads: counters("key_reloads_total", "Reloads of CEREBRAS_API_KEYS_FILE", &["outcome"])?,
            attempts: counters("upstream_attempts_total", "Attempts sent to each provider", &["provider"])?,
            stale_models: gauges(
                "stale_models",
                "Model ids sent to a provider that its GET /models leaves out or it answered 404 for",
                &["provider"],
            )?,
            model_checks: counters(
                "model_checks_total",
                "Reads of a provider's GET /models, by outcome (listed, unavailable)",
                &["provider", "outcome"],
            )?,
            circuit_opens: counters("circuit_opens_total", "Times a provider's circuit opened", &["provider"])?,
            circuit_open: gauges("circuit_open", "1 while a provider's circuit is open or half-open", &["provider"])?,
            key_wait: histograms(
                "key_wait_seconds",
                "Time requests waited for a provider's key to come free",
                &["provider"],
            )?,
            upstream_ttfb: histograms(
                "upstream_ttfb_seconds",
                "Time to an upstream answer's first byte",
                &["provider"],
            )?,
            request_duration: histograms(
                "request_duration_seconds",
                "Time from a request's arrival to the end of its answer",
                &["provider"],
            )?,
            tokens: counters("tokens_total", "Tokens the answers report using", &["provider", "model", "kind"])?,
            client_requests: counters("client_requests_total", "Requests by client key name", &["client"])?,
            client_tokens: counters(
                "client_tokens_total",
                "Tokens the providers reported, by client key name and direction (in, out)",
                &["client", "direction"],
            )?,
            client_limited: counters(
                "client_limited_total",
                "Requests refused by their client key's limits, by key name and limit",
                &["client", "limit"],
            )?,
            client_limit_waits: counter(
                "client_limit_waits_total",
                "Requests past their client key's credit that waited for Redis (at most 1 s)",
            )?,
            client_limits_shared: gauge(
                "client_limits_shared",
                "1 while client limits hold over every replica through Redis, 0 while each counts alone",
            )?,
            auth_failures: counters("auth_failures_total", "Requests refused for their client key", &["code"])?,
            log_records_dropped: counter(
                "log_records_dropped_total",
                "Request log records dropped because the writer fell behind",
            )?,
            in_flight_requests: gauge("in_flight_requests", "Requests being answered")?,
            in_flight_streams: gauge("in_flight_streams", "SSE answers being streamed")?,
            body_bytes_buffered: gauge(
                "body_bytes_buffered",
                "Request body bytes held at once (MAX_BUFFERED_BODY_BYTES)",
            )?,
            requests_waiting_for_key: gauges(
                "requests_waiting_for_key",
                "Requests waiting for a provider's key to come free (MAX_WAITING_REQUESTS)",
                &["provider"],
            )?,
            auth_reload_failures: counter(
                "auth_reload_failures_total",
                "Client-key cache reloads from the database that failed",
            )?,
            auth_cache_age_seconds: gauge("auth_cache_age_seconds", "Seconds since the client-key cache was reloaded")?,
            auth_missed_keys: gauge("auth_missed_keys", "Unknown client-key hashes remembered (AUTH_MISS_CACHE_SIZE)")?,
            auth_lookups: counter("auth_lookups_total", "Client keys looked up in the database (not in the cache)")?,
            log_queue_bytes: gauge("log_queue_bytes", "Bytes of request log records waiting for the writer")?,
            log_bodies_omitted: counter(
                "log_bodies_omitted_total",
                "Request log records written without bodies: the day's file reached LOG_MAX_DAY_BYTES",
            )?,
            redis_up: gauge("redis_up", "1 while Redis, where replicas share key state, answers")?,
            redis_errors: counter("redis_errors_total", "Redis commands and subscriptions that failed")?,
            models: RwLock::default(),
            registry,
            process,
            timeline: timeline::Timeline::new(),
        })
    }

    /// A key a reload removed: its series go, so that the metrics name only keys in use.
    pub fn forget_key(&self, provider: &str, key: &str) {
        let _ = self.key_cooldowns.remove_label_values(&[provider, key]);
        for state in ["available", "cooling", "invalid"] {
            let _ = self.key_state.remove_label_values(&[provider, key, state]);
        }
    }

    /// Gives every labelled family its known series at zero: per provider, per reason, per
    /// key, per state, per refusal code. `models` are the provider ids requests may name.
    pub fn preset<'m>(&self, providers: &[Preset<'_>], models: impl Iterator<Item = (&'static str, &'m str)>) {
        self.timeline.name(providers.iter().map(|provider| provider.name.to_owned()).collect());
        for provider in providers {
            let name = provider.name;
            self.circuit_opens.with_label_values(&[name]);
            self.circuit_open.with_label_values(&[name]);
            self.stale_models.with_label_values(&[name]);
            for outcome in ["listed", "unavailable"] {
                self.model_checks.with_label_values(&[name, outcome]);
            }
            self.requests.with_label_values(&[name, "200"]);
            self.upstream_ttfb.with_label_values(&[name]);
            self.request_duration.with_label_values(&[name]);
            self.attempts.with_label_values(&[name]);
            self.key_wait.with_label_values(&[name]);
            self.requests_waiting_for_key.with_label_values(&[name]);
            for reason in Reason::LABELS {
                self.failovers.with_label_values(&[name, reason]);
            }
            for key in &provider.keys {
                self.key_cooldowns.with_label_values(&[name, key]);
            }
            for kind in ["prompt", "completion"] {
                // A provider that passes the client's model is labelled with none.
                self.tokens.with_label_values(&[name, "", kind]);
            }
        }
        self.requests.with_label_values(&["proxy", "502"]);
        for outcome in ["reloaded", "failed"] {
            self.key_reloads.with_label_values(&[outcome]);
        }
        self.request_duration.with_label_values(&["proxy"]);
        for (provider, model) in models {
            for kind in ["prompt", "completion"] {
                self.tokens.with_label_values(&[provider, &self.model_label(model), kind]);
            }
        }
        for code in ["missing_authorization", "invalid_authorization", "invalid_api_key"] {
            self.auth_failures.with_label_values(&[code]);
        }
    }

    /// `model` as a label: itself while fewer than `MAX_MODEL_LABELS` models have been seen,
    /// else `other`, so no client can grow the label set without bound.
    pub fn model_label(&self, model: &str) -> Arc<str> {
        if let Some(known) = self.models.read().get(model) {
            return known.clone();
        }
        let mut models = self.models.write();
        if models.len() >= MAX_MODEL_LABELS {
            return Arc::from("other");
        }
        let label: Arc<str> = Arc::from(model);
        models.insert(label.clone());
        label
    }

    /// The exposition text.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut text = Vec::new();
        let mut families = self.registry.gather();
        families.extend(self.process.gather());
        TextEncoder::new().encode(&families, &mut text)?;
        String::from_utf8(text).map_err(|e| prometheus::Error::Msg(e.to_string()))
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
        assert!(text.contains(&format!("glm_proxy_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"))));
        #[cfg(target_os = "linux")]
        assert!(text.contains("\nprocess_resident_memory_bytes ") && !text.contains("glm_proxy_process_"), "{text}");
    }

    #[test]
    fn model_labels_are_bounded() {
        let metrics = Metrics::new().unwrap();
        for i in 0..MAX_MODEL_LABELS {
            assert_eq!(&*metrics.model_label(&format!("m{i}")), format!("m{i}"));
        }
        assert_eq!(&*metrics.model_label("one-too-many"), "other");
        assert_eq!(&*metrics.model_label("m0"), "m0", "known models keep their label");
    }
}
