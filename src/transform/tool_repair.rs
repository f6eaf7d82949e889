//! Repairs a chat history whose tool calls were left unanswered, which providers reject.
//!
//! Every id in an assistant message's `tool_calls` must be answered by a `tool` message before
//! the next non-tool message. Missing answers are inserted as `"failed"`, in call order, right
//! after the answers that exist; `tool` messages that answer no call of the block they stand
//! in are removed.

use serde_json::{json, Value};

use crate::transform::chat_view::MessageView;

/// What a repair changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Repairs {
    pub inserted: usize,
    pub removed: usize,
}

/// What repair reads of a message, from the parsed tree or from the body's lighter view.
pub trait HistoryMessage {
    fn role(&self) -> Option<&str>;
    fn tool_call_id(&self) -> Option<&str>;
    /// The ids of an assistant message's tool calls, in call order; calls without an id need no answer.
    fn call_ids(&self) -> Vec<&str>;
}

impl HistoryMessage for Value {
    fn role(&self) -> Option<&str> {
        self.get("role").and_then(Value::as_str)
    }
    fn tool_call_id(&self) -> Option<&str> {
        self.get("tool_call_id").and_then(Value::as_str)
    }
    fn call_ids(&self) -> Vec<&str> {
        match self.get("tool_calls") {
            Some(Value::Array(calls)) => calls.iter().filter_map(|c| c.get("id").and_then(Value::as_str)).collect(),
            _ => Vec::new(),
        }
    }
}

impl HistoryMessage for MessageView<'_> {
    fn role(&self) -> Option<&str> {
        self.role.as_deref()
    }
    fn tool_call_id(&self) -> Option<&str> {
        self.tool_call_id.as_deref()
    }
    fn call_ids(&self) -> Vec<&str> {
        self.call_ids.iter().map(AsRef::as_ref).collect()
    }
}

/// Whether the history needs a repair. Runs on every request, so it only reads.
pub fn needs_repair<M: HistoryMessage>(messages: &[M]) -> bool {
    let mut changed = false;
    walk(messages, |edit| changed |= !matches!(edit, Edit::Keep(_)));
    changed
}

/// The repaired history, or `None` when it needs no repair (and must be sent untouched).
pub fn repair(messages: &[Value]) -> Option<(Vec<Value>, Repairs)> {
    if !needs_repair(messages) {
        return None;
    }
    let mut repairs = Repairs::default();
    let mut repaired = Vec::with_capacity(messages.len() + 1);
    walk(messages, |edit| match edit {
        Edit::Keep(message) => repaired.push(message.clone()),
        Edit::AnswerFailed(id) => {
            repaired.push(json!({"role": "tool", "tool_call_id": id, "content": "failed"}));
            repairs.inserted += 1;
        }
        Edit::Remove => repairs.removed += 1,
    });
    Some((repaired, repairs))
}

/// One step of the repaired history.
enum Edit<'a, M> {
    Keep(&'a M),
    AnswerFailed(&'a str),
    Remove,
}

/// Calls ids still unanswered when their block closes get a `"failed"` answer, in call order.
fn answer_pending<'a, M: 'a>(pending: &mut Vec<&'a str>, emit: &mut impl FnMut(Edit<'a, M>)) {
    for id in pending.drain(..) {
        emit(Edit::AnswerFailed(id));
    }
}

/// Walks the history and says, message by message, what the repaired one holds.
fn walk<'a, M: HistoryMessage>(messages: &'a [M], mut emit: impl FnMut(Edit<'a, M>)) {
    let mut pending: Vec<&str> = Vec::new();
    for message in messages {
        if message.role() == Some("tool") {
            match message.tool_call_id().and_then(|id| pending.iter().position(|p| *p == id)) {
                Some(index) => {
                    pending.remove(index);
                    emit(Edit::Keep(message));
                }
                None => emit(Edit::Remove),
            }
            continue;
        }
        answer_pending(&mut pending, &mut emit);
        if message.role() == Some("assistant") {
            pending = message.call_ids();
        }
        emit(Edit::Keep(message));
    }
    answer_pending(&mut pending, &mut emit);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(ids: &[&str]) -> Value {
        let calls: Vec<Value> = ids
            .iter()
            .map(|id| json!({"id": id, "type": "function", "function": {"name": "f", "arguments": "{}"}}))
            .collect();
        json!({"role": "assistant", "content": null, "tool_calls": calls})
    }

    fn answer(id: &str) -> Value {
        json!({"role": "tool", "tool_call_id": id, "content": "ok"})
    }

    fn failed(id: &str) -> Value {
        json!({"role": "tool", "tool_call_id": id, "content": "failed"})
    }

    fn user(text: &str) -> Value {
        json!({"role": "user", "content": text})
    }

    #[test]
    fn a_complete_history_needs_no_repair() {
        let history = [user("hi"), call(&["a", "b"]), answer("b"), answer("a"), user("next")];
        assert_eq!(repair(&history), None);
    }

    #[test]
    fn unanswered_calls_get_failed_answers_in_call_order_after_the_existing_ones() {
        let history = [user("hi"), call(&["a", "b", "c"]), answer("b"), user("next")];
        let (repaired, repairs) = repair(&history).unwrap();
        assert_eq!(repaired, [user("hi"), call(&["a", "b", "c"]), answer("b"), failed("a"), failed("c"), user("next")]);
        assert_eq!(repairs, Repairs { inserted: 2, removed: 0 });
    }

    #[test]
    fn leftovers_at_the_end_are_answered_at_the_end() {
        let history = [user("hi"), call(&["a"])];
        let (repaired, _) = repair(&history).unwrap();
        assert_eq!(repaired, [user("hi"), call(&["a"]), failed("a")]);
    }

    #[test]
    fn orphan_and_duplicate_tool_answers_are_removed() {
        let history = [user("hi"), answer("ghost"), call(&["a"]), answer("a"), answer("a"), user("next"), answer("a")];
        let (repaired, repairs) = repair(&history).unwrap();
        assert_eq!(repaired, [user("hi"), call(&["a"]), answer("a"), user("next")]);
        assert_eq!(repairs, Repairs { inserted: 0, removed: 3 });
    }

    #[test]
    fn null_tool_calls_calls_without_ids_and_odd_contents_are_handled() {
        let odd = [
            json!({"role": "assistant", "content": [{"type": "text", "text": "x"}], "tool_calls": null}),
            json!({"role": "assistant", "tool_calls": [{"type": "function"}, {"id": 7}]}),
            json!({"role": "user", "content": {"weird": true}}),
            json!({"no_role": 1}),
        ];
        assert_eq!(repair(&odd), None);
        let toolless_answer = [json!({"role": "tool", "content": "x"})];
        assert_eq!(repair(&toolless_answer).unwrap().1, Repairs { inserted: 0, removed: 1 });
    }

    #[test]
    fn consecutive_assistant_calls_close_the_previous_block() {
        let history = [call(&["a"]), call(&["b"]), answer("b")];
        let (repaired, _) = repair(&history).unwrap();
        assert_eq!(repaired, [call(&["a"]), failed("a"), call(&["b"]), answer("b")]);
    }
}
