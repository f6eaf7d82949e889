//! Runs one client request through its plan: the `UpstreamRouter` orders the providers, the
//! `KeyRotator` hands out Cerebras keys, and this code sends, judges each answer, reports it,
//! and moves on to another key or the next provider while that can help.
//!
//! Runs on the worker that accepted the request, with that worker's client: the actors only
//! decide, so the bytes never queue behind one thread.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use actix::Addr;
use actix_web::body::SizedStream;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpMessage, HttpResponse};
use awc::error::{ConnectError, SendRequestError};
use awc::ClientResponse;
use bytes::Bytes;
use futures_util::{stream, StreamExt};
use serde_json::{Map, Value};

use crate::actors::key_rotator::{Acquire, Acquired, CurrentKey, KeyRotator, Report};
use crate::actors::supervision::ask;
use crate::actors::upstream_router::{ProviderEvent, ProviderRequests, UpstreamRouter};
use crate::error::{AttemptFailure, ProxyError};
use crate::key_pool::{KeyGrant, KeyVerdict};
use crate::logging::record::AttemptLog;
use crate::metrics::{reason_kind, Metrics};
use crate::providers::{Alternative, ProviderKind};
use crate::routing::{plan, RouteReason, RoutingPolicy, Step};
use crate::secret::Secret;
use crate::transform::token_estimate::ChatFacts;
use crate::upstream::headers::relays_response_header;
use crate::upstream::relay::Relay;
use crate::upstream::verdict::{
    is_context_length_exceeded, judge_answer, judge_send_error, says_quota_exhausted, Disposition, Failure,
};

/// Names the provider that answered.
pub const PROVIDER_HEADER: HeaderName = HeaderName::from_static("x-glm-proxy-provider");
/// Names the Cerebras key (its name, never its value) that answered.
pub const KEY_HEADER: HeaderName = HeaderName::from_static("x-glm-proxy-key");

/// Error bodies kept for the client are small; anything longer is cut.
const ERROR_BODY_LIMIT: usize = 256 * 1024;

/// A request as it goes upstream: built once, sent as often as attempts need.
pub struct Outgoing {
    pub method: Method,
    /// Path and query after the base URL, e.g. `/chat/completions?x=1`.
    pub path_and_query: String,
    pub headers: HeaderMap,
    /// The body Cerebras gets: the client's bytes, or the repaired history.
    pub body: Bytes,
    /// What routing needs of a chat completion; `None` for other requests, which only Cerebras serves.
    pub chat: Option<ChatFacts>,
}

/// What a dispatch needs from the application, shared by all workers.
pub struct Dispatcher {
    pub rotator: Addr<KeyRotator>,
    /// The rotator's published current key: read without a message on the common path.
    pub current_key: CurrentKey,
    pub router: Addr<UpstreamRouter>,
    /// Attempts per provider, counted here; the router reads them for `/_status`.
    pub provider_requests: Arc<ProviderRequests>,
    /// The router's policy, applied here: planning is pure and needs no round trip.
    pub routing: Arc<RoutingPolicy>,
    pub cerebras_base_url: String,
    pub alternatives: Vec<Alternative>,
    pub max_key_attempts: usize,
    pub max_key_wait: Duration,
    pub idle_timeout: Duration,
    pub fallback_on_cooldown: bool,
    pub metrics: Arc<Metrics>,
}

/// Who answered, for the response headers.
#[derive(Clone)]
struct Source {
    provider: ProviderKind,
    key_name: Option<Arc<str>>,
}

impl Source {
    fn target(&self) -> String {
        match &self.key_name {
            Some(name) => format!("{}/{name}", self.provider.name()),
            None => self.provider.name().to_owned(),
        }
    }
}

/// The outcome of one attempt.
enum AttemptResult {
    /// The client gets this: a success, or an error that is the client's to see.
    Deliver(HttpResponse),
    /// The key failed; another key may do better.
    KeyFailed(KeyVerdict),
    /// The provider cannot serve the request; the next provider may.
    ProviderFailed,
}

