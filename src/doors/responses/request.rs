//! A Responses API request, as the OpenAI chat completion every provider here takes.
//!
//! `instructions` and `developer`/`system` messages become system messages, in order; `user`
//! and `assistant` messages keep their roles. Tool calls in the history (`function_call`,
//! `custom_tool_call`, `local_shell_call`) become the assistant's `tool_calls`, consecutive
//! ones (and the assistant's text before them) one message; their outputs become `tool`
//! messages. Reasoning items are not sent upstream: their encrypted content is not ours to
//! read. The tools are offered as functions (`tools`). Nothing is stored here, so a request
//! that continues a stored response or conversation is refused, naming the field; any other
//! field without a counterpart is dropped, never an error.
//!
//! The input is translated item by item as it is read, and written straight out as JSON: no
//! tree of the request nor of the chat is built. Linear in its size.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::tools::{joined, Tool, ToolTable, LOCAL_SHELL};
use crate::error::ProxyError;
use crate::its_own_seed;
use crate::wire::chat_writer::{assemble, Content, Envelope, JsonSchema, ResponseFormat, Texts, Written};
use crate::wire::json_scan::compact;

/// What the answer's translation needs to know of the request.
#[derive(Debug, Clone, Default)]
pub struct Asked {
    /// The model the client named: the answer names it back.
    pub model: String,
    pub stream: bool,
    /// The client's tools behind the functions offered upstream.
    pub tools: ToolTable,
    /// The request's settings a response object repeats.
    pub echo: Echo,
}

#[derive(Debug, Clone, Default)]
pub struct Echo {
    pub parallel_tool_calls: bool,
    pub tool_choice: Value,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_output_tokens: Option<u64>,
    pub store: bool,
    pub reasoning_effort: Option<String>,
    pub reasoning_summary: Option<String>,
    pub metadata: Value,
}

/// The chat completion for a Responses request body, and what its answer needs.
pub fn to_chat(body: &[u8]) -> Result<(Vec<u8>, Asked), ProxyError> {
    let invalid = |e: serde_json::Error| ProxyError::InvalidBody(format!("invalid request: {e}"));
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let mut request = deserializer.deserialize_map(RequestVisitor).map_err(invalid)?;
    deserializer.end().map_err(invalid)?;
    if let Some((param, message)) = request.translator.unsupported.take() {
        return Err(ProxyError::Unsupported { param, message });
    }
    request.translator.flush();
    let chat = request.to_chat();
    let echo = Echo {
        parallel_tool_calls: request.parallel_tool_calls.unwrap_or(true),
        tool_choice: request.tool_choice.unwrap_or_else(|| json!("auto")),
        temperature: request.temperature,
        top_p: request.top_p,
        max_output_tokens: request.max_output_tokens,
        store: request.store,
        reasoning_effort: request.reasoning.as_ref().and_then(|r| r.effort.clone()),
        reasoning_summary: request.reasoning.and_then(|r| r.summary),
        metadata: request.metadata.unwrap_or_else(|| json!({})),
    };
    let asked = Asked { model: request.model, stream: request.stream, tools: request.translator.tools, echo };
    Ok((chat, asked))
}

/// The request as read: its input and tools already written as JSON, its other fields as they came.
#[derive(Default)]
struct Request<'a> {
    model: String,
    instructions: Option<String>,
    translator: Translator,
    tool_choice: Option<Value>,
    parallel_tool_calls: Option<bool>,
    max_output_tokens: Option<u64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    reasoning: Option<Reasoning>,
    text: Option<TextSettings<'a>>,
    user: Option<String>,
    safety_identifier: Option<String>,
    stream: bool,
    store: bool,
    metadata: Option<Value>,
}

#[derive(Deserialize)]
struct Reasoning {
    effort: Option<String>,
    summary: Option<String>,
}

#[derive(Deserialize)]
struct TextSettings<'a> {
    #[serde(borrow)]
    format: Option<Format<'a>>,
}

#[derive(Deserialize)]
struct Format<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    description: Option<Cow<'a, str>>,
    #[serde(borrow)]
    schema: Option<&'a RawValue>,
    strict: Option<bool>,
}

