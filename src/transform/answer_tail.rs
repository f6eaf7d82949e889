//! The end of an answer, kept as it streams by, and what can be read from it: the token usage
//! and the finish reason. OpenAI-style answers, streamed (in their last event) or not, put both
//! near their end, so a few kilobytes of tail are enough and cost the same for any answer.

use bytes::{Buf, BytesMut};
use serde::Deserialize;

/// How much of the end is kept.
const KEEP: usize = 4096;

#[derive(Debug, Default)]
pub struct Tail {
    bytes: BytesMut,
}

/// Tokens an answer reports having used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
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
        if self.bytes.len() + chunk.len() > 2 * KEEP {
            let excess = self.bytes.len() + chunk.len() - KEEP;
            self.bytes.advance(excess.min(self.bytes.len()));
        }
        self.bytes.extend_from_slice(chunk);
    }

    /// The last `usage` object in the tail, if there is one.
    pub fn usage(&self) -> Option<Usage> {
        value_after(&self.bytes, b"\"usage\"")
    }

    /// The last non-null `finish_reason` in the tail.
    pub fn finish_reason(&self) -> Option<String> {
        value_after(&self.bytes, b"\"finish_reason\"")
    }
}

/// The JSON value after the last `key` (with its colon) in `bytes` that reads as a `T`.
fn value_after<T: for<'de> Deserialize<'de>>(bytes: &[u8], key: &[u8]) -> Option<T> {
    let finder = memchr::memmem::FinderRev::new(key);
    let mut end = bytes.len();
    while let Some(at) = finder.rfind(&bytes[..end]) {
        let rest = bytes[at + key.len()..].trim_ascii_start();
        if let Some(value) = rest.strip_prefix(b":") {
            let parsed = serde_json::Deserializer::from_slice(value).into_iter::<T>().next();
            if let Some(Ok(value)) = parsed {
                return Some(value);
            }
        }
        end = at;
    }
    None
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
        assert_eq!(tail.usage(), Some(Usage { prompt_tokens: 9, completion_tokens: 6 }));
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
        assert_eq!(tail.usage(), Some(Usage { prompt_tokens: 3, completion_tokens: 40 }));
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
        assert_eq!(tail.usage(), Some(Usage { prompt_tokens: 1, completion_tokens: 2 }));
        tail.push(&[b'y'; 10_000]);
        assert_eq!(tail.bytes.len(), KEEP);
        assert_eq!(tail.usage(), None);
    }
}
