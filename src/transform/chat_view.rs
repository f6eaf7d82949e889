//! What the proxy reads from a chat completion, in one pass over the client's bytes.
//!
//! Routing needs the size of the text and whether images come along; tool-call repair needs
//! each message's role and tool-call ids. Both are read here without building a JSON tree:
//! text is counted where it lies, and only roles and ids are kept, borrowed from the body
//! unless they hold escapes. An agent's request is often 100 KB or more, so this pass is most
//! of what the proxy does to a request, and it reads only what the route can depend on.
//!
//! Odd shapes (a number for `content`, a string for `messages`) count as nothing rather than
//! fail: the provider is the judge of those. Only a body that is not JSON, or not an object,
//! is refused.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::transform::json_strict;
use crate::transform::model::ModelSlot;
use crate::transform::token_estimate::ChatFacts;
use crate::transform::tool_repair::HistoryMessage;

/// A chat completion as routing and repair see it.
#[derive(Debug)]
pub struct ChatView<'a> {
    pub facts: ChatFacts,
    pub messages: Vec<MessageView<'a>>,
    /// The `model` the client asked for, when it is a string.
    pub model: Option<Cow<'a, str>>,
    /// Whether the client asked for a stream, and for its usage (`stream_options.include_usage`).
    pub stream: StreamAsk,
    /// Where the `model` goes in the body, to be replaced without a parse.
    pub model_slot: ModelSlot,
}

/// One message of the history, as far as tool-call repair cares. Only this is kept of a
/// message, so the view stays a small multiple of the body whatever the history holds.
#[derive(Debug, PartialEq, Eq)]
pub enum MessageView<'a> {
    /// An assistant message with tool calls: their ids, in call order.
    Calls(Vec<Cow<'a, str>>),
    /// A `tool` message, and the call id it answers.
    ToolResult(Option<Cow<'a, str>>),
    /// Any other message, or anything else in the array: it closes the open block of calls.
    /// A run of them is kept as one, since the second and later close nothing.
    Other,
}

impl HistoryMessage for MessageView<'_> {
    type Id<'a>
        = &'a str
    where
        Self: 'a;

    fn answers(&self) -> Option<Option<&str>> {
        match self {
            Self::ToolResult(id) => Some(id.as_deref()),
            Self::Calls(_) | Self::Other => None,
        }
    }

    fn call_ids(&self) -> impl Iterator<Item = &str> {
        let ids = match self {
            Self::Calls(ids) => ids.as_slice(),
            Self::ToolResult(_) | Self::Other => &[],
        };
        ids.iter().map(AsRef::as_ref)
    }
}

/// What a pass reads besides the history. Counting text unescapes every string, which is most
/// of the work on a long body, so routing asks for it only when the count can change the route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    pub count_text: bool,
    pub find_images: bool,
}

impl Reading {
    pub const EVERYTHING: Reading = Reading { count_text: true, find_images: true };
}

/// Why a body is no chat completion.
#[derive(Debug, thiserror::Error)]
pub enum ChatBodyError {
    #[error("request body is not valid JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("request body is not valid JSON: {0}")]
    NotUtf8(std::str::Utf8Error),
    #[error("request body must be a JSON object")]
    NotAnObject,
}

