//! What the pipeline hands a front door: the upstream's status, the headers a client may see
//! (naming the provider and key that answered), and the body, streaming in or held whole. The
//! door renders it in its own dialect; the OpenAI door relays it as it is.
//!
//! The body is watched as it is read, once for the metrics and the log: one copy of its end,
//! one search of that for the usage, and the record finished when the body is done or dropped.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpResponse};
use awc::ClientResponse;
use bytes::Bytes;
use futures_util::stream::{self, Chain, Iter};
use futures_util::{Stream, StreamExt};

use crate::auth::pass::ClientPass;
use crate::body_budget::{read_into, BodyPermit, Buffered, Refused, Stopped};
use crate::logging::tap::Tap;
use crate::metrics::Meter;
use crate::policy::encoding::is_encoded;
use crate::providers::ProviderId;
use crate::state::AppState;
use crate::transform::body_tail::Tail;
use crate::transform::stream_usage;
use crate::upstream::headers::relays_response_header;
use crate::upstream::relay::{Interrupted, Relay};
use crate::wire::chat::Usage;

/// Names the provider that answered.
pub const PROVIDER_HEADER: HeaderName = HeaderName::from_static("x-glm-proxy-provider");
/// Names the provider's key (its name, never its value) that answered.
pub const KEY_HEADER: HeaderName = HeaderName::from_static("x-glm-proxy-key");

/// Who an attempt went to, and the model it asked for.
#[derive(Debug, Clone)]
pub struct Source {
    pub provider: ProviderId,
    pub key_name: Option<std::sync::Arc<str>>,
    /// The body's `model` as this provider got it (`None` when the request had none).
    pub model: Option<std::sync::Arc<str>>,
}

impl Source {
    /// The provider alone, for what is said of it rather than of one attempt.
    pub fn provider(provider: ProviderId) -> Self {
        Self { provider, key_name: None, model: None }
    }

    /// `cerebras/key1`, or the provider's name: how attempts are named in logs and 502s.
    pub fn target(&self) -> String {
        match &self.key_name {
            Some(name) => format!("{}/{name}", self.provider.name()),
            None => self.provider.name().to_owned(),
        }
    }
}

/// An upstream's answer as the client may get it.
pub struct Reply {
    pub status: StatusCode,
    /// The upstream's headers but hop-by-hop ones and `Content-Length`, and the proxy's own.
    pub headers: HeaderMap,
    pub body: ReplyBody,
}

impl Reply {
    /// The reply as it is, for a client of the API the providers speak.
    pub fn into_response(self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status).body(self.body);
        *response.headers_mut() = self.headers;
        response
    }

    /// A JSON answer of the proxy's own.
    pub fn json(body: &impl serde::Serialize) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        // A value of plain fields always serialises.
        let body = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
        Self { status: StatusCode::OK, headers, body: ReplyBody::new(Content::Whole(Some(body))) }
    }

    pub fn is_event_stream(&self) -> bool {
        is_event_stream(&self.headers)
    }
}

/// An upstream answer read whole (errors are small), kept in case the client gets it.
pub struct HeldResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub source: Source,
}

impl HeldResponse {
    pub fn into_reply(self) -> Reply {
        let headers = client_headers(&self.headers, &self.source);
        Reply { status: self.status, headers, body: ReplyBody::new(Content::Whole(Some(self.body))) }
    }
}

/// The bytes of an upstream's answer as awc gives them, after a first chunk already read.
type Upstream = Chain<Iter<std::option::IntoIter<Result<Bytes, PayloadError>>>, Payload>;

/// Streams an answer to the client as it arrives, after `first` if that was already read.
pub fn relay(mut answer: ClientResponse, first: Option<Bytes>, source: &Source, idle: Duration) -> Reply {
    let headers = client_headers(answer.headers(), source);
    let length =
        answer.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    // A compressed stream is relayed untouched: its events cannot be read, nor added to.
    let sse = is_event_stream(answer.headers()) && !is_encoded(answer.headers());
    let upstream: Upstream = stream::iter(first.map(Ok)).chain(answer.take_payload());
    let relay = Relay::new(upstream, idle, sse);
    let length = length.filter(|_| !sse);
    Reply { status: answer.status(), headers, body: ReplyBody::new(Content::Relayed { relay, length }) }
}

/// The upstream's headers a client may see, and the provider and key that answered.
fn client_headers(upstream: &HeaderMap, source: &Source) -> HeaderMap {
    // Room for the proxy's two and a client key's six rate-limit headers: never grown after.
    let mut headers = HeaderMap::with_capacity(upstream.len() + 8);
    for (name, value) in upstream {
        if relays_response_header(upstream, name) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.insert(PROVIDER_HEADER, HeaderValue::from_static(source.provider.name()));
    if let Some(name) = source.key_name.as_deref().and_then(|n| HeaderValue::from_str(n).ok()) {
        headers.insert(KEY_HEADER, name);
    }
    headers
}

pub fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
}

enum Content {
    /// Held whole; taken when it is read.
    Whole(Option<Bytes>),
    /// Relayed as it arrives; `length` when the upstream declared it (a plain body).
    Relayed { relay: Relay<Upstream>, length: Option<u64> },
}

/// A reply's body: a stream of its bytes, and the client's response body on the OpenAI door.
pub struct ReplyBody {
    content: Content,
    /// Boxed: a log record is large, and the body is moved about until it is read.
    watch: Option<Box<Watch>>,
    /// The stream's usage chunk is the proxy's, not the client's: it is watched, not relayed.
    hide_usage: bool,
}

impl ReplyBody {
    fn new(content: Content) -> Self {
        Self { content, watch: None, hide_usage: false }
    }

