//! The Responses API's event stream, as `doors::events` drives it. Every event has its
//! `type` and a `sequence_number` counting from 0:
//!
//! - `response.created`, `response.in_progress`;
//! - per output item, in order: `response.output_item.added`; for reasoning, the
//!   `response.reasoning_summary_part.added`, `…_text.delta`s, `…_text.done` and `…_part.done`;
//!   for a message, `response.content_part.added`, `response.output_text.delta`s,
//!   `response.output_text.done` and `response.content_part.done`; for a function call,
//!   `response.function_call_arguments.delta`s and `.done`; for a custom tool, its input's
//!   `response.custom_tool_call_input.delta` and `.done` once the call is whole (its input is
//!   the one string in the function's arguments); then `response.output_item.done`, the item whole;
//! - `response.completed` (or `response.incomplete`), the whole response with its usage; or
//!   `response.failed` if the answer breaks off.
//!
//! The items are kept as they are written: the `.done` events and the last event carry them
//! whole, as the API requires.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;

use super::request::Asked;
use super::response::{
    ending, failed, Incomplete, Item, OutputText, Response, ResponseUsage, ShellAction, Status, SummaryText,
};
use super::tools::{Kind, Origin};
use crate::doors::blocks::{Block, Encoder, Piece};
use crate::doors::events::{Dialect, End, EventStream};
use crate::doors::Failure;
use crate::wire::chat_writer::string;
use crate::wire::sse;

/// The event stream of the response `id` (`resp_…`), keeping at most `keep` bytes of its
/// output for the events that repeat it.
pub fn stream(id: String, asked: Asked, keep: usize) -> EventStream<Responses> {
    EventStream::new(Responses::new(id, asked, true, keep))
}

/// The same translation with its events left unwritten: a whole answer's response.
pub fn quiet(id: String, asked: Asked) -> EventStream<Responses> {
    EventStream::new(Responses::new(id, asked, false, usize::MAX))
}

pub struct Responses {
    id: String,
    asked: Asked,
    created_at: u64,
    /// Whether events are written, or only the response kept.
    writes: bool,
    /// The output's text kept so far, and the most it may be (`MAX_BODY_BYTES`).
    kept: usize,
    keep: usize,
    sequence: u64,
    output: Vec<Item>,
    /// The open item: its text, summary or arguments so far.
    open: Option<Open>,
    /// How the response ended, once it did.
    ending: Ending,
}

#[derive(Default)]
struct Ending {
    status: Option<Status>,
    incomplete: Option<Incomplete>,
    error: Option<Value>,
    usage: Option<ResponseUsage>,
}

struct Open {
    id: String,
    kind: OpenKind,
    text: String,
}

enum OpenKind {
    Reasoning,
    Text,
    Call { call_id: String, origin: Origin },
}

/// Every event's body: `type`, `sequence_number`, and the fields its type has.
#[derive(Serialize, Default, Clone, Copy)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    sequence_number: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<&'a Response<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    item_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary_index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    item: Option<&'a Item>,
    #[serde(skip_serializing_if = "Option::is_none")]
    part: Option<Part<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arguments: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delta: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logprobs: Option<[(); 0]>,
}

