//! The Responses API's answer: the `response` object, its output items and its usage, as
//! both a whole answer and the stream's events carry them; and its errors, in OpenAI's shape.

use actix_web::http::StatusCode;
use actix_web::ResponseError;
use serde::Serialize;
use serde_json::{json, Value};

use super::request::Asked;
use crate::doors::Failure;
use crate::error::error_body;
use crate::wire::chat::{error_message, Usage};

/// One output item, as the client gets it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Item {
    Reasoning {
        id: String,
        summary: Vec<SummaryText>,
        encrypted_content: Option<()>,
    },
    Message {
        id: String,
        status: &'static str,
        role: &'static str,
        content: Vec<OutputText>,
    },
    FunctionCall {
        id: String,
        status: &'static str,
        call_id: String,
        name: String,
        arguments: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
    },
    CustomToolCall {
        id: String,
        status: &'static str,
        call_id: String,
        name: String,
        input: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
    },
    LocalShellCall {
        id: String,
        status: &'static str,
        call_id: String,
        action: ShellAction,
    },
}

impl Item {
    /// Marks the item as cut short, as the answer it ends is.
    pub fn cut_short(&mut self) {
        match self {
            Item::Message { status, .. }
            | Item::FunctionCall { status, .. }
            | Item::CustomToolCall { status, .. }
            | Item::LocalShellCall { status, .. } => *status = "incomplete",
            Item::Reasoning { .. } => {}
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SummaryText {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub text: String,
}

impl SummaryText {
    pub fn new(text: String) -> Self {
        Self { kind: "summary_text", text }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct OutputText {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub text: String,
    pub annotations: [(); 0],
}

impl OutputText {
    pub fn new(text: String) -> Self {
        Self { kind: "output_text", text, annotations: [] }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ShellAction {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub command: Vec<String>,
    pub timeout_ms: Option<u64>,
    pub working_directory: Option<String>,
    pub env: serde_json::Map<String, Value>,
    pub user: Option<()>,
}

/// Where a response is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    InProgress,
    Completed,
    Incomplete,
    Failed,
}

/// The `response` object.
#[derive(Serialize)]
pub struct Response<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created_at: u64,
    pub status: Status,
    pub error: Option<&'a Value>,
    pub incomplete_details: Option<Incomplete>,
    pub instructions: Option<()>,
    pub max_output_tokens: Option<u64>,
    pub model: &'a str,
    pub output: &'a [Item],
    pub parallel_tool_calls: bool,
    pub previous_response_id: Option<()>,
    pub reasoning: ReasoningEcho<'a>,
    pub store: bool,
    pub temperature: Option<f64>,
    pub text: TextEcho,
    pub tool_choice: &'a Value,
    pub tools: [(); 0],
    pub top_p: Option<f64>,
    pub truncation: &'static str,
    pub usage: Option<ResponseUsage>,
    pub user: Option<()>,
    pub metadata: &'a Value,
}

impl<'a> Response<'a> {
    pub fn new(id: &'a str, created_at: u64, asked: &'a Asked, output: &'a [Item]) -> Self {
        let echo = &asked.echo;
        Self {
            id,
            object: "response",
            created_at,
            status: Status::InProgress,
            error: None,
            incomplete_details: None,
            instructions: None,
            max_output_tokens: echo.max_output_tokens,
            model: &asked.model,
            output,
            parallel_tool_calls: echo.parallel_tool_calls,
            previous_response_id: None,
            reasoning: ReasoningEcho {
                effort: echo.reasoning_effort.as_deref(),
                summary: echo.reasoning_summary.as_deref(),
            },
            store: echo.store,
            temperature: echo.temperature,
            text: TextEcho { format: TextFormat { kind: "text" } },
            tool_choice: &echo.tool_choice,
            tools: [],
            top_p: echo.top_p,
            truncation: "disabled",
            usage: None,
            user: None,
            metadata: &echo.metadata,
        }
    }
}

#[derive(Serialize)]
pub struct ReasoningEcho<'a> {
    effort: Option<&'a str>,
    summary: Option<&'a str>,
}

#[derive(Serialize)]
pub struct TextEcho {
    format: TextFormat,
}

#[derive(Serialize)]
struct TextFormat {
    #[serde(rename = "type")]
    kind: &'static str,
}

/// Why a response is incomplete.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Incomplete {
    reason: &'static str,
}

/// The status an answer ends with, and why it is incomplete: the length it was held to, or
/// a filter.
pub fn ending(finish_reason: Option<&str>) -> (Status, Option<Incomplete>) {
    match finish_reason {
        Some("length") => (Status::Incomplete, Some(Incomplete { reason: "max_output_tokens" })),
        Some("content_filter") => (Status::Incomplete, Some(Incomplete { reason: "content_filter" })),
        _ => (Status::Completed, None),
    }
}

/// The usage as the Responses API counts it: input tokens include those read from the cache.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct ResponseUsage {
    input_tokens: u64,
    input_tokens_details: InputDetails,
    output_tokens: u64,
    output_tokens_details: OutputDetails,
    total_tokens: u64,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
struct InputDetails {
    cached_tokens: u64,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
struct OutputDetails {
    reasoning_tokens: u64,
}

impl From<Usage> for ResponseUsage {
    fn from(usage: Usage) -> Self {
        Self {
            input_tokens: usage.prompt_tokens,
            input_tokens_details: InputDetails { cached_tokens: usage.cached_tokens() },
            output_tokens: usage.completion_tokens,
            output_tokens_details: OutputDetails { reasoning_tokens: usage.reasoning_tokens() },
            total_tokens: usage.prompt_tokens + usage.completion_tokens,
        }
    }
}

/// The status and OpenAI-shaped error body for a failure: the proxy's own error as the OpenAI
/// door says it, an upstream's OpenAI error as it came (another shape is given that one).
pub fn error(failure: &Failure) -> (StatusCode, Value) {
    match failure {
        Failure::Proxy(error) => (error.status_code(), error.body()),
        Failure::Upstream { status, body } => match serde_json::from_slice::<Value>(body) {
            Ok(json) if json.get("error").is_some_and(Value::is_object) => (*status, json),
            _ => (*status, error_body(&error_message(status.as_u16(), body), "upstream_error", status_code(*status))),
        },
        Failure::Broken(why) => (StatusCode::BAD_GATEWAY, error_body(why, "upstream_error", "invalid_upstream_answer")),
    }
}

/// The `error` of a `response.failed`: `code` and `message`. A stream that broke off says
/// `stream_interrupted`; an error before it began keeps its own code.
pub fn failed(failure: &Failure) -> Value {
    if let Failure::Broken(why) = failure {
        return json!({ "code": "stream_interrupted", "message": why });
    }
    let (status, body) = error(failure);
    let error = &body["error"];
    let code = error["code"].as_str().or(error["type"].as_str()).unwrap_or(status_code(status));
    json!({ "code": code, "message": error["message"].as_str().unwrap_or_default() })
}

/// An error code for an upstream answer that gave none.
fn status_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        429 => "rate_limit_exceeded",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn upstream(status: u16, body: &'static [u8]) -> Failure {
        Failure::Upstream { status: StatusCode::from_u16(status).unwrap(), body: Bytes::from_static(body) }
    }

    #[test]
    fn usage_counts_cached_and_reasoning_tokens_apart() {
        let usage: Usage = serde_json::from_value(json!({"prompt_tokens": 10, "completion_tokens": 4,
            "prompt_tokens_details": {"cached_tokens": 6}, "completion_tokens_details": {"reasoning_tokens": 3}}))
        .unwrap();
        assert_eq!(
            serde_json::to_value(ResponseUsage::from(usage)).unwrap(),
            json!({"input_tokens": 10, "input_tokens_details": {"cached_tokens": 6}, "output_tokens": 4,
                   "output_tokens_details": {"reasoning_tokens": 3}, "total_tokens": 14})
        );
    }

    #[test]
    fn errors_keep_the_openai_shape() {
        let openai =
            br#"{"error":{"message":"too long","type":"invalid_request_error","code":"context_length_exceeded"}}"#;
        let (status, body) = error(&upstream(400, openai));
        assert_eq!((status.as_u16(), body["error"]["code"].as_str()), (400, Some("context_length_exceeded")));
        let (status, body) = error(&upstream(502, b"Bad Gateway"));
        assert_eq!((status.as_u16(), body["error"]["message"].as_str()), (502, Some("Bad Gateway")));
        assert_eq!(
            failed(&upstream(429, b"slow down")),
            json!({"code": "rate_limit_exceeded", "message": "slow down"})
        );
        assert_eq!(failed(&upstream(400, openai))["code"], "context_length_exceeded");
        assert_eq!(failed(&Failure::broken("reset")), json!({"code": "stream_interrupted", "message": "reset"}));
    }
}
