//! One request's record: gathered on the request path with cheap moves, turned into JSON
//! (with secrets redacted) on the logger's own thread.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use actix_web::http::header::HeaderMap;
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::value::RawValue;

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

#[derive(Debug)]
pub struct RequestLog {
    pub id: Arc<str>,
    pub started_at: SystemTime,
    pub started: Instant,
    pub client: Option<Arc<str>>,
    pub method: String,
    pub path: String,
    pub query: String,
    pub request_headers: HeaderMap,
    pub request_body: BodyCopy,
    pub attempts: Vec<AttemptLog>,
    pub status: u16,
    pub response_headers: HeaderMap,
    pub response_body: BodyCopy,
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

    /// Appends the record as one JSON line: secrets redacted, JSON bodies embedded as JSON.
    /// Serialised straight from the record, with no intermediate JSON tree. Without
    /// `bodies`, the record keeps its metadata only (the day's size cap is reached).
    pub fn write_json(&self, finished: Instant, bodies: bool, out: &mut Vec<u8>) -> serde_json::Result<()> {
        let started_at: DateTime<Utc> = self.started_at.into();
        let line = Line {
            id: &self.id,
            started_at: started_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            duration_ms: round((finished - self.started).as_secs_f64() * 1000.0),
            client: self.client.as_deref(),
            method: &self.method,
            path: &self.path,
            query: &self.query,
            request_headers: Redacted(&self.request_headers),
            request_body: Body(if bodies { &self.request_body.kept } else { &EMPTY }),
            request_body_bytes: self.request_body.length,
            request_body_cut: self.request_body.cut().then_some(true),
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
            status: self.status,
            response_headers: Redacted(&self.response_headers),
            response_body: Body(if bodies { &self.response_body.kept } else { &EMPTY }),
            response_body_bytes: self.response_body.length,
            response_body_cut: self.response_body.cut().then_some(true),
            response_complete: !self.incomplete,
            bodies_omitted: (!bodies).then_some(true),
        };
        serde_json::to_writer(&mut *out, &line)?;
        out.push(b'\n');
        Ok(())
    }
}

#[derive(Serialize)]
struct Line<'a> {
    id: &'a str,
    started_at: String,
    duration_ms: f64,
    client: Option<&'a str>,
    method: &'a str,
    path: &'a str,
    query: &'a str,
    request_headers: Redacted<'a>,
    request_body: Body<'a>,
    request_body_bytes: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_body_cut: Option<bool>,
    attempts: Vec<Attempt<'a>>,
    status: u16,
    response_headers: Redacted<'a>,
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

/// Whether a header can carry a credential: its value is never written.
pub fn is_secret_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "authorization" || name.contains("cookie") || ["key", "token", "secret"].iter().any(|w| name.contains(w))
}

/// Headers as a JSON object; credentials as `[redacted]`, repeated headers joined with `, `.
struct Redacted<'a>(&'a HeaderMap);

impl Serialize for Redacted<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for name in self.0.keys() {
            if is_secret_header(name.as_str()) {
                map.serialize_entry(name.as_str(), "[redacted]")?;
                continue;
            }
            let mut values = self.0.get_all(name).map(|v| String::from_utf8_lossy(v.as_bytes()));
            let first = values.next().unwrap_or_default();
            match values.next() {
                None => map.serialize_entry(name.as_str(), &first)?,
                Some(second) => {
                    let joined = [first, second].into_iter().chain(values).collect::<Vec<_>>().join(", ");
                    map.serialize_entry(name.as_str(), &joined)?;
                }
            }
        }
        map.end()
    }
}

/// A body: embedded as JSON when it is JSON (for `jq`), else as text; `null` when empty.
struct Body<'a>(&'a Bytes);

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

    fn record(headers: HeaderMap, request_body: &'static [u8], response_body: &'static [u8]) -> Value {
        let log = RequestLog {
            id: "r1".into(),
            started_at: SystemTime::now(),
            started: Instant::now(),
            client: None,
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            query: String::new(),
            request_headers: headers,
            request_body: BodyCopy::of(&Bytes::from_static(request_body), 16),
            attempts: vec![],
            status: 200,
            response_headers: HeaderMap::new(),
            response_body: BodyCopy::of(&Bytes::from_static(response_body), 16),
            incomplete: false,
        };
        let mut line = Vec::new();
        log.write_json(Instant::now(), true, &mut line).unwrap();
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1, "one line per record");
        serde_json::from_slice(&line).unwrap()
    }

    #[test]
    fn credential_headers_are_redacted() {
        for name in ["authorization", "x-api-key", "api-key", "x-auth-token", "x-client-secret", "cookie"] {
            assert!(is_secret_header(name), "{name}");
        }
        for name in ["content-type", "x-request-id", "openai-organization"] {
            assert!(!is_secret_header(name), "{name}");
        }
        let mut headers = HeaderMap::new();
        headers.insert(HeaderName::from_static("x-api-key"), HeaderValue::from_static("sk-secret"));
        headers.insert(HeaderName::from_static("content-type"), HeaderValue::from_static("application/json"));
        headers.append(HeaderName::from_static("accept"), HeaderValue::from_static("a"));
        headers.append(HeaderName::from_static("accept"), HeaderValue::from_static("b"));
        let logged = record(headers, b"", b"");
        assert_eq!(
            logged["request_headers"],
            json!({"x-api-key": "[redacted]", "content-type": "application/json", "accept": "a, b"})
        );
    }

    #[test]
    fn bodies_are_json_when_they_can_be() {
        let logged = record(HeaderMap::new(), b"{\"a\": 1}", b"data: x\n\n");
        assert_eq!(logged["request_body"], json!({"a": 1}));
        assert_eq!(logged["response_body"], json!("data: x\n\n"));
        assert_eq!((logged["request_body_bytes"].as_u64(), logged.get("request_body_cut")), (Some(8), None));
        assert_eq!(record(HeaderMap::new(), b"", b"")["request_body"], Value::Null);
    }

    #[test]
    fn bodies_over_the_limit_are_cut_and_say_so() {
        let logged = record(HeaderMap::new(), b"{\"text\": \"0123456789abcdef\"}", b"");
        assert_eq!(logged["request_body"], "{\"text\": \"012345", "the first 16 bytes, as text");
        assert_eq!(
            (logged["request_body_bytes"].as_u64(), logged["request_body_cut"].as_bool()),
            (Some(28), Some(true))
        );
        let big = Bytes::from(vec![b'x'; 1000]);
        let copy = BodyCopy::of(&big, 10);
        assert_eq!((copy.kept.len(), copy.length), (10, 1000));
        assert_ne!(copy.kept.as_ptr(), big.as_ptr(), "a copy, not a view that keeps the whole body alive");
    }
}