impl<'a> ChatView<'a> {
    /// Reads the body. Without `count_text`, `facts.chars` is the body's length instead: a
    /// JSON text holds at least one byte for each character of its strings, so that is a bound.
    pub fn read(body: &'a [u8], reading: Reading) -> Result<Self, ChatBodyError> {
        // Checked whole up front (it is cheap): text that is skipped, not read, is checked too.
        let body = std::str::from_utf8(body).map_err(ChatBodyError::NotUtf8)?;
        let mut deserializer = serde_json::Deserializer::from_str(body);
        let chat =
            Lenient::<Option<Chat>>::new(reading).deserialize(&mut deserializer).map_err(ChatBodyError::NotJson)?;
        deserializer.end().map_err(ChatBodyError::NotJson)?;
        let Chat { messages, tools, model, entries, stream, stream_options } =
            chat.ok_or(ChatBodyError::NotAnObject)?;
        let stream = StreamAsk {
            stream: stream.is_some_and(|raw| raw.get() == "true"),
            options: stream_options.map(|raw| {
                let start = raw.get().as_ptr() as usize - body.as_ptr() as usize;
                start..start + raw.get().len()
            }),
            usage: stream_options.is_some_and(|raw| {
                serde_json::from_str::<serde_json::Value>(raw.get()).is_ok_and(|v| v["include_usage"] == true)
            }),
            brace: body.len() - body.trim_start().len(),
        };
        let chars = if reading.count_text { tools.0 + messages.chars } else { body.len() };
        let facts = ChatFacts { chars, has_images: messages.has_images };
        let model_slot = match model {
            // The raw value borrows from `body`: its place is where it lies in it.
            Some(raw) => ModelSlot::Value({
                let start = raw.get().as_ptr() as usize - body.as_ptr() as usize;
                start..start + raw.get().len()
            }),
            None => ModelSlot::Absent { brace: body.len() - body.trim_start().len(), alone: entries == 0 },
        };
        let model = match model {
            Some(raw) => {
                Lenient::<Text>::new(reading)
                    .deserialize(&mut serde_json::Deserializer::from_str(raw.get()))
                    .map_err(ChatBodyError::NotJson)?
                    .0
            }
            None => None,
        };
        Ok(ChatView { facts, messages: messages.view, model, stream, model_slot })
    }
}

/// One element of a history, from its own bytes, as [`ChatView::read`] saw it in the body.
pub fn message_view(raw: &RawValue) -> Result<MessageView<'_>, serde_json::Error> {
    let reading = Reading { count_text: false, find_images: false };
    let message = Lenient::<Message>::new(reading).deserialize(&mut serde_json::Deserializer::from_str(raw.get()))?;
    Ok(message.view())
}

/// A value whose JSON type may be anything: each type it does not expect reads as the default.
trait Shape<'de>: Default {
    fn from_str(_text: &str) -> Self {
        Self::default()
    }
    /// A string with no escapes, which can be kept without copying.
    fn from_borrowed_str(text: &'de str) -> Self {
        Self::from_str(text)
    }
    fn from_seq<A: SeqAccess<'de>>(mut seq: A, _reading: Reading) -> Result<Self, A::Error> {
        while let Some(raw) = seq.next_element::<&RawValue>()? {
            checked(raw)?;
        }
        Ok(Self::default())
    }
    fn from_map<A: MapAccess<'de>>(mut map: A, reading: Reading) -> Result<Self, A::Error> {
        while let Some(Text(_)) = map.next_key_seed(Lenient::new(reading))? {
            skip(&mut map)?;
        }
        Ok(Self::default())
    }
}

/// Reads any JSON value into the shape `T`, passing the reading down.
struct Lenient<T>(Reading, PhantomData<T>);

impl<T> Lenient<T> {
    fn new(reading: Reading) -> Self {
        Lenient(reading, PhantomData)
    }
}

impl<'de, T: Shape<'de>> DeserializeSeed<'de> for Lenient<T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, T: Shape<'de>> Visitor<'de> for Lenient<T> {
    type Value = T;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_i64<E>(self, _: i64) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_u64<E>(self, _: u64) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_f64<E>(self, _: f64) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_unit<E>(self) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_str<E>(self, text: &str) -> Result<T, E> {
        Ok(T::from_str(text))
    }
    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<T, E> {
        Ok(T::from_borrowed_str(text))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        T::from_seq(seq, self.0)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::from_map(map, self.0)
    }
}

/// Reads a map's entries, handing each value to `read` by its key.
fn each_entry<'de, A, F>(mut map: A, reading: Reading, mut read: F) -> Result<(), A::Error>
where
    A: MapAccess<'de>,
    F: FnMut(&str, &mut A) -> Result<(), A::Error>,
{
    while let Some(Text(key)) = map.next_key_seed(Lenient::new(reading))? {
        read(key.as_deref().unwrap_or_default(), &mut map)?;
    }
    Ok(())
}