/// An upstream error answer, kept whole so the client can get it if nothing better comes.
struct HeldAnswer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    source: Source,
}

/// The attempts of a request so far, its failures, and the last upstream answer among them.
#[derive(Default)]
struct Trail {
    attempts: Vec<AttemptLog>,
    failures: Vec<AttemptFailure>,
    last_answer: Option<HeldAnswer>,
}

impl Trail {
    fn fail(&mut self, source: &Source, reason: String) {
        log::warn!("event=attempt_failed target={} reason={reason:?}", source.target());
        self.failures.push(AttemptFailure { target: source.target(), reason });
    }

    /// The client gets the last upstream answer, or a 502 naming every attempt.
    fn finish(&mut self) -> Result<HttpResponse, ProxyError> {
        match self.last_answer.take() {
            Some(answer) => Ok(answer.into_response()),
            None => Err(ProxyError::UpstreamFailed(std::mem::take(&mut self.failures))),
        }
    }
}

impl Dispatcher {
    /// Runs the request; the attempts made come back whatever the outcome, for the log.
    pub async fn dispatch(
        &self,
        client: &awc::Client,
        outgoing: Outgoing,
    ) -> (Result<HttpResponse, ProxyError>, Vec<AttemptLog>) {
        let mut trail = Trail::default();
        let result = self.run(client, &outgoing, &mut trail).await;
        (result, trail.attempts)
    }

    async fn run(
        &self,
        client: &awc::Client,
        outgoing: &Outgoing,
        trail: &mut Trail,
    ) -> Result<HttpResponse, ProxyError> {
        let plan = plan(&self.routing, outgoing.chat);
        if plan.reason != RouteReason::Default {
            log::info!("event=routed reason={:?}", plan.reason);
            self.router.do_send(ProviderEvent::Routed(plan.reason));
        }
        for (position, step) in plan.steps.iter().enumerate() {
            let can_fail_over = position + 1 < plan.steps.len();
            let (provider, result) = match *step {
                Step::Cerebras => {
                    (ProviderKind::Cerebras, self.via_cerebras(client, outgoing, can_fail_over, trail).await?)
                }
                Step::Alternative { index, vision } => {
                    let alternative = &self.alternatives[index];
                    (
                        alternative.kind,
                        self.via_alternative(client, outgoing, alternative, vision, can_fail_over, trail).await,
                    )
                }
            };
            if let Some(response) = result {
                return Ok(response);
            }
            if can_fail_over {
                let reason = trail.failures.last().map_or("other", |f| reason_kind(&f.reason));
                log::warn!("event=failover from={} reason={reason}", provider.name());
                self.metrics.failovers.with_label_values(&[provider.name(), reason]).inc();
                self.router.do_send(ProviderEvent::Failover { from: provider });
            }
        }
        trail.finish()
    }

