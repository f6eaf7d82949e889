//! The order of a translated stream's blocks, whatever the door: a chat stream's pieces
//! (reasoning, text, tool calls) become blocks that open one at a time, with indices from 0
//! in the order they open, and every block opened is closed. A piece of another kind (text
//! after reasoning, a new tool call) closes the open block first.
//!
//! Providers send parallel tool calls one after another; should one interleave them, a call's
//! pieces are held while the open call's arguments are still unfinished JSON, and it opens
//! when that call is done (or at the end). A closed block is never reopened. What a block
//! looks like on the wire is the door's `Encoder`.

use std::collections::{HashMap, VecDeque};

use crate::wire::chat::{Message, ToolCall};
use crate::wire::json_scan::JsonEnd;

/// A block as it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block<'a> {
    Reasoning,
    Text,
    /// A tool call: its id (empty if the provider gave none) and name.
    Call {
        id: &'a str,
        name: &'a str,
    },
}

/// What a piece of the open block carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    Reasoning,
    Text,
    /// A tool call's arguments: a piece of JSON text.
    Arguments,
}

/// Writes blocks in a door's shape.
pub trait Encoder {
    fn open(&mut self, index: usize, block: Block, out: &mut Vec<u8>);
    fn piece(&mut self, index: usize, piece: Piece, text: &str, out: &mut Vec<u8>);
    fn close(&mut self, index: usize, out: &mut Vec<u8>);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Reasoning,
    Text,
    /// A tool call, by its index in the chat stream.
    Call(usize),
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
    /// The arguments not yet given to the encoder.
    held: String,
    json: JsonEnd,
}

#[derive(Default)]
pub struct Blocks {
    /// The open block and its index.
    open: Option<(usize, Kind)>,
    next_index: usize,
    calls: HashMap<usize, Call>,
    /// Held calls, in the order they came.
    waiting: VecDeque<usize>,
}

impl Blocks {
    /// The blocks for a chunk's piece of the message.
    pub fn delta(&mut self, delta: &Message, encoder: &mut impl Encoder, out: &mut Vec<u8>) {
        if let Some(reasoning) = delta.reasoning() {
            self.switch_to(Kind::Reasoning, encoder, out);
            self.piece(Piece::Reasoning, reasoning, encoder, out);
        }
        if let Some(text) = delta.text() {
            self.switch_to(Kind::Text, encoder, out);
            self.piece(Piece::Text, text, encoder, out);
        }
        for piece in delta.calls() {
            self.call_piece(piece, encoder, out);
        }
    }

    /// The message is whole: the open block closes, and calls still held go, each whole.
    pub fn finish(&mut self, encoder: &mut impl Encoder, out: &mut Vec<u8>) {
        self.close(encoder, out);
        self.flush_waiting(encoder, out);
    }

    /// Whether the message holds tool calls.
    pub fn called(&self) -> bool {
        !self.calls.is_empty()
    }

    /// Makes `kind` (text or reasoning) the open block. Calls still held go first, whole.
    fn switch_to(&mut self, kind: Kind, encoder: &mut impl Encoder, out: &mut Vec<u8>) {
        if self.open.is_some_and(|(_, open)| open == kind) {
            return;
        }
        self.close(encoder, out);
        self.flush_waiting(encoder, out);
        self.open_block(kind, encoder, out);
    }

    fn flush_waiting(&mut self, encoder: &mut impl Encoder, out: &mut Vec<u8>) {
        while let Some(index) = self.waiting.pop_front() {
            self.open_call(index, encoder, out);
            self.close(encoder, out);
        }
    }

