//! The end of an answer, kept as it streams by, and what can be read from it: the token usage
//! and the finish reason. OpenAI-style answers, streamed (in their last event) or not, put both
//! near their end, so a few kilobytes of tail are enough and cost the same for any answer.

use std::sync::OnceLock;

use bytes::{Buf, BytesMut};
use memchr::memmem::Finder;
use serde::Deserialize;

use crate::wire::chat::Usage;
use crate::wire::json_scan;

/// How much of the end is kept.
const KEEP: usize = 4096;

#[derive(Debug, Default)]
pub struct Tail {
    bytes: BytesMut,
}

impl Tail {
    /// Keeps the last bytes of what has passed.
    pub fn push(&mut self, chunk: &[u8]) {
        if chunk.len() >= KEEP {
            self.bytes.clear();
            self.bytes.extend_from_slice(&chunk[chunk.len() - KEEP..]);
            return;
        }
        // Let the buffer run to twice the tail before dropping its front: a copy per KEEP bytes.
        // It starts at a quarter of the tail, so a stream's small chunks grow it only thrice.
        if self.bytes.capacity() == 0 {
            self.bytes.reserve(chunk.len().max(KEEP / 4));
        } else if self.bytes.len() + chunk.len() > 2 * KEEP {
            let excess = self.bytes.len() + chunk.len() - KEEP;
            self.bytes.advance(excess.min(self.bytes.len()));
        }
        self.bytes.extend_from_slice(chunk);
    }

    /// The last `usage` object in the tail, if there is one.
    pub fn usage(&self) -> Option<Usage> {
        static KEY: OnceLock<Finder<'static>> = OnceLock::new();
        value_after(&self.bytes, KEY.get_or_init(|| Finder::new(b"\"usage\"")))
    }

    /// The last non-null `finish_reason` in the tail.
    pub fn finish_reason(&self) -> Option<String> {
        static KEY: OnceLock<Finder<'static>> = OnceLock::new();
        value_after(&self.bytes, KEY.get_or_init(|| Finder::new(b"\"finish_reason\"")))
    }
}

/// The JSON value after the last `key` (with its colon) in `bytes` that reads as a `T`. The
/// forward searcher is vectorised, the reverse one is not: finding every occurrence forwards and
/// trying them from the last costs a fifth of searching backwards. The key's searcher is built
/// once, since building one costs more than most searches.
fn value_after<T: for<'de> Deserialize<'de>>(bytes: &[u8], key: &Finder<'static>) -> Option<T> {
    let found: Vec<usize> = key.find_iter(bytes).collect();
    found.iter().rev().find_map(|&at| json_scan::value_after(bytes, at + key.needle().len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail(text: &str) -> Tail {
        let mut tail = Tail::default();
        tail.push(text.as_bytes());
        tail
    }

    #[test]
    fn usage_and_finish_reason_come_from_a_plain_answer() {
        let answer = r#"{"choices":[{"message":{"content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":6,"total_tokens":15},"time_info":{"queue_time":0.1}}"#;
        let tail = tail(answer);
        assert_eq!(tail.usage(), Some(Usage::new(9, 6)));
        assert_eq!(tail.finish_reason().as_deref(), Some("stop"));
    }

    #[test]
    fn a_stream_gives_its_last_events_values_and_skips_nulls() {
        let stream = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"},\"finish_reason\":null}],\"usage\":null}\n\n\
                      data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":40}}\n\n\
                      data: [DONE]\n\n";
        let mut tail = Tail::default();
        for piece in stream.as_bytes().chunks(7) {
            tail.push(piece);
        }
        assert_eq!(tail.usage(), Some(Usage::new(3, 40)));
        assert_eq!(tail.finish_reason().as_deref(), Some("length"));
        assert_eq!(self::tail("data: {\"usage\":null}\n\n").usage(), None);
    }

    #[test]
    fn the_tail_stays_bounded_and_keeps_the_end() {
        let mut tail = Tail::default();
        for _ in 0..1000 {
            tail.push(&[b'x'; 100]);
        }
        tail.push(br#","usage":{"prompt_tokens":1,"completion_tokens":2}}"#);
        assert!(tail.bytes.len() <= 2 * KEEP);
        assert_eq!(tail.usage(), Some(Usage::new(1, 2)));
        tail.push(&[b'y'; 10_000]);
        assert_eq!(tail.bytes.len(), KEEP);
        assert_eq!(tail.usage(), None);
    }
}
