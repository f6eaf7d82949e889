//! What an upstream's answer means for the request, the key that sent it and the provider.
//!
//! The one place that decides relay, retry with another key, or fail over to the next
//! provider. `can_fail_over` says whether a next provider exists; without one, provider-level
//! trouble is handled as the key's, so the request still gets another try.

use std::time::SystemTime;

use actix_web::http::header::HeaderMap;
use actix_web::http::StatusCode;
use awc::error::SendRequestError;

use super::rate_limit::requested_wait;
use crate::key_pool::KeyVerdict;

/// What to do with an upstream answer.
#[derive(Debug, PartialEq)]
pub enum Disposition {
    /// Relay the answer to the client as it is.
    Relay,
    /// A 400: fail over if its body says `context_length_exceeded`, else relay it.
    InspectBadRequest,
    Fail(Failure),
}

/// An attempt that got no usable answer, and where to go next.
#[derive(Debug, PartialEq)]
pub enum Failure {
    /// The key failed: report this verdict and try again with another key.
    RetryWithAnotherKey(KeyVerdict),
    /// The provider cannot serve the request now: go to the next provider.
    FailOver(String),
}

pub fn judge_answer(status: StatusCode, headers: &HeaderMap, can_fail_over: bool) -> Disposition {
    let reason = || format!("HTTP {}", status.as_u16());
    match status.as_u16() {
        400 if can_fail_over => Disposition::InspectBadRequest,
        429 => Disposition::Fail(Failure::RetryWithAnotherKey(KeyVerdict::RateLimited {
            requested: requested_wait(headers, SystemTime::now()),
        })),
        401..=403 => Disposition::Fail(Failure::RetryWithAnotherKey(KeyVerdict::Invalid { reason: reason() })),
        502..=504 if can_fail_over => Disposition::Fail(Failure::FailOver(reason())),
        500 | 502..=504 => Disposition::Fail(Failure::RetryWithAnotherKey(KeyVerdict::Failed { reason: reason() })),
        // Every other answer, an ordinary 400 included, is the client's to see at once.
        _ => Disposition::Relay,
    }
}

/// A request that got no answer. An upstream that cannot be reached at all (refused, connect
/// timeout, nothing within `UPSTREAM_TIMEOUT`) is a provider failure, not the key's.
pub fn judge_send_error(error: &SendRequestError, can_fail_over: bool) -> Failure {
    let (reason, unreachable) = match error {
        SendRequestError::Connect(e) => (format!("cannot connect: {e}"), true),
        SendRequestError::Timeout => ("no answer within UPSTREAM_TIMEOUT".to_owned(), true),
        other => (format!("request failed: {other}"), false),
    };
    if unreachable && can_fail_over {
        Failure::FailOver(reason)
    } else {
        Failure::RetryWithAnotherKey(KeyVerdict::Failed { reason })
    }
}

/// Cerebras' (and OpenAI's) "your request is too long" 400: `error.code` or a top-level `code`.
pub fn is_context_length_exceeded(body: &[u8]) -> bool {
    const CODE: &str = "context_length_exceeded";
    let Ok(error) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    error.pointer("/error/code").and_then(|c| c.as_str()) == Some(CODE)
        || error.get("code").and_then(|c| c.as_str()) == Some(CODE)
}

/// A 200 that is really an exhausted quota, as some providers answer.
pub fn says_quota_exhausted(chunk: &[u8]) -> bool {
    memchr::memmem::find(chunk, b"token quota is not enough").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderValue, RETRY_AFTER};
    use std::time::Duration;

    fn judge(code: u16, can_fail_over: bool) -> Disposition {
        judge_answer(StatusCode::from_u16(code).unwrap(), &HeaderMap::new(), can_fail_over)
    }

    #[test]
    fn rate_limits_carry_the_requested_wait() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("40"));
        assert_eq!(
            judge_answer(StatusCode::TOO_MANY_REQUESTS, &headers, true),
            Disposition::Fail(Failure::RetryWithAnotherKey(KeyVerdict::RateLimited {
                requested: Some(Duration::from_secs(40))
            }))
        );
    }

    #[test]
    fn key_problems_retry_and_client_errors_relay() {
        for code in [401, 402, 403] {
            assert!(matches!(
                judge(code, true),
                Disposition::Fail(Failure::RetryWithAnotherKey(KeyVerdict::Invalid { .. }))
            ));
        }
        assert!(matches!(judge(500, true), Disposition::Fail(Failure::RetryWithAnotherKey(KeyVerdict::Failed { .. }))));
        for code in [200, 201, 404, 409, 422, 501] {
            assert_eq!(judge(code, true), Disposition::Relay, "{code}");
        }
    }

    #[test]
    fn provider_trouble_fails_over_only_when_there_is_somewhere_to_go() {
        for code in [502, 503, 504] {
            assert_eq!(judge(code, true), Disposition::Fail(Failure::FailOver(format!("HTTP {code}"))));
            assert!(matches!(
                judge(code, false),
                Disposition::Fail(Failure::RetryWithAnotherKey(KeyVerdict::Failed { .. }))
            ));
        }
        assert_eq!(judge(400, true), Disposition::InspectBadRequest);
        assert_eq!(judge(400, false), Disposition::Relay);
    }

    #[test]
    fn unreachable_upstreams_fail_over_and_otherwise_cost_the_key() {
        assert!(matches!(judge_send_error(&SendRequestError::Timeout, true), Failure::FailOver(_)));
        assert!(matches!(
            judge_send_error(&SendRequestError::Timeout, false),
            Failure::RetryWithAnotherKey(KeyVerdict::Failed { .. })
        ));
    }

    #[test]
    fn context_length_errors_are_recognised_in_both_shapes() {
        assert!(is_context_length_exceeded(br#"{"error":{"code":"context_length_exceeded","message":"too long"}}"#));
        assert!(is_context_length_exceeded(
            br#"{"code":"context_length_exceeded","message":"Current length is 132032"}"#
        ));
        assert!(!is_context_length_exceeded(br#"{"error":{"code":"invalid_parameter"}}"#));
        assert!(!is_context_length_exceeded(b"not json"));
    }

    #[test]
    fn quota_messages_are_found_anywhere_in_a_chunk() {
        assert!(says_quota_exhausted(br#"{"choices":[{"message":{"content":"Sorry, token quota is not enough."}}]}"#));
        assert!(!says_quota_exhausted(br#"{"choices":[{"message":{"content":"Hello"}}]}"#));
    }
}
