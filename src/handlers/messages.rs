//! The Anthropic front door: `POST /v1/messages` and `/v1/messages/count_tokens`.
//!
//! A request is translated into a chat completion (`anthropic::request`) and goes through the
//! same pipeline as every chat completion: auth, routing, key rotation, failover, repair, logs
//! and metrics, which all see the OpenAI side. Only the answer is translated back here, at the
//! edge: a message, a stream of Anthropic events, or an Anthropic error.

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse, HttpResponseBuilder};
use bytes::Bytes;
use futures_util::stream;
use serde_json::json;

use super::chat::send_chat;
use super::exchange::{fit_to_version, Exchange};
use super::receive::{off_the_worker, receive};
use crate::anthropic::error as anthropic_error;
use crate::anthropic::events::{self as anthropic_events, Anthropic};
use crate::anthropic::message::to_message;
use crate::anthropic::request::{to_chat, Asked};
use crate::body_budget::{Buffered, Refused};
use crate::dispatch::is_event_stream;
use crate::doors::events::EventStream;
use crate::doors::Failure;
use crate::error::ProxyError;
use crate::request_id::RequestId;
use crate::state::AppState;
use crate::transform::chat_view::{ChatView, Reading};
use crate::wire::chat::Completion;

/// The id Anthropic's SDKs read from a response.
const REQUEST_ID: HeaderName = HeaderName::from_static("request-id");

pub async fn messages(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
) -> HttpResponse {
    let id = request_id(&request);
    let response = serve(request.clone(), payload, state, client, &id).await;
    // The translated stream is a new body: it too goes close-delimited to an HTTP/1.0 client.
    with_request_id(fit_to_version(&request, response), &id)
}

/// Anything else under the Messages routes, in Anthropic's shape: another method (405), or a
/// path the proxy does not serve (404).
pub async fn not_allowed(request: HttpRequest) -> HttpResponse {
    if request.method() == actix_web::http::Method::POST {
        let message = format!("{} is not served here", request.path());
        return HttpResponse::NotFound().json(anthropic_error::body("not_found_error", &message));
    }
    let message = format!("{} is not allowed here: the Messages API takes POST", request.method());
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, "POST"))
        .json(anthropic_error::body("invalid_request_error", &message))
}