/// A content or summary part, as its `.added` and `.done` events carry it.
#[derive(Serialize, Clone, Copy)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Part<'a> {
    OutputText { text: &'a str, annotations: [(); 0] },
    SummaryText { text: &'a str },
}

impl Responses {
    fn new(id: String, asked: Asked, writes: bool, keep: usize) -> Self {
        let created_at = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |t| t.as_secs());
        let (output, ending) = (Vec::new(), Ending::default());
        Self { id, asked, created_at, writes, kept: 0, keep, sequence: 0, output, open: None, ending }
    }

    /// Whether the output outgrew what may be kept: the stream then fails at its end.
    fn too_large(&self) -> bool {
        self.kept > self.keep
    }

    /// The whole response as JSON: what a non-streamed answer is.
    pub fn into_response(self) -> Vec<u8> {
        // A response of plain fields always serialises.
        serde_json::to_vec(&self.response()).unwrap_or_default()
    }

    /// The response as it stands.
    fn response(&self) -> Response<'_> {
        let mut response = Response::new(&self.id, self.created_at, &self.asked, &self.output);
        response.status = self.ending.status.unwrap_or(Status::InProgress);
        response.incomplete_details = self.ending.incomplete;
        response.error = self.ending.error.as_ref();
        response.usage = self.ending.usage;
        response
    }

    /// An item's id: its kind's prefix, the response's own id, and its place in the output.
    fn item_id(&self, prefix: &str, index: usize) -> String {
        format!("{prefix}_{}_{index}", self.id.trim_start_matches("resp_"))
    }

    fn event(&mut self, out: &mut Vec<u8>, event: Event) {
        if self.writes {
            let kind = event.kind;
            sse::event(out, Some(kind), &Event { sequence_number: self.sequence, ..event });
            self.sequence += 1;
        }
    }

    /// An event about the whole response.
    fn of_response(&mut self, out: &mut Vec<u8>, kind: &str) {
        if self.writes {
            let response = self.response();
            let event = Event { kind, sequence_number: self.sequence, response: Some(&response), ..Event::default() };
            sse::event(out, Some(kind), &event);
            self.sequence += 1;
        }
    }

    fn of_item(&mut self, out: &mut Vec<u8>, kind: &str, index: usize, item: &Item) {
        if self.writes {
            let event = Event {
                kind,
                sequence_number: self.sequence,
                output_index: Some(index),
                item: Some(item),
                ..Event::default()
            };
            sse::event(out, Some(kind), &event);
            self.sequence += 1;
        }
    }

    fn done(&mut self, out: &mut Vec<u8>, index: usize, item: Item) {
        self.of_item(out, "response.output_item.done", index, &item);
        self.output.push(item);
    }
}

impl Encoder for Responses {
    fn open(&mut self, index: usize, block: Block, out: &mut Vec<u8>) {
        let (open, item) = match block {
            Block::Reasoning => {
                let id = self.item_id("rs", index);
                let item = Item::Reasoning { id: id.clone(), summary: Vec::new(), encrypted_content: None };
                (Open { id, kind: OpenKind::Reasoning, text: String::new() }, Some(item))
            }
            Block::Text => {
                let id = self.item_id("msg", index);
                let item =
                    Item::Message { id: id.clone(), status: "in_progress", role: "assistant", content: Vec::new() };
                (Open { id, kind: OpenKind::Text, text: String::new() }, Some(item))
            }
            Block::Call { id: call_id, name } => {
                let origin = self.asked.tools.origin(name);
                let call_id = if call_id.is_empty() { self.item_id("call", index) } else { call_id.to_owned() };
                let (prefix, item) = match origin.kind {
                    Kind::Function => {
                        let id = self.item_id("fc", index);
                        let item = Item::FunctionCall {
                            id: id.clone(),
                            status: "in_progress",
                            call_id: call_id.clone(),
                            name: origin.name.clone(),
                            arguments: String::new(),
                            namespace: origin.namespace.clone(),
                        };
                        (id, Some(item))
                    }
                    Kind::Custom => {
                        let id = self.item_id("ctc", index);
                        let item = Item::CustomToolCall {
                            id: id.clone(),
                            status: "in_progress",
                            call_id: call_id.clone(),
                            name: origin.name.clone(),
                            input: String::new(),
                            namespace: origin.namespace.clone(),
                        };
                        (id, Some(item))
                    }
                    // Its action is known once its arguments are whole: it is added then.
                    Kind::LocalShell => (self.item_id("lsh", index), None),
                };
                (Open { id: prefix, kind: OpenKind::Call { call_id, origin }, text: String::new() }, item)
            }
        };
        if let Some(item) = item {
            self.of_item(out, "response.output_item.added", index, &item);
        }
        let at = Event { item_id: Some(&open.id), output_index: Some(index), ..Event::default() };
        match open.kind {
            OpenKind::Reasoning => {
                let part = Some(Part::SummaryText { text: "" });
                let event = Event { kind: "response.reasoning_summary_part.added", summary_index: Some(0), part, ..at };
                self.event(out, event);
            }
            OpenKind::Text => {
                let part = Some(Part::OutputText { text: "", annotations: [] });
                let event = Event { kind: "response.content_part.added", content_index: Some(0), part, ..at };
                self.event(out, event);
            }
            OpenKind::Call { .. } => {}
        }
        self.open = Some(open);
    }