    /// Cerebras with key rotation. `None` when the request should go to the next provider.
    async fn via_cerebras(
        &self,
        client: &awc::Client,
        outgoing: &Outgoing,
        can_fail_over: bool,
        trail: &mut Trail,
    ) -> Result<Option<HttpResponse>, ProxyError> {
        let url = format!("{}{}", self.cerebras_base_url, outgoing.path_and_query);
        let wait_deadline = Instant::now() + self.max_key_wait;
        let skip_cooldowns = self.fallback_on_cooldown && can_fail_over;
        for attempt in 0..self.max_key_attempts {
            // A retry asks the rotator, whose mailbox holds the report that rested the failed key;
            // the published key may not show that report yet.
            let published = if attempt == 0 { self.published_key() } else { None };
            let acquired = match published {
                Some(key) => Ok(key),
                None => self.acquire_key(wait_deadline, !skip_cooldowns).await,
            };
            let key = match acquired {
                Ok(key) => key,
                Err(ProxyError::AllKeysCooling { .. }) if skip_cooldowns => {
                    let source = Source { provider: ProviderKind::Cerebras, key_name: None };
                    trail.fail(&source, "every key is cooling down".to_owned());
                    return Ok(None);
                }
                Err(error) => return Err(error),
            };
            let source = Source { provider: ProviderKind::Cerebras, key_name: Some(key.name.clone()) };
            let result = self
                .attempt(client, &url, outgoing, outgoing.body.clone(), &key.secret, source, can_fail_over, trail)
                .await;
            match result {
                AttemptResult::Deliver(response) => {
                    key.served.fetch_add(1, Ordering::Relaxed);
                    return Ok(Some(response));
                }
                AttemptResult::KeyFailed(verdict) => self.rotator.do_send(Report { index: key.index, verdict }),
                AttemptResult::ProviderFailed => return Ok(None),
            }
        }
        Ok(None)
    }

    /// One try at an alternative, with its model written into the body.
    async fn via_alternative(
        &self,
        client: &awc::Client,
        outgoing: &Outgoing,
        alternative: &Alternative,
        vision: bool,
        can_fail_over: bool,
        trail: &mut Trail,
    ) -> Option<HttpResponse> {
        outgoing.chat?;
        let model = if vision { &alternative.vision_model } else { &alternative.model };
        let body = with_model(&outgoing.body, model);
        let url = format!("{}{}", alternative.base_url, outgoing.path_and_query);
        let source = Source { provider: alternative.kind, key_name: None };
        match self.attempt(client, &url, outgoing, body, &alternative.key, source, can_fail_over, trail).await {
            AttemptResult::Deliver(response) => Some(response),
            AttemptResult::KeyFailed(_) | AttemptResult::ProviderFailed => None,
        }
    }

    /// Sends once and judges the answer.
    #[allow(clippy::too_many_arguments)] // one attempt needs all of these; a struct would only rename them
    async fn attempt(
        &self,
        client: &awc::Client,
        url: &str,
        outgoing: &Outgoing,
        body: Bytes,
        key: &Secret,
        source: Source,
        can_fail_over: bool,
        trail: &mut Trail,
    ) -> AttemptResult {
        let started = Instant::now();
        let answer = send(client, url, outgoing, body, key).await;
        let status = answer.as_ref().ok().map(|a| a.status().as_u16());
        if status.is_some() {
            let ttfb = started.elapsed().as_secs_f64();
            self.metrics.upstream_ttfb.with_label_values(&[source.provider.name()]).observe(ttfb);
        }
        let result = match answer {
            Err(error) => self.settle(judge_send_error(&error, can_fail_over), None, &source, trail),
            Ok(mut answer) => match judge_answer(answer.status(), answer.headers(), can_fail_over) {
                Disposition::Relay if can_fail_over && answer.status().is_success() => {
                    self.relay_unless_quota_exhausted(answer, &source, trail).await
                }
                Disposition::Relay => AttemptResult::Deliver(self.relay(answer, None, &source)),
                Disposition::InspectBadRequest => {
                    let held = hold(&mut answer, &source).await;
                    if is_context_length_exceeded(&held.body) {
                        self.settle(Failure::FailOver("context_length_exceeded".to_owned()), Some(held), &source, trail)
                    } else {
                        AttemptResult::Deliver(held.into_response())
                    }
                }
                Disposition::Fail(failure) => {
                    let held = hold(&mut answer, &source).await;
                    self.settle(failure, Some(held), &source, trail)
                }
            },
        };
        let failed = !matches!(result, AttemptResult::Deliver(_));
        self.provider_requests.count(source.provider);
        if failed {
            self.router.do_send(ProviderEvent::Failed { provider: source.provider });
        }
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        log::debug!("event=attempt target={} failed={failed} ms={duration_ms:.1}", source.target());
        let error = if failed { trail.failures.last().map(|f| f.reason.clone()) } else { None };
        trail.attempts.push(AttemptLog {
            provider: source.provider.name(),
            key: source.key_name,
            status,
            error,
            duration_ms,
        });
        result
    }

