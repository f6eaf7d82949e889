//! One attempt over awc: send (once more, if a pooled connection turns out to be closed), read
//! what the fault rules need of the answer, classify it, and report what it said.

use std::time::{Duration, Instant, SystemTime};

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use awc::error::{ConnectError, SendRequestError};
use awc::ClientResponse;
use bytes::Bytes;
use futures_util::StreamExt;

use super::reply::{HeldResponse, Source};
use super::trail::Trail;
use super::{Dispatcher, Outgoing, Pool};
use crate::actors::model_watch::NotFound;
use crate::actors::supervision::ask;
use crate::actors::upstream_router::{circuit_of, ClaimProbe, ProbeGuard, ProviderEvent};
use crate::body_budget::{read_into, Buffered, Stopped};
use crate::logging::record::AttemptLog;
use crate::policy::circuit::Admission;
use crate::policy::encoding::{is_encoded, plain};
use crate::policy::fault::{classify, Fault, Outcome, Reason};
use crate::policy::key_pool::{KeyVerdict, Rejection};
use crate::providers::ProviderId;
use crate::secret::Secret;

/// Error bodies are small; past this much, the rest is not kept.
const ERROR_BODY_LIMIT: usize = 256 * 1024;

/// Where one attempt goes, and with what.
pub struct Target<'a> {
    pub url: &'a str,
    pub body: Bytes,
    pub key: &'a Secret,
    pub source: Source,
    /// Whether a next provider exists: only then is a success's first chunk read before
    /// committing to it (a spent quota can hide in a 200).
    pub can_fail_over: bool,
    /// The provider's pool: its fault rules and its attempts' counter.
    pub pool: &'a Pool,
}

/// What an attempt brought back for the client.
pub enum Response {
    /// A success to stream on, with its first chunk if that was read already.
    Live { response: ClientResponse, first: Option<Bytes> },
    /// An answer read whole: an error, or a 200 that says the quota is spent.
    Held(HeldResponse),
    /// No answer at all.
    Nothing,
}

impl Response {
    pub fn held(self) -> Option<HeldResponse> {
        match self {
            Self::Held(held) => Some(held),
            Self::Live { .. } | Self::Nothing => None,
        }
    }
}

/// Leave to try a provider, from its circuit: maybe as the one probe after an open period.
pub struct Pass {
    probe: Option<ProbeGuard>,
    /// The provider has strikes against it or is on probation: an answer is worth reporting.
    watched: bool,
}

impl Dispatcher {
    /// May this request go to `provider` now? `Err` is how long its circuit stays open.
    pub(super) async fn admit(&self, provider: ProviderId) -> Result<Pass, Duration> {
        let view = circuit_of(&self.health, provider);
        match view.admission(Instant::now()) {
            Admission::Go => Ok(Pass { probe: None, watched: view.strikes > 0 }),
            Admission::Skip { retry_after } => Err(retry_after),
            Admission::Probe => match ask(&self.router, ClaimProbe { provider }).await {
                Ok(Ok(())) => Ok(Pass { probe: Some(ProbeGuard::new(self.router.clone(), provider)), watched: true }),
                Ok(Err(retry_after)) => Err(retry_after),
                // Without the router no circuit can be kept: requests go, as if it were closed.
                Err(_) => Ok(Pass { probe: None, watched: false }),
            },
        }
    }

    /// Sends once, classifies the outcome and reports it: to the router (provider health and
    /// counts), the metrics and the request's trail. Key verdicts are the caller's to report.
    pub(super) async fn attempt(
        &self,
        client: &awc::Client,
        outgoing: &Outgoing,
        target: Target<'_>,
        pass: &mut Pass,
        trail: &mut Trail,
    ) -> (Fault, Response) {
        let started = Instant::now();
        let provider = target.source.provider;
        let rules = &target.pool.provider.faults;
        let (mut fault, answer, status) = match send(client, outgoing, &target).await {
            Err(error) => {
                let outcome = Outcome::NoResponse(no_response_reason(&error));
                (classify(&outcome, rules, SystemTime::now()), Response::Nothing, None)
            }
            Ok(response) => {
                let ttfb = started.elapsed().as_secs_f64();
                self.metrics.upstream_ttfb.with_label_values(&[provider.name()]).observe(ttfb);
                let status = response.status().as_u16();
                self.metrics.timeline.upstream(ttfb, status, started);
                let (fault, answer) = read(response, &target, self.idle_timeout).await;
                (fault, answer, Some(status))
            }
        };
        if let Fault::Key(KeyVerdict::Rejected(Rejection(message))) = &mut fault {
            // An upstream may quote the key it refused; the message goes to clients and logs.
            *message = message.replace(target.key.expose(), "***");
        }
        target.pool.attempts.inc();
        let reason = fault.reason();
        if let (Some(Reason::ModelNotFound), Some(model)) = (&reason, &target.source.model) {
            self.models.do_send(NotFound { provider, model: model.clone() });
        }
        match &fault {
            Fault::Provider(health, reason) => {
                self.router.do_send(ProviderEvent::Failed { provider, health: Some(*health), reason: reason.clone() })
            }
            _ if status.is_some() => {
                if let Some(reason) = &reason {
                    self.router.do_send(ProviderEvent::Failed { provider, health: None, reason: reason.clone() });
                }
                if pass.watched {
                    self.router.do_send(ProviderEvent::Responded { provider });
                }
            }
            // Not sent at all: says nothing of the provider, and a probe is left for another.
            _ => {}
        }
        if let Some(probe) = pass.probe.take().filter(|_| status.is_some() || matches!(fault, Fault::Provider(..))) {
            probe.settle();
        }
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        let outcome = reason.as_ref().map_or_else(|| "answered".to_owned(), Reason::to_string);
        log::debug!(
            "event=attempt provider={} key={} outcome={outcome:?} ms={duration_ms:.1}",
            provider.name(),
            target.source.key_name.as_deref().unwrap_or("-")
        );
        trail.attempts.push(AttemptLog {
            provider: provider.name(),
            key: target.source.key_name.clone(),
            status,
            error: reason.as_ref().map(Reason::to_string),
            duration_ms,
        });
        if let Some(reason) = reason {
            trail.fail(&target.source, reason);
        }
        (fault, answer)
    }
}

