//! The answer a client got, as a log record shows it: the assembled message (its text and tool
//! calls) of a chat completion, streamed or not, so `jq -r .response.content` reads it.

use std::borrow::Cow;
use std::sync::OnceLock;

use memchr::memmem::Finder;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// An assistant message, put together.
#[derive(Debug, Default, PartialEq, Serialize)]
pub struct Message {
    pub content: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reasoning: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
}

#[derive(Debug, Default, PartialEq, Serialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// The parts of a chunk or a completion the message is made of; anything else is ignored.
#[derive(Deserialize)]
struct Choices<'a> {
    #[serde(borrow, default)]
    choices: Vec<Choice<'a>>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow, alias = "message")]
    delta: Option<Delta<'a>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, alias = "reasoning_content")]
    reasoning: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Vec<CallDelta<'a>>,
}

#[derive(Deserialize)]
struct CallDelta<'a> {
    index: Option<usize>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    function: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct Function<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    arguments: Option<Cow<'a, str>>,
}

impl Message {
    /// Adds a chunk's delta, or a whole completion's message.
    fn add(&mut self, Delta { content, reasoning, tool_calls }: Delta) {
        self.content.push_str(content.as_deref().unwrap_or_default());
        self.reasoning.push_str(reasoning.as_deref().unwrap_or_default());
        for (position, call) in tool_calls.into_iter().enumerate() {
            let index = call.index.unwrap_or(position);
            if self.tool_calls.len() <= index {
                self.tool_calls.resize_with(index + 1, ToolCall::default);
            }
            let slot = &mut self.tool_calls[index];
            slot.id.push_str(call.id.as_deref().unwrap_or_default());
            let function: Function = call.function.and_then(|f| serde_json::from_str(f.get()).ok()).unwrap_or_default();
            slot.name.push_str(function.name.as_deref().unwrap_or_default());
            slot.arguments.push_str(function.arguments.as_deref().unwrap_or_default());
        }
    }

    /// The message of an SSE stream of chat chunks (as much of it as `stream` holds), from the
    /// first choice's delta of each chunk.
    pub fn from_stream(stream: &[u8]) -> Option<Self> {
        let mut message = Message::default();
        let mut seen = false;
        for line in lines(stream) {
            let Some(data) = line.strip_prefix(b"data:") else {
                continue;
            };
            let data = data.trim_ascii();
            if data.first() == Some(&b'{') {
                seen = true;
                if let Some(delta) = first_delta(data) {
                    message.add(delta);
                }
            }
        }
        seen.then_some(message)
    }

    /// The message of a chat completion answered whole.
    pub fn from_completion(body: &[u8]) -> Option<Self> {
        let Choices { choices } = serde_json::from_slice::<Choices>(body).ok()?;
        let delta = choices.into_iter().next()?.delta;
        let mut message = Message::default();
        if let Some(delta) = delta {
            message.add(delta);
        }
        Some(message)
    }
}

/// The lines of `bytes`, found a vector at a time.
fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    memchr::memchr_iter(b'\n', bytes).chain([bytes.len()]).map(move |end| {
        let line = &bytes[start..end];
        start = end + 1;
        line
    })
}

/// The first `delta` object of a chunk. Rather than parse the whole chunk (ids, timestamps,
/// usage) to reach it, this looks for its key: `"delta"` followed by a colon can only be a key,
/// since a quote inside a string is escaped, and chat chunks have that key only in a choice.
/// A third of the cost of a full parse, on the logger's thread for every event of every stream.
fn first_delta(chunk: &[u8]) -> Option<Delta<'_>> {
    static KEY: OnceLock<Finder<'static>> = OnceLock::new();
    let key = KEY.get_or_init(|| Finder::new(b"\"delta\""));
    key.find_iter(chunk).find_map(|at| {
        let value = chunk[at + key.needle().len()..].trim_ascii_start().strip_prefix(b":")?;
        serde_json::Deserializer::from_slice(value).into_iter::<Delta>().next()?.ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_becomes_one_message_with_its_tool_calls() {
        let stream = concat!(
            "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"function\":{\"name\":\"ls\",\"arguments\":\"{\\\"pa\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"th\\\":1}\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":1}}\n\n",
            "data: [DONE]\n\n",
        );
        let message = Message::from_stream(stream.as_bytes()).unwrap();
        assert_eq!(message.content, "Hello");
        assert_eq!(
            message.tool_calls,
            [ToolCall { id: "call_1".into(), name: "ls".into(), arguments: "{\"path\":1}".into() }]
        );
        assert_eq!(Message::from_stream(b"event: ping\n\n"), None);
    }

    #[test]
    fn a_completion_gives_its_message_and_other_bodies_none() {
        let body = br#"{"choices":[{"message":{"role":"assistant","content":"Hi","reasoning_content":"think"}}]}"#;
        let message = Message::from_completion(body).unwrap();
        assert_eq!((message.content.as_str(), message.reasoning.as_str()), ("Hi", "think"));
        assert_eq!(Message::from_completion(br#"{"data":[]}"#), None);
        assert_eq!(Message::from_completion(b"not json"), None);
    }
}
