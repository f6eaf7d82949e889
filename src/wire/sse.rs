//! Server-sent events, read and written: the one reader of an event stream's data (the doors
//! translating a provider's stream, the log assembling it), where an event ends (the relay
//! forwarding whole events), and the framing of events the proxy writes.

use serde::Serialize;

/// Reads the data of each event as the bytes of a stream arrive, in pieces of any size. Only
/// `data:` lines count; names, ids and comments are not needed by any reader here.
#[derive(Debug, Default)]
pub struct Reader {
    /// An unfinished line, from the end of the bytes pushed last.
    line: Vec<u8>,
    /// The data lines of the event being read, joined by newlines.
    data: Vec<u8>,
    lines: usize,
}

impl Reader {
    /// Hands `on_event` the data of every event that `chunk` completes.
    pub fn push(&mut self, chunk: &[u8], on_event: &mut impl FnMut(&[u8])) {
        let mut rest = chunk;
        while let Some(newline) = memchr::memchr(b'\n', rest) {
            if self.line.is_empty() {
                self.read_line(&rest[..newline], on_event);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&rest[..newline]);
                self.read_line(&line, on_event);
                line.clear();
                self.line = line;
            }
            rest = &rest[newline + 1..];
        }
        self.line.extend_from_slice(rest);
    }

    /// The stream ended: an event still open counts as ended too.
    pub fn finish(&mut self, on_event: &mut impl FnMut(&[u8])) {
        let line = std::mem::take(&mut self.line);
        if !line.is_empty() {
            self.read_line(&line, on_event);
        }
        self.read_line(b"", on_event);
    }

    fn read_line(&mut self, line: &[u8], on_event: &mut impl FnMut(&[u8])) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if !self.data.is_empty() {
                on_event(&self.data);
            }
            self.data.clear();
            self.lines = 0;
            return;
        }
        if let Some(data) = line.strip_prefix(b"data:") {
            if self.lines > 0 {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(data.strip_prefix(b" ").unwrap_or(data));
            self.lines += 1;
        }
    }
}

/// The events of `bytes` (whole events, as the relay hands them on), each with its blank line.
pub fn events(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        // Just past the first blank line (`\n\n`, or the end of `\r\n\r\n`), each byte looked
        // at once.
        let mut from = 0;
        let end = loop {
            let Some(at) = memchr::memchr(b'\n', &rest[from..]) else { break rest.len() };
            let after = &rest[from + at + 1..];
            if after.starts_with(b"\n") {
                break from + at + 2;
            }
            if after.starts_with(b"\r\n") {
                break from + at + 3;
            }
            from += at + 1;
        };
        let (event, tail) = rest.split_at(end);
        rest = tail;
        Some(event)
    })
}

/// Just past the last blank line in `bytes` that ends at or after `from`: where the last whole
/// event ends. A blank line is `\n\n`, or `\n\r\n` (the end of `\r\n\r\n`).
pub fn event_end(bytes: &[u8], from: usize) -> Option<usize> {
    let mut end = bytes.len();
    while let Some(offset) = memchr::memrchr(b'\n', &bytes[from..end]) {
        let newline = from + offset;
        let before = &bytes[..newline];
        if before.ends_with(b"\n") || before.ends_with(b"\n\r") {
            return Some(newline + 1);
        }
        end = newline;
    }
    None
}

/// Writes one event: its name, when it has one, and its data as JSON.
pub fn event(out: &mut Vec<u8>, name: Option<&str>, data: &impl Serialize) {
    if let Some(name) = name {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    // Strings, numbers and maps always serialise.
    let _ = serde_json::to_writer(&mut *out, data);
    out.extend_from_slice(b"\n\n");
}

/// Writes a comment line, which every client skips: a stream's sign of life.
pub fn comment(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b": ");
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_events_split_at_their_blank_lines() {
        let bytes = b"data: a\n\ndata: b\r\n\r\ndata: c\n";
        let events: Vec<&[u8]> = events(bytes).collect();
        assert_eq!(events, [&b"data: a\n\n"[..], b"data: b\r\n\r\n", b"data: c\n"]);
    }

    fn read(pieces: &[&str]) -> Vec<String> {
        let mut reader = Reader::default();
        let mut events = Vec::new();
        let mut on_event = |data: &[u8]| events.push(String::from_utf8(data.to_vec()).unwrap());
        for piece in pieces {
            reader.push(piece.as_bytes(), &mut on_event);
        }
        reader.finish(&mut on_event);
        events
    }

    #[test]
    fn events_are_read_whatever_the_pieces() {
        let stream = "event: a\ndata: {\"x\":1}\n\n: comment\n\ndata: 2\r\n\r\ndata: first\ndata: second\n\n";
        let expected = ["{\"x\":1}", "2", "first\nsecond"];
        assert_eq!(read(&[stream]), expected);
        let bytes: Vec<String> = stream.chars().map(String::from).collect();
        assert_eq!(read(&bytes.iter().map(String::as_str).collect::<Vec<_>>()), expected);
    }

    #[test]
    fn an_event_the_stream_ends_in_still_counts() {
        assert_eq!(read(&["data: 1\n\ndata: [DONE]"]), ["1", "[DONE]"]);
        assert!(read(&["data:\n\nid: 3\n\n"]).is_empty(), "an event without data is no event");
    }

    #[test]
    fn event_ends_are_found_only_in_the_new_bytes() {
        assert_eq!(event_end(b"data: 1\n\ndata: 2", 0), Some(9));
        assert_eq!(event_end(b"data: 1\r\n\r\n", 0), Some(11));
        assert_eq!(event_end(b"data: 1\ndata: 2\n", 0), None);
        assert_eq!(event_end(b"data: 1\n\nxx", 10), None);
    }

    #[test]
    fn events_and_comments_are_framed() {
        let mut out = Vec::new();
        event(&mut out, Some("ping"), &serde_json::json!({"type": "ping"}));
        event(&mut out, None, &"x");
        comment(&mut out, "keep-alive");
        assert_eq!(out, b"event: ping\ndata: {\"type\":\"ping\"}\n\ndata: \"x\"\n\n: keep-alive\n\n");
    }
}