fn value<'de, T: Shape<'de>, A: MapAccess<'de>>(map: &mut A, reading: Reading) -> Result<T, A::Error> {
    map.next_value_seed(Lenient::new(reading))
}

/// Text that only counts toward the size: skipped unread when the size cannot matter.
fn text<'de, T: Shape<'de>, A: MapAccess<'de>>(map: &mut A, reading: Reading) -> Result<T, A::Error> {
    if reading.count_text {
        value(map, reading)
    } else {
        skip(map).map(|()| T::default())
    }
}

fn skip<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    checked(map.next_value::<&RawValue>()?)
}

/// A value passed over unparsed, held to what serde_json's full parse would accept: skipping
/// does not check numbers' range nor escapes, and invalid JSON is the proxy's to refuse, before
/// any provider is tried (see `json_strict`).
fn checked<E: de::Error>(raw: &RawValue) -> Result<(), E> {
    json_strict::check_value(raw.get()).map_err(E::custom)
}

/// A string kept for its value: a role, an id, a part's type.
#[derive(Default)]
struct Text<'de>(Option<Cow<'de, str>>);

impl<'de> Shape<'de> for Text<'de> {
    fn from_str(text: &str) -> Self {
        Text(Some(Cow::Owned(text.to_owned())))
    }
    fn from_borrowed_str(text: &'de str) -> Self {
        Text(Some(Cow::Borrowed(text)))
    }
}

/// A string counted in characters and dropped.
#[derive(Default)]
struct Chars(usize);

impl Shape<'_> for Chars {
    fn from_str(text: &str) -> Self {
        Chars(text.chars().count())
    }
}

/// Every character of every key and string inside a value: the tool definitions.
#[derive(Default)]
struct AllChars(usize);

impl<'de> Shape<'de> for AllChars {
    fn from_str(text: &str) -> Self {
        AllChars(text.chars().count())
    }
    fn from_seq<A: SeqAccess<'de>>(mut seq: A, reading: Reading) -> Result<Self, A::Error> {
        let mut total = 0;
        while let Some(AllChars(chars)) = seq.next_element_seed(Lenient::new(reading))? {
            total += chars;
        }
        Ok(AllChars(total))
    }
    fn from_map<A: MapAccess<'de>>(mut map: A, reading: Reading) -> Result<Self, A::Error> {
        let mut total = 0;
        while let Some(Chars(key)) = map.next_key_seed(Lenient::new(reading))? {
            let AllChars(value) = map.next_value_seed(Lenient::new(reading))?;
            total += key + value;
        }
        Ok(AllChars(total))
    }
}

/// The body's top level: `None` when it is JSON but not an object.
impl<'de> Shape<'de> for Option<Chat<'de>> {
    fn from_map<A: MapAccess<'de>>(map: A, reading: Reading) -> Result<Self, A::Error> {
        Chat::from_map(map, reading).map(Some)
    }
}

#[derive(Default)]
struct Chat<'de> {
    messages: Messages<'de>,
    tools: AllChars,
    /// The last `model` given, as serde_json (and providers) read a repeated field.
    model: Option<&'de RawValue>,
    /// How many fields the object has.
    entries: usize,
    stream: Option<&'de RawValue>,
    stream_options: Option<&'de RawValue>,
}

impl<'de> Shape<'de> for Chat<'de> {
    fn from_map<A: MapAccess<'de>>(map: A, reading: Reading) -> Result<Self, A::Error> {
        let mut chat = Chat::default();
        each_entry(map, reading, |key, map| {
            chat.entries += 1;
            match key {
                "messages" => chat.messages = value(map, reading)?,
                "tools" => chat.tools = text(map, reading)?,
                "model" => chat.model = Some(raw(map)?),
                "stream" => chat.stream = Some(raw(map)?),
                "stream_options" => chat.stream_options = Some(raw(map)?),
                _ => skip(map)?,
            }
            Ok(())
        })?;
        Ok(chat)
    }
}