    /// Records a failed attempt and says what comes next.
    fn settle(&self, failure: Failure, held: Option<HeldAnswer>, source: &Source, trail: &mut Trail) -> AttemptResult {
        let (result, reason) = match failure {
            Failure::FailOver(reason) => (AttemptResult::ProviderFailed, reason),
            Failure::RetryWithAnotherKey(verdict) => {
                let reason = match &verdict {
                    KeyVerdict::RateLimited { .. } => "HTTP 429".to_owned(),
                    KeyVerdict::Failed { reason } | KeyVerdict::Invalid { reason } => reason.clone(),
                };
                (AttemptResult::KeyFailed(verdict), reason)
            }
        };
        trail.fail(source, reason);
        if held.is_some() {
            trail.last_answer = held;
        }
        result
    }

    /// Reads the first chunk before committing to a success: some providers answer an
    /// exhausted quota with a 200. Nothing has reached the client yet, so failover is still open.
    async fn relay_unless_quota_exhausted(
        &self,
        mut answer: ClientResponse,
        source: &Source,
        trail: &mut Trail,
    ) -> AttemptResult {
        let first = match tokio::time::timeout(self.idle_timeout, answer.next()).await {
            Ok(None) => None,
            Ok(Some(Ok(chunk))) => Some(chunk),
            Ok(Some(Err(error))) => {
                return self.settle(Failure::FailOver(format!("answer broke: {error}")), None, source, trail)
            }
            Err(_) => {
                return self.settle(
                    Failure::FailOver("no data within UPSTREAM_IDLE_TIMEOUT".to_owned()),
                    None,
                    source,
                    trail,
                )
            }
        };
        match first {
            Some(chunk) if says_quota_exhausted(&chunk) => {
                let held = HeldAnswer {
                    status: answer.status(),
                    headers: answer.headers().clone(),
                    body: chunk,
                    source: source.clone(),
                };
                self.settle(Failure::FailOver("token quota is not enough".to_owned()), Some(held), source, trail)
            }
            first => AttemptResult::Deliver(self.relay(answer, first, source)),
        }
    }

