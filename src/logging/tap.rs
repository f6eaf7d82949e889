//! A request's record on the way out: it keeps a copy of what the client receives, and goes to
//! the sink when the answer is done, or the client went away.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;

use super::record::{BodyCopy, RequestLog};
use super::sink::LogSink;
use crate::wire::chat::Usage;

/// What the copy of an answer starts with.
const FIRST_RESERVE: usize = 2048;

pub struct Tap {
    /// The start of what the client received, up to the sink's body limit.
    copy: BytesMut,
    length: usize,
    record: RequestLog,
    sink: Arc<LogSink>,
}

impl Tap {
    pub fn new(record: RequestLog, sink: Arc<LogSink>) -> Self {
        Self { copy: BytesMut::new(), length: 0, record, sink }
    }

    /// Makes room for a body of known length at once: a plain answer's copy is then one
    /// allocation of its own size.
    pub fn expect(&mut self, length: u64) {
        let limit = self.sink.body_limit();
        self.copy.reserve(usize::try_from(length).unwrap_or(limit).min(limit));
    }

    /// Counts a piece of the answer, and keeps what fits under the sink's body limit.
    pub fn push(&mut self, chunk: &[u8]) {
        self.length += chunk.len();
        let limit = self.sink.body_limit();
        let piece = &chunk[..chunk.len().min(limit.saturating_sub(self.copy.len()))];
        if piece.is_empty() {
            return;
        }
        if self.copy.capacity() == 0 {
            // A stream's small events would grow the copy from nothing a dozen times.
            self.copy.reserve(piece.len().max(FIRST_RESERVE).min(limit));
        }
        self.copy.extend_from_slice(piece);
    }

    /// Completes the record with what the answer's end said, and hands it over.
    pub fn finish(self, usage: Option<Usage>, finish_reason: Option<String>, complete: bool) {
        let Self { copy, length, mut record, sink } = self;
        record.response_body = BodyCopy { kept: copy.freeze(), length };
        record.usage = usage;
        record.finish_reason = finish_reason;
        record.finished = Some(Instant::now());
        record.incomplete = !complete;
        sink.submit(record);
    }
}