/// An entry's value as it lies in the body, checked.
fn raw<'de, A: MapAccess<'de>>(map: &mut A) -> Result<&'de RawValue, A::Error> {
    let raw = map.next_value::<&RawValue>()?;
    checked(raw)?;
    Ok(raw)
}

/// What a chat asks of the stream, and where its `stream_options` lie, to ask for the usage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamAsk {
    pub stream: bool,
    /// The bytes of the `stream_options` value.
    pub options: Option<Range<usize>>,
    /// Whether it asks for the usage chunk.
    pub usage: bool,
    /// Where the body's opening brace is.
    pub brace: usize,
}

/// The history: its view for repair, and what its messages add to the facts.
#[derive(Default)]
struct Messages<'de> {
    view: Vec<MessageView<'de>>,
    chars: usize,
    has_images: bool,
}

impl<'de> Shape<'de> for Messages<'de> {
    fn from_seq<A: SeqAccess<'de>>(mut seq: A, reading: Reading) -> Result<Self, A::Error> {
        let mut messages = Messages::default();
        while let Some(message) = seq.next_element_seed(Lenient::<Message>::new(reading))? {
            messages.chars += message.content.chars + message.calls_chars;
            messages.has_images |= message.content.has_images;
            let entry = message.view();
            if !(entry == MessageView::Other && messages.view.last() == Some(&MessageView::Other)) {
                messages.view.push(entry);
            }
        }
        Ok(messages)
    }
}

/// A message: what repair needs of it, and what it adds to the facts. A field given twice
/// counts once, as its last value, as serde_json (and providers) read it.
#[derive(Default)]
struct Message<'de> {
    role: Option<Cow<'de, str>>,
    tool_call_id: Option<Cow<'de, str>>,
    call_ids: Vec<Cow<'de, str>>,
    content: Content,
    /// The characters of the tool calls' names and arguments.
    calls_chars: usize,
}

impl<'de> Message<'de> {
    fn view(self) -> MessageView<'de> {
        match self.role.as_deref() {
            Some("tool") => MessageView::ToolResult(self.tool_call_id),
            Some("assistant") if !self.call_ids.is_empty() => MessageView::Calls(self.call_ids),
            _ => MessageView::Other,
        }
    }
}

impl<'de> Shape<'de> for Message<'de> {
    fn from_map<A: MapAccess<'de>>(map: A, reading: Reading) -> Result<Self, A::Error> {
        let mut message = Message::default();
        each_entry(map, reading, |key, map| {
            match key {
                "role" => message.role = value::<Text, _>(map, reading)?.0,
                "tool_call_id" => message.tool_call_id = value::<Text, _>(map, reading)?.0,
                "content" if reading.count_text || reading.find_images => {
                    message.content =
                        if reading.count_text { value(map, reading)? } else { listed(map.next_value()?, reading)? };
                }
                "tool_calls" => {
                    let ToolCalls { ids, chars } = value(map, reading)?;
                    message.call_ids = ids;
                    message.calls_chars = chars;
                }
                _ => skip(map)?,
            }
            Ok(())
        })?;
        Ok(message)
    }
}

/// A message's content: a string, or a list of parts of which some are images.
#[derive(Default)]
struct Content {
    chars: usize,
    has_images: bool,
}

impl<'de> Shape<'de> for Content {
    fn from_str(text: &str) -> Self {
        Content { chars: Chars::from_str(text).0, has_images: false }
    }
    fn from_seq<A: SeqAccess<'de>>(mut seq: A, reading: Reading) -> Result<Self, A::Error> {
        let mut content = Content::default();
        while let Some(part) = seq.next_element_seed(Lenient::<Part>::new(reading))? {
            content.has_images |= part.kind.as_deref() == Some("image_url");
            content.chars += part.text;
        }
        Ok(content)
    }
}

