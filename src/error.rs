//! Errors the proxy itself answers with, as OpenAI-style JSON.
//!
//! Upstream answers are relayed as they are; these are only for what the proxy decides.

use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::auth::client_key::Refusal;
use crate::catalogue::Catalogue;
use crate::policy::fault::Reason;
use crate::policy::key_pool::Rejection;
use crate::policy::limits::limiter::{RateView, Refusal as ClientRefusal};

/// One failed attempt at an upstream (or a provider passed over), as the client is told about it.
#[derive(Debug, Clone)]
pub struct AttemptFailure {
    /// Provider and, for Cerebras, the key's name (never its value).
    pub target: String,
    pub reason: Reason,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{0}")]
    InvalidBody(String),
    #[error("request body is larger than the limit of {limit} bytes (MAX_BODY_BYTES)")]
    PayloadTooLarge { limit: usize },
    /// The answers a tool-call repair adds would take the body past the limit.
    #[error("the request's tool-call history, once repaired, would be larger than the limit of {limit} bytes (MAX_BODY_BYTES)")]
    RepairTooLarge { limit: usize },
    #[error("could not read the request body: {0}")]
    PayloadRead(String),
    #[error("the request body did not arrive within {}s (CLIENT_BODY_TIMEOUT)", .0.as_secs_f64())]
    BodyTimeout(Duration),
    /// A bound on work in progress is reached; the client should come back in a second.
    #[error("the proxy is overloaded: too many {0}; retry shortly")]
    Overloaded(&'static str),
    /// The client-key cache could not be reloaded for too long to be trusted.
    #[error("client keys cannot be checked: the key database has been unreadable for too long")]
    AuthUnavailable,
    #[error("every {provider} key is cooling down; the next is free in {}s", retry_after.as_secs())]
    AllKeysCooling { provider: &'static str, retry_after: Duration },
    #[error("{}", .0.message())]
    Unauthorized(Refusal),
    /// The catalogue has no model by the requested name, or no configured provider serves it.
    #[error("the model {model:?} is not served here; the models are: {known}")]
    ModelNotFound { model: String, known: String },
    #[error("{0} is unavailable; try again shortly")]
    ActorUnavailable(&'static str),
    /// No upstream answered; `retry_after` is set when a provider was passed over for its open
    /// circuit.
    #[error("no upstream could answer: {}", describe(failures))]
    UpstreamFailed { failures: Vec<AttemptFailure>, retry_after: Option<Duration> },
    /// A parameter of the request that cannot be honoured here, named by `param`.
    #[error("{message}")]
    Unsupported { param: String, message: String },
    /// The client key's own limits refuse the request: nothing of it went upstream. `rate` is
    /// what its rate-limit headers say.
    #[error("{refusal}")]
    ClientRefused { refusal: ClientRefusal, rate: RateView },
    /// A provider rejects every key and no provider comes after it, in its own words.
    #[error("{provider} rejected every key in the pool: {rejection}")]
    KeysRejected { provider: &'static str, rejection: Rejection },
}

impl ProxyError {
    /// A 404 naming the catalogue's models; a long requested name is shown cut short.
    pub fn model_not_found(requested: &str, catalogue: &Catalogue) -> Self {
        const SHOWN: usize = 100;
        let model = match requested.char_indices().nth(SHOWN) {
            Some((end, _)) => format!("{}…", &requested[..end]),
            None => requested.to_owned(),
        };
        Self::ModelNotFound { model, known: catalogue.public_names() }
    }
}

fn describe(failures: &[AttemptFailure]) -> String {
    let parts: Vec<String> = failures.iter().map(|f| format!("{} ({})", f.target, f.reason)).collect();
    parts.join(", ")
}

impl ProxyError {
    /// How long the client should wait before it tries again, when that is known.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::AllKeysCooling { retry_after, .. } => Some(*retry_after),
            Self::UpstreamFailed { retry_after, .. } => *retry_after,
            Self::Overloaded(_) | Self::AuthUnavailable => Some(Duration::from_secs(1)),
            Self::ClientRefused { refusal, .. } => refusal.retry_after(),
            _ => None,
        }
    }

    /// The one table of what each error is: its status, and OpenAI's error type and code.
    fn classify(&self) -> (StatusCode, &'static str, &'static str) {
        const BAD: StatusCode = StatusCode::BAD_REQUEST;
        const UNAVAILABLE: StatusCode = StatusCode::SERVICE_UNAVAILABLE;
        match self {
            Self::InvalidBody(_) => (BAD, "invalid_request_error", "invalid_json"),
            Self::PayloadRead(_) => (BAD, "invalid_request_error", "body_read_error"),
            Self::PayloadTooLarge { .. } | Self::RepairTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error", "payload_too_large")
            }
            Self::BodyTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "invalid_request_error", "body_timeout"),
            Self::Unauthorized(refusal) => (StatusCode::UNAUTHORIZED, "invalid_request_error", refusal.code()),
            Self::ModelNotFound { .. } => (StatusCode::NOT_FOUND, "invalid_request_error", "model_not_found"),
            Self::Unsupported { .. } => (BAD, "invalid_request_error", "unsupported_parameter"),
            Self::Overloaded(_) => (UNAVAILABLE, "server_error", "overloaded"),
            Self::AuthUnavailable => (UNAVAILABLE, "server_error", "auth_unavailable"),
            Self::AllKeysCooling { .. } => (UNAVAILABLE, "rate_limit_error", "all_keys_cooling_down"),
            Self::ActorUnavailable(_) => (UNAVAILABLE, "server_error", "service_unavailable"),
            Self::UpstreamFailed { .. } => (StatusCode::BAD_GATEWAY, "upstream_error", "upstream_unavailable"),
            Self::KeysRejected { .. } => (StatusCode::BAD_GATEWAY, "upstream_error", "upstream_keys_rejected"),
            Self::ClientRefused { refusal, .. } => match refusal {
                ClientRefusal::RateLimited { .. } => {
                    (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", "client_rate_limited")
                }
                ClientRefusal::OverBudget { .. } => {
                    (StatusCode::TOO_MANY_REQUESTS, "insufficient_quota", "client_budget_exceeded")
                }
                ClientRefusal::Expired { .. } => (StatusCode::UNAUTHORIZED, "invalid_request_error", "expired_api_key"),
                ClientRefusal::ModelNotAllowed { .. } => {
                    (StatusCode::FORBIDDEN, "invalid_request_error", "model_not_allowed")
                }
            },
        }
    }

    /// The error's OpenAI-shaped body.
    pub fn body(&self) -> serde_json::Value {
        let (_, kind, code) = self.classify();
        let mut body = error_body(&self.to_string(), kind, code);
        if let Self::Unsupported { param, .. } = self {
            body["error"]["param"] = json!(param);
        }
        body
    }

    /// OpenAI's error code for this error.
    pub fn code(&self) -> &'static str {
        self.classify().2
    }

