//! The proxy's own log lines on stderr, in the shape `LOG_FORMAT` names: `text` (logfmt, one
//! `key=value` line each) or `json` (one object a line). The proxy writes its messages as
//! `event=… key=value …`; a message from a library that is not in that form is kept whole in a
//! quoted `msg`, so every line parses either way.

use std::io::Write;

use env_logger::fmt::Formatter;
use log::Record;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    /// `LOG_FORMAT`: `text` (the default) or `json`.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var("LOG_FORMAT").unwrap_or_default().trim().to_ascii_lowercase().as_str() {
            "" | "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("LOG_FORMAT must be text or json, got {other:?}")),
        }
    }

    /// Writes one record as a line in this format.
    pub fn write(self, out: &mut Formatter, record: &Record) -> std::io::Result<()> {
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let level = record.level().as_str().to_ascii_lowercase();
        let message = record.args().to_string();
        let fields = logfmt(&message);
        match self {
            Self::Text => {
                let body = match fields {
                    Some(_) => message,
                    None => format!("msg={:?}", message),
                };
                writeln!(out, "ts={time} level={level} target={} {body}", record.target())
            }
            Self::Json => {
                let mut object = serde_json::Map::new();
                object.insert("ts".into(), time.into());
                object.insert("level".into(), level.into());
                object.insert("target".into(), record.target().into());
                match fields {
                    Some(fields) => object.extend(fields.into_iter().map(|(k, v)| (k, v.into()))),
                    None => drop(object.insert("msg".into(), message.into())),
                }
                writeln!(out, "{}", serde_json::Value::Object(object))
            }
        }
    }
}

/// The `key=value` pairs of a logfmt message (values bare, or quoted with `\` escapes); `None`
/// when the message is not in that form.
fn logfmt(message: &str) -> Option<Vec<(String, String)>> {
    let mut fields = Vec::new();
    let mut rest = message.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return None;
        }
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => quoted_value(quoted)?,
            None => after.split_once(' ').map_or((after.to_owned(), ""), |(v, a)| (v.to_owned(), a)),
        };
        fields.push((key.to_owned(), value));
        rest = after.trim_start();
    }
    (!fields.is_empty()).then_some(fields)
}

/// A quoted value's text (after its opening quote) and what follows its closing quote.
fn quoted_value(quoted: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = quoted.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Some((value, &quoted[at + 1..])),
            '\\' => value.push(chars.next()?.1),
            c => value.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_messages_are_logfmt_and_others_are_not() {
        let fields = logfmt(r#"event=key_cooldown key=k1 seconds=60.0 reason="rate limited \"hard\"""#).unwrap();
        assert_eq!(fields[0], ("event".to_owned(), "key_cooldown".to_owned()));
        assert_eq!(fields[3], ("reason".to_owned(), "rate limited \"hard\"".to_owned()));
        assert_eq!(logfmt("starting service: \"actix-web-service-127.0.0.1:18080\", workers: 2"), None);
        assert_eq!(logfmt("Failed { reason: \"x\" }"), None);
    }
}