    fn piece(&mut self, index: usize, _: Piece, text: &str, out: &mut Vec<u8>) {
        self.kept += text.len();
        if self.too_large() {
            return;
        }
        let Self { open, sequence, writes, .. } = self;
        let Some(open) = open.as_mut() else { return };
        open.text.push_str(text);
        let (kind, place) = match &open.kind {
            OpenKind::Reasoning => ("response.reasoning_summary_text.delta", Some("summary_index")),
            OpenKind::Text => ("response.output_text.delta", Some("content_index")),
            OpenKind::Call { origin, .. } if origin.kind == Kind::Function => {
                ("response.function_call_arguments.delta", None)
            }
            // A custom tool's input and a shell's command are known once the call is whole.
            OpenKind::Call { .. } => return,
        };
        if *writes {
            delta(out, sequence, kind, &open.id, index, place, text);
        }
    }

    fn close(&mut self, index: usize, out: &mut Vec<u8>) {
        let Some(Open { id, kind, text }) = self.open.take() else { return };
        let at = Event { item_id: Some(&id), output_index: Some(index), ..Event::default() };
        match kind {
            OpenKind::Reasoning => {
                let at = Event { summary_index: Some(0), ..at };
                self.event(out, Event { kind: "response.reasoning_summary_text.done", text: Some(&text), ..at });
                let part = Some(Part::SummaryText { text: &text });
                self.event(out, Event { kind: "response.reasoning_summary_part.done", part, ..at });
                let item = Item::Reasoning { id, summary: vec![SummaryText::new(text)], encrypted_content: None };
                self.done(out, index, item);
            }
            OpenKind::Text => {
                let at = Event { content_index: Some(0), ..at };
                let done = Event { kind: "response.output_text.done", text: Some(&text), logprobs: Some([]), ..at };
                self.event(out, done);
                let part = Some(Part::OutputText { text: &text, annotations: [] });
                self.event(out, Event { kind: "response.content_part.done", part, ..at });
                let content = vec![OutputText::new(text)];
                self.done(out, index, Item::Message { id, status: "completed", role: "assistant", content });
            }
            OpenKind::Call { call_id, origin } => {
                let item = match origin.kind {
                    Kind::Function => {
                        let name = Some(origin.name.as_str());
                        let done =
                            Event { kind: "response.function_call_arguments.done", arguments: Some(&text), name, ..at };
                        self.event(out, done);
                        let (name, namespace) = (origin.name, origin.namespace);
                        Item::FunctionCall { id, status: "completed", call_id, name, arguments: text, namespace }
                    }
                    Kind::Custom => {
                        let input = custom_input(&text);
                        self.event(
                            out,
                            Event { kind: "response.custom_tool_call_input.delta", delta: Some(&input), ..at },
                        );
                        self.event(
                            out,
                            Event { kind: "response.custom_tool_call_input.done", input: Some(&input), ..at },
                        );
                        let (name, namespace) = (origin.name, origin.namespace);
                        Item::CustomToolCall { id, status: "completed", call_id, name, input, namespace }
                    }
                    Kind::LocalShell => {
                        let action = shell_action(&text);
                        let mut item = Item::LocalShellCall { id, status: "in_progress", call_id, action };
                        self.of_item(out, "response.output_item.added", index, &item);
                        if let Item::LocalShellCall { status, .. } = &mut item {
                            *status = "completed";
                        }
                        item
                    }
                };
                self.done(out, index, item);
            }
        }
    }
}

impl Dialect for Responses {
    fn start(&mut self, out: &mut Vec<u8>) {
        self.of_response(out, "response.created");
        self.of_response(out, "response.in_progress");
    }

    fn keepalive(&self, out: &mut Vec<u8>) {
        sse::comment(out, "keepalive");
    }

    fn complete(&mut self, end: End, out: &mut Vec<u8>) {
        if self.too_large() {
            let why =
                format!("the answer is larger than MAX_BODY_BYTES ({}), the most a streamed response keeps", self.keep);
            return self.fail(&Failure::Broken(why), out);
        }
        let (status, incomplete) = ending(end.finish_reason);
        if status == Status::Incomplete {
            if let Some(last) = self.output.last_mut() {
                last.cut_short();
            }
        }
        self.ending = Ending { status: Some(status), incomplete, error: None, usage: end.usage.map(Into::into) };
        let kind = if status == Status::Incomplete { "response.incomplete" } else { "response.completed" };
        self.of_response(out, kind);
    }

    fn fail(&mut self, failure: &Failure, out: &mut Vec<u8>) {
        self.ending = Ending { status: Some(Status::Failed), error: Some(failed(failure)), ..Ending::default() };
        self.of_response(out, "response.failed");
    }
}

