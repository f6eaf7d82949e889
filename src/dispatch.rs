//! Runs one client request against Cerebras: takes a key from the `KeyRotator`, sends,
//! judges the answer, reports it, and tries again with another key while that can help.
//!
//! Runs on the worker that accepted the request, with that worker's client: the actor only
//! decides which key, so the bytes never queue behind one thread.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use actix_web::body::SizedStream;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpMessage, HttpResponse};
use awc::ClientResponse;
use bytes::Bytes;

use crate::actors::key_rotator::{Acquire, Acquired, KeyRotator, Report};
use crate::actors::supervision::ask;
use crate::error::{AttemptFailure, ProxyError};
use crate::key_pool::{KeyGrant, KeyVerdict};
use crate::upstream::headers::relays_response_header;
use crate::upstream::relay::Relay;
use crate::upstream::verdict::{judge_answer, judge_send_error, Disposition};

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
    pub body: Bytes,
}

/// What a dispatch needs from the application, shared by all workers.
pub struct Dispatcher {
    pub rotator: Addr<KeyRotator>,
    pub base_url: String,
    pub max_attempts: usize,
    pub max_key_wait: Duration,
    pub idle_timeout: Duration,
}

/// An upstream error answer, kept whole so the client can get it if nothing better comes.
struct HeldAnswer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    key_name: Arc<str>,
}

impl Dispatcher {
    pub async fn dispatch(&self, client: &awc::Client, outgoing: Outgoing) -> Result<HttpResponse, ProxyError> {
        let url = format!("{}{}", self.base_url, outgoing.path_and_query);
        let wait_deadline = Instant::now() + self.max_key_wait;
        let mut failures = Vec::new();
        let mut last_answer: Option<HeldAnswer> = None;

        for _ in 0..self.max_attempts {
            let key = self.acquire_key(wait_deadline).await?;
            let verdict = match send(client, &url, &outgoing, &key).await {
                Ok(answer) => match judge_answer(answer.status(), answer.headers()) {
                    Disposition::Relay => {
                        self.report(&key, KeyVerdict::Success);
                        return Ok(self.relay(answer, &key.name));
                    }
                    Disposition::RetryWithAnotherKey(verdict) => {
                        last_answer = Some(hold(answer, &key.name).await);
                        verdict
                    }
                },
                Err(error) => judge_send_error(&error),
            };
            log::warn!("event=attempt_failed provider=cerebras key={} verdict={verdict:?}", key.name);
            failures.push(AttemptFailure { target: format!("cerebras/{}", key.name), reason: reason_of(&verdict) });
            self.report(&key, verdict);
        }

        match last_answer {
            Some(answer) => Ok(answer.into_response()),
            None => Err(ProxyError::UpstreamFailed(failures)),
        }
    }

    /// The sticky key, or the first to come free if every key rests, within the wait budget.
    async fn acquire_key(&self, wait_deadline: Instant) -> Result<KeyGrant, ProxyError> {
        match ask(&self.rotator, Acquire { wait: true }).await? {
            Acquired::Ready(grant) => Ok(grant),
            Acquired::AllCooling { free_in, ticket } => {
                let budget = wait_deadline.saturating_duration_since(Instant::now());
                let cooling = ProxyError::AllKeysCooling { retry_after: free_in };
                let Some(ticket) = ticket.filter(|_| free_in <= budget) else {
                    return Err(cooling);
                };
                log::info!("event=waiting_for_key seconds={:.2}", free_in.as_secs_f64());
                match tokio::time::timeout(budget, ticket).await {
                    Ok(Ok(grant)) => Ok(grant),
                    Ok(Err(_)) => Err(ProxyError::ActorUnavailable("key rotator")),
                    Err(_) => Err(cooling),
                }
            }
        }
    }

    fn report(&self, key: &KeyGrant, verdict: KeyVerdict) {
        self.rotator.do_send(Report { index: key.index, verdict });
    }

    /// Streams the answer to the client as it arrives.
    fn relay(&self, mut answer: ClientResponse, key_name: &str) -> HttpResponse {
        let mut response = HttpResponse::build(answer.status());
        copy_headers(answer.headers(), &mut response);
        tag(&mut response, key_name);
        let content_length = answer
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let sse = is_event_stream(answer.headers());
        let body = Relay::new(answer.take_payload(), self.idle_timeout, sse);
        match content_length {
            Some(length) if !sse => response.body(SizedStream::new(length, body)),
            _ => response.streaming(body),
        }
    }
}

async fn send(
    client: &awc::Client,
    url: &str,
    outgoing: &Outgoing,
    key: &KeyGrant,
) -> Result<ClientResponse, awc::error::SendRequestError> {
    let mut request = client.request(outgoing.method.clone(), url).no_decompress();
    *request.headers_mut() = outgoing.headers.clone();
    let bearer = HeaderValue::try_from(format!("Bearer {}", key.secret.expose()));
    if let Ok(bearer) = bearer {
        request = request.insert_header((header::AUTHORIZATION, bearer));
    }
    if outgoing.body.is_empty() && matches!(outgoing.method, Method::GET | Method::HEAD) {
        request.send().await
    } else {
        request.send_body(outgoing.body.clone()).await
    }
}

/// Reads an error answer whole (it is small) so its connection can be reused.
async fn hold(mut answer: ClientResponse, key_name: &Arc<str>) -> HeldAnswer {
    let body = answer.body().limit(ERROR_BODY_LIMIT).await.unwrap_or_default();
    HeldAnswer { status: answer.status(), headers: answer.headers().clone(), body, key_name: key_name.clone() }
}

impl HeldAnswer {
    fn into_response(self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        copy_headers(&self.headers, &mut response);
        tag(&mut response, &self.key_name);
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

fn tag(response: &mut actix_web::HttpResponseBuilder, key_name: &str) {
    response.insert_header((PROVIDER_HEADER, "cerebras"));
    if let Ok(name) = HeaderValue::from_str(key_name) {
        response.insert_header((KEY_HEADER, name));
    }
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
}

fn reason_of(verdict: &KeyVerdict) -> String {
    match verdict {
        KeyVerdict::Success => "ok".to_owned(),
        KeyVerdict::RateLimited { .. } => "HTTP 429".to_owned(),
        KeyVerdict::Failed { reason } | KeyVerdict::Invalid { reason } => reason.clone(),
    }
}
