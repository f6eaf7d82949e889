//! Every route but `/_status` and `/health`: read and check the request, then dispatch it.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::{ConnectionType, Method, Version};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde_json::{Map, Value};

use super::answer_body::AnswerBody;
use crate::actors::upstream_router::ProviderEvent;
use crate::body_budget::BodyPermit;
use crate::dispatch::{is_event_stream, Outgoing, Source};
use crate::error::ProxyError;
use crate::logging::record::{Answerer, AttemptLog, BodyCopy, RequestLog};
use crate::logging::redact::HeaderList;
use crate::logging::sink::LogSink;
use crate::logging::tap::Tap;
use crate::metrics::{Meter, Metrics};
use crate::request_id::RequestId;
use crate::state::AppState;
use crate::transform::chat_view::ChatView;
use crate::transform::token_estimate::ChatFacts;
use crate::transform::tool_repair::{needs_repair, repair, Repairs};
use crate::upstream::headers::upstream_request_headers;

pub async fn forward(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
) -> HttpResponse {
    let mut journal = Journal::default();
    let started = (SystemTime::now(), Instant::now());
    state.metrics.in_flight_requests.inc();
    let response = match proxy(&request, payload, &state, &client, &mut journal).await {
        Ok(response) => response,
        Err(error) => {
            if let ProxyError::Unauthorized(refusal) = &error {
                state.metrics.auth_failures.with_label_values(&[refusal.code()]).inc();
            }
            error.error_response()
        }
    };
    journal.ttfb = started.1.elapsed();
    let response = fit_to_version(&request, response);
    let meter = meter(&response, journal.answered_by.as_ref(), &state.metrics, started.1);
    let tap = state.logs.as_ref().map(|sink| tap(&request, &response, journal, started, sink.clone()));
    response.map_body(|_, body| BoxBody::new(AnswerBody::new(body, meter, tap)))
}

/// HTTP/1.0 has no chunked encoding (RFC 9112 §6.1): a body of unknown length, such as a
/// stream, goes to such a client close-delimited, and the connection ends with it.
fn fit_to_version(request: &HttpRequest, mut response: HttpResponse) -> HttpResponse {
    if request.version() < Version::HTTP_11 && response.body().size() == BodySize::Stream {
        response.head_mut().no_chunking(true);
        response.head_mut().set_connection_type(ConnectionType::Close);
    }
    response
}

/// Counts the answer by provider (`proxy` for the proxy's own) and status, and keeps it in
/// flight until its body is done.
fn meter(response: &HttpResponse, answered_by: Option<&Source>, metrics: &Arc<Metrics>, started: Instant) -> Meter {
    let provider = answered_by.map_or("proxy", |source| source.provider.name());
    metrics.requests.with_label_values(&[provider, response.status().as_str()]).inc();
    let stream = is_event_stream(response.headers());
    // Tokens are counted from an upstream's successful answer, by the model it was asked for.
    let tokens = answered_by
        .filter(|_| response.status().is_success())
        .map(|source| metrics.model_label(source.model.as_deref().unwrap_or_default()));
    Meter::new(metrics.clone(), provider, started, stream, tokens)
}

/// What the log and the metrics need that only the request's processing learns.
#[derive(Default)]
struct Journal {
    client: Option<Arc<str>>,
    body: BodyCopy,
    attempts: Vec<AttemptLog>,
    /// The `model` the client asked for.
    model: Option<Arc<str>>,
    /// Who gave the answer the client got; `None` for the proxy's own.
    answered_by: Option<Source>,
    /// From arrival to the answer's head.
    ttfb: std::time::Duration,
}

async fn proxy(
    request: &HttpRequest,
    payload: web::Payload,
    state: &web::Data<AppState>,
    client: &awc::Client,
    journal: &mut Journal,
) -> Result<HttpResponse, ProxyError> {
    if let Some(auth) = &state.auth {
        journal.client = Some(auth.admit(request.headers()).await?);
    }
    // The body's share of the budget is held until the request is done with the body.
    let (body, _budget) = read_body(payload, request.headers(), state).await?;
    if let Some(logs) = &state.logs {
        journal.body = BodyCopy::of(&body, logs.body_limit());
    }
    let path = upstream_path(request.path());
    let (body, chat, model) = if request.method() == Method::POST && path == "/chat/completions" {
        let (body, chat, model) = if body.len() < OFF_THE_WORKER {
            prepare_chat(body, state)?
        } else {
            let state = state.clone();
            web::block(move || prepare_chat(body, &state))
                .await
                .map_err(|_| ProxyError::ActorUnavailable("body reader"))??
        };
        (body, Some(chat), model)
    } else {
        (body, None, None)
    };
    journal.model = model.clone();
    let path_and_query = match request.query_string() {
        "" => path.to_owned(),
        query => format!("{path}?{query}"),
    };
    let outgoing = Outgoing {
        method: request.method().clone(),
        path_and_query,
        headers: upstream_request_headers(request.headers()),
        body,
        chat,
        model,
    };
    let dispatched = state.dispatcher.dispatch(client, outgoing).await;
    journal.attempts = dispatched.attempts;
    journal.answered_by = dispatched.answered_by;
    dispatched.result
}

