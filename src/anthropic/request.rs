//! An Anthropic Messages request, as the OpenAI chat completion every provider here takes.
//!
//! What has a counterpart is translated; what has none (`cache_control`, `top_k`, server
//! tools, documents, thinking blocks in the history, images inside tool results) is dropped,
//! never an error. One pass over the parsed request: linear in its size.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// What the answer's translation needs to know of the request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Asked {
    /// The model the client named: the answer names it back.
    pub model: String,
    pub stream: bool,
    /// Which of these ended the answer, when a provider says.
    pub stop_sequences: Vec<String>,
}

/// Why a request cannot be translated: the client's mistake, said as a 400.
#[derive(Debug, thiserror::Error)]
#[error("invalid request: {0}")]
pub struct InvalidRequest(String);

#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    model: String,
    system: Option<Content>,
    messages: Vec<Message>,
    max_tokens: Option<u64>,
    #[serde(default)]
    stop_sequences: Vec<String>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    metadata: Option<Metadata>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    tools: Vec<Tool>,
    tool_choice: Option<ToolChoice>,
    thinking: Option<Thinking>,
}

#[derive(Deserialize)]
struct Metadata {
    user_id: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    content: Content,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Blocks(Vec<Block>),
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        text: String,
    },
    Image {
        source: ImageSource,
    },
    ToolUse {
        id: Option<String>,
        name: String,
        #[serde(default)]
        input: Value,
    },
    ToolResult {
        tool_use_id: Option<String>,
        content: Option<Content>,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ImageSource {
    Base64 {
        media_type: String,
        data: String,
    },
    Url {
        url: String,
    },
    #[serde(other)]
    Other,
}

/// A client tool; a server tool (web search and the like) has no `input_schema` and is dropped.
#[derive(Deserialize)]
struct Tool {
    name: String,
    description: Option<String>,
    input_schema: Option<Value>,
}

#[derive(Deserialize)]
struct ToolChoice {
    #[serde(rename = "type")]
    kind: String,
    name: Option<String>,
    #[serde(default)]
    disable_parallel_tool_use: bool,
}

#[derive(Deserialize)]
struct Thinking {
    #[serde(rename = "type")]
    kind: String,
}

/// The OpenAI chat completion sent upstream.
#[derive(Serialize)]
struct Chat {
    model: String,
    messages: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'static str>,
}

/// The chat completion for an Anthropic request body, and what its answer needs.
pub fn to_chat(body: &[u8]) -> Result<(Vec<u8>, Asked), InvalidRequest> {
    let request: Request = serde_json::from_slice(body).map_err(|e| InvalidRequest(e.to_string()))?;
    let asked =
        Asked { model: request.model.clone(), stream: request.stream, stop_sequences: request.stop_sequences.clone() };
    let mut history = History::default();
    if let Some(system) = request.system {
        let text = text_of(system);
        if !text.is_empty() {
            history.messages.push(json!({ "role": "system", "content": text }));
        }
    }
    for message in request.messages {
        match message.role.as_str() {
            "assistant" => history.assistant(message.content),
            _ => history.user(message.content),
        }
    }
    let tools = request
        .tools
        .into_iter()
        .filter_map(|tool| {
            let parameters = tool.input_schema?;
            let mut function = json!({ "name": tool.name, "parameters": parameters });
            if let Some(description) = tool.description {
                function["description"] = json!(description);
            }
            Some(json!({ "type": "function", "function": function }))
        })
        .collect();
    let choice = request.tool_choice;
    let chat = Chat {
        model: request.model,
        messages: history.messages,
        max_tokens: request.max_tokens,
        stop: request.stop_sequences,
        temperature: request.temperature,
        top_p: request.top_p,
        user: request.metadata.and_then(|metadata| metadata.user_id),
        stream: request.stream,
        stream_options: request.stream.then(|| json!({ "include_usage": true })),
        tools,
        parallel_tool_calls: choice.as_ref().filter(|c| c.disable_parallel_tool_use).map(|_| false),
        tool_choice: choice.and_then(tool_choice),
        reasoning_effort: request.thinking.and_then(reasoning_effort),
    };
    // A tree of strings, numbers and maps always serialises.
    Ok((serde_json::to_vec(&chat).unwrap_or_default(), asked))
}

/// `auto` → `auto`, `any` → `required`, a named tool → that function, `none` → `none`.
fn tool_choice(choice: ToolChoice) -> Option<Value> {
    match (choice.kind.as_str(), choice.name) {
        ("auto", _) => Some(json!("auto")),
        ("any", _) => Some(json!("required")),
        ("none", _) => Some(json!("none")),
        ("tool", Some(name)) => Some(json!({ "type": "function", "function": { "name": name } })),
        (other, _) => {
            log::debug!("event=anthropic_dropped field=tool_choice type={other:?}");
            None
        }
    }
}

/// GLM models reason by default; only turning it off has a switch every provider here reads
/// (`reasoning_effort: "none"`). A budget has none, and is dropped.
fn reasoning_effort(thinking: Thinking) -> Option<&'static str> {
    if thinking.kind == "disabled" {
        return Some("none");
    }
    log::debug!("event=anthropic_dropped field=thinking type={:?}", thinking.kind);
    None
}

