//! The answer a client got, as a log record shows it: the assembled message (its text and tool
//! calls) of a chat completion, streamed or not, so `jq -r .response.content` reads it.

use std::sync::OnceLock;

use memchr::memmem::Finder;
use serde::Serialize;

use crate::wire::json_scan::value_after;
use crate::wire::{chat, sse};

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

impl Message {
    /// Adds a chunk's piece of the message, or a whole completion's message.
    fn add(&mut self, piece: &chat::Message) {
        self.content.push_str(piece.content.as_deref().unwrap_or_default());
        self.reasoning.push_str(piece.reasoning().unwrap_or_default());
        for (position, call) in piece.calls().iter().enumerate() {
            let index = call.index.unwrap_or(position);
            if self.tool_calls.len() <= index {
                self.tool_calls.resize_with(index + 1, ToolCall::default);
            }
            let slot = &mut self.tool_calls[index];
            slot.id.push_str(call.id.as_deref().unwrap_or_default());
            slot.name.push_str(call.name());
            slot.arguments.push_str(call.arguments());
        }
    }

    /// The message of an SSE stream of chat chunks (as much of it as `stream` holds), from the
    /// first choice's delta of each chunk.
    pub fn from_stream(stream: &[u8]) -> Option<Self> {
        let mut message = Message::default();
        let mut seen = false;
        let mut on_event = |data: &[u8]| {
            let data = data.trim_ascii();
            if data.first() == Some(&b'{') {
                seen = true;
                if let Some(delta) = first_delta(data) {
                    message.add(&delta);
                }
            }
        };
        let mut reader = sse::Reader::default();
        reader.push(stream, &mut on_event);
        reader.finish(&mut on_event);
        seen.then_some(message)
    }

    /// The message of a chat completion answered whole.
    pub fn from_completion(body: &[u8]) -> Option<Self> {
        let completion = serde_json::from_slice::<chat::Completion>(body).ok()?;
        let choice = completion.choices.into_iter().next()?;
        let mut message = Message::default();
        message.add(&choice.message);
        Some(message)
    }
}

/// The first `delta` object of a chunk. Rather than parse the whole chunk (ids, timestamps,
/// usage) to reach it, this looks for its key: `"delta"` followed by a colon can only be a key,
/// since a quote inside a string is escaped, and chat chunks have that key only in a choice.
/// A third of the cost of a full parse, on the logger's thread for every event of every stream.
fn first_delta(chunk: &[u8]) -> Option<chat::Message<'_>> {
    static KEY: OnceLock<Finder<'static>> = OnceLock::new();
    let key = KEY.get_or_init(|| Finder::new(b"\"delta\""));
    key.find_iter(chunk).find_map(|at| value_after(chunk, at + key.needle().len()))
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
