//! One request's record: gathered on the request path with cheap moves, turned into JSON
//! (with secrets redacted, the answer assembled) on the logger's own thread.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use actix_web::http::header::{HeaderMap, CONTENT_TYPE};
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use serde::ser::Serializer;
use serde::Serialize;
use serde_json::value::RawValue;

use super::answer::Message;
use super::redact::{self, Headers};
use crate::transform::answer_tail::Tail;

/// One attempt at an upstream, as the log shows it.
#[derive(Debug, Clone)]
pub struct AttemptLog {
    pub provider: &'static str,
    /// The Cerebras key's name, never its value.
    pub key: Option<Arc<str>>,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: f64,
}

/// Who answered: the provider, the key's name and the model it was asked for.
#[derive(Debug, Default)]
pub struct Answerer {
    pub provider: Option<&'static str>,
    pub key: Option<Arc<str>>,
    pub model: Option<Arc<str>>,
}

#[derive(Debug)]
pub struct RequestLog {
    pub id: Arc<str>,
    pub started_at: SystemTime,
    pub started: Instant,
    /// From arrival to the answer's head.
    pub ttfb_ms: f64,
    /// The client key's name, never the key.
    pub client: Option<Arc<str>>,
    pub method: String,
    pub path: String,
    pub query: String,
    /// The `model` the client asked for.
    pub model: Option<Arc<str>>,
    pub answerer: Answerer,
    pub request_headers: HeaderMap,
    pub request_body: BodyCopy,
    pub attempts: Vec<AttemptLog>,
    pub status: u16,
    pub response_headers: HeaderMap,
    pub response_body: BodyCopy,
    /// The end of the answer: its token usage and finish reason.
    pub response_tail: Tail,
    /// Set when the response body ended early (client gone, upstream broke).
    pub incomplete: bool,
}

/// A body as a record keeps it: at most `LOG_BODY_MAX_BYTES` of it, and its whole length.
#[derive(Debug, Default)]
pub struct BodyCopy {
    pub kept: Bytes,
    pub length: usize,
}

impl BodyCopy {
    /// Keeps the start of `body`. A body over the limit is copied in part, so the record
    /// never holds the whole of a large body alive.
    pub fn of(body: &Bytes, limit: usize) -> Self {
        let kept = if body.len() <= limit { body.clone() } else { Bytes::copy_from_slice(&body[..limit]) };
        Self { kept, length: body.len() }
    }

    /// Adds a piece of a body as it streams by, keeping what fits under `limit`.
    pub fn extend(copy: &mut BytesMut, length: &mut usize, chunk: &[u8], limit: usize) {
        *length += chunk.len();
        let room = limit.saturating_sub(copy.len());
        copy.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }

    fn cut(&self) -> bool {
        self.kept.len() < self.length
    }
}

impl RequestLog {
    /// Bytes this record holds beyond its fixed part: what it costs in the log queue.
    pub fn weight(&self) -> usize {
        const FIXED: usize = 1024;
        FIXED + self.request_body.kept.len() + self.response_body.kept.len()
    }

    /// Appends the record as one JSON line: secrets redacted, JSON bodies embedded as JSON,
    /// a chat completion's answer assembled into its message. Serialised straight from the
    /// record, with no intermediate JSON tree. Without `bodies`, the record keeps its
    /// metadata only (`LOG_BODIES=false`, or the day's size cap is reached).
    pub fn write_json(&self, finished: Instant, bodies: bool, out: &mut Vec<u8>) -> serde_json::Result<()> {
        let started_at: DateTime<Utc> = self.started_at.into();
        let usage = self.response_tail.usage();
        let (response, response_body) = match bodies {
            true => self.answer(),
            false => (None, Body(&EMPTY)),
        };
        let line = Line {
            request_id: &self.id,
            started_at: started_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            duration_ms: round((finished - self.started).as_secs_f64() * 1000.0),
            ttfb_ms: round(self.ttfb_ms),
            client: self.client.as_deref(),
            method: &self.method,
            path: &self.path,
            query: redact::query(&self.query),
            model: self.model.as_deref(),
            provider: self.answerer.provider,
            upstream_model: self.answerer.model.as_deref(),
            key: self.answerer.key.as_deref(),
            status: self.status,
            prompt_tokens: usage.map(|u| u.prompt_tokens),
            completion_tokens: usage.map(|u| u.completion_tokens),
            finish_reason: self.response_tail.finish_reason(),
            attempts: self
                .attempts
                .iter()
                .map(|a| Attempt {
                    provider: a.provider,
                    key: a.key.as_deref(),
                    status: a.status,
                    error: a.error.as_deref(),
                    duration_ms: round(a.duration_ms),
                })
                .collect(),
            request_headers: Headers(&self.request_headers),
            request_body: Body(if bodies { &self.request_body.kept } else { &EMPTY }),
            request_body_bytes: self.request_body.length,
            request_body_cut: self.request_body.cut().then_some(true),
            response_headers: Headers(&self.response_headers),
            response,
            response_body,
            response_body_bytes: self.response_body.length,
            response_body_cut: self.response_body.cut().then_some(true),
            response_complete: !self.incomplete,
            bodies_omitted: (!bodies).then_some(true),
        };
        serde_json::to_writer(&mut *out, &line)?;
        out.push(b'\n');
        Ok(())
    }

