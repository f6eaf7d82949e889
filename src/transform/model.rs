//! The one rewrite a body gets on its way to a provider: its `model`, replaced where it lies.
//! A copy of the body with the new value spliced in: linear, and no parse.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

/// Where a body's top-level `model` lies (`chat_view` finds it while it reads the body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSlot {
    /// The bytes of the `model` value, whatever its JSON type.
    Value(Range<usize>),
    /// No `model`: one goes just after the opening brace at `brace`, with a comma unless the
    /// object is otherwise empty (`alone`).
    Absent { brace: usize, alone: bool },
}

impl ModelSlot {
    /// The slot in the same body once its bytes `replaced` became `new_len` bytes elsewhere
    /// in it (the model is never inside them).
    pub fn moved(self, replaced: &Range<usize>, new_len: usize) -> ModelSlot {
        match self {
            ModelSlot::Value(range) => ModelSlot::Value(shifted(range, replaced, new_len)),
            slot => slot,
        }
    }
}

/// Where the bytes `range` of a body are once its bytes `replaced` became `new_len` bytes
/// (the two never overlap): moved along if they came after.
pub fn shifted(range: Range<usize>, replaced: &Range<usize>, new_len: usize) -> Range<usize> {
    if range.start < replaced.end {
        return range;
    }
    let shift = |at: usize| at - replaced.len() + new_len;
    shift(range.start)..shift(range.end)
}

/// The body with `model` in its slot; every other byte stays as the client sent it.
pub fn with_model(body: &Bytes, slot: &ModelSlot, model: &str) -> Bytes {
    // A string always serialises.
    let quoted = serde_json::to_string(model).unwrap_or_default();
    let mut out = BytesMut::with_capacity(body.len() + quoted.len() + 10);
    match slot {
        ModelSlot::Value(range) => {
            out.put_slice(&body[..range.start]);
            out.put_slice(quoted.as_bytes());
            out.put_slice(&body[range.end..]);
        }
        ModelSlot::Absent { brace, alone } => {
            out.put_slice(&body[..=*brace]);
            out.put_slice(b"\"model\":");
            out.put_slice(quoted.as_bytes());
            if !alone {
                out.put_u8(b',');
            }
            out.put_slice(&body[brace + 1..]);
        }
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::chat_view::{ChatView, Reading};

    fn rewritten(body: &'static str, model: &str) -> String {
        let body = Bytes::from_static(body.as_bytes());
        let slot = ChatView::read(&body, Reading::EVERYTHING).unwrap().model_slot;
        String::from_utf8(with_model(&body, &slot, model).to_vec()).unwrap()
    }

    #[test]
    fn only_the_model_changes_and_the_field_order_stays() {
        assert_eq!(
            rewritten(r#"{"stream":true,"model":"llama","messages":[]}"#, "glm-4.6"),
            r#"{"stream":true,"model":"glm-4.6","messages":[]}"#
        );
        assert_eq!(rewritten(r#" { "model" : 7 , "n":1}"#, "m"), r#" { "model" : "m" , "n":1}"#);
        assert_eq!(rewritten(r#"{"model":"a\"b","messages":[]}"#, "x"), r#"{"model":"x","messages":[]}"#);
    }

    #[test]
    fn an_absent_model_goes_first() {
        assert_eq!(rewritten(r#"{"messages":[]}"#, "glm-4.6"), r#"{"model":"glm-4.6","messages":[]}"#);
        assert_eq!(rewritten(" {}", "m"), r#" {"model":"m"}"#);
        assert_eq!(rewritten("{ }", "m"), r#"{"model":"m" }"#);
    }

    #[test]
    fn the_last_of_repeated_models_is_the_one_replaced() {
        assert_eq!(rewritten(r#"{"model":"a","model":"b"}"#, "c"), r#"{"model":"a","model":"c"}"#);
    }

    #[test]
    fn the_new_name_is_escaped() {
        let body = rewritten(r#"{"model":"a"}"#, "quote\"d");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["model"], "quote\"d");
    }

    #[test]
    fn a_slot_after_a_repaired_history_moves_with_it_and_one_before_stays() {
        use crate::transform::history_splice::repaired_body;
        let call = r#"{"role":"assistant","tool_calls":[{"id":"a"}]}"#;
        for body in
            [format!(r#"{{"messages":[{call}],"model":"m"}}"#), format!(r#"{{"model":"m","messages":[{call}]}}"#)]
        {
            let view = ChatView::read(body.as_bytes(), Reading::EVERYTHING).unwrap();
            let spliced = repaired_body(body.as_bytes(), &view.messages, usize::MAX).unwrap();
            let slot = view.model_slot.clone().moved(&spliced.replaced, spliced.new_len);
            assert_eq!(slot, ChatView::read(&spliced.body, Reading::EVERYTHING).unwrap().model_slot, "{body}");
            let rewritten: serde_json::Value = serde_json::from_slice(&with_model(&spliced.body, &slot, "x")).unwrap();
            assert_eq!(rewritten["model"], "x");
            assert_eq!(rewritten["messages"].as_array().unwrap().len(), 2);
        }
    }
}
