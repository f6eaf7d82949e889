//! One request's record: gathered on the request path with cheap moves, turned into JSON
//! (with secrets redacted) on the logger's own thread.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use actix_web::http::header::HeaderMap;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

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
    pub request_body: Bytes,
    pub attempts: Vec<AttemptLog>,
    pub status: u16,
    pub response_headers: HeaderMap,
    pub response_body: Bytes,
    /// Set when the response body ended early (client gone, upstream broke).
    pub incomplete: bool,
}

impl RequestLog {
    /// The record as written: one JSON object, secrets redacted.
    pub fn to_json(&self, finished: Instant) -> Value {
        let started_at: DateTime<Utc> = self.started_at.into();
        let attempts: Vec<Value> = self
            .attempts
            .iter()
            .map(|a| {
                json!({"provider": a.provider, "key": a.key.as_deref(), "status": a.status,
                       "error": a.error, "duration_ms": round(a.duration_ms)})
            })
            .collect();
        json!({
            "id": &*self.id,
            "started_at": started_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "duration_ms": round((finished - self.started).as_secs_f64() * 1000.0),
            "client": self.client.as_deref(),
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "request_headers": redacted(&self.request_headers),
            "request_body": body_value(&self.request_body),
            "attempts": attempts,
            "status": self.status,
            "response_headers": redacted(&self.response_headers),
            "response_body": body_value(&self.response_body),
            "response_complete": !self.incomplete,
        })
    }
}

fn round(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// Whether a header can carry a credential: its value is never written.
pub fn is_secret_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "authorization" || name.contains("cookie") || ["key", "token", "secret"].iter().any(|w| name.contains(w))
}

fn redacted(headers: &HeaderMap) -> Value {
    let mut out = Map::new();
    for (name, value) in headers {
        let shown = if is_secret_header(name.as_str()) {
            "[redacted]".to_owned()
        } else {
            String::from_utf8_lossy(value.as_bytes()).into_owned()
        };
        match out.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&shown);
            }
            _ => {
                out.insert(name.as_str().to_owned(), Value::String(shown));
            }
        }
    }
    Value::Object(out)
}

/// A JSON body is embedded as JSON (for `jq`); anything else as text.
fn body_value(body: &Bytes) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

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
        let shown = redacted(&headers).to_string();
        assert!(!shown.contains("sk-secret") && shown.contains("[redacted]") && shown.contains("application/json"));
    }

    #[test]
    fn bodies_are_json_when_they_can_be() {
        assert_eq!(body_value(&Bytes::from_static(b"{\"a\":1}")), json!({"a": 1}));
        assert_eq!(body_value(&Bytes::from_static(b"data: x\n\n")), json!("data: x\n\n"));
        assert_eq!(body_value(&Bytes::new()), Value::Null);
    }
}
