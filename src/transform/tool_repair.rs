//! Repairs a chat history whose tool calls were left unanswered, which providers reject.
//!
//! Every id in an assistant message's `tool_calls` must be answered by a `tool` message before
//! the next non-tool message. Missing answers are inserted as `"failed"`, in call order, right
//! after the answers that exist; `tool` messages that answer no call of the block they stand
//! in are removed.

use serde_json::{json, Value};

/// What a repair changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Repairs {
    pub inserted: usize,
    pub removed: usize,
}

/// The repaired history, or `None` when it needs no repair (and must be sent untouched).
/// A history that needs nothing is only read, never copied: this runs on every request.
pub fn repair(messages: &[Value]) -> Option<(Vec<Value>, Repairs)> {
    let mut changed = false;
    walk(messages, |edit| changed |= !matches!(edit, Edit::Keep(_)));
    if !changed {
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
enum Edit<'a> {
    Keep(&'a Value),
    AnswerFailed(&'a str),
    Remove,
}

/// Calls ids still unanswered when their block closes get a `"failed"` answer, in call order.
fn answer_pending<'a>(pending: &mut Vec<&'a str>, emit: &mut impl FnMut(Edit<'a>)) {
    for id in pending.drain(..) {
        emit(Edit::AnswerFailed(id));
    }
}

/// Walks the history and says, message by message, what the repaired one holds.
fn walk<'a>(messages: &'a [Value], mut emit: impl FnMut(Edit<'a>)) {
    let mut pending: Vec<&str> = Vec::new();
    for message in messages {
        if role(message) == Some("tool") {
            let answered = message.get("tool_call_id").and_then(Value::as_str);
            match answered.and_then(|id| pending.iter().position(|p| *p == id)) {
                Some(index) => {
                    pending.remove(index);
                    emit(Edit::Keep(message));
                }
                None => emit(Edit::Remove),
            }
            continue;
        }
        answer_pending(&mut pending, &mut emit);
        if role(message) == Some("assistant") {
            pending = call_ids(message);
        }
        emit(Edit::Keep(message));
    }
    answer_pending(&mut pending, &mut emit);
}

fn role(message: &Value) -> Option<&str> {
    message.get("role").and_then(Value::as_str)
}

/// The ids of an assistant message's tool calls, in call order; calls without an id need no answer.
fn call_ids(message: &Value) -> Vec<&str> {
    match message.get("tool_calls") {
        Some(Value::Array(calls)) => calls.iter().filter_map(|c| c.get("id").and_then(Value::as_str)).collect(),
        _ => Vec::new(),
    }
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
