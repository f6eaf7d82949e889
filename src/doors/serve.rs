//! A translated door's request, from arrival to its answer's end: received (auth, body),
//! translated into a chat completion, sent down the one pipeline, and the pipeline's typed
//! reply rendered in the door's dialect: a whole answer, a stream of events, or an error.
//!
//! A streamed answer that falls silent is met with the door's keepalive once
//! `ANTHROPIC_PING_INTERVAL` passes, and every interval while the silence lasts, so that
//! nothing between the client and the proxy takes it for a dead connection: a slow first byte
//! (a wait for a key, a slow upstream), then the answer's events or its failure as the door's
//! error event; or a pause in the middle of the stream (a model reasoning without a word).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{self, HeaderMap, HeaderName};
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use bytes::Bytes;
use futures_util::{stream, StreamExt};
use tokio::time::Instant;

use super::events::{Dialect, EventStream};
use super::{Door, Failure};
use crate::dispatch::reply::{Reply, ReplyBody};
use crate::error::ProxyError;
use crate::handlers::chat::send_chat;
use crate::handlers::exchange::Exchange;
use crate::handlers::receive::{off_the_worker, receive};
use crate::state::AppState;
use crate::wire::chat::Completion;

/// Why a success could not be translated.
const NO_COMPLETION: &str = "the upstream's answer is no chat completion";
const STREAMED_UNASKED: &str = "the upstream streamed an answer that was asked whole";

/// Serves one request through door `D`; `id` names its answer.
pub async fn serve<D: Door>(
    request: &HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
    id: String,
) -> HttpResponse {
    let mut exchange = Exchange::begin(&state, D::RATE_HEADERS);
    let translated = match receive(request, payload, &state, &mut exchange.journal).await {
        Ok((body, mut permit)) => off_the_worker(body, |body| D::to_chat(&body))
            .await
            .and_then(|translated| translated)
            // The chat body is held beside the client's while the request is in flight.
            .and_then(|(chat, asked)| state.body_budget.grow(&mut permit, chat.len()).map(|()| (chat, asked, permit))),
        Err(error) => Err(error),
    };
    let (chat, asked, permit) = match translated {
        Ok(translated) => translated,
        Err(error) => return error_response::<D>(&Failure::Proxy(exchange.refuse(request, error, &state)), None),
    };
    let outcome = {
        let (request, state, client) = (request.clone(), state.clone(), client.clone());
        async move {
            let path = "/chat/completions".to_owned();
            let outcome = send_chat(request.headers(), Bytes::from(chat), path, &state, &client, &mut exchange.journal);
            let outcome = outcome.await;
            drop(permit);
            exchange.end(&request, outcome, &state)
        }
    };
    if !D::streams(&asked) {
        return whole::<D>(outcome.await, asked, &id, &state).await;
    }
    let mut outcome = Box::pin(outcome);
    match tokio::time::timeout(state.ping_interval, &mut outcome).await {
        Ok(outcome) => events::<D>(outcome, D::events(id, asked, state.max_body_bytes), &state).await,
        Err(_) => waiting(outcome, D::events(id, asked, state.max_body_bytes), state.into_inner()),
    }
}

/// A non-streamed answer: the door's whole answer, or its error with its own status.
async fn whole<D: Door>(
    outcome: Result<Reply, ProxyError>,
    asked: D::Asked,
    id: &str,
    state: &AppState,
) -> HttpResponse {
    let mut reply = match answer(outcome, state).await {
        Ok(reply) => reply,
        Err((failure, headers)) => return error_response::<D>(&failure, headers.as_ref()),
    };
    if reply.is_event_stream() {
        return error_response::<D>(&Failure::broken(STREAMED_UNASKED), Some(&reply.headers));
    }
    let body = match reply.body.read_whole(state).await {
        Ok((body, _permit)) => body,
        Err(problem) => return error_response::<D>(&Failure::Broken(problem), Some(&reply.headers)),
    };
    match serde_json::from_slice::<Completion>(&body) {
        Ok(completion) => like(
            reply.headers,
            HttpResponse::Ok()
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .body(D::whole(completion, id, asked)),
        ),
        Err(_) => error_response::<D>(&Failure::broken(NO_COMPLETION), Some(&reply.headers)),
    }
}