    /// The body without its usage chunk, once the watch has seen it.
    pub fn hiding_usage(self) -> Self {
        Self { hide_usage: true, ..self }
    }

    /// An empty body: what a reply that is no answer carries.
    pub fn empty() -> Self {
        Self::new(Content::Whole(None))
    }

    /// The body's length, when it is known before it is read.
    pub fn length(&self) -> Option<u64> {
        match &self.content {
            Content::Whole(bytes) => Some(bytes.as_ref().map_or(0, |bytes| bytes.len() as u64)),
            Content::Relayed { length, .. } => *length,
        }
    }

    /// Has `watch` see the bytes as they are read, and learn how the body ended.
    pub fn watched(mut self, mut watch: Watch) -> Self {
        if let Some(length) = self.length() {
            watch.expect(length);
        }
        self.watch = Some(Box::new(watch));
        self
    }

    /// The whole body, read within `MAX_BODY_BYTES` and the shared body budget (a door that
    /// translates an answer must hold it whole), and the budget it holds until it is dropped.
    pub async fn read_whole(&mut self, state: &AppState) -> Result<(Bytes, Option<BodyPermit>), String> {
        let mut body = Buffered::new(&state.body_budget, state.max_body_bytes, 0).map_err(|e| e.to_string())?;
        read_into(self, &mut body, None).await.map_err(|stopped| match stopped {
            Stopped::Refused(Refused::TooLarge) => {
                format!("the upstream's answer is larger than MAX_BODY_BYTES ({})", state.max_body_bytes)
            }
            Stopped::Refused(Refused::Overloaded(error)) => error.to_string(),
            Stopped::Failed(error) => format!("the upstream's answer broke off: {error}"),
            Stopped::TimedOut => "the upstream's answer did not arrive in time".to_owned(),
        })?;
        Ok(body.finish())
    }
}

impl Stream for ReplyBody {
    type Item = Result<Bytes, Interrupted>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            let polled = match &mut this.content {
                Content::Whole(bytes) => Poll::Ready(bytes.take().map(Ok)),
                Content::Relayed { relay, .. } => relay.poll_next_unpin(cx),
            };
            if let Some(watch) = &mut this.watch {
                match &polled {
                    Poll::Ready(Some(Ok(chunk))) => watch.push(chunk),
                    Poll::Ready(None) => watch.end(),
                    _ => {}
                }
            }
            match polled {
                Poll::Ready(Some(Ok(chunk))) if this.hide_usage => {
                    let shown = stream_usage::hidden(chunk);
                    // An empty chunk would end a chunked body: a chunk of the usage alone is
                    // skipped.
                    if !shown.is_empty() {
                        return Poll::Ready(Some(Ok(shown)));
                    }
                }
                polled => return polled,
            }
        }
    }
}

impl MessageBody for ReplyBody {
    type Error = Interrupted;

    fn size(&self) -> BodySize {
        match self.length() {
            Some(length) => BodySize::Sized(length),
            None => BodySize::Stream,
        }
    }

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Stream::poll_next(self, cx)
    }
}

/// A reply's share of the metrics, its log record and its client's pass, watching its body go
/// by.
pub struct Watch {
    meter: Meter,
    tap: Option<Tap>,
    pass: Option<ClientPass>,
    /// The end of the answer, kept when its usage counts for the metrics or the log.
    tail: Option<Tail>,
    /// The tail's usage once read: the pass and the metrics both want it, at the end.
    usage: Option<Option<Usage>>,
    ended: bool,
    /// The body's declared length, and how much of it has passed.
    length: Option<u64>,
    seen: u64,
}

impl Watch {
    pub fn new(meter: Meter, tap: Option<Tap>, pass: Option<ClientPass>) -> Self {
        let tail = (meter.counts_tokens() || tap.is_some() || pass.is_some()).then(Tail::default);
        Self { meter, tap, pass, tail, usage: None, ended: false, length: None, seen: 0 }
    }

    /// A body of known length is coming.
    fn expect(&mut self, length: u64) {
        self.length = Some(length);
        if let Some(tap) = &mut self.tap {
            tap.expect(length);
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        if let Some(tail) = &mut self.tail {
            tail.push(chunk);
        }
        if let Some(tap) = &mut self.tap {
            tap.push(chunk);
        }
        self.seen += chunk.len() as u64;
        // A body of declared length may not be read to its end once it is all there.
        if self.length.is_some_and(|length| self.seen >= length) {
            self.settle();
        }
    }

    /// The body is all there: the client's pass is charged, if it was not yet.
    fn end(&mut self) {
        self.ended = true;
        self.settle();
    }

    /// Charges the client's pass, before the client can send its next request (which a budget
    /// this answer spent must refuse).
    fn settle(&mut self) {
        if let Some(pass) = self.pass.take() {
            pass.settle(self.usage());
        }
    }

    /// The answer's usage, read from its tail once the answer is over.
    fn usage(&mut self) -> Option<Usage> {
        let tail = &self.tail;
        *self.usage.get_or_insert_with(|| tail.as_ref().and_then(Tail::usage))
    }

    /// A body that is all there is, seen whole at once: a record finished as it is made.
    pub fn whole(mut self, body: &[u8]) {
        self.expect(body.len() as u64);
        self.push(body);
        self.end();
    }
}

/// Done, or dropped because the client went away: the metrics and the log learn it now.
impl Drop for Watch {
    fn drop(&mut self) {
        let usage = self.usage();
        if let Some(usage) = usage {
            self.meter.tokens(usage);
        }
        // Cut short: what the answer reported so far is charged.
        self.settle();
        if let Some(tap) = self.tap.take() {
            let finish_reason = self.tail.as_ref().and_then(Tail::finish_reason);
            tap.finish(usage, finish_reason, self.ended);
        }
    }
}
