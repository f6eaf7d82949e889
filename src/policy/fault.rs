//! Whose fault one attempt's outcome is: the key's, the request's or the provider's. Decided
//! once per attempt, here, and nowhere else; README's fault table is this file in prose.
//!
//! - **The key's** (429 rate limited, 401 rejected): the only fault that rests a key.
//! - **The request's**: an answer any key would get. A 400/404/422 goes back to the client; a
//!   402/403/500 is *unproven* until a second key gets the same; a context-length 400, a
//!   retired model's 404 and a spent quota are the request's too, but another provider may
//!   serve it, so they fail over.
//! - **The provider's**: no connection at all (it opens the provider's circuit at once), or a
//!   request lost after it was sent (502/503/504, a reset, no answer in time), which opens it
//!   only when it repeats across requests. Neither ever rests a key.

use std::fmt;
use std::time::SystemTime;

use actix_web::http::header::HeaderMap;

use super::circuit::HealthFault;
use super::key_pool::{KeyVerdict, Rejection};
use super::rate_limit::requested_wait;

/// What one attempt came to.
#[derive(Debug)]
pub enum Outcome<'a> {
    /// An answer. `body` is what was read of it, as plain bytes (see [`super::encoding`]): the
    /// whole of an error answer, the first chunk of a success that may still fail over, else
    /// nothing.
    Response { status: u16, headers: &'a HeaderMap, body: &'a [u8] },
    /// No answer; the reason says how the exchange failed (one of the transport reasons).
    NoResponse(Reason),
}

/// Whose fault an outcome is, and so what happens next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Nobody's: the answer goes to the client as it came (a success, or an error that is the
    /// client's to see).
    None,
    /// The key's own (429, 401): the key rests and the request takes the next key at once.
    Key(KeyVerdict),
    /// 402, 403 or 500: the key's or the request's. A second key tells which: if it gets the
    /// same, the request's; if it succeeds, the first key moves out of the sticky position.
    Unproven(Reason),
    /// The request's, but another provider may serve it: context length, a retired model, a
    /// spent quota, or a request this provider's client cannot send.
    Unservable(Reason),
    /// The provider's: it could not be reached, or it lost the request.
    Provider(HealthFault, Reason),
}

impl Fault {
    /// The reason an attempt with this fault failed; `None` for an answer the client gets.
    pub fn reason(&self) -> Option<Reason> {
        match self {
            Self::None => None,
            Self::Key(verdict) => Some(verdict.reason()),
            Self::Unproven(reason) | Self::Unservable(reason) | Self::Provider(_, reason) => Some(reason.clone()),
        }
    }
}

/// Why an attempt brought no answer for the client, or why a provider was passed over. Its
/// `label` names metrics series; its `Display` goes into logs, `/_status` and 502 messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    RateLimited,
    /// 401.
    KeyRejected(Rejection),
    /// Another error status: 402, 403, 5xx.
    Status(u16),
    ContextLengthExceeded,
    ModelNotFound,
    QuotaExhausted,
    /// No connection: refused, DNS, TLS, connect timeout.
    Unreachable(String),
    /// Sent, then the connection broke or closed before a whole answer head.
    ConnectionLost(String),
    /// No answer head within `UPSTREAM_TIMEOUT`.
    Timeout,
    /// No first chunk of a success within `UPSTREAM_IDLE_TIMEOUT`.
    IdleTimeout,
    /// The request could not be built for this provider.
    Unsendable(String),
    AllKeysCooling,
    AllKeysRejected,
    CircuitOpen,
}

impl Reason {
    /// Every label [`Reason::label`] gives.
    pub const LABELS: [&'static str; 14] = [
        "rate_limited",
        "key_rejected",
        "server_error",
        "client_error",
        "context_length_exceeded",
        "model_not_found",
        "quota",
        "unreachable",
        "connection_lost",
        "timeout",
        "unsendable",
        "cooldown",
        "keys_rejected",
        "circuit_open",
    ];