/// A streamed answer that came before the first keepalive: its events, or the door's error
/// with its own status.
async fn events<D: Door>(
    outcome: Result<Reply, ProxyError>,
    mut events: EventStream<D::Dialect>,
    state: &AppState,
) -> HttpResponse {
    let mut reply = match answer(outcome, state).await {
        Ok(reply) => reply,
        Err((failure, headers)) => return error_response::<D>(&failure, headers.as_ref()),
    };
    if reply.is_event_stream() {
        let relayed = stream_body(sse(HttpResponse::Ok()), Phase::relaying(reply.body, state.ping_interval), events);
        return like(reply.headers, relayed);
    }
    // A provider that answered whole: its answer as the events of a stream.
    match whole_completion(&mut reply.body, state).await {
        Ok(body) => match serde_json::from_slice::<Completion>(&body) {
            Ok(completion) => like(reply.headers, sse(HttpResponse::Ok()).body(events.whole(completion))),
            Err(_) => error_response::<D>(&Failure::broken(NO_COMPLETION), Some(&reply.headers)),
        },
        Err(failure) => error_response::<D>(&failure, Some(&reply.headers)),
    }
}

/// The answer is slow: the client gets the stream's start and a keepalive now, one every
/// interval while it waits, then the answer's events, or the door's error event.
fn waiting<D: Dialect + 'static>(
    outcome: Pin<Box<dyn Future<Output = Result<Reply, ProxyError>>>>,
    mut events: EventStream<D>,
    state: Arc<AppState>,
) -> HttpResponse {
    let period = state.ping_interval;
    let ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut first = Vec::new();
    events.start(&mut first);
    events.keepalive(&mut first);
    let phase = Phase::Waiting { outcome, ticker, first: Some(first), state };
    stream_body(sse(HttpResponse::Ok()), phase, events)
}

/// The reply if it is a success, else the failure to say and the headers to say it with.
async fn answer(outcome: Result<Reply, ProxyError>, state: &AppState) -> Result<Reply, (Failure, Option<HeaderMap>)> {
    match outcome {
        Err(error) => Err((Failure::Proxy(error), None)),
        Ok(reply) if reply.status.is_success() => Ok(reply),
        Ok(mut reply) => {
            let body = reply.body.read_whole(state).await.map(|(body, _)| body).unwrap_or_default();
            Err((Failure::Upstream { status: reply.status, body }, Some(reply.headers)))
        }
    }
}

/// A success's body read whole, to be translated.
async fn whole_completion(body: &mut ReplyBody, state: &AppState) -> Result<Bytes, Failure> {
    body.read_whole(state).await.map(|(body, _)| body).map_err(Failure::Broken)
}

/// The door's error response for `failure`, with the upstream's headers when it answered.
pub fn error_response<D: Door>(failure: &Failure, headers: Option<&HeaderMap>) -> HttpResponse {
    let (status, body) = D::error(failure);
    match (failure, headers) {
        (Failure::Proxy(error), _) => error.response(status, &body),
        (_, Some(headers)) => like(headers.clone(), HttpResponse::build(status).json(body)),
        (_, None) => HttpResponse::build(status).json(body),
    }
}

fn sse(mut head: HttpResponseBuilder) -> HttpResponseBuilder {
    head.insert_header((header::CONTENT_TYPE, "text/event-stream")).insert_header((header::CACHE_CONTROL, "no-cache"));
    head
}

/// The door's `response` with the reply's headers (provider, key, rate limits, `Retry-After`),
/// but not those of the reply's body: the reply's map is kept, not copied header by header.
fn like(mut headers: HeaderMap, mut response: HttpResponse) -> HttpResponse {
    static FRAMING: [HeaderName; 4] =
        [header::CONTENT_TYPE, header::CONTENT_LENGTH, header::CONTENT_ENCODING, header::TRANSFER_ENCODING];
    for name in &FRAMING {
        // Most are not there: a look costs less than a removal.
        if headers.contains_key(name) {
            headers.remove(name);
        }
    }
    for (name, value) in response.headers() {
        headers.insert(name.clone(), value.clone());
    }
    *response.headers_mut() = headers;
    response
}