/// A content that is not counted: a string is passed over unread, since unescaping it is the
/// cost being saved; a list is read again for its parts, which may be images.
fn listed<E: de::Error>(json: &RawValue, reading: Reading) -> Result<Content, E> {
    if !json.get().starts_with('[') {
        return checked(json).map(|()| Content::default());
    }
    let mut parts = serde_json::Deserializer::from_str(json.get());
    Lenient::<Content>::new(reading).deserialize(&mut parts).map_err(E::custom)
}

#[derive(Default)]
struct Part<'de> {
    kind: Option<Cow<'de, str>>,
    text: usize,
}

impl<'de> Shape<'de> for Part<'de> {
    fn from_map<A: MapAccess<'de>>(map: A, reading: Reading) -> Result<Self, A::Error> {
        let mut part = Part::default();
        each_entry(map, reading, |key, map| {
            match key {
                "type" => part.kind = value::<Text, _>(map, reading)?.0,
                "text" => part.text = text::<Chars, _>(map, reading)?.0,
                _ => skip(map)?,
            }
            Ok(())
        })?;
        Ok(part)
    }
}

/// An assistant's tool calls: their ids, and the characters of their names and arguments.
#[derive(Default)]
struct ToolCalls<'de> {
    ids: Vec<Cow<'de, str>>,
    chars: usize,
}

impl<'de> Shape<'de> for ToolCalls<'de> {
    fn from_seq<A: SeqAccess<'de>>(mut seq: A, reading: Reading) -> Result<Self, A::Error> {
        let mut calls = ToolCalls::default();
        while let Some(call) = seq.next_element_seed(Lenient::<ToolCall>::new(reading))? {
            calls.ids.extend(call.id);
            calls.chars += call.chars;
        }
        Ok(calls)
    }
}

#[derive(Default)]
struct ToolCall<'de> {
    id: Option<Cow<'de, str>>,
    chars: usize,
}

impl<'de> Shape<'de> for ToolCall<'de> {
    fn from_map<A: MapAccess<'de>>(map: A, reading: Reading) -> Result<Self, A::Error> {
        let mut call = ToolCall::default();
        each_entry(map, reading, |key, map| {
            match key {
                "id" => call.id = value::<Text, _>(map, reading)?.0,
                "function" => call.chars = text::<Function, _>(map, reading)?.0,
                _ => skip(map)?,
            }
            Ok(())
        })?;
        Ok(call)
    }
}

/// The characters of a function call's name and arguments.
#[derive(Default)]
struct Function(usize);

impl<'de> Shape<'de> for Function {
    fn from_map<A: MapAccess<'de>>(map: A, reading: Reading) -> Result<Self, A::Error> {
        let (mut name, mut arguments) = (0, 0);
        each_entry(map, reading, |key, map| {
            match key {
                "name" => name = value::<Chars, _>(map, reading)?.0,
                "arguments" => arguments = value::<Chars, _>(map, reading)?.0,
                _ => skip(map)?,
            }
            Ok(())
        })?;
        Ok(Function(name + arguments))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn facts(body: Value) -> ChatFacts {
        ChatView::read(body.to_string().as_bytes(), Reading::EVERYTHING).unwrap().facts
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
        // 4 + 2 + 3 + 2 + 2 + 5, and the tools: "type" + "function"
        assert_eq!(facts(body), ChatFacts { chars: 30, has_images: false });
    }

