//! Errors in Anthropic's shape, `{"type":"error","error":{"type","message"}}`, from the error
//! answers of the pipeline: the proxy's own (OpenAI-shaped) and the upstreams' alike.

use serde_json::{json, Value};

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

/// The Anthropic error for an error answer: its status mapped, and its message, from an
/// OpenAI-shaped body (`error.message`), another JSON (`message`, `error`), or the text.
pub fn translate(status: u16, answer: &[u8]) -> (u16, Value) {
    const SHOWN: usize = 2000;
    let (status, kind) = classify(status);
    let message = match serde_json::from_slice::<Value>(answer) {
        Ok(json) => [&json["error"]["message"], &json["message"], &json["error"], &json["detail"]]
            .into_iter()
            .find_map(|field| field.as_str().map(str::to_owned)),
        Err(_) => None,
    };
    let message = message.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(answer);
        let text = text.trim();
        match text.char_indices().nth(SHOWN) {
            Some((end, _)) => format!("{}…", &text[..end]),
            None if text.is_empty() => format!("the upstream answered {status}"),
            None => text.to_owned(),
        }
    });
    (status, body(kind, &message))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn the_message_comes_from_whatever_shape_the_answer_has() {
        let openai = br#"{"error":{"message":"every Cerebras key is cooling down","type":"rate_limit_error","code":"all_keys_cooling_down"}}"#;
        assert_eq!(
            translate(503, openai),
            (
                529,
                json!({"type": "error", "error": {"type": "overloaded_error", "message": "every Cerebras key is cooling down"}})
            )
        );
        assert_eq!(translate(400, br#"{"message":"bad"}"#).1["error"]["message"], "bad");
        assert_eq!(translate(500, b"Internal Server Error").1["error"]["message"], "Internal Server Error");
        assert_eq!(translate(502, b"").1["error"]["message"], "the upstream answered 502");
    }
}
