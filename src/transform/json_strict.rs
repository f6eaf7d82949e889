//! The two things serde_json's fast skipping lets pass and its full parse refuses: numbers
//! beyond `f64`'s range, and `\u` escapes that are lone surrogates. The chat reader passes over
//! the values it does not need without parsing them, and checks each such value here: far
//! cheaper than unescaping its strings. With it, a body the proxy accepts is one a strict
//! parser upstream accepts too: invalid JSON gets the proxy's own 400 at once, instead of being
//! sent to each provider in turn and coming back as an upstream error.

use std::sync::OnceLock;

use memchr::{memchr, memmem};

use crate::wire::json_scan;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NotStrict {
    #[error("number out of range at byte {0}")]
    NumberOutOfRange(usize),
    #[error("lone surrogate in a \\u escape at byte {0}")]
    LoneSurrogate(usize),
}

/// Checks one value's raw text (well formed: serde_json has read past it): a string's escapes,
/// a number's range, or everything inside an array or object.
pub fn check_value(raw: &str) -> Result<(), NotStrict> {
    let raw = raw.as_bytes();
    match raw.first() {
        // The whole of it is the string: no need to look for its end.
        Some(b'"') => escapes(raw, 1, raw.len() - 1),
        Some(b'-' | b'0'..=b'9') => number_end(raw, 0).map(drop),
        Some(b'[' | b'{') => check(raw),
        _ => Ok(()),
    }
}

/// Checks a body that has been read as JSON once (so its tokens are well formed). Strings are
/// crossed with a vectorised search for their closing quote; only the bytes between strings
/// are looked at one by one, and those are few.
pub fn check(body: &[u8]) -> Result<(), NotStrict> {
    let mut at = 0;
    while let Some(&byte) = body.get(at) {
        at = match byte {
            b'"' => string_end(body, at + 1)?,
            b'-' | b'0'..=b'9' => number_end(body, at)?,
            _ => at + 1,
        };
    }
    Ok(())
}

/// Just past the string whose text starts at `start`, its `\u` escapes checked.
fn string_end(body: &[u8], start: usize) -> Result<usize, NotStrict> {
    let end = json_scan::string_end(body, start).unwrap_or(body.len());
    escapes(body, start, end)?;
    Ok(end + 1)
}

/// Checks the `\u` escapes of the string text `body[start..end]`.
fn escapes(body: &[u8], start: usize, end: usize) -> Result<(), NotStrict> {
    let text = &body[start..end];
    if memchr(b'\\', text).is_none() {
        return Ok(());
    }
    // Past the low half of a pair already checked with its high half.
    let mut checked = start;
    for found in unicode_escapes().find_iter(text) {
        let escape = start + found;
        // `\\u` is an escaped backslash and a `u`, not an escape.
        let backslashes = body[start..escape].iter().rev().take_while(|b| **b == b'\\').count();
        if escape >= checked && backslashes % 2 == 0 {
            checked = unicode_escape_end(body, escape)?;
        }
    }
    Ok(())
}

/// The search for `\u`, built once: building a searcher costs more than most strings.
fn unicode_escapes() -> &'static memmem::Finder<'static> {
    static FINDER: OnceLock<memmem::Finder<'static>> = OnceLock::new();
    FINDER.get_or_init(|| memmem::Finder::new(br"\u"))
}

/// Just past the `\uXXXX` escape at `at` (and the low surrogate a high one needs).
fn unicode_escape_end(body: &[u8], at: usize) -> Result<usize, NotStrict> {
    let unit = |at: usize| {
        body.get(at + 2..at + 6).and_then(|hex| u16::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok())
    };
    match unit(at) {
        Some(0xDC00..=0xDFFF) => Err(NotStrict::LoneSurrogate(at)),
        Some(0xD800..=0xDBFF) => match (body.get(at + 6..at + 8), unit(at + 6)) {
            (Some(b"\\u"), Some(0xDC00..=0xDFFF)) => Ok(at + 12),
            _ => Err(NotStrict::LoneSurrogate(at)),
        },
        _ => Ok(at + 6),
    }
}

/// Just past the number at `at`, which must be a finite `f64`. Only a long one, or one with an
/// exponent, can overflow, so only those are parsed.
fn number_end(body: &[u8], at: usize) -> Result<usize, NotStrict> {
    let length = body[at..].iter().take_while(|b| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')).count();
    let token = &body[at..at + length];
    let may_overflow = length > 300 || token.iter().any(|b| matches!(b, b'e' | b'E'));
    let finite = || std::str::from_utf8(token).ok().and_then(|t| t.parse::<f64>().ok()).is_some_and(f64::is_finite);
    if may_overflow && !finite() {
        return Err(NotStrict::NumberOutOfRange(at));
    }
    Ok(at + length)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_values_are_checked_as_they_are() {
        assert_eq!(check_value(r#""a\"b\\ud800""#), Ok(()));
        assert_eq!(check_value(r#""x\ud800""#), Err(NotStrict::LoneSurrogate(2)));
        assert_eq!(check_value("1e999"), Err(NotStrict::NumberOutOfRange(0)));
        assert_eq!(check_value(r#"{"a":[1,"\udfff"]}"#), Err(NotStrict::LoneSurrogate(9)));
        assert_eq!(check_value("true"), Ok(()));
    }

    #[test]
    fn ordinary_json_passes() {
        let body = br#"{"a":[1,-2.5e3,0.1e-400,1e308,"x\"\\u\n\u00e9\ud83d\ude00",true,false,null]}"#;
        assert_eq!(check(body), Ok(()));
    }

    #[test]
    fn numbers_beyond_the_range_of_a_double_are_refused() {
        assert_eq!(check(br#"[1e309]"#), Err(NotStrict::NumberOutOfRange(1)));
        assert_eq!(check(br#"{"n":-1e53690196053206295}"#), Err(NotStrict::NumberOutOfRange(5)));
        assert!(check(format!("[{}]", "9".repeat(400)).as_bytes()).is_err());
        assert_eq!(check(br#"[0e99999, "1e999"]"#), Ok(()), "a zero, and text that looks like a number");
    }

    #[test]
    fn lone_surrogates_are_refused_and_escaped_backslashes_are_not_escapes() {
        assert_eq!(check(br#"["\udc00"]"#), Err(NotStrict::LoneSurrogate(2)));
        assert_eq!(check(br#"["\ud800"]"#), Err(NotStrict::LoneSurrogate(2)));
        assert_eq!(check(br#"["\ud800\u0041"]"#), Err(NotStrict::LoneSurrogate(2)));
        assert_eq!(check(br#"["\\ud800"]"#), Ok(()), "a backslash, then the text ud800");
    }
}
