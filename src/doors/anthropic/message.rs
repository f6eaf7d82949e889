//! An OpenAI chat completion, as the Anthropic message the client asked for. Also what both
//! answer shapes share: the stop reason, the usage and a tool call's input.

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::request::Asked;
use crate::wire::chat::{Completion, Usage};

/// Anthropic's usage: input tokens exclude those read from the cache, counted apart.
#[derive(Serialize, Default, Debug, PartialEq, Eq)]
pub struct AnthropicUsage {
    input_tokens: u64,
    output_tokens: u64,
    cache_read_input_tokens: u64,
    cache_creation_input_tokens: u64,
}

impl From<Option<Usage>> for AnthropicUsage {
    fn from(usage: Option<Usage>) -> Self {
        let usage = usage.unwrap_or_default();
        let cached = usage.cached_tokens();
        Self {
            input_tokens: usage.prompt_tokens.saturating_sub(cached),
            output_tokens: usage.completion_tokens,
            cache_read_input_tokens: cached,
            cache_creation_input_tokens: 0,
        }
    }
}

/// Anthropic's `stop_reason` and `stop_sequence` for an OpenAI `finish_reason`. Tool calls
/// mean `tool_use` whatever the finish reason says (some providers say `stop`).
pub fn stop_reason(
    finish: Option<&str>,
    matched: Option<&Value>,
    asked: &Asked,
    called: bool,
) -> (&'static str, Value) {
    let sequence = matched.and_then(Value::as_str).filter(|s| asked.stop_sequences.iter().any(|asked| asked == s));
    match (finish, sequence) {
        _ if called => ("tool_use", Value::Null),
        (_, Some(sequence)) => ("stop_sequence", json!(sequence)),
        (Some("length"), _) => ("max_tokens", Value::Null),
        (Some("tool_calls" | "function_call"), _) => ("tool_use", Value::Null),
        (Some("content_filter"), _) => ("refusal", Value::Null),
        _ => ("end_turn", Value::Null),
    }
}

/// A tool call's arguments as the object Anthropic's `input` must be. Arguments that are no
/// JSON object (a model's broken output) become `{}`, and are logged.
pub fn tool_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return Value::Object(Map::new());
    }
    match serde_json::from_str(arguments) {
        Ok(Value::Object(input)) => Value::Object(input),
        _ => {
            log::warn!("event=anthropic_tool_arguments_unreadable bytes={}", arguments.len());
            Value::Object(Map::new())
        }
    }
}

/// The Anthropic message for a completion: thinking first, then text, then tool calls.
pub fn to_message(completion: Completion, id: &str, asked: &Asked) -> Value {
    let choice = completion.choices.into_iter().next().unwrap_or_default();
    let message = &choice.message;
    let mut content = Vec::new();
    if let Some(thinking) = message.reasoning() {
        content.push(json!({ "type": "thinking", "thinking": thinking, "signature": "" }));
    }
    if let Some(text) = message.text() {
        content.push(json!({ "type": "text", "text": text }));
    }
    let calls = message.calls();
    for (position, call) in calls.iter().enumerate() {
        content.push(json!({
            "type": "tool_use",
            "id": call.id.as_deref().map_or_else(|| format!("toolu_{id}_{position}"), str::to_owned),
            "name": call.name(),
            "input": tool_input(call.arguments()),
        }));
    }
    let (stop_reason, stop_sequence) =
        stop_reason(choice.finish_reason.as_deref(), choice.stop_reason.as_ref(), asked, !calls.is_empty());
    json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": asked.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": AnthropicUsage::from(completion.usage),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked() -> Asked {
        Asked { model: "claude-sonnet-4-5".into(), stream: false, stop_sequences: vec!["END".into()] }
    }

    fn message(completion: Value) -> Value {
        let text = completion.to_string();
        to_message(serde_json::from_str(&text).unwrap(), "msg_1", &asked())
    }

    /// A plain answer, recorded from an OpenAI-compatible provider.
    const PLAIN: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1764000000,"model":"zai-glm-4.7",
        "choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help?","reasoning_content":"The user greets."},
        "finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21,
        "prompt_tokens_details":{"cached_tokens":4}}}"#;

    #[test]
    fn a_plain_answer_has_its_thinking_first_then_its_text() {
        let message = message(serde_json::from_str(PLAIN).unwrap());
        assert_eq!(
            message,
            json!({
                "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                "content": [
                    {"type": "thinking", "thinking": "The user greets.", "signature": ""},
                    {"type": "text", "text": "Hello! How can I help?"}
                ],
                "stop_reason": "end_turn", "stop_sequence": null,
                "usage": {"input_tokens": 8, "output_tokens": 9, "cache_read_input_tokens": 4, "cache_creation_input_tokens": 0}
            })
        );
    }

    #[test]
    fn text_and_tool_calls_appear_together() {
        let message = message(json!({
            "choices": [{"message": {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "time", "arguments": ""}}
            ]}, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7}
        }));
        assert_eq!(message["stop_reason"], "tool_use");
        assert_eq!(
            message["content"],
            json!([
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "time", "input": {}}
            ])
        );
    }

    #[test]
    fn finish_reasons_map_to_stop_reasons() {
        let asked = asked();
        let reason = |finish: &str, matched: Option<Value>| stop_reason(Some(finish), matched.as_ref(), &asked, false);
        assert_eq!(reason("stop", None), ("end_turn", Value::Null));
        assert_eq!(reason("length", None), ("max_tokens", Value::Null));
        assert_eq!(reason("tool_calls", None), ("tool_use", Value::Null));
        assert_eq!(reason("stop", Some(json!("END"))), ("stop_sequence", json!("END")));
        assert_eq!(reason("stop", Some(json!(151_336))), ("end_turn", Value::Null), "a token id is no stop sequence");
        assert_eq!(stop_reason(Some("stop"), None, &asked, true).0, "tool_use");
    }

    #[test]
    fn broken_tool_arguments_become_an_empty_input() {
        assert_eq!(tool_input("{\"a\":1}"), json!({"a": 1}));
        assert_eq!(tool_input("{\"a\":"), json!({}));
        assert_eq!(tool_input("[1]"), json!({}));
    }
}
