//! An Anthropic Messages request, as the OpenAI chat completion every provider here takes.
//!
//! What has a counterpart is translated; what has none (`cache_control`, `top_k`, server
//! tools, documents, thinking blocks in the history, images inside tool results) is dropped,
//! never an error.
//!
//! The history is translated message by message as it is read, and written straight out as
//! JSON: no tree of the request nor of the chat is built, so a request costs about one copy of
//! itself however small its messages and blocks are (a tree cost 20 times the body). Linear in
//! its size.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::its_own_seed;
use crate::wire::chat_writer::{assemble, Content, Envelope, Texts, Written};
use crate::wire::json_scan::compact;

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

/// The chat completion for an Anthropic request body, and what its answer needs.
pub fn to_chat(body: &[u8]) -> Result<(Vec<u8>, Asked), InvalidRequest> {
    let invalid = |e: serde_json::Error| InvalidRequest(e.to_string());
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let request = deserializer.deserialize_map(RequestVisitor).map_err(invalid)?;
    deserializer.end().map_err(invalid)?;
    let chat = request.to_chat();
    Ok((chat, Asked { model: request.model, stream: request.stream, stop_sequences: request.stop_sequences }))
}

/// The request as read: its history and tools already written as JSON, its other fields as they came.
#[derive(Default)]
struct Request {
    model: String,
    system: String,
    translator: Translator,
    tools: Written,
    max_tokens: Option<u64>,
    stop_sequences: Vec<String>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    user: Option<String>,
    stream: bool,
    tool_choice: Option<ToolChoice>,
    thinking: Option<Thinking>,
}

#[derive(Deserialize)]
struct Metadata {
    user_id: Option<String>,
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

impl Request {
    fn to_chat(&self) -> Vec<u8> {
        let choice = self.tool_choice.as_ref();
        let mut envelope = Envelope {
            model: &self.model,
            max_tokens: self.max_tokens,
            stop: &self.stop_sequences,
            temperature: self.temperature,
            top_p: self.top_p,
            user: self.user.as_deref(),
            parallel_tool_calls: choice.filter(|c| c.disable_parallel_tool_use).map(|_| false),
            tool_choice: choice.and_then(tool_choice),
            reasoning_effort: self.thinking.as_ref().and_then(reasoning_effort),
            ..Envelope::default()
        };
        envelope.streaming(self.stream);
        assemble(Some(&self.system), &self.translator.history, &self.tools, &envelope)
    }
}

/// `auto` → `auto`, `any` → `required`, a named tool → that function, `none` → `none`.
fn tool_choice(choice: &ToolChoice) -> Option<serde_json::Value> {
    use serde_json::json;
    match (choice.kind.as_str(), &choice.name) {
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
fn reasoning_effort(thinking: &Thinking) -> Option<&'static str> {
    if thinking.kind == "disabled" {
        return Some("none");
    }
    log::debug!("event=anthropic_dropped field=thinking type={:?}", thinking.kind);
    None
}

struct RequestVisitor;

impl<'de> Visitor<'de> for RequestVisitor {
    type Value = Request;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an Anthropic Messages request")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Request, A::Error> {
        let mut request = Request::default();
        let (mut messages, mut tools) = (false, false);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "model" => request.model = map.next_value()?,
                "system" => request.system = map.next_value_seed(TextOf)?,
                // Written as read, so each may come once.
                "messages" if messages => return Err(de::Error::duplicate_field("messages")),
                "messages" => {
                    map.next_value_seed(Messages(&mut request.translator))?;
                    messages = true;
                }
                "tools" if tools => return Err(de::Error::duplicate_field("tools")),
                "tools" => {
                    map.next_value_seed(Tools(&mut request.tools))?;
                    tools = true;
                }
                "max_tokens" => request.max_tokens = map.next_value()?,
                "stop_sequences" => request.stop_sequences = map.next_value()?,
                "temperature" => request.temperature = map.next_value()?,
                "top_p" => request.top_p = map.next_value()?,
                "metadata" => request.user = map.next_value::<Option<Metadata>>()?.and_then(|m| m.user_id),
                "stream" => request.stream = map.next_value()?,
                "tool_choice" => request.tool_choice = map.next_value()?,
                "thinking" => request.thinking = map.next_value()?,
                _ => drop(map.next_value::<IgnoredAny>()?),
            }
        }
        if !messages {
            return Err(de::Error::missing_field("messages"));
        }
        Ok(request)
    }
}

/// The history's translation: messages written as they are read.
#[derive(Default)]
struct Translator {
    history: Written,
    /// Ids made up for the last assistant message's calls that had none, for the results
    /// that answer them (which have none either), in order.
    made_up: VecDeque<String>,
    next_id: usize,
}

impl Translator {
    fn make_up_id(&mut self) -> String {
        self.next_id += 1;
        format!("toolu_glm_proxy_{}", self.next_id)
    }
}

/// The `messages` array.
struct Messages<'t>(&'t mut Translator);

its_own_seed!(Messages<'_>, (), deserialize_seq);

impl<'de> Visitor<'de> for Messages<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a list of messages")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Message(self.0))?.is_some() {}
        Ok(())
    }
}