/// The request's record, to go to the sink when the client has the whole answer.
fn tap(
    request: &HttpRequest,
    response: &HttpResponse,
    journal: Journal,
    (started_at, started): (SystemTime, Instant),
    sink: Arc<LogSink>,
) -> Tap {
    let id = request.extensions().get::<RequestId>().map_or_else(|| Arc::from(""), |id| id.0.clone());
    let answerer = journal.answered_by.map_or_else(Answerer::default, |source| Answerer {
        provider: Some(source.provider.name()),
        key: source.key_name,
        model: source.model,
    });
    let record = RequestLog {
        id,
        started_at,
        started,
        ttfb_ms: journal.ttfb.as_secs_f64() * 1000.0,
        client: journal.client,
        method: request.method().clone(),
        uri: request.uri().clone(),
        model: journal.model,
        answerer,
        request_headers: if sink.bodies() { HeaderList::of(request.headers()) } else { HeaderList::default() },
        request_body: journal.body,
        attempts: journal.attempts,
        status: response.status().as_u16(),
        response_headers: if sink.bodies() { HeaderList::of(response.headers()) } else { HeaderList::default() },
        response_body: BodyCopy::default(),
        usage: None,
        finish_reason: None,
        finished: None,
        incomplete: false,
    };
    Tap::new(record, sink)
}

/// The path below the provider's base URL: a leading `/v1` segment is dropped, since base
/// URLs already end in their version.
fn upstream_path(path: &str) -> &str {
    match path.strip_prefix("/v1") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        _ => path,
    }
}

/// Chat bodies at least this long are read on the blocking pool, not the worker: reading a
/// body of many megabytes takes long enough to hold up every other stream on the worker.
const OFF_THE_WORKER: usize = 256 * 1024;

/// What a body is first given to grow into: a declared length is believed only as bytes come.
const FIRST_ALLOCATION: usize = 64 * 1024;

/// Reads the whole body (attempts may resend it), within `MAX_BODY_BYTES`, the shared body
/// budget and `CLIENT_BODY_TIMEOUT`. The permit holds the body's share of the budget.
async fn read_body(
    mut payload: web::Payload,
    headers: &HeaderMap,
    state: &AppState,
) -> Result<(Bytes, BodyPermit), ProxyError> {
    let limit = state.max_body_bytes;
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(ProxyError::PayloadTooLarge { limit });
    }
    let mut permit = state.body_budget.reserve(declared.unwrap_or(0))?;
    let deadline = tokio::time::Instant::now() + state.body_timeout;
    let mut body = BytesMut::with_capacity(declared.unwrap_or(0).min(FIRST_ALLOCATION));
    loop {
        let chunk = match tokio::time::timeout_at(deadline, payload.next()).await {
            Err(_) => return Err(ProxyError::BodyTimeout(state.body_timeout)),
            Ok(None) => break,
            Ok(Some(chunk)) => chunk.map_err(|e| ProxyError::PayloadRead(e.to_string()))?,
        };
        let length = body.len() + chunk.len();
        if length > limit {
            return Err(ProxyError::PayloadTooLarge { limit });
        }
        let held = permit.bytes();
        if length > held {
            state.body_budget.grow(&mut permit, length - held)?;
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body.freeze(), permit))
}

/// Reads a chat completion once for routing, and repairs its tool-call history if it must.
/// A history that needs no repair keeps the client's bytes exactly.
fn prepare_chat(body: Bytes, state: &AppState) -> Result<(Bytes, ChatFacts, Option<Arc<str>>), ProxyError> {
    let reading = state.dispatcher.routing.reading(body.len());
    let view = ChatView::read(&body, reading).map_err(|e| ProxyError::InvalidBody(e.to_string()))?;
    let (facts, model) = (view.facts, view.model.as_deref().map(Arc::from));
    if !needs_repair(&view.messages) {
        return Ok((body, facts, model));
    }
    Ok((repair_history(&body, state)?, facts, model))
}

/// The rare path: the history is rebuilt through a parsed tree and the body written anew.
fn repair_history(body: &Bytes, state: &AppState) -> Result<Bytes, ProxyError> {
    let mut chat: Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| ProxyError::InvalidBody(e.to_string()))?;
    let (messages, repairs) = match chat.get("messages") {
        Some(Value::Array(messages)) => repair(messages),
        _ => return Ok(body.clone()),
    };
    if repairs == Repairs::default() {
        // The tree needs nothing the lighter read saw (text it skipped may read differently).
        return Ok(body.clone());
    }
    log::info!("event=tool_calls_repaired inserted={} removed={}", repairs.inserted, repairs.removed);
    state.dispatcher.router.do_send(ProviderEvent::Repaired(repairs));
    chat.insert("messages".to_owned(), Value::Array(messages));
    serde_json::to_vec(&chat).map(Bytes::from).map_err(|e| ProxyError::InvalidBody(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leading_v1_segment_is_dropped_and_nothing_else() {
        assert_eq!(upstream_path("/v1/chat/completions"), "/chat/completions");
        assert_eq!(upstream_path("/chat/completions"), "/chat/completions");
        assert_eq!(upstream_path("/v1/models"), "/models");
        assert_eq!(upstream_path("/v1"), "");
        assert_eq!(upstream_path("/v1beta/models"), "/v1beta/models");
    }
}