/// Where a translated stream is.
enum Phase {
    /// Keepalives while the reply is awaited; `first` goes out before anything else.
    Waiting {
        outcome: Pin<Box<dyn Future<Output = Result<Reply, ProxyError>>>>,
        ticker: tokio::time::Interval,
        first: Option<Vec<u8>>,
        state: Arc<AppState>,
    },
    /// Translating the upstream's events as they come, with a keepalive in each silence of
    /// `period`.
    Relaying {
        body: ReplyBody,
        silence: Silence,
    },
    Done,
}

/// How long the stream has been silent: a timer set once a period, not once a chunk.
struct Silence {
    period: Duration,
    last_sent: Instant,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl Silence {
    fn new(period: Duration) -> Self {
        let now = Instant::now();
        Self { period, last_sent: now, timer: Box::pin(tokio::time::sleep_until(now + period)) }
    }

    /// Resolves once nothing was sent for a whole period.
    async fn passed(&mut self) {
        loop {
            (&mut self.timer).await;
            let due = self.last_sent + self.period;
            if Instant::now() >= due {
                self.sent();
                return;
            }
            self.timer.as_mut().reset(due);
        }
    }

    fn sent(&mut self) {
        self.last_sent = Instant::now();
        self.timer.as_mut().reset(self.last_sent + self.period);
    }
}

impl Phase {
    fn relaying(body: ReplyBody, period: Duration) -> Self {
        Phase::Relaying { body, silence: Silence::new(period) }
    }

    /// The next events to send, possibly none yet; `None` when the stream is over.
    async fn next<D: Dialect>(&mut self, events: &mut EventStream<D>) -> Option<Vec<u8>> {
        match self {
            Phase::Done => None,
            Phase::Waiting { outcome, ticker, first, state } => {
                if let Some(first) = first.take() {
                    return Some(first);
                }
                let outcome = tokio::select! {
                    outcome = outcome => outcome,
                    _ = ticker.tick() => {
                        let mut keepalive = Vec::new();
                        events.keepalive(&mut keepalive);
                        return Some(keepalive);
                    }
                };
                let state = state.clone();
                let (out, next) = after_waiting(outcome, events, &state).await;
                *self = next;
                Some(out)
            }
            Phase::Relaying { body, silence } => {
                let chunk = tokio::select! {
                    chunk = body.next() => chunk,
                    () = silence.passed() => {
                        let mut keepalive = Vec::new();
                        events.keepalive(&mut keepalive);
                        return Some(keepalive);
                    }
                };
                match chunk {
                    Some(Ok(chunk)) => {
                        let out = events.push(&chunk);
                        if !out.is_empty() {
                            silence.last_sent = Instant::now();
                        }
                        Some(out)
                    }
                    Some(Err(error)) => {
                        *self = Phase::Done;
                        let mut out = Vec::new();
                        events.fail(&Failure::Broken(error.to_string()), &mut out);
                        Some(out)
                    }
                    None => {
                        *self = Phase::Done;
                        Some(events.finish())
                    }
                }
            }
        }
    }
}

fn stream_body<D: Dialect + 'static>(
    mut head: HttpResponseBuilder,
    phase: Phase,
    events: EventStream<D>,
) -> HttpResponse {
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

/// The awaited reply came, after the client was told the stream started: its events, or an
/// error event.
async fn after_waiting<D: Dialect>(
    outcome: Result<Reply, ProxyError>,
    events: &mut EventStream<D>,
    state: &AppState,
) -> (Vec<u8>, Phase) {
    let mut out = Vec::new();
    let mut reply = match answer(outcome, state).await {
        Ok(reply) => reply,
        Err((failure, _)) => {
            events.fail(&failure, &mut out);
            return (out, Phase::Done);
        }
    };
    if reply.is_event_stream() {
        return (out, Phase::relaying(reply.body, state.ping_interval));
    }
    match whole_completion(&mut reply.body, state).await {
        Ok(body) => match serde_json::from_slice::<Completion>(&body) {
            Ok(completion) => out = events.whole(completion),
            Err(_) => events.fail(&Failure::broken(NO_COMPLETION), &mut out),
        },
        Err(failure) => events.fail(&failure, &mut out),
    }
    (out, Phase::Done)
}