impl Request<'_> {
    fn to_chat(&self) -> Vec<u8> {
        let offers = !self.translator.tools.is_empty();
        let mut envelope = Envelope {
            model: &self.model,
            max_tokens: self.max_output_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            user: self.user.as_deref().or(self.safety_identifier.as_deref()),
            // Without tools, a tool choice means nothing, and some providers refuse it.
            tool_choice: self
                .tool_choice
                .as_ref()
                .filter(|_| offers)
                .and_then(|c| tool_choice(c, &self.translator.tools)),
            parallel_tool_calls: self.parallel_tool_calls.filter(|_| offers),
            reasoning_effort: self.reasoning.as_ref().and_then(|r| r.effort.as_deref()).map(reasoning_effort),
            response_format: self.text.as_ref().and_then(|text| text.format.as_ref()).and_then(response_format),
            ..Envelope::default()
        };
        envelope.streaming(self.stream);
        let translator = &self.translator;
        assemble(self.instructions.as_deref(), &translator.history, &translator.functions, &envelope)
    }
}

/// `auto`, `none` and `required` as they are; a named function or custom tool as that function.
fn tool_choice(choice: &Value, tools: &ToolTable) -> Option<Value> {
    match choice {
        Value::String(mode) if matches!(mode.as_str(), "auto" | "none" | "required") => Some(choice.clone()),
        Value::Object(named) => match named.get("type").and_then(Value::as_str) {
            Some("function" | "custom") => {
                let name = named.get("name")?.as_str()?;
                let offered = tools.offered_name(name, named.get("namespace").and_then(Value::as_str));
                Some(json!({ "type": "function", "function": { "name": offered } }))
            }
            Some("allowed_tools") => named.get("mode").filter(|mode| mode.is_string()).cloned(),
            other => {
                log::debug!("event=responses_dropped field=tool_choice type={other:?}");
                None
            }
        },
        _ => None,
    }
}

/// Effort as the chat API names it: `minimal` and `xhigh` have no counterpart there.
fn reasoning_effort(effort: &str) -> &str {
    match effort {
        "minimal" => "low",
        "xhigh" => "high",
        effort => effort,
    }
}

/// `json_schema` and `json_object` as `response_format`; `text` is the default, and needs none.
fn response_format<'a>(format: &'a Format<'a>) -> Option<ResponseFormat<'a>> {
    match format.kind.as_ref() {
        "json_schema" => Some(ResponseFormat::JsonSchema {
            json_schema: JsonSchema {
                name: format.name.as_deref().unwrap_or("response"),
                description: format.description.as_deref(),
                schema: format.schema,
                strict: format.strict,
            },
        }),
        "json_object" => Some(ResponseFormat::JsonObject),
        _ => None,
    }
}

struct RequestVisitor;

impl<'de> Visitor<'de> for RequestVisitor {
    type Value = Request<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a Responses API request")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Request<'de>, A::Error> {
        let mut request = Request::default();
        let (mut input, mut tools) = (false, false);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "model" => request.model = map.next_value()?,
                "instructions" => request.instructions = map.next_value()?,
                // Written as read, so each may come once.
                "input" if input => return Err(de::Error::duplicate_field("input")),
                "input" => {
                    map.next_value_seed(Input(&mut request.translator))?;
                    input = true;
                }
                "tools" if tools => return Err(de::Error::duplicate_field("tools")),
                "tools" => {
                    let declared: Option<Vec<Tool>> = map.next_value()?;
                    request.translator.offer(&declared.unwrap_or_default());
                    tools = true;
                }
                "tool_choice" => request.tool_choice = map.next_value()?,
                "parallel_tool_calls" => request.parallel_tool_calls = map.next_value()?,
                "max_output_tokens" => request.max_output_tokens = map.next_value()?,
                "temperature" => request.temperature = map.next_value()?,
                "top_p" => request.top_p = map.next_value()?,
                "reasoning" => request.reasoning = map.next_value()?,
                "text" => request.text = map.next_value()?,
                "user" => request.user = map.next_value()?,
                "safety_identifier" => request.safety_identifier = map.next_value()?,
                "stream" => request.stream = map.next_value::<Option<bool>>()?.unwrap_or_default(),
                "store" => request.store = map.next_value::<Option<bool>>()?.unwrap_or_default(),
                "metadata" => request.metadata = map.next_value()?,
                field @ ("previous_response_id" | "conversation") => {
                    if map.next_value::<Option<IgnoredAny>>()?.is_some() {
                        let message = format!(
                            "{field} is not supported: glm-proxy stores no responses or conversations; \
                             send the whole history in input"
                        );
                        request.translator.refuse(field, message);
                    }
                }
                _ => drop(map.next_value::<IgnoredAny>()?),
            }
        }
        if !input {
            return Err(de::Error::missing_field("input"));
        }
        Ok(request)
    }
}