    /// A label from a small fixed set, for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::KeyRejected(_) => "key_rejected",
            Self::Status(status) if *status >= 500 => "server_error",
            Self::Status(_) => "client_error",
            Self::ContextLengthExceeded => "context_length_exceeded",
            Self::ModelNotFound => "model_not_found",
            Self::QuotaExhausted => "quota",
            Self::Unreachable(_) => "unreachable",
            Self::ConnectionLost(_) => "connection_lost",
            Self::Timeout | Self::IdleTimeout => "timeout",
            Self::Unsendable(_) => "unsendable",
            Self::AllKeysCooling => "cooldown",
            Self::AllKeysRejected => "keys_rejected",
            Self::CircuitOpen => "circuit_open",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RateLimited => f.write_str("HTTP 429"),
            Self::KeyRejected(message) => write!(f, "HTTP 401: {message}"),
            Self::Status(status) => write!(f, "HTTP {status}"),
            Self::ContextLengthExceeded => f.write_str("context_length_exceeded"),
            Self::ModelNotFound => f.write_str("model_not_found"),
            Self::QuotaExhausted => f.write_str("token quota is not enough"),
            Self::Unreachable(detail) => write!(f, "cannot connect: {detail}"),
            Self::ConnectionLost(detail) => write!(f, "connection lost: {detail}"),
            Self::Timeout => f.write_str("no answer within UPSTREAM_TIMEOUT"),
            Self::IdleTimeout => f.write_str("no data within UPSTREAM_IDLE_TIMEOUT"),
            Self::Unsendable(detail) => write!(f, "cannot send: {detail}"),
            Self::AllKeysCooling => f.write_str("every key is cooling down"),
            Self::AllKeysRejected => f.write_str("every key is rejected"),
            Self::CircuitOpen => f.write_str("circuit open after recent failures; its last error is in /_status"),
        }
    }
}

/// What is peculiar to one provider's answers: data on the provider, not code per provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultRules {
    /// It sends `x-ratelimit-reset-*` windows beside `x-ratelimit-remaining-*` (Cerebras).
    pub reset_windows: bool,
    /// A 200 whose first chunk holds this text is a spent quota (the built-in providers'
    /// "token quota is not enough"): it fails over.
    pub quota_message: Option<String>,
}

/// Whose fault `outcome` is, by `rules` of the provider that answered. `now` reads HTTP-date
/// `Retry-After` values.
pub fn classify(outcome: &Outcome, rules: &FaultRules, now: SystemTime) -> Fault {
    let (status, headers, body) = match outcome {
        Outcome::NoResponse(reason @ Reason::Unreachable(_)) => {
            return Fault::Provider(HealthFault::Unreachable, reason.clone())
        }
        Outcome::NoResponse(reason @ Reason::Unsendable(_)) => return Fault::Unservable(reason.clone()),
        Outcome::NoResponse(reason) => return Fault::Provider(HealthFault::Lost, reason.clone()),
        Outcome::Response { status, headers, body } => (*status, *headers, *body),
    };
    match status {
        200..=299 if says_quota_exhausted(body, rules) => Fault::Unservable(Reason::QuotaExhausted),
        429 => Fault::Key(KeyVerdict::RateLimited { requested: requested_wait(headers, rules.reset_windows, now) }),
        401 => Fault::Key(KeyVerdict::Rejected(Rejection(upstream_message(body)))),
        400 if error_code(body).as_deref() == Some("context_length_exceeded") => {
            Fault::Unservable(Reason::ContextLengthExceeded)
        }
        404 if error_code(body).as_deref() == Some("model_not_found") => Fault::Unservable(Reason::ModelNotFound),
        402 | 403 | 500 => Fault::Unproven(Reason::Status(status)),
        // 520–529 are the gateway errors of CDNs (Cloudflare) in front of providers.
        502..=504 | 520..=529 => Fault::Provider(HealthFault::Lost, Reason::Status(status)),
        // Every other answer, an ordinary 400/404/422 included, is the client's to see at once.
        _ => Fault::None,
    }
}

/// A 200 that is really a spent quota, as some providers answer.
fn says_quota_exhausted(body: &[u8], rules: &FaultRules) -> bool {
    rules.quota_message.as_ref().is_some_and(|message| memchr::memmem::find(body, message.as_bytes()).is_some())
}

