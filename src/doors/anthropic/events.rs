//! Anthropic's event stream, as `doors::events` drives it: `message_start`, then for each block
//! `content_block_start`, its deltas and `content_block_stop`, then `message_delta` with the
//! stop reason and usage, and `message_stop`; `ping` while nothing else is sent, and an
//! `error` event if the answer fails after the stream began.

use serde::Serialize;
use serde_json::Value;

use super::message::{stop_reason, AnthropicUsage};
use super::request::Asked;
use crate::doors::blocks::{Block, Encoder, Piece};
use crate::doors::events::{Dialect, End, EventStream};
use crate::doors::Failure;
use crate::wire::sse;

/// The event stream of the message `id`.
pub fn stream(id: String, asked: Asked) -> EventStream<Anthropic> {
    EventStream::new(Anthropic { id, asked })
}

pub struct Anthropic {
    /// The message's id.
    id: String,
    asked: Asked,
}

impl Encoder for Anthropic {
    fn open(&mut self, index: usize, block: Block, out: &mut Vec<u8>) {
        let made_up;
        let content_block = match block {
            Block::Reasoning => BlockStart::Thinking { thinking: "", signature: "" },
            Block::Text => BlockStart::Text { text: "" },
            Block::Call { id, name } => {
                let id = if id.is_empty() {
                    made_up = format!("toolu_{}_{index}", self.id);
                    &made_up
                } else {
                    id
                };
                BlockStart::ToolUse { id, name, input: Empty {} }
            }
        };
        event(out, &Event::ContentBlockStart { index, content_block });
    }

    /// A `content_block_delta`, written directly: the one event of every chunk, so it is built
    /// without a JSON tree.
    fn piece(&mut self, index: usize, piece: Piece, text: &str, out: &mut Vec<u8>) {
        let (kind, field) = match piece {
            Piece::Text => ("text_delta", "text"),
            Piece::Reasoning => ("thinking_delta", "thinking"),
            Piece::Arguments => ("input_json_delta", "partial_json"),
        };
        out.extend_from_slice(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":");
        out.extend_from_slice(itoa::Buffer::new().format(index).as_bytes());
        out.extend_from_slice(b",\"delta\":{\"type\":\"");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\",\"");
        out.extend_from_slice(field.as_bytes());
        out.extend_from_slice(b"\":");
        // A string always serialises.
        let _ = serde_json::to_writer(&mut *out, text);
        out.extend_from_slice(b"}}\n\n");
    }

    fn close(&mut self, index: usize, out: &mut Vec<u8>) {
        event(out, &Event::ContentBlockStop { index });
    }
}

impl Dialect for Anthropic {
    fn start(&mut self, out: &mut Vec<u8>) {
        let message = StartMessage {
            id: &self.id,
            kind: "message",
            role: "assistant",
            model: &self.asked.model,
            content: [],
            stop_reason: None,
            stop_sequence: None,
            usage: AnthropicUsage::default(),
        };
        event(out, &Event::MessageStart { message });
    }

    fn keepalive(&self, out: &mut Vec<u8>) {
        event(out, &Event::Ping);
    }

    fn complete(&mut self, end: End, out: &mut Vec<u8>) {
        let (reason, sequence) = stop_reason(end.finish_reason, end.stop_reason, &self.asked, end.called);
        let delta = StopDelta { stop_reason: reason, stop_sequence: sequence };
        event(out, &Event::MessageDelta { delta, usage: AnthropicUsage::from(end.usage) });
        event(out, &Event::MessageStop);
    }

    fn fail(&mut self, failure: &Failure, out: &mut Vec<u8>) {
        sse::event(out, Some("error"), &super::error::of(failure).1);
    }
}

/// The events with a fixed shape, serialised without a JSON tree.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event<'a> {
    MessageStart { message: StartMessage<'a> },
    ContentBlockStart { index: usize, content_block: BlockStart<'a> },
    ContentBlockStop { index: usize },
    MessageDelta { delta: StopDelta, usage: AnthropicUsage },
    MessageStop,
    Ping,
}

impl Event<'_> {
    fn name(&self) -> &'static str {
        match self {
            Event::MessageStart { .. } => "message_start",
            Event::ContentBlockStart { .. } => "content_block_start",
            Event::ContentBlockStop { .. } => "content_block_stop",
            Event::MessageDelta { .. } => "message_delta",
            Event::MessageStop => "message_stop",
            Event::Ping => "ping",
        }
    }
}