/// Reads what classifying an answer needs, then classifies it: an error answer whole, the
/// first chunk of a success that may still fail over, nothing of any other success.
async fn read(mut response: ClientResponse, target: &Target<'_>, idle: Duration) -> (Fault, Response) {
    let (source, rules) = (&target.source, &target.pool.provider.faults);
    let status = response.status();
    let now = SystemTime::now();
    if !status.is_success() {
        let held = hold(&mut response, source, idle).await;
        // An upstream may compress an error although asked not to: it is read decoded, and
        // relayed as it came. A coding that cannot be read is classified by its status alone.
        let body = plain(&held.headers, &held.body);
        let outcome = Outcome::Response {
            status: status.as_u16(),
            headers: &held.headers,
            body: body.as_deref().unwrap_or_default(),
        };
        return (classify(&outcome, rules, now), Response::Held(held));
    }
    let first = if target.can_fail_over && !is_encoded(response.headers()) {
        match tokio::time::timeout(idle, response.next()).await {
            Ok(None) => None,
            Ok(Some(Ok(chunk))) => Some(chunk),
            Ok(Some(Err(error))) => {
                let reason = Reason::ConnectionLost(format!("the answer broke: {error}"));
                return (classify(&Outcome::NoResponse(reason), rules, now), Response::Nothing);
            }
            Err(_) => return (classify(&Outcome::NoResponse(Reason::IdleTimeout), rules, now), Response::Nothing),
        }
    } else {
        None
    };
    let body = first.as_deref().unwrap_or_default();
    let fault = classify(&Outcome::Response { status: status.as_u16(), headers: response.headers(), body }, rules, now);
    let answer = match fault {
        Fault::None => Response::Live { response, first },
        _ => Response::Held(HeldResponse {
            status,
            headers: response.headers().clone(),
            body: first.unwrap_or_default(),
            source: source.clone(),
        }),
    };
    (fault, answer)
}

/// Sends, and once more on a fresh connection if the first closed before any answer.
///
/// An upstream may close an idle keep-alive connection just as it is reused: the request then
/// meets end-of-file before an answer, and the upstream never saw it. The pool's idle limit
/// (`UPSTREAM_KEEPALIVE`) keeps that rare. The same end-of-file also comes from an upstream
/// that read the request and hung up, so the resend happens at most once: a request is never
/// billed more than twice.
async fn send(
    client: &awc::Client,
    outgoing: &Outgoing,
    target: &Target<'_>,
) -> Result<ClientResponse, SendRequestError> {
    match send_once(client, outgoing, target).await {
        Err(SendRequestError::Connect(ConnectError::Disconnected)) => {
            log::debug!("event=stale_connection action=resend");
            send_once(client, outgoing, target).await
        }
        sent => sent,
    }
}

async fn send_once(
    client: &awc::Client,
    outgoing: &Outgoing,
    target: &Target<'_>,
) -> Result<ClientResponse, SendRequestError> {
    let mut request = client.request(outgoing.method.clone(), target.url).no_decompress();
    *request.headers_mut() = outgoing.headers.clone();
    // Keys are checked at start to be valid header text.
    if let Ok(bearer) = HeaderValue::try_from(format!("Bearer {}", target.key.expose())) {
        request = request.insert_header((header::AUTHORIZATION, bearer));
    }
    if target.body.is_empty() && matches!(outgoing.method, Method::GET | Method::HEAD) {
        request.send().await
    } else {
        request.send_body(target.body.clone()).await
    }
}

/// How a send that got no answer failed, in the fault rules' terms.
fn no_response_reason(error: &SendRequestError) -> Reason {
    match error {
        SendRequestError::Connect(ConnectError::Disconnected) => {
            Reason::ConnectionLost("closed before answering".to_owned())
        }
        SendRequestError::Connect(error) => Reason::Unreachable(error.to_string()),
        SendRequestError::Timeout => Reason::Timeout,
        SendRequestError::Url(_) | SendRequestError::Http(_) | SendRequestError::TunnelNotSupported => {
            Reason::Unsendable(error.to_string())
        }
        other => Reason::ConnectionLost(other.to_string()),
    }
}

/// Reads an error answer whole (it is small), within the idle limit, so its connection can be
/// reused and the answer kept. Past `ERROR_BODY_LIMIT` the rest is dropped.
async fn hold(answer: &mut ClientResponse, source: &Source, idle: Duration) -> HeldResponse {
    let mut body = Buffered::within(ERROR_BODY_LIMIT);
    match read_into(answer, &mut body, Some(tokio::time::Instant::now() + idle)).await {
        Err(Stopped::Refused(_)) => {
            log::warn!("event=error_body_cut limit={ERROR_BODY_LIMIT} target={}", source.target())
        }
        Err(Stopped::TimedOut) => log::warn!("event=error_body_slow target={}", source.target()),
        Ok(()) | Err(Stopped::Failed(_)) => {}
    }
    HeldResponse {
        status: answer.status(),
        headers: answer.headers().clone(),
        body: body.finish().0,
        source: source.clone(),
    }
}