/// The OpenAI history, built message by message.
#[derive(Default)]
struct History {
    messages: Vec<Value>,
    /// Ids made up for the last assistant message's calls that had none, for the results
    /// that answer them (which have none either), in order.
    made_up: std::collections::VecDeque<String>,
    next_id: usize,
}

impl History {
    /// Text and tool calls in one assistant message; thinking blocks are dropped.
    fn assistant(&mut self, content: Content) {
        let blocks = match content {
            Content::Text(text) => vec![Block::Text { text }],
            Content::Blocks(blocks) => blocks,
        };
        self.made_up.clear();
        let (mut text, mut calls) = (Vec::new(), Vec::new());
        for block in blocks {
            match block {
                Block::Text { text: part } => text.push(part),
                Block::ToolUse { id, name, input } => {
                    let id = id.filter(|id| !id.is_empty()).unwrap_or_else(|| {
                        let id = self.make_up_id();
                        self.made_up.push_back(id.clone());
                        id
                    });
                    let arguments = if input.is_null() { "{}".to_owned() } else { input.to_string() };
                    calls.push(
                        json!({ "id": id, "type": "function", "function": { "name": name, "arguments": arguments } }),
                    );
                }
                _ => {}
            }
        }
        let text = text.join("\n\n");
        let mut message = json!({ "role": "assistant", "content": text });
        if !calls.is_empty() {
            if text.is_empty() {
                message["content"] = Value::Null;
            }
            message["tool_calls"] = Value::Array(calls);
        }
        self.messages.push(message);
    }

    /// A user turn: its tool results first, as `tool` messages, then its text and images.
    fn user(&mut self, content: Content) {
        let blocks = match content {
            Content::Text(text) => {
                self.messages.push(json!({ "role": "user", "content": text }));
                return;
            }
            Content::Blocks(blocks) => blocks,
        };
        let mut parts = Vec::new();
        for block in blocks {
            match block {
                Block::Text { text } => parts.push(Part::Text(text)),
                Block::Image { source } => match source {
                    ImageSource::Base64 { media_type, data } => {
                        parts.push(Part::Image(format!("data:{media_type};base64,{data}")))
                    }
                    ImageSource::Url { url } => parts.push(Part::Image(url)),
                    ImageSource::Other => log::debug!("event=anthropic_dropped field=image_source"),
                },
                Block::ToolResult { tool_use_id, content } => {
                    let id = tool_use_id
                        .filter(|id| !id.is_empty())
                        .unwrap_or_else(|| self.made_up.pop_front().unwrap_or_else(|| self.make_up_id()));
                    let text = content.map(text_of).unwrap_or_default();
                    self.messages.push(json!({ "role": "tool", "tool_call_id": id, "content": text }));
                }
                _ => {}
            }
        }
        if parts.is_empty() {
            return;
        }
        let content = if parts.iter().all(|part| matches!(part, Part::Text(_))) {
            let texts: Vec<String> = parts.into_iter().filter_map(Part::into_text).collect();
            json!(texts.join("\n\n"))
        } else {
            Value::Array(parts.into_iter().map(Part::into_json).collect())
        };
        self.messages.push(json!({ "role": "user", "content": content }));
    }

    fn make_up_id(&mut self) -> String {
        self.next_id += 1;
        format!("toolu_glm_proxy_{}", self.next_id)
    }
}

enum Part {
    Text(String),
    /// An image's URL, a `data:` URL for base64.
    Image(String),
}

impl Part {
    fn into_text(self) -> Option<String> {
        match self {
            Part::Text(text) => Some(text),
            Part::Image(_) => None,
        }
    }

    fn into_json(self) -> Value {
        match self {
            Part::Text(text) => json!({ "type": "text", "text": text }),
            Part::Image(url) => json!({ "type": "image_url", "image_url": { "url": url } }),
        }
    }
}