    fn call_piece(&mut self, piece: &ToolCall, encoder: &mut impl Encoder, out: &mut Vec<u8>) {
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
            CallState::Open if !arguments.is_empty() => self.piece(Piece::Arguments, arguments, encoder, out),
            CallState::Open => {}
            CallState::Closed => log::debug!("event=stream_piece_dropped reason=call_closed index={index}"),
            CallState::Held if !known => self.waiting.push_back(index),
            CallState::Held => {}
        }
        self.next_calls(encoder, out);
    }

    /// Held calls take their turn while the open block is no unfinished call.
    fn next_calls(&mut self, encoder: &mut impl Encoder, out: &mut Vec<u8>) {
        while !self.waiting.is_empty() {
            if let Some((_, Kind::Call(open))) = self.open {
                if !self.calls[&open].json.complete() {
                    return;
                }
            }
            let index = self.waiting.pop_front().expect("not empty");
            self.close(encoder, out);
            self.open_call(index, encoder, out);
        }
    }

    fn open_call(&mut self, index: usize, encoder: &mut impl Encoder, out: &mut Vec<u8>) {
        self.open_block(Kind::Call(index), encoder, out);
        let call = self.calls.get_mut(&index).expect("a held call is known");
        let held = std::mem::take(&mut call.held);
        if !held.is_empty() {
            self.piece(Piece::Arguments, &held, encoder, out);
        }
    }

    fn open_block(&mut self, kind: Kind, encoder: &mut impl Encoder, out: &mut Vec<u8>) {
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((index, kind));
        let block = match kind {
            Kind::Reasoning => Block::Reasoning,
            Kind::Text => Block::Text,
            Kind::Call(call) => {
                let call = self.calls.get_mut(&call).expect("an opened call is known");
                call.state = CallState::Open;
                Block::Call { id: &call.id, name: &call.name }
            }
        };
        encoder.open(index, block, out);
    }

    fn piece(&mut self, piece: Piece, text: &str, encoder: &mut impl Encoder, out: &mut Vec<u8>) {
        if let Some((index, _)) = self.open {
            encoder.piece(index, piece, text, out);
        }
    }

    fn close(&mut self, encoder: &mut impl Encoder, out: &mut Vec<u8>) {
        let Some((index, kind)) = self.open.take() else {
            return;
        };
        if let Kind::Call(call) = kind {
            if let Some(call) = self.calls.get_mut(&call) {
                call.state = CallState::Closed;
            }
        }
        encoder.close(index, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Writes each block's life as text: `open 1 call c1 read`, `piece 1 {"a"`, `close 1`.
    #[derive(Default)]
    struct Recorder;

    impl Encoder for Recorder {
        fn open(&mut self, index: usize, block: Block, out: &mut Vec<u8>) {
            let what = match block {
                Block::Reasoning => "reasoning".to_owned(),
                Block::Text => "text".to_owned(),
                Block::Call { id, name } => format!("call {id} {name}"),
            };
            out.extend(format!("open {index} {what}\n").bytes());
        }

        fn piece(&mut self, index: usize, _: Piece, text: &str, out: &mut Vec<u8>) {
            out.extend(format!("piece {index} {text}\n").bytes());
        }

        fn close(&mut self, index: usize, out: &mut Vec<u8>) {
            out.extend(format!("close {index}\n").bytes());
        }
    }

    fn delta(value: serde_json::Value) -> String {
        value.to_string()
    }

    fn call(index: usize, id: Option<&str>, name: Option<&str>, arguments: &str) -> String {
        let mut function = json!({"arguments": arguments});
        if let Some(name) = name {
            function["name"] = json!(name);
        }
        let mut piece = json!({"index": index, "function": function});
        if let Some(id) = id {
            piece["id"] = json!(id);
        }
        delta(json!({"tool_calls": [piece]}))
    }

    fn sequence(deltas: &[String]) -> Vec<String> {
        let (mut blocks, mut encoder, mut out) = (Blocks::default(), Recorder, Vec::new());
        for text in deltas {
            let message: Message = serde_json::from_str(text).unwrap();
            blocks.delta(&message, &mut encoder, &mut out);
        }
        blocks.finish(&mut encoder, &mut out);
        String::from_utf8(out).unwrap().lines().map(str::to_owned).collect()
    }

    #[test]
    fn reasoning_text_and_calls_open_one_after_another() {
        let lines = sequence(&[
            delta(json!({"reasoning_content": "Hm"})),
            delta(json!({"content": "Let me"})),
            delta(json!({"content": " look."})),
            call(0, Some("c1"), Some("read"), "{\"path\":"),
            call(0, None, None, "\"a.rs\"}"),
            call(1, Some("c2"), Some("read"), "{}"),
        ]);
        assert_eq!(
            lines,
            [
                "open 0 reasoning",
                "piece 0 Hm",
                "close 0",
                "open 1 text",
                "piece 1 Let me",
                "piece 1  look.",
                "close 1",
                "open 2 call c1 read",
                "piece 2 {\"path\":",
                "piece 2 \"a.rs\"}",
                "close 2",
                "open 3 call c2 read",
                "piece 3 {}",
                "close 3",
            ]
        );
    }

    #[test]
    fn interleaved_calls_are_held_until_their_turn_and_no_block_reopens() {
        let lines = sequence(&[
            call(0, Some("a"), Some("read"), "{\"path\":"),
            call(1, Some("b"), Some("grep"), "{\"pattern\":"),
            call(0, None, None, "\"a.rs\"}"),
            call(1, None, None, "\"fn\"}"),
        ]);
        assert_eq!(
            lines,
            [
                "open 0 call a read",
                "piece 0 {\"path\":",
                "piece 0 \"a.rs\"}",
                "close 0",
                "open 1 call b grep",
                "piece 1 {\"pattern\":",
                "piece 1 \"fn\"}",
                "close 1",
            ]
        );
    }

    #[test]
    fn a_call_still_held_when_text_comes_goes_first_whole() {
        let lines = sequence(&[
            call(0, Some("a"), Some("f"), "{\"x\":"),
            call(1, Some("b"), Some("g"), "{}"),
            delta(json!({"content": "done"})),
        ]);
        assert_eq!(
            lines,
            [
                "open 0 call a f",
                "piece 0 {\"x\":",
                "close 0",
                "open 1 call b g",
                "piece 1 {}",
                "close 1",
                "open 2 text",
                "piece 2 done",
                "close 2"
            ]
        );
    }
}