    /// A successful chat completion's answer as its message, else the body as it came.
    fn answer(&self) -> (Option<Message>, Body<'_>) {
        let body = &self.response_body.kept;
        let success = (200..300).contains(&self.status);
        let stream =
            self.response_headers.get(CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let message = match (success, stream) {
            (true, true) => Message::from_stream(body),
            (true, false) => Message::from_completion(body),
            (false, _) => None,
        };
        match message {
            Some(message) => (Some(message), Body(&EMPTY)),
            None => (None, Body(body)),
        }
    }
}

#[derive(Serialize)]
struct Line<'a> {
    request_id: &'a str,
    started_at: String,
    duration_ms: f64,
    ttfb_ms: f64,
    client: Option<&'a str>,
    method: &'a str,
    path: &'a str,
    query: String,
    model: Option<&'a str>,
    provider: Option<&'a str>,
    upstream_model: Option<&'a str>,
    key: Option<&'a str>,
    status: u16,
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    finish_reason: Option<String>,
    attempts: Vec<Attempt<'a>>,
    request_headers: Headers<'a>,
    request_body: Body<'a>,
    request_body_bytes: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_body_cut: Option<bool>,
    response_headers: Headers<'a>,
    /// A chat completion's answer, streamed or not, as the message it makes.
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<Message>,
    /// Any other answer's body, as it came.
    #[serde(skip_serializing_if = "Body::is_empty")]
    response_body: Body<'a>,
    response_body_bytes: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_body_cut: Option<bool>,
    response_complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    bodies_omitted: Option<bool>,
}

static EMPTY: Bytes = Bytes::new();

#[derive(Serialize)]
struct Attempt<'a> {
    provider: &'a str,
    key: Option<&'a str>,
    status: Option<u16>,
    error: Option<&'a str>,
    duration_ms: f64,
}

fn round(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// A body: embedded as JSON when it is JSON (for `jq`), else as text; `null` when empty.
struct Body<'a>(&'a Bytes);