    /// The sticky key, or the first to come free if every key rests, within the wait budget.
    /// The key the rotator last published, read without a message.
    fn published_key(&self) -> Option<KeyGrant> {
        self.current_key.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    async fn acquire_key(&self, wait_deadline: Instant, wait: bool) -> Result<KeyGrant, ProxyError> {
        match ask(&self.rotator, Acquire { wait }).await? {
            Acquired::Ready(grant) => Ok(grant),
            Acquired::AllCooling { free_in, ticket } => {
                let budget = wait_deadline.saturating_duration_since(Instant::now());
                let cooling = ProxyError::AllKeysCooling { retry_after: free_in };
                let Some(ticket) = ticket.filter(|_| free_in <= budget) else {
                    return Err(cooling);
                };
                log::info!("event=waiting_for_key seconds={:.2}", free_in.as_secs_f64());
                let waiting = Instant::now();
                let waited = tokio::time::timeout(budget, ticket).await;
                self.metrics.key_wait.observe(waiting.elapsed().as_secs_f64());
                match waited {
                    Ok(Ok(grant)) => Ok(grant),
                    Ok(Err(_)) => Err(ProxyError::ActorUnavailable("key rotator")),
                    Err(_) => Err(cooling),
                }
            }
        }
    }

    /// Streams the answer to the client as it arrives, after `first` if it was already read.
    fn relay(&self, mut answer: ClientResponse, first: Option<Bytes>, source: &Source) -> HttpResponse {
        let mut response = HttpResponse::build(answer.status());
        copy_headers(answer.headers(), &mut response);
        tag(&mut response, source);
        let content_length = answer
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let sse = is_event_stream(answer.headers());
        let upstream = stream::iter(first.map(Ok)).chain(answer.take_payload());
        let body = Relay::new(upstream, self.idle_timeout, sse);
        match content_length {
            Some(length) if !sse => response.body(SizedStream::new(length, body)),
            _ => response.streaming(body),
        }
    }
}

/// The chat body with another `model`; every other field stays as the client sent it.
/// Only a request that goes to an alternative pays for this parse.
fn with_model(body: &Bytes, model: &str) -> Bytes {
    let Ok(mut chat) = serde_json::from_slice::<Map<String, Value>>(body) else {
        // Only text that the lighter read skipped, such as a lone surrogate escape, gets here:
        // the body goes as it is, and the provider judges it.
        return body.clone();
    };
    chat.insert("model".to_owned(), Value::String(model.to_owned()));
    // A map of JSON values always serialises.
    Bytes::from(serde_json::to_vec(&chat).unwrap_or_default())
}

/// How often a request is resent when pooled connections turn out to be closed. An upstream
/// that closes many idle connections at once can hand out several stale ones in a row.
const STALE_CONNECTION_RESENDS: usize = 4;

/// Sends, and again on another connection if a pooled one turns out to be closed.
///
/// An upstream may close an idle keep-alive connection just as it is reused: the request then
/// meets end-of-file before any answer, so the upstream never saw it. That is no fault of the
/// key or the provider, and resending is safe.
async fn send(
    client: &awc::Client,
    url: &str,
    outgoing: &Outgoing,
    body: Bytes,
    key: &Secret,
) -> Result<ClientResponse, SendRequestError> {
    let mut resends = 0;
    loop {
        match send_once(client, url, outgoing, body.clone(), key).await {
            Err(SendRequestError::Connect(ConnectError::Disconnected)) if resends < STALE_CONNECTION_RESENDS => {
                resends += 1;
                log::debug!("event=stale_connection action=resend resends={resends}");
            }
            sent => return sent,
        }
    }
}

async fn send_once(
    client: &awc::Client,
    url: &str,
    outgoing: &Outgoing,
    body: Bytes,
    key: &Secret,
) -> Result<ClientResponse, SendRequestError> {
    let mut request = client.request(outgoing.method.clone(), url).no_decompress();
    *request.headers_mut() = outgoing.headers.clone();
    if let Ok(bearer) = HeaderValue::try_from(format!("Bearer {}", key.expose())) {
        request = request.insert_header((header::AUTHORIZATION, bearer));
    }
    if body.is_empty() && matches!(outgoing.method, Method::GET | Method::HEAD) {
        request.send().await
    } else {
        request.send_body(body).await
    }
}

/// Reads an error answer whole (it is small) so its connection can be reused.
async fn hold(answer: &mut ClientResponse, source: &Source) -> HeldAnswer {
    let body = answer.body().limit(ERROR_BODY_LIMIT).await.unwrap_or_default();
    HeldAnswer { status: answer.status(), headers: answer.headers().clone(), body, source: source.clone() }
}

impl HeldAnswer {
    fn into_response(self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        copy_headers(&self.headers, &mut response);
        tag(&mut response, &self.source);
        response.body(self.body)
    }
}

fn copy_headers(upstream: &HeaderMap, response: &mut actix_web::HttpResponseBuilder) {
    for (name, value) in upstream {
        if relays_response_header(upstream, name) {
            response.append_header((name.clone(), value.clone()));
        }
    }
}

fn tag(response: &mut actix_web::HttpResponseBuilder, source: &Source) {
    response.insert_header((PROVIDER_HEADER, source.provider.name()));
    if let Some(name) = source.key_name.as_deref().and_then(|n| HeaderValue::from_str(n).ok()) {
        response.insert_header((KEY_HEADER, name));
    }
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
}