#[derive(Serialize)]
struct StartMessage<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: [(); 0],
    stop_reason: Option<()>,
    stop_sequence: Option<()>,
    usage: AnthropicUsage,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockStart<'a> {
    Thinking { thinking: &'a str, signature: &'a str },
    Text { text: &'a str },
    ToolUse { id: &'a str, name: &'a str, input: Empty },
}

/// `{}`.
#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct StopDelta {
    stop_reason: &'static str,
    stop_sequence: Value,
}

/// One server-sent event, named by its type.
fn event(out: &mut Vec<u8>, data: &Event) {
    sse::event(out, Some(data.name()), data);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doors::events::recorded::{call, delta, finish, usage};
    use crate::wire::chat::Completion;
    use serde_json::json;
    use std::collections::HashMap;

    fn asked() -> Asked {
        Asked { model: "claude-sonnet-4-5".into(), stream: true, stop_sequences: Vec::new() }
    }

    /// The events of a recorded stream fed chunk by chunk: each as its JSON data.
    fn events(chunks: &[&str]) -> Vec<Value> {
        let mut stream = stream("msg_1".into(), asked());
        let mut out = Vec::new();
        for chunk in chunks {
            out.extend(stream.push(chunk.as_bytes()));
        }
        out.extend(stream.finish());
        parse(&out)
    }

    fn parse(out: &[u8]) -> Vec<Value> {
        let text = String::from_utf8(out.to_vec()).unwrap();
        text.split("\n\n")
            .filter(|event| !event.is_empty())
            .map(|event| {
                let (name, data) = event.split_once('\n').unwrap();
                let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(name.strip_prefix("event: ").unwrap(), data["type"], "the event's name is its type");
                data
            })
            .collect()
    }

    /// Each event's type, with its block index where it has one.
    fn shape(events: &[Value]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e["index"].as_u64() {
                Some(index) => format!("{}:{index}", e["type"].as_str().unwrap()),
                None => e["type"].as_str().unwrap().to_owned(),
            })
            .collect()
    }

    /// The shape of a whole stream whose blocks have these many deltas each.
    fn expected(deltas: &[usize]) -> Vec<String> {
        let mut shape = vec!["message_start".to_owned()];
        for (index, &count) in deltas.iter().enumerate() {
            shape.push(format!("content_block_start:{index}"));
            shape.extend(std::iter::repeat_n(format!("content_block_delta:{index}"), count));
            shape.push(format!("content_block_stop:{index}"));
        }
        shape.extend(["message_delta".to_owned(), "message_stop".to_owned()]);
        shape
    }

    #[test]
    fn a_text_stream_with_reasoning_and_usage_in_the_last_chunk() {
        let chunks = [
            delta(json!({"role": "assistant", "content": ""})),
            delta(json!({"reasoning_content": "Greet"})),
            delta(json!({"reasoning_content": "ing."})),
            delta(json!({"content": "Hel"})),
            delta(json!({"content": "lo!"})),
            finish("stop"),
            usage(10, 4, 0),
            "data: [DONE]\n\n".to_owned(),
        ];
        let events = events(&chunks.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(shape(&events), expected(&[2, 2]));
        assert_eq!(events[0]["message"]["model"], "claude-sonnet-4-5");
        assert_eq!(events[1]["content_block"]["type"], "thinking");
        assert_eq!(events[2]["delta"], json!({"type": "thinking_delta", "thinking": "Greet"}));
        assert_eq!(events[6]["delta"], json!({"type": "text_delta", "text": "Hel"}));
        assert_eq!(events[9]["delta"], json!({"stop_reason": "end_turn", "stop_sequence": null}));
        assert_eq!(events[9]["usage"]["input_tokens"], 10);
        assert_eq!(events[9]["usage"]["output_tokens"], 4);
    }

    #[test]
    fn tool_arguments_split_across_chunks_stream_as_input_json_deltas() {
        let chunks = [
            delta(json!({"content": "Let me check."})),
            call(0, Some("call_a"), Some("weather"), ""),
            call(0, None, None, "{\"ci"),
            call(0, None, None, "ty\":\"Paris\"}"),
            finish("tool_calls"),
            usage(20, 8, 0),
            "data: [DONE]\n\n".to_owned(),
        ];
        let events = events(&chunks.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(shape(&events), expected(&[1, 2]));
        assert_eq!(
            events[4]["content_block"],
            json!({"type": "tool_use", "id": "call_a", "name": "weather", "input": {}})
        );
        let json: String = events[5..7].iter().map(|e| e["delta"]["partial_json"].as_str().unwrap()).collect();
        assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), json!({"city": "Paris"}));
        assert_eq!(events[8]["delta"]["stop_reason"], "tool_use");
    }

    #[test]
    fn two_parallel_calls_one_after_another_are_two_blocks() {
        let chunks = [
            call(0, Some("call_a"), Some("read"), "{\"path\":"),
            call(0, None, None, "\"a.rs\"}"),
            call(1, Some("call_b"), Some("read"), "{\"path\":\"b.rs\"}"),
            finish("tool_calls"),
            "data: [DONE]\n\n".to_owned(),
        ];
        let events = events(&chunks.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(shape(&events), expected(&[2, 1]));
        assert_eq!(events[5]["content_block"]["id"], "call_b");
    }

    #[test]
    fn interleaved_calls_are_held_until_their_turn_and_no_block_reopens() {
        let chunks = [
            call(0, Some("call_a"), Some("read"), "{\"path\":"),
            call(1, Some("call_b"), Some("grep"), "{\"pattern\":"),
            call(0, None, None, "\"a.rs\"}"),
            call(1, None, None, "\"fn\"}"),
            finish("tool_calls"),
            "data: [DONE]\n\n".to_owned(),
        ];
        let events = events(&chunks.iter().map(String::as_str).collect::<Vec<_>>());
        let mut inputs: HashMap<u64, String> = HashMap::new();
        let mut stopped = Vec::new();
        for event in &events {
            let index = event["index"].as_u64();
            match event["type"].as_str().unwrap() {
                "content_block_start" => assert!(!stopped.contains(&index.unwrap()), "block {index:?} reopened"),
                "content_block_delta" => {
                    inputs.entry(index.unwrap()).or_default().push_str(event["delta"]["partial_json"].as_str().unwrap())
                }
                "content_block_stop" => stopped.push(index.unwrap()),
                _ => {}
            }
        }
        assert_eq!(stopped, [0, 1]);
        assert_eq!(serde_json::from_str::<Value>(&inputs[&0]).unwrap(), json!({"path": "a.rs"}));
        assert_eq!(serde_json::from_str::<Value>(&inputs[&1]).unwrap(), json!({"pattern": "fn"}));
        assert_eq!(events[1]["content_block"]["id"], "call_a");
    }

    #[test]
    fn each_chunk_gives_its_events_at_once() {
        let mut stream = stream("msg_1".into(), asked());
        let first = parse(&stream.push(delta(json!({"content": "Hi"})).as_bytes()));
        assert_eq!(shape(&first), ["message_start", "content_block_start:0", "content_block_delta:0"]);
        // An event split across chunks waits only for its own end.
        let event = delta(json!({"content": " there"}));
        assert!(stream.push(&event.as_bytes()[..10]).is_empty());
        assert_eq!(shape(&parse(&stream.push(&event.as_bytes()[10..]))), ["content_block_delta:0"]);
    }

    #[test]
    fn an_upstream_error_or_an_early_end_is_an_error_event() {
        let broken = events(&[
            &delta(json!({"content": "Hel"})),
            r#"data: {"error": {"message": "upstream stream interrupted: reset", "type": "upstream_error"}}"#,
            "\n\n",
        ]);
        assert_eq!(shape(&broken)[3..], ["error"]);
        assert_eq!(broken[3]["error"], json!({"type": "api_error", "message": "upstream stream interrupted: reset"}));
        let cut = events(&[&delta(json!({"content": "Hel"}))]);
        assert_eq!(cut.last().unwrap()["type"], "error");
    }

    #[test]
    fn a_whole_completion_becomes_a_stream() {
        let completion = json!({
            "choices": [{"message": {"content": "Hi", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}]},
                         "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2}
        })
        .to_string();
        let completion: Completion = serde_json::from_str(&completion).unwrap();
        let events = parse(&stream("msg_1".into(), asked()).whole(completion));
        assert_eq!(shape(&events), expected(&[1, 1]));
    }
}