/// The input's translation: messages written as they are read.
#[derive(Default)]
struct Translator {
    history: Written,
    /// The assistant message being gathered: its text, then the calls that follow it.
    text: Texts,
    calls: Written,
    tools: ToolTable,
    functions: Written,
    /// The first part of the request that cannot be honoured: its parameter and why.
    unsupported: Option<(String, String)>,
    next_id: usize,
}

impl Translator {
    /// Writes the assistant message gathered so far, if any.
    fn flush(&mut self) {
        if self.text.count > 0 || self.calls.count > 0 {
            self.history.assistant(&self.text.joined, &self.calls);
            self.text = Texts::default();
            self.calls = Written::default();
        }
    }

    fn offer(&mut self, tools: &[Tool]) {
        self.tools.offer(tools, &mut self.functions);
    }

    fn refuse(&mut self, param: &str, message: String) {
        self.unsupported.get_or_insert_with(|| (param.to_owned(), message));
    }

    fn call_id(&mut self, id: Option<Cow<str>>) -> String {
        match id.filter(|id| !id.is_empty()) {
            Some(id) => id.into_owned(),
            None => {
                self.next_id += 1;
                format!("call_glm_proxy_{}", self.next_id)
            }
        }
    }

    fn item<E: de::Error>(&mut self, item: Item) -> Result<(), E> {
        let kind = item.kind.as_deref().unwrap_or("message");
        match kind {
            "message" => self.message(item)?,
            // Gathered with the assistant's text before them: one message, as chat writes it.
            "function_call" | "custom_tool_call" | "local_shell_call" => {
                let name = match (kind, item.namespace.as_deref()) {
                    ("local_shell_call", _) => LOCAL_SHELL.to_owned(),
                    (_, Some(namespace)) => joined(namespace, item.name.as_deref().unwrap_or_default()),
                    (_, None) => item.name.as_deref().unwrap_or_default().to_owned(),
                };
                let arguments = match kind {
                    "function_call" => item.arguments.map_or_else(|| "{}".to_owned(), raw_text),
                    "custom_tool_call" => json!({ "input": item.input.as_deref().unwrap_or_default() }).to_string(),
                    _ => shell_arguments(item.action.as_ref()),
                };
                let id = self.call_id(item.call_id);
                self.calls.call(&id, &name, &arguments);
            }
            "function_call_output" | "custom_tool_call_output" | "local_shell_call_output" => {
                self.flush();
                let id = item.call_id.as_deref().unwrap_or_default().to_owned();
                let output = item.output.map(output_text).unwrap_or_default();
                self.history.message("tool", Some(&id), Content::Text(&output), None);
            }
            "additional_tools" => self.offer(item.tools.as_deref().unwrap_or_default()),
            "item_reference" => {
                self.refuse("input", "item_reference is not supported: glm-proxy stores no items".to_owned())
            }
            // Not ours to read (reasoning, compactions) or run elsewhere (hosted tools' calls).
            _ => log::debug!("event=responses_dropped field=input type={kind:?}"),
        }
        Ok(())
    }

    fn message<E: de::Error>(&mut self, item: Item) -> Result<(), E> {
        let role = item.role.as_deref().ok_or_else(|| E::missing_field("role"))?;
        let content = item.content.ok_or_else(|| E::missing_field("content"))?;
        let parts = Parts::read(content, self).map_err(E::custom)?;
        match role {
            "assistant" => {
                if self.calls.count > 0 {
                    self.flush();
                }
                if parts.texts.count > 0 {
                    self.text.push(&parts.texts.joined);
                }
            }
            "system" | "developer" => {
                self.flush();
                self.history.message("system", None, Content::Text(&parts.texts.joined), None);
            }
            _ => {
                self.flush();
                let content = match parts.has_images {
                    true => Content::Parts(&parts.written.out),
                    false => Content::Text(&parts.texts.joined),
                };
                self.history.message("user", None, content, None);
            }
        }
        Ok(())
    }
}

