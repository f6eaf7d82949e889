//! JSON text scanned without a parse: where a string ends, whether a value arriving in pieces
//! is finished yet, a text without its whitespace, and the value after a key. Each crosses a
//! string's text with one vectorised search for its quote or backslash, so the bytes looked at
//! one by one are the few between strings.

use memchr::memchr2;
use serde::Deserialize;

/// How a scan through a string's text ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InString {
    /// At the closing quote, at this index.
    Closed(usize),
    /// The text goes on past the bytes scanned; `escaped` when they end with a lone backslash.
    Open { escaped: bool },
}

/// Scans a string's text from `from`, `escaped` when the byte before `from` was an escaping
/// backslash (a string scanned in pieces).
pub fn scan_string(bytes: &[u8], mut from: usize, escaped: bool) -> InString {
    if escaped {
        if from >= bytes.len() {
            return InString::Open { escaped: true };
        }
        from += 1;
    }
    while let Some(offset) = bytes.get(from..).and_then(|rest| memchr2(b'"', b'\\', rest)) {
        let at = from + offset;
        if bytes[at] == b'"' {
            return InString::Closed(at);
        }
        if at + 1 == bytes.len() {
            return InString::Open { escaped: true };
        }
        from = at + 2;
    }
    InString::Open { escaped: false }
}

/// The closing quote of the string whose text starts at `start`, if `bytes` holds it.
pub fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    match scan_string(bytes, start, false) {
        InString::Closed(at) => Some(at),
        InString::Open { .. } => None,
    }
}

/// Whether a JSON value, as its pieces arrive (a tool call's arguments, streamed), is finished.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JsonEnd {
    depth: usize,
    in_string: bool,
    escaped: bool,
    closed: bool,
}

impl JsonEnd {
    pub fn feed(&mut self, text: &str) {
        let bytes = text.as_bytes();
        let mut at = 0;
        while at < bytes.len() {
            if self.in_string {
                match scan_string(bytes, at, self.escaped) {
                    InString::Closed(quote) => {
                        (self.in_string, self.escaped) = (false, false);
                        at = quote + 1;
                    }
                    InString::Open { escaped } => {
                        self.escaped = escaped;
                        return;
                    }
                }
                continue;
            }
            match bytes[at] {
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    self.closed = self.depth == 0;
                }
                b'"' => self.in_string = true,
                _ => {}
            }
            at += 1;
        }
    }

    pub fn complete(&self) -> bool {
        self.closed && self.depth == 0 && !self.in_string
    }
}

/// A JSON text without the whitespace between its tokens, as a compact serialiser writes it.
pub fn compact(json: &str) -> String {
    let bytes = json.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b' ' | b'\t' | b'\n' | b'\r' => at += 1,
            b'"' => {
                let end = string_end(bytes, at + 1).map_or(bytes.len(), |quote| quote + 1);
                out.extend_from_slice(&bytes[at..end]);
                at = end;
            }
            _ => {
                out.push(byte);
                at += 1;
            }
        }
    }
    // Only ASCII whitespace outside strings was dropped: what is left is whole UTF-8.
    String::from_utf8(out).unwrap_or_else(|_| json.to_owned())
}

/// The JSON value after a key whose closing quote ends just before `after` (its colon may
/// follow whitespace), read as a `T`.
pub fn value_after<'a, T: Deserialize<'a>>(bytes: &'a [u8], after: usize) -> Option<T> {
    let value = bytes.get(after..)?.trim_ascii_start().strip_prefix(b":")?;
    serde_json::Deserializer::from_slice(value).into_iter::<T>().next()?.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_string_ends_at_its_first_unescaped_quote() {
        assert_eq!(string_end(br#""abc" x"#, 1), Some(4));
        assert_eq!(string_end(br#""a\"b\\" x"#, 1), Some(7));
        assert_eq!(string_end(br#""a\"#, 1), None);
        assert_eq!(scan_string(br#"a\"#, 0, false), InString::Open { escaped: true });
        assert_eq!(scan_string(br#""b""#, 0, true), InString::Closed(2), "the first quote was escaped");
    }

    #[test]
    fn json_ends_are_found_across_pieces_and_strings() {
        let mut json = JsonEnd::default();
        json.feed("{\"a\":\"}\\");
        assert!(!json.complete(), "braces in strings do not count, and the backslash carries over");
        json.feed("\"\",\"b\":[1]");
        assert!(!json.complete());
        json.feed("}");
        assert!(json.complete());
    }

    #[test]
    fn compacting_keeps_strings_as_they_are() {
        assert_eq!(compact("{ \"a b\" : [ 1 , \"x \\\" y\" ] }\n"), r#"{"a b":[1,"x \" y"]}"#);
        assert_eq!(compact(r#"{"é": "ü"}"#), r#"{"é":"ü"}"#);
    }

    #[test]
    fn the_value_after_a_key_is_read_on_its_own() {
        let text = br#"{"usage" : {"n":1}, "x":2}"#;
        let after = b"{\"usage\"".len();
        assert_eq!(value_after::<serde_json::Value>(text, after), Some(serde_json::json!({"n": 1})));
        assert_eq!(value_after::<u64>(text, after), None, "not a number");
    }
}
