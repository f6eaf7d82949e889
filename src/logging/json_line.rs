//! A JSON object written field by field into a buffer: how a record becomes its line.
//!
//! Records are written at the rate requests arrive, so their strings take a fast path: a
//! string with nothing to escape (nearly all of them: names, ids, header values) is checked
//! eight bytes at a time and copied whole; only the others go through serde_json's escaping.

use serde::Serialize;

pub struct JsonObject<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> JsonObject<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, first: true }
    }

    /// Keys are the record's own names and header names (HTTP tokens): nothing to escape.
    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    pub fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        string(self.out, value);
    }

    /// A string, or `null`.
    pub fn opt_str(&mut self, key: &str, value: Option<&str>) {
        match value {
            Some(value) => self.str(key, value),
            None => self.raw(key, "null"),
        }
    }

    /// A value written as it is: `null`, `true`, or JSON already.
    pub fn raw(&mut self, key: &str, json: &str) {
        self.key(key);
        self.out.extend_from_slice(json.as_bytes());
    }

    /// A whole number, or `null`.
    pub fn number(&mut self, key: &str, value: Option<u64>) {
        self.key(key);
        match value {
            Some(n) => self.out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
            None => self.out.extend_from_slice(b"null"),
        }
    }

    /// Milliseconds to the microsecond, from a float (integer digits: float formatting is slow).
    pub fn milliseconds(&mut self, key: &str, ms: f64) {
        self.key(key);
        let micros = (ms * 1000.0).round().max(0.0) as u64;
        let mut digits = itoa::Buffer::new();
        self.out.extend_from_slice(digits.format(micros / 1000).as_bytes());
        self.out.push(b'.');
        let fraction = digits.format(micros % 1000 + 1000);
        self.out.extend_from_slice(&fraction.as_bytes()[1..]);
    }

    /// Any serialisable value, through serde_json.
    pub fn value<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> serde_json::Result<()> {
        self.key(key);
        serde_json::to_writer(&mut *self.out, value)
    }

    /// A nested object, written by `fill`.
    pub fn object(&mut self, key: &str, fill: impl FnOnce(&mut JsonObject)) {
        self.key(key);
        let mut inner = JsonObject::new(self.out);
        fill(&mut inner);
        inner.end();
    }

    /// A nested array of objects, each written by `fill`.
    pub fn array<T>(
        &mut self,
        key: &str,
        items: impl IntoIterator<Item = T>,
        mut fill: impl FnMut(&mut JsonObject, T),
    ) {
        self.key(key);
        self.out.push(b'[');
        for (index, item) in items.into_iter().enumerate() {
            if index > 0 {
                self.out.push(b',');
            }
            let mut inner = JsonObject::new(self.out);
            fill(&mut inner, item);
            inner.end();
        }
        self.out.push(b']');
    }

    pub fn end(self) {
        self.out.push(b'}');
    }
}

/// Writes `text` as a JSON string.
pub fn string(out: &mut Vec<u8>, text: &str) {
    if needs_escape(text.as_bytes()) {
        // A string always serialises.
        let _ = serde_json::to_writer(&mut *out, text);
    } else {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    }
}

/// Whether a byte of `bytes` must be escaped in JSON: a control character, `"` or `\`.
/// Eight bytes at a time (SWAR): the byte-by-byte loop cost ten instructions a byte.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // The high bit of each byte that is zero, in a word's bytes.
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let special = |word: u64| {
        let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
        below_space | zero(word ^ (ONES * u64::from(b'"'))) | zero(word ^ (ONES * u64::from(b'\\'))) != 0
    };
    let mut words = bytes.chunks_exact(8);
    let found = words.by_ref().any(|chunk| special(u64::from_ne_bytes(chunk.try_into().unwrap_or([0; 8]))));
    found || words.remainder().iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_that_needs_an_escape_is_found_wherever_it_stands() {
        for special in (0u8..0x20).chain([b'"', b'\\']) {
            for at in 0..20 {
                let mut bytes = vec![b'a'; 20];
                bytes[at] = special;
                assert!(needs_escape(&bytes), "{special:#x} at {at}");
            }
        }
        assert!(!needs_escape("plain text with é and ~ and 0x7f\u{7f}".as_bytes()));
        assert!(!needs_escape(&[0x20; 17]) && !needs_escape(&[0xff; 9]));
    }

    #[test]
    fn objects_and_strings_come_out_as_serde_json_reads_them() {
        let mut out = Vec::new();
        let mut object = JsonObject::new(&mut out);
        object.str("plain", "abc é");
        object.str("escaped", "a \"q\" \\ \n \u{1}");
        object.opt_str("none", None);
        object.raw("n", "1.5");
        object.number("count", Some(42));
        object.number("none_count", None);
        object.milliseconds("ms", 12.0456);
        object.object("inner", |o| o.str("k", "v"));
        object.array("list", [1, 2], |o, n| o.raw("n", &n.to_string()));
        object.end();
        let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({"plain": "abc é", "escaped": "a \"q\" \\ \n \u{1}", "none": null, "n": 1.5,
                               "count": 42, "none_count": null, "ms": 12.046,
                               "inner": {"k": "v"}, "list": [{"n": 1}, {"n": 2}]})
        );
    }
}
