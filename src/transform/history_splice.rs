//! A repaired history written into the client's body, without a JSON tree: the bytes of every
//! message kept are copied as they came, the `"failed"` answers are written between them, and
//! every byte outside the `messages` array stays as the client sent it.
//!
//! A tree costs many times the body (a 64 MiB history of small messages took 3 GB); this costs
//! one copy of it. The edits come from [`tool_repair`](super::tool_repair)'s walk over the view
//! `ChatView::read` kept, applied to the array's elements as a second read meets them.

use std::io::Write as _;
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::chat_view::{message_view, MessageView};
use super::tool_repair::{walk, Edit, Repairs};

/// A body whose history was repaired.
#[derive(Debug)]
pub struct Spliced {
    pub body: Bytes,
    pub repairs: Repairs,
    /// The bytes of the client's body the repaired history took the place of.
    pub replaced: Range<usize>,
    /// The repaired history's length.
    pub new_len: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SpliceError {
    /// The answers the repair adds would take the body past `limit` bytes.
    #[error("the repaired body would be larger than {0} bytes")]
    TooLarge(usize),
    /// The body did not read as it did the first time (not expected).
    #[error("{0}")]
    Unreadable(serde_json::Error),
}

/// The body with its history repaired as `view` (the body's own view) says, within `limit`
/// bytes.
pub fn repaired_body(body: &[u8], view: &[MessageView<'_>], limit: usize) -> Result<Spliced, SpliceError> {
    let unreadable = SpliceError::Unreadable;
    let text = std::str::from_utf8(body).map_err(|e| unreadable(de::Error::custom(e)))?;
    let messages = serde_json::Deserializer::from_str(text).deserialize_map(LastMessages).map_err(unreadable)?;
    let messages = messages.ok_or_else(|| unreadable(de::Error::custom("the body has no messages")))?;
    // The raw value borrows from `text`: its place is where it lies in it.
    let start = messages.get().as_ptr() as usize - text.as_ptr() as usize;
    let replaced = start..start + messages.get().len();
    let mut out = Output { bytes: BytesMut::with_capacity(body.len() + 1024), limit, too_large: false };
    out.bytes.put_slice(&body[..start]);
    out.bytes.put_u8(b'[');
    let read = serde_json::Deserializer::from_str(messages.get()).deserialize_seq(Rewrite { view, out: &mut out });
    let repairs = match read {
        Err(_) if out.too_large => return Err(SpliceError::TooLarge(limit)),
        read => read.map_err(unreadable)?,
    };
    out.bytes.put_u8(b']');
    out.bytes.put_slice(&body[replaced.end..]);
    if out.bytes.len() > limit {
        return Err(SpliceError::TooLarge(limit));
    }
    let new_len = out.bytes.len() + replaced.len() - body.len();
    Ok(Spliced { body: out.bytes.freeze(), repairs, replaced, new_len })
}

/// The repaired body as it is written, and its limit.
struct Output {
    bytes: BytesMut,
    limit: usize,
    /// The limit was passed: the writing stopped there.
    too_large: bool,
}

/// The top level's last `messages` value, as serde_json (and providers) read a repeated field.
struct LastMessages;

impl<'de> Visitor<'de> for LastMessages {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a chat completion")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut messages = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "messages" {
                messages = Some(map.next_value::<&RawValue>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(messages)
    }
}

/// Writes the repaired array's elements into `out`, between its brackets.
struct Rewrite<'v, 'b> {
    view: &'v [MessageView<'v>],
    out: &'b mut Output,
}

impl<'de> Visitor<'de> for Rewrite<'_, '_> {
    type Value = Repairs;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("the messages array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Repairs, A::Error> {
        let mut elements = Elements { seq, peeked: None };
        let mut writer = Writer { out: self.out, written: 0 };
        let mut repairs = Repairs::default();
        let mut failure = None;
        walk(self.view, |edit| {
            if failure.is_none() {
                if let Err(error) = apply(edit, &mut elements, &mut writer, &mut repairs) {
                    failure = Some(error);
                }
            }
        });
        if let Some(error) = failure {
            return Err(error);
        }
        match elements.next()? {
            Some(_) => Err(mismatch()),
            None => Ok(repairs),
        }
    }
}

/// Applies one edit of the walk to the elements it stands for.
fn apply<'de, A: SeqAccess<'de>>(
    edit: Edit<'_, MessageView<'_>>,
    elements: &mut Elements<'de, A>,
    writer: &mut Writer,
    repairs: &mut Repairs,
) -> Result<(), A::Error> {
    match edit {
        Edit::AnswerFailed(id) => {
            writer.failed_answer(id)?;
            repairs.inserted += 1;
        }
        Edit::Remove => {
            let raw = elements.next()?.ok_or_else(mismatch)?;
            if !matches!(read(raw)?, MessageView::ToolResult(_)) {
                return Err(mismatch());
            }
            repairs.removed += 1;
        }
        Edit::Keep(entry) => {
            let raw = elements.next()?.ok_or_else(mismatch)?;
            if read(raw)? != *entry {
                return Err(mismatch());
            }
            writer.element(raw.get().as_bytes())?;
            // The view keeps a run of other messages as one entry: the run is kept whole.
            if *entry == MessageView::Other {
                while let Some(raw) = elements.next_other()? {
                    writer.element(raw.get().as_bytes())?;
                }
            }
        }
    }
    Ok(())
}

fn read<E: de::Error>(raw: &RawValue) -> Result<MessageView<'_>, E> {
    message_view(raw).map_err(E::custom)
}