/// A delta, written directly: the one event of every chunk, so it is built without serde's
/// machinery. `place` is the `content_index` or `summary_index` where the event has one.
fn delta(
    out: &mut Vec<u8>,
    sequence: &mut u64,
    kind: &str,
    item_id: &str,
    index: usize,
    place: Option<&str>,
    text: &str,
) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\ndata: {\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"sequence_number\":");
    out.extend_from_slice(itoa::Buffer::new().format(*sequence).as_bytes());
    out.extend_from_slice(b",\"item_id\":");
    string(out, item_id);
    out.extend_from_slice(b",\"output_index\":");
    out.extend_from_slice(itoa::Buffer::new().format(index).as_bytes());
    if let Some(place) = place {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(place.as_bytes());
        out.extend_from_slice(b"\":0");
    }
    out.extend_from_slice(b",\"delta\":");
    string(out, text);
    if place == Some("content_index") {
        out.extend_from_slice(b",\"logprobs\":[]");
    }
    out.extend_from_slice(b"}\n\n");
    *sequence += 1;
}

/// A custom tool's input: the one string of the function's arguments, `{"input": "…"}`. A
/// model that wrote something else has that taken as the input, as it is.
fn custom_input(arguments: &str) -> String {
    match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(mut fields)) => match fields.remove("input") {
            Some(Value::String(input)) => input,
            _ => arguments.to_owned(),
        },
        Ok(Value::String(input)) => input,
        _ => arguments.to_owned(),
    }
}

