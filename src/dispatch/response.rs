//! The client's response, built from an upstream answer: relayed as it streams in, or from an
//! error answer held whole. Either way it names the provider (and key) that answered.

use std::time::Duration;

use actix_web::body::SizedStream;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpResponse, HttpResponseBuilder};
use awc::ClientResponse;
use bytes::Bytes;
use futures_util::{stream, StreamExt};

use crate::policy::encoding::is_encoded;
use crate::providers::ProviderKind;
use crate::upstream::headers::relays_response_header;
use crate::upstream::relay::Relay;

/// Names the provider that answered.
pub const PROVIDER_HEADER: HeaderName = HeaderName::from_static("x-glm-proxy-provider");
/// Names the Cerebras key (its name, never its value) that answered.
pub const KEY_HEADER: HeaderName = HeaderName::from_static("x-glm-proxy-key");

/// Who an attempt went to, and the model it asked for.
#[derive(Debug, Clone)]
pub struct Source {
    pub provider: ProviderKind,
    pub key_name: Option<std::sync::Arc<str>>,
    /// The body's `model` as this provider got it (`None` when the request had none).
    pub model: Option<std::sync::Arc<str>>,
}

impl Source {
    /// The provider alone, for what is said of it rather than of one attempt.
    pub fn provider(provider: ProviderKind) -> Self {
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

/// An upstream answer read whole (errors are small), kept in case the client gets it.
pub struct HeldAnswer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub source: Source,
}

impl HeldAnswer {
    pub fn into_response(self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        copy_headers(&self.headers, &mut response);
        tag(&mut response, &self.source);
        response.body(self.body)
    }
}

/// Streams an answer to the client as it arrives, after `first` if that was already read.
pub fn relay(mut answer: ClientResponse, first: Option<Bytes>, source: &Source, idle: Duration) -> HttpResponse {
    let mut response = HttpResponse::build(answer.status());
    copy_headers(answer.headers(), &mut response);
    tag(&mut response, source);
    let content_length =
        answer.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    // A compressed stream is relayed untouched: its events cannot be read, nor added to.
    let sse = is_event_stream(answer.headers()) && !is_encoded(answer.headers());
    let upstream = stream::iter(first.map(Ok)).chain(answer.take_payload());
    let body = Relay::new(upstream, idle, sse);
    match content_length {
        Some(length) if !sse => response.body(SizedStream::new(length, body)),
        _ => response.streaming(body),
    }
}

fn copy_headers(upstream: &HeaderMap, response: &mut HttpResponseBuilder) {
    for (name, value) in upstream {
        if relays_response_header(upstream, name) {
            response.append_header((name.clone(), value.clone()));
        }
    }
}

fn tag(response: &mut HttpResponseBuilder, source: &Source) {
    response.insert_header((PROVIDER_HEADER, source.provider.name()));
    if let Some(name) = source.key_name.as_deref().and_then(|n| HeaderValue::from_str(n).ok()) {
        response.insert_header((KEY_HEADER, name));
    }
}

pub fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
}