impl Body<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Body<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0.is_empty() {
            return serializer.serialize_none();
        }
        match serde_json::from_slice::<&RawValue>(self.0) {
            Ok(json) => json.serialize(serializer),
            Err(_) => serializer.serialize_str(&String::from_utf8_lossy(self.0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};
    use serde_json::{json, Value};

    fn log(
        headers: HeaderMap,
        request_body: &'static [u8],
        response_headers: HeaderMap,
        response_body: &'static [u8],
    ) -> RequestLog {
        let mut response_tail = Tail::default();
        response_tail.push(response_body);
        RequestLog {
            id: "r1".into(),
            started_at: SystemTime::now(),
            started: Instant::now(),
            ttfb_ms: 1.5,
            client: Some("ci".into()),
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            query: "api_key=sk-secret&limit=5".into(),
            model: Some("glm".into()),
            answerer: Answerer {
                provider: Some("cerebras"),
                key: Some("key1".into()),
                model: Some("zai-glm-4.7".into()),
            },
            request_headers: headers,
            request_body: BodyCopy::of(&Bytes::from_static(request_body), 16),
            attempts: vec![],
            status: 200,
            response_headers,
            response_body: BodyCopy::of(&Bytes::from_static(response_body), 4096),
            response_tail,
            incomplete: false,
        }
    }

    fn line(log: &RequestLog, bodies: bool) -> Value {
        let mut line = Vec::new();
        log.write_json(Instant::now(), bodies, &mut line).unwrap();
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1, "one line per record");
        serde_json::from_slice(&line).unwrap()
    }

    fn record(headers: HeaderMap, request_body: &'static [u8], response_body: &'static [u8]) -> Value {
        line(&log(headers, request_body, HeaderMap::new(), response_body), true)
    }

    #[test]
    fn credentials_are_redacted_by_name_and_diagnostics_kept() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("x-api-key", "sk-secret"),
            ("proxy-authorization", "Basic c2VjcmV0"),
            ("cookie", "session=secret"),
            ("content-type", "application/json"),
            ("x-ratelimit-remaining-tokens-minute", "0"),
        ] {
            headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        headers.append(HeaderName::from_static("accept"), HeaderValue::from_static("a"));
        headers.append(HeaderName::from_static("accept"), HeaderValue::from_static("b"));
        let logged = record(headers, b"", b"");
        assert_eq!(
            logged["request_headers"],
            json!({"x-api-key": "[redacted]", "proxy-authorization": "[redacted]", "cookie": "[redacted]",
                   "content-type": "application/json", "x-ratelimit-remaining-tokens-minute": "0", "accept": "a, b"})
        );
        assert_eq!(logged["query"], "api_key=[redacted]&limit=5");
        assert!(!logged.to_string().contains("secret"));
    }

    #[test]
    fn the_top_level_fields_say_who_asked_what_and_who_answered() {
        let answer = br#"{"choices":[{"message":{"content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":2}}"#;
        let logged = record(HeaderMap::new(), b"{}", answer);
        for (field, value) in [
            ("request_id", json!("r1")),
            ("client", json!("ci")),
            ("model", json!("glm")),
            ("provider", json!("cerebras")),
            ("upstream_model", json!("zai-glm-4.7")),
            ("key", json!("key1")),
            ("status", json!(200)),
            ("prompt_tokens", json!(7)),
            ("completion_tokens", json!(2)),
            ("finish_reason", json!("stop")),
            ("ttfb_ms", json!(1.5)),
        ] {
            assert_eq!(logged[field], value, "{field}");
        }
        assert_eq!(logged["response"]["content"], "Hi");
        assert!(logged.get("response_body").is_none(), "the message stands for the body");
    }

    #[test]
    fn a_streamed_answer_is_logged_as_its_message() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        let stream = b"data: {\"choices\":[{\"delta\":{\"content\":\"He\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"y\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n";
        let logged = line(&log(HeaderMap::new(), b"", headers, stream), true);
        assert_eq!(logged["response"]["content"], "He".to_owned() + "y");
        assert_eq!((logged["completion_tokens"].as_u64(), logged["finish_reason"].as_str()), (Some(1), Some("stop")));
    }

    #[test]
    fn bodies_are_json_when_they_can_be_and_cut_at_the_limit() {
        let logged = record(HeaderMap::new(), b"{\"a\": 1}", b"plain text");
        assert_eq!(logged["request_body"], json!({"a": 1}));
        assert_eq!(logged["response_body"], json!("plain text"));
        assert_eq!((logged["request_body_bytes"].as_u64(), logged.get("request_body_cut")), (Some(8), None));
        let cut = record(HeaderMap::new(), b"{\"text\": \"0123456789abcdef\"}", b"");
        assert_eq!(cut["request_body"], "{\"text\": \"012345", "the first 16 bytes, as text");
        assert_eq!((cut["request_body_bytes"].as_u64(), cut["request_body_cut"].as_bool()), (Some(28), Some(true)));
        let big = Bytes::from(vec![b'x'; 1000]);
        let copy = BodyCopy::of(&big, 10);
        assert_eq!((copy.kept.len(), copy.length), (10, 1000));
        assert_ne!(copy.kept.as_ptr(), big.as_ptr(), "a copy, not a view that keeps the whole body alive");
    }

    #[test]
    fn without_bodies_every_other_field_stays() {
        let answer = br#"{"choices":[{"message":{"content":"Hi"}}],"usage":{"prompt_tokens":7,"completion_tokens":2}}"#;
        let logged = line(&log(HeaderMap::new(), b"{}", HeaderMap::new(), answer), false);
        assert!(
            logged["request_body"].is_null()
                && logged.get("response").is_none()
                && logged.get("response_body").is_none()
        );
        assert_eq!((logged["prompt_tokens"].as_u64(), logged["bodies_omitted"].as_bool()), (Some(7), Some(true)));
    }
}