/// `POST /v1/messages/count_tokens`: the proxy's own estimate, as routing makes it
/// (`CHARS_PER_TOKEN`); it never goes upstream.
pub async fn count_tokens(request: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> HttpResponse {
    let id = request_id(&request);
    let mut exchange = Exchange::begin(&state);
    let outcome = match receive(&request, payload, &state, &mut exchange.journal).await {
        Ok((body, _permit)) => {
            let chars_per_token = state.dispatcher.routing.chars_per_token;
            off_the_worker(body, move |body| estimate(&body, chars_per_token))
                .await
                .and_then(|estimated| estimated)
                .map(|tokens| HttpResponse::Ok().json(json!({ "input_tokens": tokens })))
        }
        Err(error) => Err(error),
    };
    with_request_id(errors_translated(exchange.end(&request, outcome, &state), &state).await, &id)
}

fn request_id(request: &HttpRequest) -> String {
    request.extensions().get::<RequestId>().map_or_else(String::new, |id| id.0.to_string())
}

/// Anthropic's SDKs read a response's id from `request-id`.
fn with_request_id(mut response: HttpResponse, id: &str) -> HttpResponse {
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

async fn serve(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
    request_id: &str,
) -> HttpResponse {
    let mut exchange = Exchange::begin(&state);
    let translated = match receive(&request, payload, &state, &mut exchange.journal).await {
        Ok((body, mut permit)) => off_the_worker(body, |body| to_chat(&body))
            .await
            .and_then(|translated| translated.map_err(|e| ProxyError::InvalidBody(e.to_string())))
            // The chat body is held beside the client's while the request is in flight.
            .and_then(|(chat, asked)| state.body_budget.grow(&mut permit, chat.len()).map(|()| (chat, asked, permit))),
        Err(error) => Err(error),
    };
    let (chat, asked, permit) = match translated {
        Ok(translated) => translated,
        Err(error) => return errors_translated(exchange.end(&request, Err(error), &state), &state).await,
    };
    let id = format!("msg_{request_id}");
    let answer = {
        let (request, state, client) = (request.clone(), state.clone(), client.clone());
        async move {
            let path = "/chat/completions".to_owned();
            let outcome = send_chat(request.headers(), Bytes::from(chat), path, &state, &client, &mut exchange.journal);
            let outcome = outcome.await;
            drop(permit);
            exchange.end(&request, outcome, &state)
        }
    };
    if !asked.stream {
        return message(answer.await, &asked, &id, &state).await;
    }
    // A slow first byte (a wait for a key, a slow upstream) is met with pings, so that nothing
    // between the client and the proxy takes the silence for a dead connection.
    let mut answer = Box::pin(answer);
    match tokio::time::timeout(state.ping_interval, &mut answer).await {
        Ok(response) => events(response, asked, id, &state).await,
        Err(_) => pinging(answer, asked, id, state.into_inner()),
    }
}

fn estimate(body: &[u8], chars_per_token: f64) -> Result<u64, ProxyError> {
    let invalid = |e: &dyn std::fmt::Display| ProxyError::InvalidBody(e.to_string());
    let (chat, _) = to_chat(body).map_err(|e| invalid(&e))?;
    let view = ChatView::read(&chat, Reading::EVERYTHING).map_err(|e| invalid(&e))?;
    Ok(view.facts.estimated_tokens(chars_per_token).ceil() as u64)
}

/// A non-streamed answer: the completion as a message, or the error in Anthropic's shape.
async fn message(response: HttpResponse, asked: &Asked, id: &str, state: &AppState) -> HttpResponse {
    if !response.status().is_success() {
        return errors_translated(response, state).await;
    }
    if is_event_stream(response.headers()) {
        return failure(&response, StatusCode::BAD_GATEWAY, "the upstream streamed an answer that was asked whole");
    }
    let (head, body) = collect(response, state).await;
    let body = match body {
        Ok(body) => body,
        Err(problem) => return failure(&head, StatusCode::BAD_GATEWAY, &problem),
    };
    match serde_json::from_slice::<Completion>(&body) {
        Ok(completion) => like(&head, StatusCode::OK).json(to_message(completion, id, asked)),
        Err(_) => failure(&head, StatusCode::BAD_GATEWAY, NO_COMPLETION),
    }
}

const NO_COMPLETION: &str = "the upstream's answer is no chat completion";

/// A streamed answer that came before the first ping: its events, or an Anthropic error with
/// its own status.
async fn events(response: HttpResponse, asked: Asked, id: String, state: &AppState) -> HttpResponse {
    if !response.status().is_success() {
        return errors_translated(response, state).await;
    }
    let mut events = anthropic_events::stream(id, asked);
    if is_event_stream(response.headers()) {
        let head = sse(like(&response, StatusCode::OK));
        return stream_body(head, Phase::Relaying(response.into_body()), events);
    }
    // A provider that answered whole: its answer as the events of a stream.
    let (head, body) = collect(response, state).await;
    let body = body.unwrap_or_default();
    match serde_json::from_slice(&body) {
        Ok(completion) => sse(like(&head, StatusCode::OK)).body(events.whole(completion)),
        Err(_) => failure(&head, StatusCode::BAD_GATEWAY, NO_COMPLETION),
    }
}

/// The answer is slow: the client gets `message_start` and a ping now, a ping every interval
/// while it waits, then the answer's events, or an `error` event if no answer comes.
fn pinging(
    answer: Pin<Box<dyn Future<Output = HttpResponse>>>,
    asked: Asked,
    id: String,
    state: Arc<AppState>,
) -> HttpResponse {
    let mut events = anthropic_events::stream(id, asked);
    let period = state.ping_interval;
    let ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut first = Vec::new();
    events.start(&mut first);
    events.keepalive(&mut first);
    let phase = Phase::Waiting { answer, ticker, first: Some(first), state };
    stream_body(sse(HttpResponse::Ok()), phase, events)
}

fn sse(mut head: HttpResponseBuilder) -> HttpResponseBuilder {
    head.insert_header((header::CONTENT_TYPE, "text/event-stream")).insert_header((header::CACHE_CONTROL, "no-cache"));
    head
}

/// Where a translated stream is.
enum Phase {
    /// Pinging while the answer is awaited; `first` goes out before anything else.
    Waiting {
        answer: Pin<Box<dyn Future<Output = HttpResponse>>>,
        ticker: tokio::time::Interval,
        first: Option<Vec<u8>>,
        state: Arc<AppState>,
    },
    /// Translating the upstream's events as they come.
    Relaying(BoxBody),
    Done,
}

impl Phase {
    /// The next events to send, possibly none yet; `None` when the stream is over.
    async fn next(&mut self, events: &mut EventStream<Anthropic>) -> Option<Vec<u8>> {
        match self {
            Phase::Done => None,
            Phase::Waiting { answer, ticker, first, state } => {
                if let Some(first) = first.take() {
                    return Some(first);
                }
                let response = tokio::select! {
                    response = answer => response,
                    _ = ticker.tick() => {
                        let mut ping = Vec::new();
                        events.keepalive(&mut ping);
                        return Some(ping);
                    }
                };
                let state = state.clone();
                let (out, next) = after_waiting(response, events, &state).await;
                *self = next;
                Some(out)
            }
            Phase::Relaying(body) => match poll_fn(|cx| Pin::new(&mut *body).poll_next(cx)).await {
                Some(Ok(chunk)) => Some(events.push(&chunk)),
                Some(Err(error)) => {
                    *self = Phase::Done;
                    let mut out = Vec::new();
                    events.fail(&Failure::Broken(format!("upstream stream interrupted: {error}")), &mut out);
                    Some(out)
                }
                None => {
                    *self = Phase::Done;
                    Some(events.finish())
                }
            },
        }
    }
}

fn stream_body(mut head: HttpResponseBuilder, phase: Phase, events: EventStream<Anthropic>) -> HttpResponse {
    let body = stream::unfold((phase, events), |(mut phase, mut events)| async move {
        loop {
            let out = phase.next(&mut events).await?;
            // An empty chunk could read as the end of a chunked body: only events go out.
            if !out.is_empty() {
                return Some((Ok::<_, Infallible>(Bytes::from(out)), (phase, events)));
            }
        }
    });
    head.streaming(body)
}

/// The awaited answer came, after the client was told the message started: its events, or an
/// error event.
async fn after_waiting(
    response: HttpResponse,
    events: &mut EventStream<Anthropic>,
    state: &AppState,
) -> (Vec<u8>, Phase) {
    let mut out = Vec::new();
    let status = response.status();
    if status.is_success() && is_event_stream(response.headers()) {
        return (out, Phase::Relaying(response.into_body()));
    }
    let (_, body) = collect(response, state).await;
    let body = body.unwrap_or_default();
    if !status.is_success() {
        events.fail(&Failure::Upstream { status, body }, &mut out);
        return (out, Phase::Done);
    }
    match serde_json::from_slice(&body) {
        Ok(completion) => out = events.whole(completion),
        Err(_) => events.fail(&Failure::broken(NO_COMPLETION), &mut out),
    }
    (out, Phase::Done)
}

/// A response in Anthropic's error shape for an error answer of the pipeline; a success
/// passes as it is.
async fn errors_translated(response: HttpResponse, state: &AppState) -> HttpResponse {
    if response.status().is_success() {
        return response;
    }
    let status = response.status().as_u16();
    let (head, body) = collect(response, state).await;
    let (status, error) = anthropic_error::translate(status, &body.unwrap_or_default());
    like(&head, StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY)).json(error)
}

fn failure<B>(response: &HttpResponse<B>, status: StatusCode, message: &str) -> HttpResponse {
    let (status, kind) = anthropic_error::classify(status.as_u16());
    like(response, StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY))
        .json(anthropic_error::body(kind, message))
}

