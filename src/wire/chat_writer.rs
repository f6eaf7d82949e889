//! A chat-completion request as the translating doors write it: straight out as JSON while
//! they read their client's request, message by message, so no tree of either is built.

use serde::Serialize;
use serde_json::value::RawValue;

/// JSON values written one after another, with commas between them.
#[derive(Default)]
pub struct Written {
    pub out: Vec<u8>,
    pub count: usize,
}

/// A message's content as it is written.
pub enum Content<'a> {
    Text(&'a str),
    Null,
    /// The JSON of an array's elements, written already.
    Parts(&'a [u8]),
}

impl Written {
    /// Starts the next value: the comma before it.
    pub fn next_value(&mut self) -> &mut Vec<u8> {
        if self.count > 0 {
            self.out.push(b',');
        }
        self.count += 1;
        &mut self.out
    }

    /// `{"role":…,"tool_call_id":…,"content":…,"tool_calls":[…]}`, without the id or the
    /// calls when there are none.
    pub fn message(&mut self, role: &str, tool_call_id: Option<&str>, content: Content, tool_calls: Option<&Written>) {
        let out = self.next_value();
        out.extend_from_slice(b"{\"role\":");
        string(out, role);
        if let Some(id) = tool_call_id {
            out.extend_from_slice(b",\"tool_call_id\":");
            string(out, id);
        }
        out.extend_from_slice(b",\"content\":");
        match content {
            Content::Text(text) => string(out, text),
            Content::Null => out.extend_from_slice(b"null"),
            Content::Parts(parts) => {
                out.push(b'[');
                out.extend_from_slice(parts);
                out.push(b']');
            }
        }
        if let Some(calls) = tool_calls {
            out.extend_from_slice(b",\"tool_calls\":[");
            out.extend_from_slice(&calls.out);
            out.push(b']');
        }
        out.push(b'}');
    }

    /// An assistant's text and tool calls as one message; calls without text have no content,
    /// as OpenAI writes them.
    pub fn assistant(&mut self, text: &str, calls: &Written) {
        let calls = (calls.count > 0).then_some(calls);
        let content = if text.is_empty() && calls.is_some() { Content::Null } else { Content::Text(text) };
        self.message("assistant", None, content, calls);
    }

    /// A tool call: `{"id":…,"type":"function","function":{"name":…,"arguments":…}}`.
    pub fn call(&mut self, id: &str, name: &str, arguments: &str) {
        let out = self.next_value();
        out.extend_from_slice(b"{\"id\":");
        string(out, id);
        out.extend_from_slice(b",\"type\":\"function\",\"function\":{\"name\":");
        string(out, name);
        out.extend_from_slice(b",\"arguments\":");
        string(out, arguments);
        out.extend_from_slice(b"}}");
    }

    /// A text part of a message with images.
    pub fn text_part(&mut self, text: &str) {
        let out = self.next_value();
        out.extend_from_slice(b"{\"type\":\"text\",\"text\":");
        string(out, text);
        out.push(b'}');
    }

    /// An image part, which routes the request to the vision models.
    pub fn image_part(&mut self, url: &str) {
        let out = self.next_value();
        out.extend_from_slice(b"{\"type\":\"image_url\",\"image_url\":{\"url\":");
        string(out, url);
        out.extend_from_slice(b"}}");
    }

    /// A function tool; `parameters` is JSON text already, and `strict` is left out unless set.
    pub fn function(&mut self, name: &str, description: Option<&str>, parameters: &str, strict: Option<bool>) {
        let out = self.next_value();
        out.extend_from_slice(b"{\"type\":\"function\",\"function\":{\"name\":");
        string(out, name);
        out.extend_from_slice(b",\"parameters\":");
        out.extend_from_slice(parameters.as_bytes());
        if let Some(description) = description {
            out.extend_from_slice(b",\"description\":");
            string(out, description);
        }
        if let Some(strict) = strict {
            out.extend_from_slice(if strict { b",\"strict\":true" } else { b",\"strict\":false" });
        }
        out.extend_from_slice(b"}}");
    }
}

/// `text` as a JSON string.
pub fn string(out: &mut Vec<u8>, text: &str) {
    // Writing a string into a vector cannot fail.
    let _ = serde_json::to_writer(out, text);
}

/// Texts joined by blank lines.
#[derive(Default)]
pub struct Texts {
    pub joined: String,
    pub count: usize,
}

impl Texts {
    pub fn push(&mut self, text: &str) {
        if self.count > 0 {
            self.joined.push_str("\n\n");
        }
        self.joined.push_str(text);
        self.count += 1;
    }
}

/// The chat completion's fields besides `messages` and `tools`.
#[derive(Serialize, Default)]
pub struct Envelope<'a> {
    pub model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat<'a>>,
}