/// `error.code`, or a top-level `code` (Cerebras' shape for context-length errors).
fn error_code(body: &[u8]) -> Option<String> {
    let error: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = error.pointer("/error/code").or_else(|| error.get("code"))?;
    code.as_str().map(str::to_owned)
}

/// Longest upstream message kept for a rejected key.
const MESSAGE_LIMIT: usize = 200;

/// The upstream's own words for an error: `error.message`, a top-level `message`, or the text.
fn upstream_message(body: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let from_json = parsed.as_ref().and_then(|v| v.pointer("/error/message").or_else(|| v.get("message")));
    let text = match from_json.and_then(|m| m.as_str()) {
        Some(message) => message.to_owned(),
        None => String::from_utf8_lossy(body).into_owned(),
    };
    let text = text.trim();
    if text.is_empty() {
        return "the key was rejected".to_owned();
    }
    match text.char_indices().nth(MESSAGE_LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::header_map as headers;
    use std::time::Duration;

    fn response(status: u16, body: &str) -> Fault {
        response_with(status, &HeaderMap::new(), body)
    }

    /// Z.ai's rules: the quota message, and no reset windows.
    fn zai() -> FaultRules {
        FaultRules { reset_windows: false, quota_message: Some("token quota is not enough".into()) }
    }

    fn response_with(status: u16, headers: &HeaderMap, body: &str) -> Fault {
        classify(&Outcome::Response { status, headers, body: body.as_bytes() }, &zai(), SystemTime::now())
    }

    fn no_response(reason: Reason) -> Fault {
        classify(&Outcome::NoResponse(reason), &zai(), SystemTime::now())
    }

    // One test per row of README's fault table, in its order.

    #[test]
    fn a_success_is_nobodys_fault() {
        assert_eq!(response(200, r#"{"choices":[]}"#), Fault::None);
        assert_eq!(response(201, ""), Fault::None);
    }

    #[test]
    fn a_429_is_the_keys_and_carries_the_requested_wait() {
        let fault = response_with(429, &headers(&[("retry-after", "40")]), "");
        assert_eq!(fault, Fault::Key(KeyVerdict::RateLimited { requested: Some(Duration::from_secs(40)) }));
        assert_eq!(response(429, ""), Fault::Key(KeyVerdict::RateLimited { requested: None }));
        assert_eq!(fault.reason().unwrap().label(), "rate_limited");
    }

    #[test]
    fn a_401_is_the_keys_and_keeps_the_upstreams_message() {
        let body = r#"{"message":"Wrong API Key","type":"invalid_request_error","code":"wrong_api_key"}"#;
        assert_eq!(response(401, body), Fault::Key(KeyVerdict::Rejected(Rejection("Wrong API Key".into()))));
        let nested = r#"{"error":{"message":"Invalid token"}}"#;
        assert_eq!(response(401, nested), Fault::Key(KeyVerdict::Rejected(Rejection("Invalid token".into()))));
        assert_eq!(response(401, "  nope "), Fault::Key(KeyVerdict::Rejected(Rejection("nope".into()))));
        let long = "x".repeat(1000);
        let Fault::Key(KeyVerdict::Rejected(Rejection(message))) = response(401, &long) else { panic!() };
        assert_eq!(message.chars().count(), MESSAGE_LIMIT + 1, "cut, with an ellipsis");
    }

    #[test]
    fn ordinary_client_errors_are_the_requests_and_go_back_at_once() {
        for status in [400, 404, 409, 413, 422, 501] {
            assert_eq!(response(status, r#"{"error":{"code":"invalid_parameter"}}"#), Fault::None, "{status}");
        }
    }

    #[test]
    fn a_context_length_400_fails_over_in_both_shapes() {
        let nested = r#"{"error":{"message":"too long","code":"context_length_exceeded"}}"#;
        let flat = r#"{"message":"Current length is 132032 while limit is 131072","code":"context_length_exceeded"}"#;
        for body in [nested, flat] {
            assert_eq!(response(400, body), Fault::Unservable(Reason::ContextLengthExceeded));
        }
    }

    #[test]
    fn a_retired_models_404_fails_over() {
        let cerebras = r#"{"message":"Model zai-glm-4.6 does not exist or you do not have access to it.",
            "type":"not_found_error","param":"model","code":"model_not_found"}"#;
        assert_eq!(response(404, cerebras), Fault::Unservable(Reason::ModelNotFound));
        assert_eq!(response(404, r#"{"error":{"code":"model_not_found"}}"#), Fault::Unservable(Reason::ModelNotFound));
        assert_eq!(response(404, "Not Found"), Fault::None, "a plain 404 is the client's");
    }

    #[test]
    fn a_402_403_or_500_is_unproven_until_a_second_key_answers() {
        for status in [402, 403, 500] {
            assert_eq!(response(status, ""), Fault::Unproven(Reason::Status(status)));
        }
        assert_eq!(Reason::Status(500).label(), "server_error");
        assert_eq!(Reason::Status(403).label(), "client_error");
    }

    #[test]
    fn gateway_errors_are_the_providers_and_count_as_lost() {
        for status in [502, 503, 504, 520, 524] {
            assert_eq!(response(status, ""), Fault::Provider(HealthFault::Lost, Reason::Status(status)));
        }
    }

    #[test]
    fn a_request_lost_after_it_was_sent_is_the_providers() {
        for reason in [Reason::ConnectionLost("reset".into()), Reason::Timeout, Reason::IdleTimeout] {
            assert_eq!(no_response(reason.clone()), Fault::Provider(HealthFault::Lost, reason));
        }
    }

    #[test]
    fn an_unreachable_provider_is_the_providers_and_opens_its_circuit() {
        let reason = Reason::Unreachable("Connection refused".into());
        assert_eq!(no_response(reason.clone()), Fault::Provider(HealthFault::Unreachable, reason));
        assert_eq!(Reason::Unreachable(String::new()).label(), "unreachable");
    }

    #[test]
    fn a_200_that_says_the_quota_is_spent_fails_over() {
        let body = r#"{"choices":[{"message":{"content":"Sorry, token quota is not enough."}}]}"#;
        assert_eq!(response(200, body), Fault::Unservable(Reason::QuotaExhausted));
        let outcome = Outcome::Response { status: 200, headers: &HeaderMap::new(), body: body.as_bytes() };
        let without = classify(&outcome, &FaultRules::default(), SystemTime::now());
        assert_eq!(without, Fault::None, "only a provider that says so answers a spent quota with a 200");
    }

    #[test]
    fn reset_windows_are_read_only_from_a_provider_that_sends_them() {
        let window = headers(&[("x-ratelimit-reset-requests-day", "900"), ("x-ratelimit-remaining-requests-day", "0")]);
        let outcome = Outcome::Response { status: 429, headers: &window, body: b"" };
        let cerebras = FaultRules { reset_windows: true, quota_message: None };
        let waits = [&cerebras, &zai()].map(|rules| classify(&outcome, rules, SystemTime::now()));
        assert_eq!(waits[0], Fault::Key(KeyVerdict::RateLimited { requested: Some(Duration::from_secs(900)) }));
        assert_eq!(waits[1], Fault::Key(KeyVerdict::RateLimited { requested: None }));
    }

    #[test]
    fn a_request_that_cannot_be_sent_is_unservable_here() {
        let reason = Reason::Unsendable("bad header".into());
        assert_eq!(no_response(reason.clone()), Fault::Unservable(reason));
    }

    #[test]
    fn huge_retry_after_values_are_read_without_overflow() {
        let huge = headers(&[("retry-after", "10000000000000000000")]);
        assert!(matches!(response_with(429, &huge, ""), Fault::Key(KeyVerdict::RateLimited { requested: Some(_) })));
        let year_9999 = headers(&[("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT")]);
        assert!(matches!(
            response_with(429, &year_9999, ""),
            Fault::Key(KeyVerdict::RateLimited { requested: Some(_) })
        ));
    }
}
