//! One request's record: gathered on the request path with cheap moves, turned into JSON
//! (with secrets redacted, the answer assembled) on the logger's own thread.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use actix_web::http::header::CONTENT_TYPE;
use actix_web::http::{Method, Uri};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::value::RawValue;

use super::completion::Message;
use super::json_line::JsonObject;
use super::redact::{self, headers, HeaderList};
use crate::wire::chat::Usage;

/// One attempt at an upstream, as the log shows it.
#[derive(Debug, Clone)]
pub struct AttemptLog {
    pub provider: &'static str,
    /// The provider key's name, never its value.
    pub key: Option<Arc<str>>,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: f64,
}

/// Who answered: the provider, the key's name and the model it was asked for.
#[derive(Debug, Default)]
pub struct ServedBy {
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
    pub method: Method,
    /// The request's path and query (a shared copy, not a new string).
    pub uri: Uri,
    /// The `model` the client asked for.
    pub model: Option<Arc<str>>,
    pub served_by: ServedBy,
    pub request_headers: HeaderList,
    pub request_body: BodyCopy,
    pub attempts: Vec<AttemptLog>,
    pub status: u16,
    pub response_headers: HeaderList,
    pub response_body: BodyCopy,
    /// What the answer reports, from its end.
    pub usage: Option<Usage>,
    pub finish_reason: Option<String>,
    /// When the client had the whole answer (or left): records are written later, in batches.
    pub finished: Option<Instant>,
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
    /// a chat completion's answer assembled into its message. Without `bodies`, the record keeps
    /// its metadata only (`LOG_BODIES=false`, or the day's size cap is reached).
    pub fn write_json(&self, bodies: bool, out: &mut Vec<u8>) -> serde_json::Result<()> {
        let started_at: DateTime<Utc> = self.started_at.into();
        let duration = self.finished.unwrap_or_else(Instant::now) - self.started;
        let mut line = JsonObject::new(out);
        line.str("request_id", &self.id);
        line.str("started_at", &started_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
        line.milliseconds("duration_ms", duration.as_secs_f64() * 1000.0);
        line.milliseconds("ttfb_ms", self.ttfb_ms);
        line.opt_str("client", self.client.as_deref());
        line.str("method", self.method.as_str());
        line.str("path", self.uri.path());
        line.str("query", &redact::query(self.uri.query().unwrap_or_default()));
        line.opt_str("model", self.model.as_deref());
        line.opt_str("provider", self.served_by.provider);
        line.opt_str("upstream_model", self.served_by.model.as_deref());
        line.opt_str("key", self.served_by.key.as_deref());
        line.number("status", Some(u64::from(self.status)));
        line.number("prompt_tokens", self.usage.map(|u| u.prompt_tokens));
        line.number("completion_tokens", self.usage.map(|u| u.completion_tokens));
        line.opt_str("finish_reason", self.finish_reason.as_deref());
        line.array("attempts", &self.attempts, |object, attempt| {
            object.str("provider", attempt.provider);
            object.opt_str("key", attempt.key.as_deref());
            object.number("status", attempt.status.map(u64::from));
            object.opt_str("error", attempt.error.as_deref());
            object.milliseconds("duration_ms", attempt.duration_ms);
        });
        // Headers are diagnostics that go with the bodies: metadata-only records stay small.
        if bodies {
            line.object("request_headers", |object| headers(object, &self.request_headers));
        }
        body(&mut line, "request_body", if bodies { &self.request_body.kept } else { &EMPTY })?;
        line.number("request_body_bytes", Some(self.request_body.length as u64));
        if bodies && self.request_body.cut() {
            line.raw("request_body_cut", "true");
        }
        if bodies {
            line.object("response_headers", |object| headers(object, &self.response_headers));
        }
        if bodies {
            match self.answer() {
                Some(message) => line.value("response", &message)?,
                None => body(&mut line, "response_body", &self.response_body.kept)?,
            }
            if self.response_body.cut() {
                line.raw("response_body_cut", "true");
            }
        }
        line.number("response_body_bytes", Some(self.response_body.length as u64));
        line.raw("response_complete", if self.incomplete { "false" } else { "true" });
        if !bodies {
            line.raw("bodies_omitted", "true");
        }
        line.end();
        out.push(b'\n');
        Ok(())
    }

    /// A successful chat completion's answer as its message, streamed or not.
    fn answer(&self) -> Option<Message> {
        let body = &self.response_body.kept;
        if !(200..300).contains(&self.status) {
            return None;
        }
        let stream = self.response_headers.get(&CONTENT_TYPE).is_some_and(|v| v.starts_with(b"text/event-stream"));
        if stream {
            Message::from_stream(body)
        } else {
            Message::from_completion(body)
        }
    }
}

static EMPTY: Bytes = Bytes::new();

/// A body: embedded as JSON when it is JSON (for `jq`), else as text; `null` when empty.
fn body(line: &mut JsonObject, key: &str, bytes: &Bytes) -> serde_json::Result<()> {
    if bytes.is_empty() {
        line.raw(key, "null");
        return Ok(());
    }
    match serde_json::from_slice::<&RawValue>(bytes) {
        Ok(json) => line.raw(key, json.get()),
        Err(_) => line.str(key, &String::from_utf8_lossy(bytes)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::body_tail::Tail;
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
    use serde_json::{json, Value};

    fn log(
        headers: HeaderMap,
        request_body: &'static [u8],
        response_headers: HeaderMap,
        response_body: &'static [u8],
    ) -> RequestLog {
        let mut tail = Tail::default();
        tail.push(response_body);
        RequestLog {
            id: "r1".into(),
            started_at: SystemTime::now(),
            started: Instant::now(),
            ttfb_ms: 1.5,
            client: Some("ci".into()),
            method: Method::POST,
            uri: Uri::from_static("/v1/chat/completions?api_key=sk-secret&limit=5"),
            model: Some("glm".into()),
            served_by: ServedBy {
                provider: Some("cerebras"),
                key: Some("key1".into()),
                model: Some("zai-glm-4.7".into()),
            },
            request_headers: HeaderList::of(&headers),
            request_body: BodyCopy::of(&Bytes::from_static(request_body), 16),
            attempts: vec![],
            status: 200,
            response_headers: HeaderList::of(&response_headers),
            response_body: BodyCopy::of(&Bytes::from_static(response_body), 4096),
            usage: tail.usage(),
            finish_reason: tail.finish_reason(),
            finished: None,
            incomplete: false,
        }
    }

    fn line(log: &RequestLog, bodies: bool) -> Value {
        let mut line = Vec::new();
        log.write_json(bodies, &mut line).unwrap();
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