/// One input item, any kind: which fields count depends on its type, which may come last.
#[derive(Deserialize)]
struct Item<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    role: Option<Cow<'a, str>>,
    #[serde(borrow)]
    content: Option<&'a RawValue>,
    #[serde(borrow)]
    call_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    namespace: Option<Cow<'a, str>>,
    #[serde(borrow)]
    arguments: Option<&'a RawValue>,
    #[serde(borrow)]
    input: Option<Cow<'a, str>>,
    #[serde(borrow)]
    output: Option<&'a RawValue>,
    action: Option<ShellAction>,
    #[serde(borrow)]
    tools: Option<Vec<Tool<'a>>>,
}

#[derive(Deserialize)]
struct ShellAction {
    #[serde(default)]
    command: Vec<String>,
    timeout_ms: Option<u64>,
    working_directory: Option<String>,
}

/// A `local_shell_call`'s action as the arguments of the `local_shell` function.
fn shell_arguments(action: Option<&ShellAction>) -> String {
    let Some(action) = action else { return "{}".to_owned() };
    let mut arguments = json!({ "command": action.command });
    if let Some(workdir) = &action.working_directory {
        arguments["workdir"] = json!(workdir);
    }
    if let Some(timeout) = action.timeout_ms {
        arguments["timeout_ms"] = json!(timeout);
    }
    arguments.to_string()
}

/// A string value as its text; anything else as its compact JSON (arguments sent as an object).
fn raw_text(raw: &RawValue) -> String {
    serde_json::from_str::<String>(raw.get()).unwrap_or_else(|_| compact(raw.get()))
}

/// A tool's output: a string, or the text of its parts (images in it are dropped).
fn output_text(raw: &RawValue) -> String {
    #[derive(Deserialize)]
    struct OutputPart<'a> {
        #[serde(borrow)]
        text: Option<Cow<'a, str>>,
        #[serde(borrow)]
        content: Option<Cow<'a, str>>,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Output<'a> {
        #[serde(borrow)]
        Text(Cow<'a, str>),
        #[serde(borrow)]
        Parts(Vec<OutputPart<'a>>),
        #[serde(borrow)]
        Object(OutputPart<'a>),
    }
    match serde_json::from_str::<Output>(raw.get()) {
        Ok(Output::Text(text)) => text.into_owned(),
        Ok(Output::Parts(parts)) => {
            let mut texts = Texts::default();
            for text in parts.iter().filter_map(|part| part.text.as_deref()) {
                texts.push(text);
            }
            texts.joined
        }
        Ok(Output::Object(part)) => part.content.or(part.text).map(Cow::into_owned).unwrap_or_default(),
        Err(_) => raw.get().to_owned(),
    }
}

/// The `input`: a string is one user message; a list is items, translated one by one.
struct Input<'t>(&'t mut Translator);

its_own_seed!(Input<'_>, (), deserialize_any);

impl<'de> Visitor<'de> for Input<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a string or a list of input items")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<(), E> {
        self.0.history.message("user", None, Content::Text(text), None);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(item) = seq.next_element::<Item>()? {
            self.0.item(item)?;
        }
        Ok(())
    }
}

/// A message's content: its text parts joined, and every part as chat JSON for a message with
/// images.
#[derive(Default)]
struct Parts {
    texts: Texts,
    written: Written,
    has_images: bool,
}

#[derive(Deserialize)]
struct Part<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    refusal: Option<Cow<'a, str>>,
    #[serde(borrow)]
    image_url: Option<&'a RawValue>,
}

impl Parts {
    fn read(content: &RawValue, translator: &mut Translator) -> Result<Self, serde_json::Error> {
        let mut parts = Parts::default();
        PartsVisitor { parts: &mut parts, translator }
            .deserialize(&mut serde_json::Deserializer::from_str(content.get()))?;
        Ok(parts)
    }