/// A message, translated as it is read. Its content is read once its role is known: at once
/// when the role comes first, as clients write it, else from its bytes after the role.
struct Message<'t>(&'t mut Translator);

its_own_seed!(Message<'_>, (), deserialize_map);

impl<'de> Visitor<'de> for Message<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a message")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (mut role, mut read, mut content) = (None::<String>, false, None::<&'de RawValue>);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match (key.as_ref(), role.as_deref()) {
                ("role", _) => role = Some(map.next_value()?),
                ("content", Some("assistant")) if !read => map.next_value_seed(Assistant::new(&mut *self.0))?,
                ("content", Some(_)) if !read => map.next_value_seed(User::new(&mut *self.0))?,
                ("content", None) if !read => content = Some(map.next_value()?),
                ("content", _) => return Err(de::Error::duplicate_field("content")),
                _ => drop(map.next_value::<IgnoredAny>()?),
            }
            read |= key == "content";
        }
        let role = role.ok_or_else(|| de::Error::missing_field("role"))?;
        if !read {
            return Err(de::Error::missing_field("content"));
        }
        let Some(content) = content else { return Ok(()) };
        let mut content = serde_json::Deserializer::from_str(content.get());
        let translated = match role.as_str() {
            "assistant" => Assistant::new(self.0).deserialize(&mut content),
            _ => User::new(self.0).deserialize(&mut content),
        };
        translated.map_err(de::Error::custom)
    }
}

/// A content block, any of them: which fields count depends on its type, which may come last.
#[derive(Deserialize)]
struct Block<'a> {
    #[serde(rename = "type")]
    kind: Cow<'a, str>,
    text: Option<String>,
    source: Option<ImageSource>,
    id: Option<String>,
    name: Option<String>,
    #[serde(borrow)]
    input: Option<&'a RawValue>,
    tool_use_id: Option<String>,
    #[serde(borrow)]
    content: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ImageSource {
    #[serde(rename = "type")]
    kind: String,
    media_type: Option<String>,
    data: Option<String>,
    url: Option<String>,
}

impl Block<'_> {
    fn text<E: de::Error>(&mut self) -> Result<String, E> {
        self.text.take().ok_or_else(|| E::missing_field("text"))
    }
}

/// An assistant message: its text and tool calls in one message; thinking blocks are dropped.
struct Assistant<'t> {
    translator: &'t mut Translator,
    text: Texts,
    calls: Written,
}

impl<'t> Assistant<'t> {
    fn new(translator: &'t mut Translator) -> Self {
        translator.made_up.clear();
        Assistant { translator, text: Texts::default(), calls: Written::default() }
    }

    fn block<E: de::Error>(&mut self, mut block: Block) -> Result<(), E> {
        match block.kind.as_ref() {
            "text" => self.text.push(&block.text()?),
            "tool_use" => {
                let name = block.name.ok_or_else(|| E::missing_field("name"))?;
                let id = block.id.filter(|id| !id.is_empty()).unwrap_or_else(|| {
                    let id = self.translator.make_up_id();
                    self.translator.made_up.push_back(id.clone());
                    id
                });
                let arguments = match block.input.map(|input| input.get()) {
                    None | Some("null") => "{}".to_owned(),
                    Some(input) => compact(input),
                };
                self.calls.call(&id, &name, &arguments);
            }
            _ => {}
        }
        Ok(())
    }

    fn write(self) {
        self.translator.history.assistant(&self.text.joined, &self.calls);
    }
}

its_own_seed!(Assistant<'_>, (), deserialize_any);

impl<'de> Visitor<'de> for Assistant<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a string or a list of content blocks")
    }

    fn visit_str<E: de::Error>(mut self, text: &str) -> Result<(), E> {
        self.text.push(text);
        self.write();
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        while let Some(block) = seq.next_element::<Block>()? {
            self.block(block)?;
        }
        self.write();
        Ok(())
    }
}

/// A user turn: its tool results first, as `tool` messages, then its text and images.
struct User<'t> {
    translator: &'t mut Translator,
    /// The text blocks joined, for a turn of text alone.
    text: Texts,
    /// Every part as JSON, for a turn with images.
    parts: Written,
    has_images: bool,
}

impl<'t> User<'t> {
    fn new(translator: &'t mut Translator) -> Self {
        User { translator, text: Texts::default(), parts: Written::default(), has_images: false }
    }

