//! What an upstream's answer means for the request and for the key that sent it.
//!
//! The one place that decides retry versus relay, so the routing rules can grow here.

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
    /// The key failed: report this verdict and try again with another key.
    RetryWithAnotherKey(KeyVerdict),
}

pub fn judge_answer(status: StatusCode, headers: &HeaderMap) -> Disposition {
    let reason = || format!("HTTP {}", status.as_u16());
    match status.as_u16() {
        429 => Disposition::RetryWithAnotherKey(KeyVerdict::RateLimited {
            requested: requested_wait(headers, SystemTime::now()),
        }),
        401..=403 => Disposition::RetryWithAnotherKey(KeyVerdict::Invalid { reason: reason() }),
        500 | 502..=504 => Disposition::RetryWithAnotherKey(KeyVerdict::Failed { reason: reason() }),
        // Every other answer, an ordinary 400 included, is the client's to see at once.
        _ => Disposition::Relay,
    }
}

/// A request that got no answer at all: connection refused, timeouts, broken connections.
pub fn judge_send_error(error: &SendRequestError) -> KeyVerdict {
    let reason = match error {
        SendRequestError::Connect(e) => format!("cannot connect: {e}"),
        SendRequestError::Timeout => "no answer within UPSTREAM_TIMEOUT".to_owned(),
        other => format!("request failed: {other}"),
    };
    KeyVerdict::Failed { reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderValue, RETRY_AFTER};
    use std::time::Duration;

    #[test]
    fn rate_limits_carry_the_requested_wait() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("40"));
        assert_eq!(
            judge_answer(StatusCode::TOO_MANY_REQUESTS, &headers),
            Disposition::RetryWithAnotherKey(KeyVerdict::RateLimited { requested: Some(Duration::from_secs(40)) })
        );
    }

    #[test]
    fn key_problems_retry_and_client_errors_relay() {
        let none = HeaderMap::new();
        for code in [401, 402, 403] {
            let status = StatusCode::from_u16(code).unwrap();
            assert!(matches!(
                judge_answer(status, &none),
                Disposition::RetryWithAnotherKey(KeyVerdict::Invalid { .. })
            ));
        }
        for code in [500, 502, 503, 504] {
            let status = StatusCode::from_u16(code).unwrap();
            assert!(matches!(judge_answer(status, &none), Disposition::RetryWithAnotherKey(KeyVerdict::Failed { .. })));
        }
        for code in [200, 201, 400, 404, 409, 422, 501] {
            assert_eq!(judge_answer(StatusCode::from_u16(code).unwrap(), &none), Disposition::Relay, "{code}");
        }
    }
}