    fn part(&mut self, part: Part, translator: &mut Translator) {
        match part.kind.as_ref() {
            "input_text" | "output_text" | "text" | "refusal" => {
                let text = part.text.or(part.refusal).unwrap_or_default();
                self.written.text_part(&text);
                self.texts.push(&text);
            }
            "input_image" => match part.image_url.and_then(image_url) {
                Some(url) => {
                    self.written.image_part(&url);
                    self.has_images = true;
                }
                None => translator.refuse(
                    "input",
                    "input_image needs an image_url (a URL or a data: URL): glm-proxy stores no files".to_owned(),
                ),
            },
            "input_file" => translator.refuse(
                "input",
                "input_file is not supported: send the file's text as input_text, or an image as input_image"
                    .to_owned(),
            ),
            other => log::debug!("event=responses_dropped field=content type={other:?}"),
        }
    }
}

/// An image's URL: a string, or an object with `url`.
fn image_url(raw: &RawValue) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Url {
        Text(String),
        Object { url: String },
    }
    match serde_json::from_str::<Url>(raw.get()).ok()? {
        Url::Text(url) | Url::Object { url } => Some(url),
    }
}

struct PartsVisitor<'p, 't> {
    parts: &'p mut Parts,
    translator: &'t mut Translator,
}

its_own_seed!(PartsVisitor<'_, '_>, (), deserialize_any);