/// The text of a system prompt or a tool result: its text blocks, joined by blank lines.
fn text_of(content: Content) -> String {
    match content {
        Content::Text(text) => text,
        Content::Blocks(blocks) => {
            let texts: Vec<String> = blocks
                .into_iter()
                .filter_map(|block| match block {
                    Block::Text { text } => Some(text),
                    _ => None,
                })
                .collect();
            texts.join("\n\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(request: Value) -> (Value, Asked) {
        let (body, asked) = to_chat(request.to_string().as_bytes()).unwrap();
        (serde_json::from_slice(&body).unwrap(), asked)
    }

    #[test]
    fn system_text_and_parameters_carry_over() {
        let (chat, asked) = chat(json!({
            "model": "claude-sonnet-4-5", "max_tokens": 1024, "stream": true,
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}, {"type": "text", "text": "Use Rust."}],
            "messages": [{"role": "user", "content": "Hello"}],
            "stop_sequences": ["END"], "temperature": 0.2, "top_p": 0.9, "top_k": 5,
            "metadata": {"user_id": "u-1"}, "unknown_field": {"x": 1}
        }));
        assert_eq!(
            chat,
            json!({
                "model": "claude-sonnet-4-5",
                "messages": [{"role": "system", "content": "Be brief.\n\nUse Rust."}, {"role": "user", "content": "Hello"}],
                "max_tokens": 1024, "stop": ["END"], "temperature": 0.2, "top_p": 0.9, "user": "u-1",
                "stream": true, "stream_options": {"include_usage": true}
            })
        );
        assert_eq!(
            asked,
            Asked { model: "claude-sonnet-4-5".into(), stream: true, stop_sequences: vec!["END".into()] }
        );
    }

    #[test]
    fn tool_use_and_results_become_calls_and_tool_messages_before_the_users_text() {
        let (chat, _) = chat(json!({
            "model": "m",
            "messages": [
                {"role": "user", "content": "Read two files"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "s"},
                    {"type": "text", "text": "Reading."},
                    {"type": "tool_use", "id": "toolu_1", "name": "read", "input": {"path": "a.rs"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "read", "input": {"path": "b.rs"}}
                ]},
                {"role": "user", "content": [
                    {"type": "text", "text": "Here:"},
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "fn a() {}"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "fn b() {}"}], "is_error": true}
                ]}
            ]
        }));
        assert_eq!(
            chat["messages"],
            json!([
                {"role": "user", "content": "Read two files"},
                {"role": "assistant", "content": "Reading.", "tool_calls": [
                    {"id": "toolu_1", "type": "function", "function": {"name": "read", "arguments": "{\"path\":\"a.rs\"}"}},
                    {"id": "toolu_2", "type": "function", "function": {"name": "read", "arguments": "{\"path\":\"b.rs\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "fn a() {}"},
                {"role": "tool", "tool_call_id": "toolu_2", "content": "fn b() {}"},
                {"role": "user", "content": "Here:"}
            ])
        );
    }

    #[test]
    fn a_missing_call_id_is_made_up_and_reused_for_its_result() {
        let (chat, _) = chat(json!({
            "model": "m",
            "messages": [
                {"role": "assistant", "content": [{"type": "tool_use", "name": "ls", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "content": "a b"}]}
            ]
        }));
        let id = &chat["messages"][0]["tool_calls"][0]["id"];
        assert!(id.as_str().unwrap().starts_with("toolu_"));
        assert_eq!(chat["messages"][0]["content"], Value::Null, "calls without text");
        assert_eq!(&chat["messages"][1]["tool_call_id"], id);
    }

    #[test]
    fn images_become_image_url_parts() {
        let (chat, _) = chat(json!({
            "model": "m",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
            ]}]
        }));
        assert_eq!(
            chat["messages"][0]["content"],
            json!([
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
            ])
        );
    }

    #[test]
    fn tools_and_tool_choice_translate_and_server_tools_are_dropped() {
        let schema = json!({"type": "object", "properties": {"city": {"type": "string"}}});
        let tools = json!([
            {"name": "weather", "description": "Weather now", "input_schema": schema, "cache_control": {"type": "ephemeral"}},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
        ]);
        let request = |choice: Value| json!({"model": "m", "messages": [], "tools": tools, "tool_choice": choice});
        let (translated, _) = chat(request(json!({"type": "auto"})));
        assert_eq!(
            translated["tools"],
            json!([{"type": "function", "function": {"name": "weather", "description": "Weather now", "parameters": schema}}])
        );
        assert_eq!(translated["tool_choice"], "auto");
        assert_eq!(chat(request(json!({"type": "any"}))).0["tool_choice"], "required");
        assert_eq!(chat(request(json!({"type": "none"}))).0["tool_choice"], "none");
        let named = chat(request(json!({"type": "tool", "name": "weather", "disable_parallel_tool_use": true}))).0;
        assert_eq!(named["tool_choice"], json!({"type": "function", "function": {"name": "weather"}}));
        assert_eq!(named["parallel_tool_calls"], false);
    }

    #[test]
    fn thinking_turned_off_is_the_reasoning_switch_and_a_budget_is_dropped() {
        let request = |thinking: Value| json!({"model": "m", "messages": [], "thinking": thinking});
        assert_eq!(chat(request(json!({"type": "disabled"}))).0["reasoning_effort"], "none");
        let enabled = chat(request(json!({"type": "enabled", "budget_tokens": 2048}))).0;
        assert!(enabled.get("reasoning_effort").is_none() && enabled.get("thinking").is_none());
    }

    #[test]
    fn a_body_that_is_no_messages_request_is_refused() {
        for body in [&b"not json"[..], b"{}", br#"{"messages": "hi"}"#, br#"{"messages": [{"content": "x"}]}"#] {
            assert!(to_chat(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }
}
