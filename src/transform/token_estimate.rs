//! How much context a chat completion fills, and whether it carries images.
//!
//! One walk over the parsed body, counting characters in place: no allocation per message.

use serde_json::{Map, Value};

/// What routing needs to know about a chat completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChatFacts {
    /// Characters of all text that fills the context window.
    pub chars: usize,
    pub has_images: bool,
}

impl ChatFacts {
    /// Estimated tokens at `chars_per_token` characters per token.
    pub fn estimated_tokens(&self, chars_per_token: f64) -> f64 {
        self.chars as f64 / chars_per_token
    }
}

/// Counts the text of every message of every role (string contents and the text parts of list
/// contents), tool-call names and arguments, and the tool definitions.
pub fn inspect(body: &Map<String, Value>) -> ChatFacts {
    let mut facts = ChatFacts::default();
    if let Some(Value::Array(messages)) = body.get("messages") {
        for message in messages {
            count_message(message, &mut facts);
        }
    }
    if let Some(tools) = body.get("tools") {
        facts.chars += all_text(tools);
    }
    facts
}

fn count_message(message: &Value, facts: &mut ChatFacts) {
    match message.get("content") {
        Some(Value::String(text)) => facts.chars += text.chars().count(),
        Some(Value::Array(parts)) => {
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("image_url") => facts.has_images = true,
                    _ => facts.chars += part.get("text").and_then(Value::as_str).map_or(0, |t| t.chars().count()),
                }
            }
        }
        _ => {}
    }
    if let Some(Value::Array(calls)) = message.get("tool_calls") {
        for function in calls.iter().filter_map(|call| call.get("function")) {
            for field in ["name", "arguments"] {
                facts.chars += function.get(field).and_then(Value::as_str).map_or(0, |t| t.chars().count());
            }
        }
    }
}

/// Characters of every key and string in a JSON value (tool schemas are mostly these).
fn all_text(value: &Value) -> usize {
    match value {
        Value::String(text) => text.chars().count(),
        Value::Array(items) => items.iter().map(all_text).sum(),
        Value::Object(fields) => fields.iter().map(|(key, value)| key.chars().count() + all_text(value)).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts(body: Value) -> ChatFacts {
        inspect(body.as_object().unwrap())
    }

    #[test]
    fn counts_text_of_every_role_parts_tool_calls_and_tools() {
        let body = json!({
            "messages": [
                {"role": "system", "content": "abcd"},
                {"role": "user", "content": [{"type": "text", "text": "éé"}, {"type": "text", "text": "xyz"}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "function": {"name": "ls", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "12345"}
            ],
            "tools": [{"type": "function"}]
        });
        // 4 + 2 + 3 + (2 + 2) + 5 + ("type" 4 + "function" 8)
        assert_eq!(facts(body), ChatFacts { chars: 30, has_images: false });
    }

    #[test]
    fn finds_images_in_content_parts() {
        let body = json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
        ]}]});
        let facts = facts(body);
        assert!(facts.has_images);
        assert_eq!(facts.chars, 13, "image data is not text");
    }

    #[test]
    fn odd_shapes_count_as_nothing_rather_than_fail() {
        let body = json!({"messages": [
            {"role": "assistant", "content": 42, "tool_calls": null},
            {"role": "user"},
            "not a message",
            {"role": "assistant", "tool_calls": [{"function": {"arguments": 7}}, null]}
        ]});
        assert_eq!(facts(body), ChatFacts::default());
        assert_eq!(facts(json!({"messages": "nope"})), ChatFacts::default());
    }

    #[test]
    fn the_estimate_divides_by_chars_per_token() {
        let facts = ChatFacts { chars: 204_000, has_images: false };
        assert!((facts.estimated_tokens(1.7) - 120_000.0).abs() < 1e-6);
    }
}