    /// A response for this error with `status` and `body`, in whichever door's shape: it
    /// carries the error's `Retry-After`, its `WWW-Authenticate`, and closes a connection
    /// whose body was not read.
    pub fn response(&self, status: StatusCode, body: &impl serde::Serialize) -> HttpResponse {
        let mut response = HttpResponse::build(status);
        if let Some(wait) = self.retry_after() {
            // Round up: a client retrying at 0 s would only meet the same answer.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response.insert_header((header::RETRY_AFTER, secs.max(1)));
        }
        if let Self::Unauthorized(_) = self {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        // The rest of a body that was not read ends with the connection, not with a wait for it.
        if matches!(self, Self::PayloadTooLarge { .. } | Self::BodyTimeout(_)) {
            response.force_close();
        }
        response.json(body)
    }
}

impl ResponseError for ProxyError {
    fn status_code(&self) -> StatusCode {
        self.classify().0
    }

    fn error_response(&self) -> HttpResponse {
        self.response(self.status_code(), &self.body())
    }
}

/// The OpenAI error shape, shared with mid-stream error events.
pub fn error_body(message: &str, kind: &str, code: &str) -> serde_json::Value {
    json!({ "error": { "message": message, "type": kind, "param": null, "code": code } })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    #[test]
    fn cooling_answers_503_with_a_rounded_up_retry_after() {
        let error = ProxyError::AllKeysCooling { provider: "cerebras", retry_after: Duration::from_millis(1500) };
        let response = error.error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "2");
        assert_eq!(response.headers().get(header::CONTENT_TYPE).unwrap(), "application/json");
        let body = response.into_body().try_into_bytes().unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "all_keys_cooling_down");
    }

    #[test]
    fn upstream_failure_names_every_attempt() {
        let failures = vec![
            AttemptFailure { target: "cerebras/key1".into(), reason: Reason::Unreachable("Connection refused".into()) },
            AttemptFailure { target: "synthetic".into(), reason: Reason::Timeout },
        ];
        let error = ProxyError::UpstreamFailed { failures, retry_after: Some(Duration::from_secs(4)) };
        assert_eq!(error.status_code(), StatusCode::BAD_GATEWAY);
        let message = error.to_string();
        assert!(
            message.contains("cerebras/key1 (cannot connect: Connection refused), synthetic (no answer within"),
            "{message}"
        );
        assert_eq!(error.error_response().headers().get(header::RETRY_AFTER).unwrap(), "4");
    }
}
