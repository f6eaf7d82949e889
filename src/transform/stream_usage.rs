//! A stream's usage, asked for on the client's behalf: the proxy charges each client key the
//! tokens its answers used, and a stream reports them only in a last chunk that must be asked
//! for (`stream_options.include_usage`). A client that did not ask gets its body with it set,
//! and the chunk hidden from its answer (`hidden`), so it sees the stream it asked for.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use memchr::memmem;

use crate::transform::chat_view::StreamAsk;
use crate::wire::sse;

/// The body asking for the usage chunk, the bytes it replaced and the length of what took
/// their place; `None` when the body is no stream or already asks.
pub fn asking_usage(body: &Bytes, ask: &StreamAsk) -> Option<(Bytes, Range<usize>, usize)> {
    if !ask.stream || ask.usage {
        return None;
    }
    let (replaced, options) = match &ask.options {
        // The client's other options stay; a value that is no object is replaced.
        Some(range) => {
            let mut options = match serde_json::from_slice::<serde_json::Value>(&body[range.clone()]) {
                Ok(serde_json::Value::Object(options)) => options,
                _ => serde_json::Map::new(),
            };
            options.insert("include_usage".to_owned(), serde_json::Value::Bool(true));
            (range.clone(), serde_json::Value::Object(options).to_string())
        }
        None => (ask.brace + 1..ask.brace + 1, r#""stream_options":{"include_usage":true},"#.to_owned()),
    };
    let mut out = BytesMut::with_capacity(body.len() + options.len());
    out.put_slice(&body[..replaced.start]);
    out.put_slice(options.as_bytes());
    out.put_slice(&body[replaced.end..]);
    Some((out.freeze(), replaced, options.len()))
}

/// `events` (whole SSE events, as the relay hands them on) without the usage chunk: an event
/// with `"choices":[]` and a usage. Everything else passes as it is, without a copy when there
/// is nothing to hide.
pub fn hidden(events: Bytes) -> Bytes {
    if memmem::find(&events, b"\"choices\":[]").is_none() {
        return events;
    }
    let mut out = BytesMut::with_capacity(events.len());
    for event in sse::events(&events) {
        let usage_only =
            memmem::find(event, b"\"choices\":[]").is_some() && memmem::find(event, b"\"usage\"").is_some();
        if !usage_only {
            out.put_slice(event);
        }
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::chat_view::{ChatView, Reading};

    fn asked(body: &str) -> Option<String> {
        let body = Bytes::from(body.to_owned());
        let view = ChatView::read(&body, Reading::EVERYTHING).unwrap();
        asking_usage(&body, &view.stream).map(|(out, _, _)| String::from_utf8(out.to_vec()).unwrap())
    }

    #[test]
    fn a_stream_that_did_not_ask_asks_and_the_rest_stays() {
        let out = asked(r#" {"model":"m","stream":true,"messages":[]}"#).unwrap();
        assert_eq!(out, r#" {"stream_options":{"include_usage":true},"model":"m","stream":true,"messages":[]}"#);
        let out = asked(r#"{"stream":true,"stream_options":{"include_usage":false,"x":1}}"#).unwrap();
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(value["stream_options"], serde_json::json!({"include_usage": true, "x": 1}));
        assert_eq!(asked(r#"{"stream":true,"stream_options":{"include_usage":true}}"#), None);
        assert_eq!(asked(r#"{"stream":false}"#), None);
        assert_eq!(asked(r#"{"messages":[]}"#), None);
    }

    #[test]
    fn only_the_usage_chunk_is_hidden() {
        let events = Bytes::from_static(
            b"data: {\"choices\":[{\"delta\":{}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":3}}\n\ndata: [DONE]\n\n",
        );
        assert_eq!(&hidden(events)[..], b"data: {\"choices\":[{\"delta\":{}}]}\n\ndata: [DONE]\n\n");
        let plain = Bytes::from_static(b"data: {\"choices\":[{\"delta\":{}}],\"usage\":null}\n\n");
        assert_eq!(hidden(plain.clone()), plain);
    }
}