#[derive(Serialize)]
pub struct StreamOptions {
    pub include_usage: bool,
}

impl Envelope<'_> {
    /// A stream asks for the usage, which its last chunk then carries.
    pub fn streaming(&mut self, stream: bool) {
        self.stream = stream;
        self.stream_options = stream.then_some(StreamOptions { include_usage: true });
    }
}

/// `response_format`: a JSON schema the answer must follow, or any JSON object.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat<'a> {
    JsonSchema { json_schema: JsonSchema<'a> },
    JsonObject,
}

#[derive(Serialize)]
pub struct JsonSchema<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// The chat completion: `system` first (if any), the history, the tools, the envelope.
pub fn assemble(system: Option<&str>, history: &Written, tools: &Written, envelope: &Envelope) -> Vec<u8> {
    // Plain fields always serialise, and the envelope always has its model.
    let envelope = serde_json::to_vec(envelope).unwrap_or_default();
    let mut first = Written::default();
    if let Some(system) = system.filter(|system| !system.is_empty()) {
        first.message("system", None, Content::Text(system), None);
    }
    let mut chat = Vec::with_capacity(first.out.len() + history.out.len() + tools.out.len() + envelope.len() + 64);
    chat.extend_from_slice(b"{\"messages\":[");
    chat.extend_from_slice(&first.out);
    if first.count > 0 && history.count > 0 {
        chat.push(b',');
    }
    chat.extend_from_slice(&history.out);
    chat.push(b']');
    if tools.count > 0 {
        chat.extend_from_slice(b",\"tools\":[");
        chat.extend_from_slice(&tools.out);
        chat.push(b']');
    }
    chat.push(b',');
    chat.extend_from_slice(envelope.get(1..).unwrap_or(b"}"));
    chat
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn a_chat_is_assembled_from_its_parts() {
        let mut history = Written::default();
        history.message("user", None, Content::Text("Hi \"there\""), None);
        let mut calls = Written::default();
        calls.call("c1", "ls", "{\"path\":\".\"}");
        history.assistant("", &calls);
        history.message("tool", Some("c1"), Content::Text("a b"), None);
        let mut tools = Written::default();
        tools.function("ls", Some("List"), "{\"type\":\"object\"}", Some(false));
        let mut envelope = Envelope { model: "m", max_tokens: Some(5), ..Envelope::default() };
        envelope.streaming(true);
        let chat: Value = serde_json::from_slice(&assemble(Some("Be brief."), &history, &tools, &envelope)).unwrap();
        assert_eq!(
            chat,
            json!({
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hi \"there\""},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "ls", "arguments": "{\"path\":\".\"}"}}]},
                    {"role": "tool", "tool_call_id": "c1", "content": "a b"}
                ],
                "tools": [{"type": "function", "function": {"name": "ls", "parameters": {"type": "object"}, "description": "List", "strict": false}}],
                "model": "m", "max_tokens": 5, "stream": true, "stream_options": {"include_usage": true}
            })
        );
    }
}