fn mismatch<E: de::Error>() -> E {
    E::custom("the history read differently the second time")
}

/// The array's elements, one at a time, with one looked at ahead to end a run.
struct Elements<'de, A> {
    seq: A,
    peeked: Option<&'de RawValue>,
}

impl<'de, A: SeqAccess<'de>> Elements<'de, A> {
    fn next(&mut self) -> Result<Option<&'de RawValue>, A::Error> {
        match self.peeked.take() {
            Some(raw) => Ok(Some(raw)),
            None => self.seq.next_element(),
        }
    }

    /// The next element if it is another message that is neither calls nor an answer.
    fn next_other(&mut self) -> Result<Option<&'de RawValue>, A::Error> {
        let Some(raw) = self.next()? else { return Ok(None) };
        if read::<A::Error>(raw)? == MessageView::Other {
            return Ok(Some(raw));
        }
        self.peeked = Some(raw);
        Ok(None)
    }
}

/// Writes elements with commas between them, up to the output's limit.
struct Writer<'b> {
    out: &'b mut Output,
    written: usize,
}

impl Writer<'_> {
    fn element<E: de::Error>(&mut self, bytes: &[u8]) -> Result<(), E> {
        self.start()?;
        self.out.bytes.put_slice(bytes);
        Ok(())
    }

    fn failed_answer<E: de::Error>(&mut self, id: &str) -> Result<(), E> {
        self.start()?;
        let mut out = (&mut self.out.bytes).writer();
        // Writing into memory cannot fail.
        let _ = out.write_all(br#"{"role":"tool","tool_call_id":"#);
        let _ = serde_json::to_writer(&mut out, id);
        let _ = out.write_all(br#","content":"failed"}"#);
        Ok(())
    }

    /// The comma before an element, once the output is known to have room for more.
    fn start<E: de::Error>(&mut self) -> Result<(), E> {
        if self.out.bytes.len() > self.out.limit {
            self.out.too_large = true;
            return Err(E::custom("the repaired body is too large"));
        }
        if self.written > 0 {
            self.out.bytes.put_u8(b',');
        }
        self.written += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::chat_view::{ChatView, Reading};
    use serde_json::{json, Value};

    fn spliced(body: &str) -> (String, Repairs) {
        let view = ChatView::read(body.as_bytes(), Reading::EVERYTHING).unwrap();
        let spliced = repaired_body(body.as_bytes(), &view.messages, usize::MAX).unwrap();
        let out = String::from_utf8(spliced.body.to_vec()).unwrap();
        let (start, end) = (spliced.replaced.start, spliced.replaced.start + spliced.new_len);
        assert!(out[start..end].starts_with('[') && out[start..end].ends_with(']'), "{out}");
        assert_eq!(out[..start], body[..start]);
        assert_eq!(out[end..], body[spliced.replaced.end..]);
        (out, spliced.repairs)
    }

    #[test]
    fn only_the_messages_array_is_rewritten_and_kept_messages_keep_their_bytes() {
        let body = "{ \"stream\" : true,\n  \"messages\": [ {\"role\":\"user\",\"content\":\"h\\u00e9\"} ,\n \
                    {\"role\": \"assistant\", \"tool_calls\": [{\"id\": \"a\"}]} ],\n  \"model\" : \"m\" }";
        let (out, repairs) = spliced(body);
        assert_eq!(
            out,
            "{ \"stream\" : true,\n  \"messages\": [{\"role\":\"user\",\"content\":\"h\\u00e9\"},\
             {\"role\": \"assistant\", \"tool_calls\": [{\"id\": \"a\"}]},\
             {\"role\":\"tool\",\"tool_call_id\":\"a\",\"content\":\"failed\"}],\n  \"model\" : \"m\" }"
        );
        assert_eq!(repairs, Repairs { inserted: 1, removed: 0 });
    }

    #[test]
    fn escaped_ids_are_matched_unescaped_and_written_escaped() {
        let body = json!({"messages": [
            {"role": "assistant", "tool_calls": [{"id": "q\"1"}, {"id": "é"}]},
            {"role": "tool", "tool_call_id": "\u{e9}", "content": "ok"},
        ]});
        let text = serde_json::to_string(&body).unwrap().replace('é', "\\u00e9");
        let (out, repairs) = spliced(&text);
        let out: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(out["messages"][1]["tool_call_id"], "é", "the escaped answer matched its call");
        assert_eq!(out["messages"][2], json!({"role": "tool", "tool_call_id": "q\"1", "content": "failed"}));
        assert_eq!(repairs, Repairs { inserted: 1, removed: 0 });
    }

    #[test]
    fn runs_of_other_elements_are_kept_whole_and_orphans_removed() {
        let body = r#"{"messages":[0,{"role":"user"},"x",{"role":"tool","tool_call_id":"z"},null,[],{"role":"assistant","tool_calls":[{"id":"a"}]},1,2]}"#;
        let (out, repairs) = spliced(body);
        assert_eq!(
            out,
            r#"{"messages":[0,{"role":"user"},"x",null,[],{"role":"assistant","tool_calls":[{"id":"a"}]},{"role":"tool","tool_call_id":"a","content":"failed"},1,2]}"#
        );
        assert_eq!(repairs, Repairs { inserted: 1, removed: 1 });
    }

    #[test]
    fn of_a_repeated_messages_field_the_last_is_repaired_as_it_is_read() {
        let body = r#"{"messages":[{"role":"tool"}],"messages":[{"role":"tool","tool_call_id":"a"}]}"#;
        let (out, _) = spliced(body);
        assert_eq!(out, r#"{"messages":[{"role":"tool"}],"messages":[]}"#);
    }

    #[test]
    fn a_body_that_reads_otherwise_than_its_view_is_an_error() {
        let body = br#"{"messages":[{"role":"tool","tool_call_id":"a"}]}"#;
        let other = br#"{"messages":[{"role":"user"}]}"#;
        let view = ChatView::read(body, Reading::EVERYTHING).unwrap();
        assert!(matches!(repaired_body(other, &view.messages, usize::MAX), Err(SpliceError::Unreadable(_))));
        assert!(matches!(repaired_body(b"{}", &view.messages, usize::MAX), Err(SpliceError::Unreadable(_))));
    }

    #[test]
    fn a_repair_past_the_limit_is_refused_and_stops_there() {
        let body =
            format!(r#"{{"messages":[{{"role":"assistant","tool_calls":[{}]}}]}}"#, [r#"{"id":"a"}"#; 1000].join(","));
        let view = ChatView::read(body.as_bytes(), Reading::EVERYTHING).unwrap();
        let repaired = repaired_body(body.as_bytes(), &view.messages, usize::MAX).unwrap();
        assert_eq!(repaired.repairs.inserted, 1000);
        let fits = repaired_body(body.as_bytes(), &view.messages, repaired.body.len()).unwrap();
        assert_eq!(fits.body, repaired.body);
        let limit = repaired.body.len() - 1;
        assert!(
            matches!(repaired_body(body.as_bytes(), &view.messages, limit), Err(SpliceError::TooLarge(l)) if l == limit)
        );
    }
}