    fn block<E: de::Error>(&mut self, mut block: Block) -> Result<(), E> {
        match block.kind.as_ref() {
            "text" => {
                let text = block.text()?;
                self.parts.text_part(&text);
                self.text.push(&text);
            }
            "image" => {
                let source = block.source.ok_or_else(|| E::missing_field("source"))?;
                let url = match source.kind.as_str() {
                    "base64" => {
                        let media_type = source.media_type.ok_or_else(|| E::missing_field("media_type"))?;
                        let data = source.data.ok_or_else(|| E::missing_field("data"))?;
                        format!("data:{media_type};base64,{data}")
                    }
                    "url" => source.url.ok_or_else(|| E::missing_field("url"))?,
                    _ => {
                        log::debug!("event=anthropic_dropped field=image_source");
                        return Ok(());
                    }
                };
                self.parts.image_part(&url);
                self.has_images = true;
            }
            "tool_result" => {
                let id = block.tool_use_id.filter(|id| !id.is_empty()).unwrap_or_else(|| {
                    self.translator.made_up.pop_front().unwrap_or_else(|| self.translator.make_up_id())
                });
                let text = match block.content {
                    Some(content) => {
                        TextOf.deserialize(&mut serde_json::Deserializer::from_str(content.get())).map_err(E::custom)?
                    }
                    None => String::new(),
                };
                self.translator.history.message("tool", Some(&id), Content::Text(&text), None);
            }
            _ => {}
        }
        Ok(())
    }

    fn write(self) {
        let content = match (self.parts.count, self.has_images) {
            (0, _) => return,
            (_, false) => Content::Text(&self.text.joined),
            (_, true) => Content::Parts(&self.parts.out),
        };
        self.translator.history.message("user", None, content, None);
    }
}

its_own_seed!(User<'_>, (), deserialize_any);

impl<'de> Visitor<'de> for User<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a string or a list of content blocks")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<(), E> {
        self.translator.history.message("user", None, Content::Text(text), None);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        while let Some(block) = seq.next_element::<Block>()? {
            self.block(block)?;
        }
        self.write();
        Ok(())
    }
}

/// The text of a system prompt or a tool result: a string, or its text blocks joined by blank
/// lines; `null` is none.
struct TextOf;

its_own_seed!(TextOf, String, deserialize_any);

impl<'de> Visitor<'de> for TextOf {
    type Value = String;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a string or a list of content blocks")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<String, E> {
        Ok(text.to_owned())
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<String, E> {
        Ok(text)
    }

    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Ok(String::new())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<String, A::Error> {
        let mut texts = Texts::default();
        while let Some(mut block) = seq.next_element::<Block>()? {
            if block.kind == "text" {
                texts.push(&block.text()?);
            }
        }
        Ok(texts.joined)
    }
}

/// The `tools` array: client tools as functions; a server tool (web search and the like) has
/// no `input_schema` and is dropped.
struct Tools<'w>(&'w mut Written);

#[derive(Deserialize)]
struct Tool<'a> {
    name: String,
    description: Option<String>,
    #[serde(borrow)]
    input_schema: Option<&'a RawValue>,
}

its_own_seed!(Tools<'_>, (), deserialize_seq);

impl<'de> Visitor<'de> for Tools<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a list of tools")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(tool) = seq.next_element::<Tool>()? {
            let Some(parameters) = tool.input_schema else { continue };
            self.0.function(&tool.name, tool.description.as_deref(), parameters.get(), None);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

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
        let refused = [
            &b"not json"[..],
            b"[]",
            b"{}",
            br#"{"messages": "hi"}"#,
            br#"{"messages": [{"content": "x"}]}"#,
            br#"{"messages": [{"role": "user"}]}"#,
            br#"{"messages": [{"role": "user", "content": 5}]}"#,
            br#"{"messages": [{"role": "user", "content": [{"type": "text"}]}]}"#,
            br#"{"messages": [{"role": "user", "content": ["text"]}]}"#,
            br#"{"messages": [{"role": "assistant", "content": [{"type": "tool_use", "input": {}}]}]}"#,
            br#"{"messages": [], "messages": []}"#,
            br#"{"messages": [{"role": "user", "content": "a", "content": "b"}]}"#,
            br#"{"messages": [{"content": "a", "role": "user", "content": "b"}]}"#,
            br#"{"messages": []} trailing"#,
        ];
        for body in refused {
            assert!(to_chat(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn fields_in_any_order_and_spaced_json_translate_the_same() {
        let spaced = br#"{ "messages" : [ { "content" : [ { "input" : { "path" : "a b.rs", "n" : [1, 2] },
            "name" : "read", "type" : "tool_use", "id" : "t1" } ], "role" : "assistant" } ],
            "system" : "Be brief.", "model" : "m" }"#;
        let (body, asked) = to_chat(spaced).unwrap();
        let chat: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(asked.model, "m");
        assert_eq!(chat["model"], "m");
        assert_eq!(
            chat["messages"],
            json!([
                {"role": "system", "content": "Be brief."},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "read", "arguments": "{\"path\":\"a b.rs\",\"n\":[1,2]}"}}
                ]}
            ])
        );
    }

    #[test]
    fn ten_thousand_small_messages_translate_into_a_body_no_larger() {
        let message = r#"{"role":"user","content":[{"type":"text","text":""}]},"#;
        let mut body = String::from(r#"{"model":"m","messages":["#);
        body.push_str(&message.repeat(10_000));
        body.push_str(r#"{"role":"user","content":"end"}]}"#);
        let (chat, _) = to_chat(body.as_bytes()).unwrap();
        assert!(chat.len() < body.len(), "{} bytes from {}", chat.len(), body.len());
        let chat: Value = serde_json::from_slice(&chat).unwrap();
        assert_eq!(chat["messages"].as_array().unwrap().len(), 10_001);
    }
}
