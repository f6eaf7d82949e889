//! An OpenAI chat-completion stream, as Anthropic's event stream, chunk by chunk: each upstream
//! chunk gives its events at once.
//!
//! Anthropic's stream has one content block open at a time, with indices from 0 in the order
//! blocks open, and every block started is stopped. A delta of another kind (text after
//! thinking, a new tool call) closes the open block first. Providers send parallel tool calls
//! one after another; should one interleave them, a call's pieces are held while the open
//! call's arguments are still unfinished JSON, and it opens when that call is done (or at the
//! end). A closed block is never reopened.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;
use serde_json::Value;

use super::message::{stop_reason, AnthropicUsage};
use super::request::Asked;
use crate::wire::chat::{Completion, Message, ToolCall, Usage};
use crate::wire::json_scan::JsonEnd;
use crate::wire::sse;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Thinking,
    Text,
    /// A tool call, by its OpenAI index.
    Call(usize),
}

/// What a block's delta carries.
#[derive(Debug, Clone, Copy)]
enum Piece {
    Text,
    Thinking,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    /// Waiting for its turn, its arguments kept.
    Held,
    Open,
    Closed,
}

struct Call {
    state: CallState,
    id: String,
    name: String,
    /// The arguments not yet sent.
    held: String,
    json: JsonEnd,
}

pub struct EventStream {
    id: String,
    asked: Asked,
    started: bool,
    ended: bool,
    sse: sse::Reader,
    /// The open block and its index.
    open: Option<(usize, Kind)>,
    next_index: usize,
    calls: HashMap<usize, Call>,
    /// Held calls, in the order they came.
    waiting: VecDeque<usize>,
    finish: Option<(Option<String>, Option<Value>)>,
    usage: Option<Usage>,
}

impl EventStream {
    /// `id` is the message's id.
    pub fn new(id: String, asked: Asked) -> Self {
        Self {
            id,
            asked,
            started: false,
            ended: false,
            sse: sse::Reader::default(),
            open: None,
            next_index: 0,
            calls: HashMap::new(),
            waiting: VecDeque::new(),
            finish: None,
            usage: None,
        }
    }

    /// `message_start`, once: before the first upstream chunk, or before pings.
    pub fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
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

    pub fn ping(out: &mut Vec<u8>) {
        event(out, &Event::Ping);
    }

