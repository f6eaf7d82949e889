//! One client request from arrival to the end of its answer, whichever front door it came
//! through: counted in flight, and, once the answer is known, metered and logged as its body
//! goes out.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix_web::body::{BodySize, MessageBody};
use actix_web::http::header::HeaderMap;
use actix_web::http::{ConnectionType, StatusCode, Version};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, ResponseError};

use crate::auth::pass::ClientPass;
use crate::dispatch::reply::{Reply, Watch};
use crate::dispatch::{is_event_stream, Source};
use crate::error::ProxyError;
use crate::handlers::rate_headers::{self, Style};
use crate::logging::record::{AttemptLog, BodyCopy, RequestLog, ServedBy};
use crate::logging::redact::HeaderList;
use crate::logging::sink::LogSink;
use crate::logging::tap::Tap;
use crate::metrics::{Meter, Metrics};
use crate::request_id::RequestId;
use crate::state::AppState;

/// What the log and the metrics need that only the request's processing learns.
#[derive(Default)]
pub struct Journal {
    pub client: Option<Arc<str>>,
    pub body: BodyCopy,
    pub attempts: Vec<AttemptLog>,
    /// The `model` the client asked for.
    pub model: Option<Arc<str>>,
    /// Who gave the answer the client got; `None` for the proxy's own.
    pub served_by: Option<Source>,
    /// The client key's pass, with auth on: charged when the answer's body is done.
    pub pass: Option<ClientPass>,
    /// The proxy asked the stream for its usage, which the client did not: the usage chunk
    /// is not shown to it.
    pub hide_usage: bool,
}

/// A request in progress: counted in flight from `begin` until its answer's body is done.
pub struct Exchange {
    pub journal: Journal,
    started: (SystemTime, Instant),
    /// How the door names a client key's rate-limit headers.
    style: Style,
}

impl Exchange {
    pub fn begin(state: &AppState, style: Style) -> Self {
        state.metrics.in_flight_requests.inc();
        Self { journal: Journal::default(), started: (SystemTime::now(), Instant::now()), style }
    }

    /// The pipeline's outcome as the door gets it: a reply whose body meters and logs itself as
    /// it is read, or the proxy's own error, metered and logged now.
    pub fn end(
        mut self,
        request: &HttpRequest,
        outcome: Result<Reply, ProxyError>,
        state: &AppState,
    ) -> Result<Reply, ProxyError> {
        let mut reply = match outcome {
            Ok(reply) => reply,
            Err(error) => return Err(self.refuse(request, error, state)),
        };
        let pass = self.journal.pass.take();
        // Each door's answer keeps the reply's headers: these go with them.
        if let Some(rate) = pass.as_ref().and_then(ClientPass::view) {
            rate_headers::put(&mut reply.headers, rate, self.style);
        }
        let hide_usage = self.journal.hide_usage;
        let ttfb = self.started.1.elapsed();
        let served_by = self.journal.served_by.as_ref();
        let meter = meter(reply.status, &reply.headers, served_by, &state.metrics, self.started.1);
        let tap = state
            .logs
            .as_ref()
            .map(|sink| tap(request, reply.status, &reply.headers, self.journal, self.started, ttfb, sink.clone()));
        let body = reply.body.watched(Watch::new(meter, tap, pass));
        Ok(Reply { body: if hide_usage { body.hiding_usage() } else { body }, ..reply })
    }

    /// The proxy's own error, metered and logged as the OpenAI error it is on that door, whichever
    /// door renders it.
    pub fn refuse(mut self, request: &HttpRequest, error: ProxyError, state: &AppState) -> ProxyError {
        // A key with limits is told where it stands, refused or not.
        let rate = match &error {
            ProxyError::ClientRefused { rate, .. } => Some(*rate),
            _ => self.journal.pass.take().as_ref().and_then(ClientPass::view),
        };
        if let Some(rate) = rate {
            request.extensions_mut().insert(rate);
        }
        let ttfb = self.started.1.elapsed();
        let status = error.status_code();
        let meter = meter(status, &HeaderMap::new(), None, &state.metrics, self.started.1);
        let Some(sink) = &state.logs else {
            drop(Watch::new(meter, None, None));
            return error;
        };
        let response = error.error_response();
        let headers = response.headers().clone();
        let body = response.into_body().try_into_bytes().unwrap_or_default();
        let tap = tap(request, status, &headers, self.journal, self.started, ttfb, sink.clone());
        Watch::new(meter, Some(tap), None).whole(&body);
        error
    }
}

/// HTTP/1.0 has no chunked encoding (RFC 9112 §6.1): a body of unknown length, such as a
/// stream, goes to such a client close-delimited, and the connection ends with it.
pub fn fit_to_version(request: &HttpRequest, mut response: HttpResponse) -> HttpResponse {
    if request.version() < Version::HTTP_11 && response.body().size() == BodySize::Stream {
        response.head_mut().no_chunking(true);
        response.head_mut().set_connection_type(ConnectionType::Close);
    }
    response
}

/// Counts the answer by provider (`proxy` for the proxy's own) and status, and keeps it in
/// flight until its body is done.
fn meter(
    status: StatusCode,
    headers: &HeaderMap,
    served_by: Option<&Source>,
    metrics: &Arc<Metrics>,
    started: Instant,
) -> Meter {
    let provider = served_by.map_or("proxy", |source| source.provider.name());
    metrics.requests.with_label_values(&[provider, status.as_str()]).inc();
    metrics.timeline.answer(served_by.map(|source| source.provider.index()), started);
    let stream = is_event_stream(headers);
    // Tokens are counted from an upstream's successful answer, by the model it was asked for.
    let tokens = served_by
        .filter(|_| status.is_success())
        .map(|source| metrics.model_label(source.model.as_deref().unwrap_or_default()));
    Meter::new(metrics.clone(), provider, started, stream, tokens)
}

/// The request's record, to go to the sink when the client has the whole answer.
fn tap(
    request: &HttpRequest,
    status: StatusCode,
    headers: &HeaderMap,
    journal: Journal,
    (started_at, started): (SystemTime, Instant),
    ttfb: Duration,
    sink: Arc<LogSink>,
) -> Tap {
    let id = request.extensions().get::<RequestId>().map_or_else(|| Arc::from(""), |id| id.0.clone());
    let served_by = journal.served_by.map_or_else(ServedBy::default, |source| ServedBy {
        provider: Some(source.provider.name()),
        key: source.key_name,
        model: source.model,
    });
    let record = RequestLog {
        id,
        started_at,
        started,
        ttfb_ms: ttfb.as_secs_f64() * 1000.0,
        client: journal.client,
        method: request.method().clone(),
        uri: request.uri().clone(),
        model: journal.model,
        served_by,
        request_headers: if sink.bodies() { HeaderList::of(request.headers()) } else { HeaderList::default() },
        request_body: journal.body,
        attempts: journal.attempts,
        status: status.as_u16(),
        response_headers: if sink.bodies() { HeaderList::of(headers) } else { HeaderList::default() },
        response_body: BodyCopy::default(),
        usage: None,
        finish_reason: None,
        finished: None,
        incomplete: false,
    };
    Tap::new(record, sink)
}
