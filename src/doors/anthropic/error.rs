//! Errors in Anthropic's shape, `{"type":"error","error":{"type","message"}}`: the proxy's own
//! and the upstreams' alike.

use actix_web::ResponseError;
use serde_json::{json, Value};

use crate::doors::Failure;
use crate::wire::chat::error_message;

/// The status and Anthropic error type for an error answer's status. The proxy's 503s (every
/// key cooling, a bound reached) are Anthropic's 529 `overloaded_error`, which its clients
/// retry after a while.
pub fn classify(status: u16) -> (u16, &'static str) {
    match status {
        400 | 422 => (400, "invalid_request_error"),
        401 => (401, "authentication_error"),
        402 => (402, "billing_error"),
        403 => (403, "permission_error"),
        404 => (404, "not_found_error"),
        408 => (408, "timeout_error"),
        413 => (413, "request_too_large"),
        429 => (429, "rate_limit_error"),
        503 | 529 => (529, "overloaded_error"),
        504 => (504, "timeout_error"),
        500..=599 => (status, "api_error"),
        _ => (status, "invalid_request_error"),
    }
}

pub fn body(kind: &str, message: &str) -> Value {
    json!({ "type": "error", "error": { "type": kind, "message": message } })
}

/// Anthropic's status and error body for an answer that failed: the proxy's own error, an
/// upstream's error answer, or one that broke off.
pub fn of(failure: &Failure) -> (u16, Value) {
    let (status, message) = match failure {
        Failure::Proxy(error) => (error.status_code().as_u16(), error.to_string()),
        Failure::Upstream { status, body } => (status.as_u16(), error_message(status.as_u16(), body)),
        Failure::Broken(why) => (502, why.clone()),
    };
    let (status, kind) = classify(status);
    (status, body(kind, &message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ProxyError;
    use actix_web::http::StatusCode;
    use bytes::Bytes;

    #[test]
    fn statuses_map_to_anthropic_types() {
        assert_eq!(classify(400), (400, "invalid_request_error"));
        assert_eq!(classify(401), (401, "authentication_error"));
        assert_eq!(classify(404), (404, "not_found_error"));
        assert_eq!(classify(413), (413, "request_too_large"));
        assert_eq!(classify(429), (429, "rate_limit_error"));
        assert_eq!(classify(500), (500, "api_error"));
        assert_eq!(classify(502), (502, "api_error"));
        assert_eq!(classify(503), (529, "overloaded_error"));
    }

    fn upstream(status: u16, body: &'static [u8]) -> (u16, Value) {
        of(&Failure::Upstream { status: StatusCode::from_u16(status).unwrap(), body: Bytes::from_static(body) })
    }

    #[test]
    fn the_message_comes_from_whatever_shape_the_answer_has() {
        let openai = br#"{"error":{"message":"rate limited","type":"rate_limit_error","code":"too_many_requests"}}"#;
        assert_eq!(
            upstream(503, openai),
            (529, json!({"type": "error", "error": {"type": "overloaded_error", "message": "rate limited"}}))
        );
        assert_eq!(upstream(400, br#"{"message":"bad"}"#).1["error"]["message"], "bad");
        assert_eq!(upstream(500, b"Internal Server Error").1["error"]["message"], "Internal Server Error");
        assert_eq!(upstream(502, b"").1["error"]["message"], "the upstream answered 502");
    }

    #[test]
    fn the_proxys_own_errors_keep_their_message_and_map_their_status() {
        let cooling =
            ProxyError::AllKeysCooling { provider: "cerebras", retry_after: std::time::Duration::from_secs(3) };
        let (status, body) = of(&Failure::Proxy(cooling));
        assert_eq!((status, body["error"]["type"].as_str()), (529, Some("overloaded_error")));
        assert!(body["error"]["message"].as_str().unwrap().starts_with("every cerebras key is cooling down"));
        assert_eq!(of(&Failure::broken("cut")).1["error"], json!({"type": "api_error", "message": "cut"}));
    }
}