    /// The events for the next bytes of the upstream stream.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(chunk.len() + 128);
        let mut reader = std::mem::take(&mut self.sse);
        reader.push(chunk, &mut |data| self.read_event(data, &mut out));
        self.sse = reader;
        out
    }

    /// The upstream ended: the last events, or an error event if the answer was cut short.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut reader = std::mem::take(&mut self.sse);
        reader.finish(&mut |data| self.read_event(data, &mut out));
        if !self.ended {
            match self.finish {
                Some(_) => self.complete(&mut out),
                None => self.fail(api_error("the upstream stream ended before the answer did"), &mut out),
            }
        }
        out
    }

    /// The upstream broke off, or answered an error: an error event ends the stream.
    pub fn fail(&mut self, error: Value, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.ended = true;
        error_event(out, &error);
    }

    /// A whole completion (a provider that would not stream) as the events of a stream.
    pub fn whole(&mut self, completion: Completion) -> Vec<u8> {
        let mut out = Vec::new();
        self.start(&mut out);
        let mut choice = completion.choices.into_iter().next().unwrap_or_default();
        // A whole message's calls have no index: each is its own.
        for (index, call) in choice.message.tool_calls.iter_mut().flatten().enumerate() {
            call.index = Some(index);
        }
        self.delta(&choice.message, &mut out);
        self.finish = Some((choice.finish_reason.map(Into::into), choice.stop_reason));
        self.usage = completion.usage;
        self.complete(&mut out);
        out
    }

    fn read_event(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        if data.trim_ascii() == b"[DONE]" {
            self.complete(out);
            return;
        }
        let chunk: Completion = match serde_json::from_slice(data) {
            Ok(chunk) => chunk,
            Err(error) => {
                log::debug!("event=anthropic_chunk_unreadable error={error}");
                return;
            }
        };
        if let Some(error) = chunk.error {
            let message = error["message"].as_str().map_or_else(|| error.to_string(), str::to_owned);
            self.fail(api_error(&message), out);
            return;
        }
        self.start(out);
        if let Some(choice) = chunk.choices.into_iter().next() {
            self.delta(&choice.message, out);
            if choice.finish_reason.is_some() {
                self.finish = Some((choice.finish_reason.map(Into::into), choice.stop_reason));
            }
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
    }

    fn delta(&mut self, delta: &Message, out: &mut Vec<u8>) {
        if let Some(thinking) = delta.reasoning() {
            self.switch_to(Kind::Thinking, out);
            self.block_delta(Piece::Thinking, thinking, out);
        }
        if let Some(text) = delta.text() {
            self.switch_to(Kind::Text, out);
            self.block_delta(Piece::Text, text, out);
        }
        for piece in delta.calls() {
            self.call_piece(piece, out);
        }
    }

    /// Makes `kind` (text or thinking) the open block. Calls still held go first, whole.
    fn switch_to(&mut self, kind: Kind, out: &mut Vec<u8>) {
        if self.open.is_some_and(|(_, open)| open == kind) {
            return;
        }
        self.close(out);
        while let Some(index) = self.waiting.pop_front() {
            self.open_call(index, out);
            self.close(out);
        }
        self.open_block(kind, out);
    }

    fn call_piece(&mut self, piece: &ToolCall, out: &mut Vec<u8>) {
        let index = piece.index.unwrap_or(0);
        let arguments = piece.arguments();
        let known = self.calls.contains_key(&index);
        let call = self.calls.entry(index).or_insert_with(|| Call {
            state: CallState::Held,
            id: String::new(),
            name: String::new(),
            held: String::new(),
            json: JsonEnd::default(),
        });
        if call.id.is_empty() {
            call.id = piece.id.as_deref().unwrap_or_default().to_owned();
        }
        if call.name.is_empty() {
            call.name = piece.name().to_owned();
        }
        let state = call.state;
        if state != CallState::Closed {
            call.json.feed(arguments);
        }
        if state == CallState::Held {
            call.held.push_str(arguments);
        }
        match state {
            CallState::Open if !arguments.is_empty() => self.block_delta(Piece::Json, arguments, out),
            CallState::Open => {}
            CallState::Closed => log::debug!("event=anthropic_piece_dropped reason=call_closed index={index}"),
            CallState::Held if !known => self.waiting.push_back(index),
            CallState::Held => {}
        }
        self.next_calls(out);
    }

    /// Held calls take their turn while the open block is no unfinished call.
    fn next_calls(&mut self, out: &mut Vec<u8>) {
        while !self.waiting.is_empty() {
            if let Some((_, Kind::Call(open))) = self.open {
                if !self.calls[&open].json.complete() {
                    return;
                }
            }
            let index = self.waiting.pop_front().expect("not empty");
            self.close(out);
            self.open_call(index, out);
        }
    }

    fn open_call(&mut self, index: usize, out: &mut Vec<u8>) {
        self.open_block(Kind::Call(index), out);
        let call = self.calls.get_mut(&index).expect("a held call is known");
        let held = std::mem::take(&mut call.held);
        if !held.is_empty() {
            self.block_delta(Piece::Json, &held, out);
        }
    }

    fn open_block(&mut self, kind: Kind, out: &mut Vec<u8>) {
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((index, kind));
        let block = match kind {
            Kind::Thinking => Block::Thinking { thinking: "", signature: "" },
            Kind::Text => Block::Text { text: "" },
            Kind::Call(call) => {
                let position = index;
                let call = self.calls.get_mut(&call).expect("an opened call is known");
                call.state = CallState::Open;
                if call.id.is_empty() {
                    call.id = format!("toolu_{}_{position}", self.id);
                }
                Block::ToolUse { id: &call.id, name: &call.name, input: Empty {} }
            }
        };
        event(out, &Event::ContentBlockStart { index, content_block: block });
    }

    /// A `content_block_delta` for the open block, written directly: the one event of every
    /// chunk, so it is built without a JSON tree.
    fn block_delta(&mut self, piece: Piece, text: &str, out: &mut Vec<u8>) {
        let Some((index, _)) = self.open else {
            return;
        };
        let (kind, field) = match piece {
            Piece::Text => ("text_delta", "text"),
            Piece::Thinking => ("thinking_delta", "thinking"),
            Piece::Json => ("input_json_delta", "partial_json"),
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

    fn close(&mut self, out: &mut Vec<u8>) {
        let Some((index, kind)) = self.open.take() else {
            return;
        };
        if let Kind::Call(call) = kind {
            if let Some(call) = self.calls.get_mut(&call) {
                call.state = CallState::Closed;
            }
        }
        event(out, &Event::ContentBlockStop { index });
    }

    /// The answer is whole: every block closed, then the stop reason, the usage, the end.
    fn complete(&mut self, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.start(out);
        self.close(out);
        while let Some(index) = self.waiting.pop_front() {
            self.open_call(index, out);
            self.close(out);
        }
        self.ended = true;
        let (finish, matched) = self.finish.take().unwrap_or_default();
        let (reason, sequence) = stop_reason(finish.as_deref(), matched.as_ref(), &self.asked, !self.calls.is_empty());
        let delta = StopDelta { stop_reason: reason, stop_sequence: sequence };
        event(out, &Event::MessageDelta { delta, usage: AnthropicUsage::from(self.usage) });
        event(out, &Event::MessageStop);
    }
}

/// An `error` event's body for a failure of the upstream's.
pub fn api_error(message: &str) -> Value {
    super::error::body("api_error", message)
}

/// The events with a fixed shape, serialised without a JSON tree.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event<'a> {
    MessageStart { message: StartMessage<'a> },
    ContentBlockStart { index: usize, content_block: Block<'a> },
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
enum Block<'a> {
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

/// An `error` event.
fn error_event(out: &mut Vec<u8>, error: &Value) {
    sse::event(out, Some("error"), error);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn asked() -> Asked {
        Asked { model: "claude-sonnet-4-5".into(), stream: true, stop_sequences: Vec::new() }
    }

    /// The events of a recorded stream fed chunk by chunk: each as its JSON data.
    fn events(chunks: &[&str]) -> Vec<Value> {
        let mut stream = EventStream::new("msg_1".into(), asked());
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

    fn data(chunk: Value) -> String {
        format!("data: {chunk}\n\n")
    }

    fn delta(delta: Value) -> String {
        data(
            json!({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": null}]}),
        )
    }

    fn finish(reason: &str) -> String {
        data(json!({"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}))
    }

    fn usage(prompt: u64, completion: u64) -> String {
        data(json!({"id": "c1", "choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion}}))
    }

    fn call(index: usize, id: Option<&str>, name: Option<&str>, arguments: &str) -> String {
        let mut function = json!({"arguments": arguments});
        if let Some(name) = name {
            function["name"] = json!(name);
        }
        let mut piece = json!({"index": index, "type": "function", "function": function});
        if let Some(id) = id {
            piece["id"] = json!(id);
        }
        delta(json!({"tool_calls": [piece]}))
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
            usage(10, 4),
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
            usage(20, 8),
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
        let mut stream = EventStream::new("msg_1".into(), asked());
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
        let events = parse(&EventStream::new("msg_1".into(), asked()).whole(completion));
        assert_eq!(shape(&events), expected(&[1, 1]));
    }
}
