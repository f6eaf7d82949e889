//! A provider's chat-completion stream, translated into a door's event stream chunk by chunk:
//! each upstream chunk gives its events at once. The stream's events are read here (SSE, the
//! chunks, their finish reason and usage, an error event, the end), its blocks sequenced by
//! `Blocks`, and what the events look like is the door's `Dialect`.

use serde_json::Value;

use super::blocks::{Blocks, Encoder};
use super::Failure;
use crate::wire::chat::{Completion, Usage};
use crate::wire::sse;

/// How the answer ended, for the door's last events.
pub struct End<'a> {
    pub finish_reason: Option<&'a str>,
    /// The stop sequence that ended it, where the provider names it.
    pub stop_reason: Option<&'a Value>,
    pub usage: Option<Usage>,
    /// Whether the answer holds tool calls.
    pub called: bool,
}

/// A door's event stream around its blocks.
pub trait Dialect: Encoder {
    /// The stream's first events, before any block.
    fn start(&mut self, out: &mut Vec<u8>);
    /// A sign of life while nothing else is sent.
    fn keepalive(&self, out: &mut Vec<u8>);
    /// The last events of an answer that is whole, after its last block closed.
    fn complete(&mut self, end: End, out: &mut Vec<u8>);
    /// The last event of an answer that failed after the stream began.
    fn fail(&mut self, failure: &Failure, out: &mut Vec<u8>);
}

pub struct EventStream<D> {
    dialect: D,
    sse: sse::Reader,
    blocks: Blocks,
    started: bool,
    ended: bool,
    /// The finish reason and stop sequence, once a chunk gave them.
    finish: Option<(Option<String>, Option<Value>)>,
    usage: Option<Usage>,
}

impl<D: Dialect> EventStream<D> {
    pub fn new(dialect: D) -> Self {
        Self {
            dialect,
            sse: sse::Reader::default(),
            blocks: Blocks::default(),
            started: false,
            ended: false,
            finish: None,
            usage: None,
        }
    }

    /// The first events, once: before the first upstream chunk, or before keepalives.
    pub fn start(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.started = true;
            self.dialect.start(out);
        }
    }

    /// The door's side of the stream, once it is over.
    pub fn into_dialect(self) -> D {
        self.dialect
    }

    pub fn keepalive(&self, out: &mut Vec<u8>) {
        self.dialect.keepalive(out);
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
                None => self.fail(&Failure::broken("the upstream stream ended before the answer did"), &mut out),
            }
        }
        out
    }

    /// The upstream broke off, or answered an error: the door's error event ends the stream.
    pub fn fail(&mut self, failure: &Failure, out: &mut Vec<u8>) {
        if !self.ended {
            self.ended = true;
            self.dialect.fail(failure, out);
        }
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
        self.blocks.delta(&choice.message, &mut self.dialect, &mut out);
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
                log::debug!("event=stream_chunk_unreadable error={error}");
                return;
            }
        };
        if let Some(error) = chunk.error {
            let message = error["message"].as_str().map_or_else(|| error.to_string(), str::to_owned);
            self.fail(&Failure::Broken(message), out);
            return;
        }
        self.start(out);
        if let Some(choice) = chunk.choices.into_iter().next() {
            self.blocks.delta(&choice.message, &mut self.dialect, out);
            if choice.finish_reason.is_some() {
                self.finish = Some((choice.finish_reason.map(Into::into), choice.stop_reason));
            }
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
    }

    /// The answer is whole: every block closed, then the door's last events.
    fn complete(&mut self, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.start(out);
        self.blocks.finish(&mut self.dialect, out);
        self.ended = true;
        let (finish_reason, stop_reason) = self.finish.take().unwrap_or_default();
        let end = End {
            finish_reason: finish_reason.as_deref(),
            stop_reason: stop_reason.as_ref(),
            usage: self.usage,
            called: self.blocks.called(),
        };
        self.dialect.complete(end, out);
    }
}

/// Chat-stream chunks as the providers send them, for the doors' tests.
#[cfg(test)]
pub mod recorded {
    use serde_json::{json, Value};

    pub const DONE: &str = "data: [DONE]\n\n";

    pub fn data(chunk: Value) -> String {
        format!("data: {chunk}\n\n")
    }

    /// A chunk with this piece of the message.
    pub fn delta(delta: Value) -> String {
        data(json!({"id": "c1", "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": null}]}))
    }

    pub fn finish(reason: &str) -> String {
        data(json!({"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}))
    }

    /// The usage, in a last chunk of its own.
    pub fn usage(prompt: u64, completion: u64, cached: u64) -> String {
        data(json!({"id": "c1", "choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                    "prompt_tokens_details": {"cached_tokens": cached}}}))
    }

    /// A piece of the tool call `index`: its id and name come with its first piece.
    pub fn call(index: usize, id: Option<&str>, name: Option<&str>, arguments: &str) -> String {
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
}