/// A new response with the answer's headers (provider, key, rate limits, `Retry-After`), but
/// not those of its body.
fn like<B>(response: &HttpResponse<B>, status: StatusCode) -> HttpResponseBuilder {
    const FRAMING: [HeaderName; 4] =
        [header::CONTENT_TYPE, header::CONTENT_LENGTH, header::CONTENT_ENCODING, header::TRANSFER_ENCODING];
    let mut builder = HttpResponse::build(status);
    for (name, value) in response.headers() {
        if !FRAMING.contains(name) {
            builder.append_header((name.clone(), value.clone()));
        }
    }
    builder
}

/// An answer read whole, within `MAX_BODY_BYTES` and the body budget. Its body is taken, so
/// that its metering and logging end here.
async fn collect(response: HttpResponse, state: &AppState) -> (HttpResponse<()>, Result<Bytes, String>) {
    let (head, mut body) = response.into_parts();
    let read = async {
        let mut answer = Buffered::new(&state.body_budget, state.max_body_bytes, 0).map_err(|e| e.to_string())?;
        while let Some(chunk) = poll_fn(|cx| Pin::new(&mut body).poll_next(cx)).await {
            let chunk = chunk.map_err(|e| format!("the upstream's answer broke off: {e}"))?;
            answer.push(&chunk).map_err(|refused| match refused {
                Refused::TooLarge => {
                    format!("the upstream's answer is larger than MAX_BODY_BYTES ({})", state.max_body_bytes)
                }
                Refused::Overloaded(error) => error.to_string(),
            })?;
        }
        Ok(answer.finish().0)
    };
    let read = read.await;
    (head, read)
}