impl<'de> Visitor<'de> for PartsVisitor<'_, '_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a string or a list of content parts")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<(), E> {
        self.parts.written.text_part(text);
        self.parts.texts.push(text);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(part) = seq.next_element::<Part>()? {
            self.parts.part(part, self.translator);
        }
        Ok(())
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
    fn a_plain_string_input_is_one_user_message_after_the_instructions() {
        let (chat, asked) = chat(json!({
            "model": "glm", "instructions": "Be brief.", "input": "Hello", "stream": true, "store": false,
            "max_output_tokens": 100, "temperature": 0.5, "top_p": 0.9, "user": "u-1",
            "include": ["reasoning.encrypted_content"], "prompt_cache_key": "k", "client_metadata": {"x": "y"}
        }));
        assert_eq!(
            chat,
            json!({
                "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
                "model": "glm", "max_tokens": 100, "temperature": 0.5, "top_p": 0.9, "user": "u-1",
                "stream": true, "stream_options": {"include_usage": true}
            })
        );
        assert_eq!((asked.model.as_str(), asked.stream, asked.echo.max_output_tokens), ("glm", true, Some(100)));
    }

    #[test]
    fn codex_history_becomes_chat_messages_with_calls_grouped() {
        let (chat, _) = chat(json!({
            "model": "glm",
            "input": [
                {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Rules."}, {"type": "input_text", "text": "More."}]},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "List files"}]},
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Looking."}]},
                {"type": "function_call", "call_id": "call_1", "name": "exec_command", "arguments": "{\"cmd\":\"ls\"}"},
                {"type": "function_call", "call_id": "call_2", "name": "close_agent", "namespace": "multi_agent_v1", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "a.rs"},
                {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "closed"}]},
                {"type": "custom_tool_call", "call_id": "call_3", "name": "apply_patch", "input": "*** Begin Patch"},
                {"type": "custom_tool_call_output", "call_id": "call_3", "output": "Done"},
                {"type": "local_shell_call", "call_id": "call_4", "status": "completed",
                 "action": {"type": "exec", "command": ["ls", "-la"], "working_directory": "/w", "timeout_ms": 500}},
                {"type": "local_shell_call_output", "call_id": "call_4", "output": "total 0"},
                {"role": "user", "content": "Thanks"}
            ]
        }));
        assert_eq!(
            chat["messages"],
            json!([
                {"role": "system", "content": "Rules.\n\nMore."},
                {"role": "user", "content": "List files"},
                {"role": "assistant", "content": "Looking.", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "exec_command", "arguments": "{\"cmd\":\"ls\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "multi_agent_v1__close_agent", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "a.rs"},
                {"role": "tool", "tool_call_id": "call_2", "content": "closed"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_3", "type": "function", "function": {"name": "apply_patch", "arguments": "{\"input\":\"*** Begin Patch\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_3", "content": "Done"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_4", "type": "function", "function": {"name": "local_shell",
                     "arguments": "{\"command\":[\"ls\",\"-la\"],\"workdir\":\"/w\",\"timeout_ms\":500}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_4", "content": "total 0"},
                {"role": "user", "content": "Thanks"}
            ])
        );
    }

    #[test]
    fn images_become_image_url_parts_and_files_are_refused() {
        let (chat, _) = chat(json!({"model": "m", "input": [{"role": "user", "content": [
            {"type": "input_text", "text": "What is this?"},
            {"type": "input_image", "image_url": "data:image/png;base64,iVBOR", "detail": "auto"}
        ]}]}));
        assert_eq!(
            chat["messages"][0]["content"],
            json!([{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}])
        );
        let file =
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]});
        match to_chat(file.to_string().as_bytes()) {
            Err(ProxyError::Unsupported { param, message }) => {
                assert_eq!(param, "input");
                assert!(message.contains("input_file"), "{message}");
            }
            other => panic!("{:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn tools_tool_choice_and_settings_translate() {
        let request = |choice: Value| {
            json!({"model": "m", "input": "hi", "tool_choice": choice, "parallel_tool_calls": false,
                   "reasoning": {"effort": "minimal", "summary": "auto"},
                   "text": {"format": {"type": "json_schema", "name": "answer", "schema": {"type": "object"}, "strict": true}},
                   "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}},
                             {"type": "namespace", "name": "ns", "tools": [{"type": "function", "name": "g"}]},
                             {"type": "web_search"}]})
        };
        let (translated, asked) = chat(request(json!("required")));
        assert_eq!(translated["tools"].as_array().unwrap().len(), 2, "the hosted tool is not sent");
        assert_eq!(
            (translated["tool_choice"].as_str(), translated["parallel_tool_calls"].as_bool()),
            (Some("required"), Some(false))
        );
        assert_eq!(translated["reasoning_effort"], "low");
        assert_eq!(
            translated["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": true}})
        );
        assert_eq!(asked.echo.reasoning_summary.as_deref(), Some("auto"));
        let named = chat(request(json!({"type": "function", "name": "g", "namespace": "ns"}))).0;
        assert_eq!(named["tool_choice"], json!({"type": "function", "function": {"name": "ns__g"}}));
        let hosted = chat(request(json!({"type": "web_search_preview"}))).0;
        assert!(hosted.get("tool_choice").is_none());
        let without_tools =
            chat(json!({"model": "m", "input": "hi", "tool_choice": "auto", "parallel_tool_calls": true})).0;
        assert!(without_tools.get("tool_choice").is_none() && without_tools.get("parallel_tool_calls").is_none());
        let json_object = chat(json!({"model": "m", "input": "hi", "text": {"format": {"type": "json_object"}}})).0;
        assert_eq!(json_object["response_format"], json!({"type": "json_object"}));
    }

    #[test]
    fn stored_state_is_refused_naming_the_field_and_null_is_no_state() {
        for field in ["previous_response_id", "conversation"] {
            let mut request = json!({"model": "m", "input": "hi"});
            request[field] = json!("resp_1");
            match to_chat(request.to_string().as_bytes()) {
                Err(ProxyError::Unsupported { param, .. }) => assert_eq!(param, field),
                other => panic!("{field}: {:?}", other.map(|_| ())),
            }
            request[field] = Value::Null;
            assert!(to_chat(request.to_string().as_bytes()).is_ok());
        }
    }

    #[test]
    fn a_body_that_is_no_responses_request_is_refused() {
        let refused = [
            &b"not json"[..],
            b"[]",
            b"{}",
            br#"{"model": "m", "input": 5}"#,
            br#"{"model": "m", "input": [{"role": "user"}]}"#,
            br#"{"model": "m", "input": [{"type": "message", "content": "x"}]}"#,
            br#"{"model": "m", "input": [], "input": []}"#,
            br#"{"model": "m", "input": "x"} trailing"#,
        ];
        for body in refused {
            assert!(matches!(to_chat(body), Err(ProxyError::InvalidBody(_))), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn ten_thousand_small_items_translate_into_a_body_no_larger() {
        let item = r#"{"type":"message","role":"user","content":[{"type":"input_text","text":""}]},"#;
        let mut body = String::from(r#"{"model":"m","input":["#);
        body.push_str(&item.repeat(10_000));
        body.push_str(r#"{"role":"user","content":"end"}]}"#);
        let (chat, _) = to_chat(body.as_bytes()).unwrap();
        assert!(chat.len() < body.len(), "{} bytes from {}", chat.len(), body.len());
        let chat: Value = serde_json::from_slice(&chat).unwrap();
        assert_eq!(chat["messages"].as_array().unwrap().len(), 10_001);
    }
}