/// A `local_shell` call's action, from the function's arguments. A command written as one
/// string is that one word.
fn shell_action(arguments: &str) -> ShellAction {
    let arguments: Value = serde_json::from_str(arguments).unwrap_or_default();
    let command = match &arguments["command"] {
        Value::Array(words) => words.iter().map(|w| w.as_str().map_or_else(|| w.to_string(), str::to_owned)).collect(),
        Value::String(command) => vec![command.clone()],
        _ => Vec::new(),
    };
    ShellAction {
        kind: "exec",
        command,
        timeout_ms: arguments["timeout_ms"].as_u64(),
        working_directory: arguments["workdir"].as_str().map(str::to_owned),
        env: serde_json::Map::new(),
        user: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doors::events::recorded::{call, delta, finish, usage, DONE};
    use crate::doors::responses::tools::ToolTable;
    use crate::doors::Door;
    use crate::wire::chat::Completion;
    use crate::wire::chat_writer::Written;
    use serde_json::json;

    /// What a request asked, with these tools offered.
    fn asked(tools: Value) -> Asked {
        let text = tools.to_string();
        let declared: Vec<super::super::tools::Tool> = serde_json::from_str(&text).unwrap();
        let mut table = ToolTable::default();
        table.offer(&declared, &mut Written::default());
        Asked { model: "glm".into(), stream: true, tools: table, echo: Default::default() }
    }

    fn codex_tools() -> Value {
        json!([
            {"type": "function", "name": "exec_command", "parameters": {"type": "object"}},
            {"type": "namespace", "name": "multi_agent_v1", "tools": [{"type": "function", "name": "close_agent"}]},
            {"type": "custom", "name": "apply_patch"},
            {"type": "local_shell"}
        ])
    }

    /// The events of a recorded chat stream fed chunk by chunk, each as its name and data.
    fn events(asked: Asked, chunks: &[String]) -> Vec<(String, Value)> {
        let mut stream = stream("resp_r1".into(), asked, 1 << 20);
        let mut out = Vec::new();
        for chunk in chunks {
            out.extend(stream.push(chunk.as_bytes()));
        }
        out.extend(stream.finish());
        parse(&out)
    }

    fn parse(out: &[u8]) -> Vec<(String, Value)> {
        let text = String::from_utf8(out.to_vec()).unwrap();
        let events: Vec<(String, Value)> = text
            .split("\n\n")
            .filter(|event| !event.is_empty())
            .map(|event| {
                let (name, data) = event.split_once('\n').unwrap();
                let name = name.strip_prefix("event: ").unwrap().to_owned();
                let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(data["type"], name.as_str(), "the event's name is its type");
                (name, data)
            })
            .collect();
        for (number, (_, data)) in events.iter().enumerate() {
            assert_eq!(data["sequence_number"], number as u64, "sequence numbers count from 0: {data}");
        }
        events
    }

    fn names(events: &[(String, Value)]) -> Vec<&str> {
        events.iter().map(|(name, _)| name.trim_start_matches("response.")).collect()
    }

    #[test]
    fn a_stream_with_reasoning_text_and_usage_in_the_last_chunk_is_the_responses_sequence() {
        let events = events(
            asked(json!([])),
            &[
                delta(json!({"role": "assistant", "content": ""})),
                delta(json!({"reasoning_content": "Greet"})),
                delta(json!({"reasoning_content": "ing."})),
                delta(json!({"content": "Hel"})),
                delta(json!({"content": "lo!"})),
                finish("stop"),
                usage(10, 4, 2),
                DONE.to_owned(),
            ],
        );
        assert_eq!(
            names(&events),
            [
                "created",
                "in_progress",
                "output_item.added",
                "reasoning_summary_part.added",
                "reasoning_summary_text.delta",
                "reasoning_summary_text.delta",
                "reasoning_summary_text.done",
                "reasoning_summary_part.done",
                "output_item.done",
                "output_item.added",
                "content_part.added",
                "output_text.delta",
                "output_text.delta",
                "output_text.done",
                "content_part.done",
                "output_item.done",
                "completed",
            ]
        );
        assert_eq!(events[0].1["response"]["status"], "in_progress");
        assert_eq!(events[0].1["response"]["id"], "resp_r1");
        assert_eq!(events[4].1["delta"], "Greet");
        assert_eq!(
            events[8].1["item"],
            json!({"type": "reasoning", "id": "rs_r1_0", "summary": [{"type": "summary_text", "text": "Greeting."}], "encrypted_content": null})
        );
        assert_eq!(
            events[11].1,
            json!({"type": "response.output_text.delta", "sequence_number": 11, "item_id": "msg_r1_1",
                                       "output_index": 1, "content_index": 0, "delta": "Hel", "logprobs": []})
        );
        assert_eq!(events[13].1["text"], "Hello!");
        let completed = &events[16].1["response"];
        assert_eq!(completed["status"], "completed");
        assert_eq!(completed["model"], "glm");
        assert_eq!(
            completed["output"][1],
            json!({"type": "message", "id": "msg_r1_1", "status": "completed", "role": "assistant",
                   "content": [{"type": "output_text", "text": "Hello!", "annotations": []}]})
        );
        assert_eq!(
            completed["usage"],
            json!({"input_tokens": 10, "input_tokens_details": {"cached_tokens": 2}, "output_tokens": 4,
                   "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 14})
        );
    }

    #[test]
    fn tool_arguments_split_across_chunks_and_two_parallel_calls_map_to_codex_items() {
        let events = events(
            asked(codex_tools()),
            &[
                call(0, Some("call_a"), Some("exec_command"), ""),
                call(0, None, None, "{\"cmd\":"),
                call(0, None, None, "\"echo hi\"}"),
                call(1, Some("call_b"), Some("multi_agent_v1__close_agent"), "{\"target\":\"a1\"}"),
                finish("tool_calls"),
                DONE.to_owned(),
            ],
        );
        assert_eq!(
            names(&events),
            [
                "created",
                "in_progress",
                "output_item.added",
                "function_call_arguments.delta",
                "function_call_arguments.delta",
                "function_call_arguments.done",
                "output_item.done",
                "output_item.added",
                "function_call_arguments.delta",
                "function_call_arguments.done",
                "output_item.done",
                "completed",
            ]
        );
        assert_eq!(
            events[2].1["item"],
            json!({"type": "function_call", "id": "fc_r1_0", "status": "in_progress", "call_id": "call_a", "name": "exec_command", "arguments": ""})
        );
        assert_eq!(events[5].1["arguments"], "{\"cmd\":\"echo hi\"}");
        assert_eq!(
            events[10].1["item"],
            json!({"type": "function_call", "id": "fc_r1_1", "status": "completed", "call_id": "call_b",
                   "name": "close_agent", "namespace": "multi_agent_v1", "arguments": "{\"target\":\"a1\"}"})
        );
        assert_eq!(events[11].1["response"]["output"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn custom_and_shell_calls_come_back_as_their_own_items() {
        let events = events(
            asked(codex_tools()),
            &[
                call(0, Some("call_p"), Some("apply_patch"), "{\"input\":\"*** Begin"),
                call(0, None, None, " Patch\\n\"}"),
                call(1, Some("call_s"), Some("local_shell"), "{\"command\":[\"ls\",\"-la\"],\"workdir\":\"/w\"}"),
                finish("tool_calls"),
                DONE.to_owned(),
            ],
        );
        assert_eq!(
            names(&events),
            [
                "created",
                "in_progress",
                "output_item.added",
                "custom_tool_call_input.delta",
                "custom_tool_call_input.done",
                "output_item.done",
                "output_item.added",
                "output_item.done",
                "completed",
            ]
        );
        assert_eq!(events[4].1["input"], "*** Begin Patch\n");
        assert_eq!(
            events[5].1["item"],
            json!({"type": "custom_tool_call", "id": "ctc_r1_0", "status": "completed", "call_id": "call_p", "name": "apply_patch", "input": "*** Begin Patch\n"})
        );
        assert_eq!(
            events[7].1["item"],
            json!({"type": "local_shell_call", "id": "lsh_r1_1", "status": "completed", "call_id": "call_s",
                   "action": {"type": "exec", "command": ["ls", "-la"], "timeout_ms": null, "working_directory": "/w", "env": {}, "user": null}})
        );
    }

    #[test]
    fn a_length_stop_is_incomplete_and_a_cut_stream_fails() {
        let long =
            events(asked(json!([])), &[delta(json!({"content": "Once upon"})), finish("length"), DONE.to_owned()]);
        let (name, last) = long.last().unwrap();
        assert_eq!(name, "response.incomplete");
        assert_eq!(last["response"]["status"], "incomplete");
        assert_eq!(last["response"]["incomplete_details"], json!({"reason": "max_output_tokens"}));
        assert_eq!(last["response"]["output"][0]["status"], "incomplete");

        let broken = r#"data: {"error": {"message": "upstream stream interrupted: reset", "type": "upstream_error", "code": "stream_interrupted"}}"#;
        let cut = events(asked(json!([])), &[delta(json!({"content": "Hel"})), format!("{broken}\n\n")]);
        let (name, last) = cut.last().unwrap();
        assert_eq!(name, "response.failed");
        assert_eq!(last["response"]["status"], "failed");
        assert_eq!(
            last["response"]["error"],
            json!({"code": "stream_interrupted", "message": "upstream stream interrupted: reset"})
        );
        let ended_early = events(asked(json!([])), &[delta(json!({"content": "Hel"}))]);
        assert_eq!(ended_early.last().unwrap().1["response"]["error"]["code"], "stream_interrupted");
    }

    #[test]
    fn an_output_larger_than_may_be_kept_fails_the_stream_at_its_end() {
        let mut stream = stream("resp_r1".into(), asked(json!([])), 8);
        let mut out = stream.push(delta(json!({"content": "Hello, "})).as_bytes());
        out.extend(stream.push(delta(json!({"content": "world, and more"})).as_bytes()));
        out.extend(stream.push(format!("{}{DONE}", finish("stop")).as_bytes()));
        let events = parse(&out);
        let (name, last) = events.last().unwrap();
        assert_eq!(name, "response.failed");
        assert!(last["response"]["error"]["message"].as_str().unwrap().contains("MAX_BODY_BYTES (8)"), "{last}");
        assert_eq!(events.iter().filter(|(name, _)| name == "response.output_text.delta").count(), 1);
    }

    #[test]
    fn a_whole_completion_is_the_response_object() {
        let completion = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "model": "zai-glm-4.7",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant",
                "content": "Checking.", "reasoning_content": "Think.",
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "exec_command", "arguments": "{\"cmd\":\"ls\"}"}}]}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 9, "completion_tokens_details": {"reasoning_tokens": 3}}
        })
        .to_string();
        let completion: Completion = serde_json::from_str(&completion).unwrap();
        let response = super::super::Responses::whole(completion, "resp_r1", asked(codex_tools()));
        let response: Value = serde_json::from_slice(&response).unwrap();
        assert_eq!((response["id"].as_str(), response["object"].as_str()), (Some("resp_r1"), Some("response")));
        assert_eq!((response["status"].as_str(), response["model"].as_str()), (Some("completed"), Some("glm")));
        assert_eq!(
            response["output"],
            json!([
                {"type": "reasoning", "id": "rs_r1_0", "summary": [{"type": "summary_text", "text": "Think."}], "encrypted_content": null},
                {"type": "message", "id": "msg_r1_1", "status": "completed", "role": "assistant",
                 "content": [{"type": "output_text", "text": "Checking.", "annotations": []}]},
                {"type": "function_call", "id": "fc_r1_2", "status": "completed", "call_id": "call_1", "name": "exec_command", "arguments": "{\"cmd\":\"ls\"}"}
            ])
        );
        assert_eq!(response["usage"]["output_tokens_details"]["reasoning_tokens"], 3);
        assert_eq!(response["usage"]["total_tokens"], 21);
    }
}