    #[test]
    fn escaped_text_counts_as_the_characters_it_stands_for() {
        let body = br#"{"messages":[{"role":"user","content":"a\nb\"c\u00e9"}]}"#;
        assert_eq!(ChatView::read(body, Reading::EVERYTHING).unwrap().facts.chars, 6);
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
    fn keeps_roles_and_call_ids_borrowed_unless_escaped() {
        let body = br#"{"messages":[{"role":"assistant","tool_calls":[{"id":"a"},{"id":"b\"2"}]},{"role":"tool","tool_call_id":"a"}]}"#;
        let view = ChatView::read(body, Reading::EVERYTHING).unwrap();
        let MessageView::Calls(ids) = &view.messages[0] else { panic!("{:?}", view.messages) };
        assert!(matches!(ids[0], Cow::Borrowed("a")));
        assert!(matches!(&ids[1], Cow::Owned(id) if id == "b\"2"));
        assert_eq!(view.messages[1], MessageView::ToolResult(Some(Cow::Borrowed("a"))));
    }

    #[test]
    fn text_is_not_counted_unless_asked_and_the_bound_is_the_length() {
        let body = json!({"messages": [
            {"role": "user", "content": [{"type": "text", "text": "a\nb"}, {"type": "image_url", "image_url": {"url": "x"}}]},
            {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "ls", "arguments": "{}"}}]},
        ]})
        .to_string();
        let images_only = ChatView::read(body.as_bytes(), Reading { count_text: false, find_images: true }).unwrap();
        assert_eq!(images_only.facts, ChatFacts { chars: body.len(), has_images: true });
        let calls = MessageView::Calls(vec![Cow::Borrowed("c1")]);
        assert_eq!(images_only.messages[1], calls, "the history is read all the same");
        let history_only = ChatView::read(body.as_bytes(), Reading { count_text: false, find_images: false }).unwrap();
        assert!(!history_only.facts.has_images);
        assert_eq!(history_only.messages[1], calls);
        let counted = ChatView::read(body.as_bytes(), Reading::EVERYTHING).unwrap().facts;
        assert_eq!(counted, ChatFacts { chars: 7, has_images: true });
    }

    #[test]
    fn only_what_repair_needs_is_kept_and_runs_of_other_messages_as_one() {
        let body = br#"{"messages":[0,0,{"role":"user","content":"x"},"y",{"role":"assistant","tool_calls":[]},
            {"role":"assistant","tool_calls":[{"id":"a"}]},{"role":"tool","tool_call_id":"a"},{"role":"tool"},null,[1]]}"#;
        let view = ChatView::read(body, Reading::EVERYTHING).unwrap();
        let calls = MessageView::Calls(vec![Cow::Borrowed("a")]);
        let expected = [
            MessageView::Other,
            calls,
            MessageView::ToolResult(Some("a".into())),
            MessageView::ToolResult(None),
            MessageView::Other,
        ];
        assert_eq!(view.messages, expected);
    }

    #[test]
    fn only_json_objects_are_chat_bodies() {
        assert!(ChatView::read(br#"{"model":"m","messages":[]}"#, Reading::EVERYTHING).is_ok());
        assert!(matches!(ChatView::read(b"[1,2]", Reading::EVERYTHING), Err(ChatBodyError::NotAnObject)));
        assert!(matches!(ChatView::read(b"\"text\"", Reading::EVERYTHING), Err(ChatBodyError::NotAnObject)));
        let not_utf8 = b"{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}";
        assert!(matches!(ChatView::read(not_utf8, Reading::EVERYTHING), Err(ChatBodyError::NotUtf8(_))));
        for broken in [&b""[..], b"{\"model\":", b"{} trailing", b"{\"messages\":[}"] {
            assert!(
                matches!(ChatView::read(broken, Reading::EVERYTHING), Err(ChatBodyError::NotJson(_))),
                "{broken:?}"
            );
        }
    }

    mod against_serde_json {
        //! The lighter reader against serde_json's full parse, on generated chat bodies and on
        //! bodies mutated byte by byte: both accept and agree on the facts and the history, or
        //! the reader rejects what serde_json rejects.

        use super::*;
        use proptest::prelude::*;

        fn text() -> impl Strategy<Value = String> {
            prop_oneof![
                prop::collection::vec(prop::char::any(), 0..12).prop_map(|c| c.into_iter().collect()),
                prop::sample::select(vec![
                    "user",
                    "assistant",
                    "tool",
                    "system",
                    "text",
                    "image_url",
                    "id",
                    "a\"b",
                    "é\n"
                ])
                .prop_map(str::to_owned),
            ]
        }

        fn scalar() -> impl Strategy<Value = Value> {
            prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
                text().prop_map(Value::from),
            ]
        }

        /// Any JSON, with chat-shaped keys more likely than not.
        fn any_json() -> impl Strategy<Value = Value> {
            scalar().prop_recursive(4, 48, 6, |inner| {
                let key = prop_oneof![
                    prop::sample::select(vec![
                        "role",
                        "content",
                        "type",
                        "text",
                        "tool_calls",
                        "tool_call_id",
                        "id",
                        "function",
                        "name",
                        "arguments",
                        "image_url",
                        "messages",
                        "tools",
                    ])
                    .prop_map(str::to_owned),
                    text(),
                ];
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::btree_map(key, inner, 0..6)
                        .prop_map(|map| Value::Object(map.into_iter().collect())),
                ]
            })
        }

        fn message() -> impl Strategy<Value = Value> {
            let role = prop::sample::select(vec!["user", "assistant", "tool", "system"]);
            let part = (prop::sample::select(vec!["text", "image_url"]), text())
                .prop_map(|(kind, text)| json!({"type": kind, "text": text, "image_url": {"url": "x"}}));
            let content = prop_oneof![
                text().prop_map(Value::from),
                prop::collection::vec(part, 0..3).prop_map(Value::Array),
                any_json()
            ];
            let call = (text(), text(), text()).prop_map(|(id, name, arguments)| {
                json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
            });
            let calls = prop::option::of(prop::collection::vec(call, 0..3));
            (role, content, calls, prop::option::of(text()), any_json()).prop_map(
                |(role, content, calls, answers, extra)| {
                    let mut message = json!({"role": role, "content": content, "extra": extra});
                    if let Some(calls) = calls {
                        message["tool_calls"] = Value::Array(calls);
                    }
                    if let Some(id) = answers {
                        message["tool_call_id"] = Value::from(id);
                    }
                    message
                },
            )
        }

        fn chat() -> impl Strategy<Value = Value> {
            let messages = prop::collection::vec(prop_oneof![4 => message(), 1 => any_json()], 0..8);
            (messages, any_json(), any_json()).prop_map(
                |(messages, tools, other)| json!({"model": "m", "messages": messages, "tools": tools, "other": other}),
            )
        }

        /// A body as the generators write it, then cut, extended or with bytes flipped.
        fn body() -> impl Strategy<Value = Vec<u8>> {
            // Bytes, and the pieces a byte rarely makes: surrogate escapes, numbers near the limits.
            let piece = prop_oneof![
                any::<u8>().prop_map(|byte| vec![byte]),
                prop::sample::select(vec![
                    r"\ud800",
                    r"\udc00",
                    r"\ud83d\ude00",
                    "1e400",
                    "-1e-400",
                    "9e308",
                    "1.7e308"
                ])
                .prop_map(|piece| piece.as_bytes().to_vec()),
            ];
            let edit = prop::option::of((any::<prop::sample::Index>(), piece, any::<bool>()));
            (prop_oneof![chat(), any_json()], edit).prop_map(|(json, edit)| {
                let mut bytes = json.to_string().into_bytes();
                if let Some((at, piece, replace)) = edit {
                    let at = at.index(bytes.len() + 1);
                    let end = if replace { (at + piece.len()).min(bytes.len()) } else { at };
                    bytes.splice(at..end, piece);
                }
                bytes
            })
        }

        fn chars(value: &Value) -> usize {
            value.as_str().map_or(0, |s| s.chars().count())
        }

        /// Whether some object in the body gives a key twice.
        fn has_duplicate_keys(body: &[u8]) -> bool {
            struct Duplicates;
            impl<'de> Visitor<'de> for Duplicates {
                type Value = bool;
                fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                    formatter.write_str("JSON")
                }
                fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
                    Ok(false)
                }
                fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
                    Ok(false)
                }
                fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
                    Ok(false)
                }
                fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
                    Ok(false)
                }
                fn visit_str<E>(self, _: &str) -> Result<bool, E> {
                    Ok(false)
                }
                fn visit_unit<E>(self) -> Result<bool, E> {
                    Ok(false)
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
                    let mut found = false;
                    while let Some(inner) = seq.next_element_seed(Duplicates)? {
                        found |= inner;
                    }
                    Ok(found)
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
                    let (mut keys, mut found) = (std::collections::HashSet::new(), false);
                    while let Some(key) = map.next_key::<String>()? {
                        found |= !keys.insert(key);
                        found |= map.next_value_seed(Duplicates)?;
                    }
                    Ok(found)
                }
            }
            impl<'de> DeserializeSeed<'de> for Duplicates {
                type Value = bool;
                fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
                    deserializer.deserialize_any(self)
                }
            }
            Duplicates.deserialize(&mut serde_json::Deserializer::from_slice(body)).unwrap_or(false)
        }

        /// Every key and string inside a value: how the tools count.
        fn all_chars(value: &Value) -> usize {
            match value {
                Value::String(s) => s.chars().count(),
                Value::Array(items) => items.iter().map(all_chars).sum(),
                Value::Object(map) => map.iter().map(|(k, v)| k.chars().count() + all_chars(v)).sum(),
                _ => 0,
            }
        }

        /// The facts and history the rules in the module doc say a parsed body holds.
        fn expected(chat: &serde_json::Map<String, Value>) -> (ChatFacts, Vec<MessageView<'_>>) {
            let mut facts = ChatFacts { chars: chat.get("tools").map_or(0, all_chars), has_images: false };
            let mut view: Vec<MessageView> = Vec::new();
            let messages = chat.get("messages").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
            for message in messages {
                let field = |name: &str| message.get(name).filter(|_| message.is_object());
                match field("content") {
                    Some(Value::Array(parts)) => {
                        for part in parts.iter().filter(|p| p.is_object()) {
                            facts.chars += part.get("text").map_or(0, chars);
                            facts.has_images |= part.get("type").and_then(Value::as_str) == Some("image_url");
                        }
                    }
                    Some(content) => facts.chars += chars(content),
                    None => {}
                }
                let calls = field("tool_calls").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
                let mut ids = Vec::new();
                for call in calls.iter().filter(|c| c.is_object()) {
                    if let Some(id) = call.get("id").and_then(Value::as_str) {
                        ids.push(Cow::Borrowed(id));
                    }
                    if let Some(function) = call.get("function").filter(|f| f.is_object()) {
                        facts.chars +=
                            function.get("name").map_or(0, chars) + function.get("arguments").map_or(0, chars);
                    }
                }
                let entry = match field("role").and_then(Value::as_str) {
                    Some("tool") => {
                        MessageView::ToolResult(field("tool_call_id").and_then(Value::as_str).map(Cow::Borrowed))
                    }
                    Some("assistant") if !ids.is_empty() => MessageView::Calls(ids),
                    _ => MessageView::Other,
                };
                if !(entry == MessageView::Other && view.last() == Some(&MessageView::Other)) {
                    view.push(entry);
                }
            }
            (facts, view)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// One difference is allowed: a key given twice inside `tools` counts twice there (an
            /// estimate a little high), where serde_json keeps the last.
            #[test]
            fn the_reader_agrees_with_serde_json_or_rejects(body in body()) {
                let read = ChatView::read(&body, Reading::EVERYTHING);
                match serde_json::from_slice::<Value>(&body) {
                    Ok(Value::Object(chat)) => {
                        let view = read.map_err(|e| TestCaseError::fail(format!("rejected valid JSON: {e}")))?;
                        let (facts, history) = expected(&chat);
                        prop_assert_eq!(view.facts.has_images, facts.has_images);
                        if has_duplicate_keys(&body) {
                            prop_assert!(view.facts.chars >= facts.chars);
                        } else {
                            prop_assert_eq!(view.facts.chars, facts.chars);
                        }
                        prop_assert_eq!(view.messages, history);
                    }
                    Ok(_) => prop_assert!(matches!(read, Err(ChatBodyError::NotAnObject))),
                    Err(_) => prop_assert!(read.is_err(), "accepted what serde_json rejects: {:?}", String::from_utf8_lossy(&body)),
                }
            }
        }
    }
}
