//! Repairs a chat history whose tool calls were left unanswered, which providers reject.
//!
//! Every id in an assistant message's `tool_calls` must be answered by a `tool` message before
//! the next non-tool message. Missing answers are inserted as `"failed"`, in call order, right
//! after the answers that exist; `tool` messages that answer no call of the block they stand
//! in are removed.
//!
//! Linear in the history: the open calls of a block are counted by id in a hash map, so each
//! call and each answer costs one lookup, however many calls a block holds. The repaired body
//! is written by [`history_splice`](super::history_splice), from the edits [`walk`] gives.

use std::collections::HashMap;
use std::hash::Hash;

/// What a repair changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Repairs {
    pub inserted: usize,
    pub removed: usize,
}

/// What repair reads of a message.
pub trait HistoryMessage {
    /// A tool-call id as this message holds it.
    type Id<'a>: Copy + Eq + Hash
    where
        Self: 'a;

    /// The `tool` message's answer: `Some(id)` for a tool message, `Some(None)` for one without an id.
    fn answers(&self) -> Option<Option<Self::Id<'_>>>;
    /// The ids of an assistant message's tool calls, in call order; calls without an id need no
    /// answer. Any other message has none, and closes the block before it all the same.
    fn call_ids(&self) -> impl Iterator<Item = Self::Id<'_>>;
}

/// Whether the history needs a repair. Runs on every request, so it only reads.
pub fn needs_repair<M: HistoryMessage>(messages: &[M]) -> bool {
    let mut changed = false;
    walk(messages, |edit| changed |= !matches!(edit, Edit::Keep(_)));
    changed
}

/// One step of the repaired history.
pub enum Edit<'a, M: HistoryMessage + 'a> {
    Keep(&'a M),
    AnswerFailed(M::Id<'a>),
    Remove,
}

/// The calls of the open block, in call order, with whether each is answered. Answers settle
/// the earliest open call of their id. A small block is searched; a large one is counted by id
/// in a hash map (keyed, so ids cannot be made to collide), so either way an answer costs a
/// bounded number of steps.
struct Block<Id> {
    calls: Vec<(Id, bool)>,
    /// For a large block: per id, calls made and answered.
    counts: HashMap<Id, (u32, u32)>,
}

/// Up to this many calls, searching beats hashing.
const SMALL_BLOCK: usize = 8;

impl<Id: Copy + Eq + Hash> Block<Id> {
    fn open(&mut self, ids: impl Iterator<Item = Id>) {
        self.calls.extend(ids.map(|id| (id, false)));
        if self.calls.len() > SMALL_BLOCK {
            for (id, _) in &self.calls {
                self.counts.entry(*id).or_default().0 += 1;
            }
        }
    }

    /// Whether `id` answers a call still open.
    fn answer(&mut self, id: Id) -> bool {
        if self.calls.len() <= SMALL_BLOCK {
            let open = self.calls.iter_mut().find(|(call, answered)| !*answered && *call == id);
            return open.map(|(_, answered)| *answered = true).is_some();
        }
        match self.counts.get_mut(&id) {
            Some((made, answered)) if *answered < *made => {
                *answered += 1;
                true
            }
            _ => false,
        }
    }

    /// Closes the block: the calls left unanswered, in call order.
    fn close(&mut self, mut unanswered: impl FnMut(Id)) {
        let large = self.calls.len() > SMALL_BLOCK;
        for (id, answered) in self.calls.drain(..) {
            let answered = if large {
                // The earliest calls of an id are the answered ones.
                let counted = self.counts.get_mut(&id).filter(|(_, answered)| *answered > 0);
                counted.map(|(_, answered)| *answered -= 1).is_some()
            } else {
                answered
            };
            if !answered {
                unanswered(id);
            }
        }
        self.counts.clear();
    }
}

/// Walks the history and says, message by message, what the repaired one holds.
pub fn walk<'a, M: HistoryMessage>(messages: &'a [M], mut emit: impl FnMut(Edit<'a, M>)) {
    let mut block = Block { calls: Vec::new(), counts: HashMap::new() };
    for message in messages {
        if let Some(answer) = message.answers() {
            let answered = answer.is_some_and(|id| block.answer(id));
            emit(if answered { Edit::Keep(message) } else { Edit::Remove });
            continue;
        }
        block.close(|id| emit(Edit::AnswerFailed(id)));
        block.open(message.call_ids());
        emit(Edit::Keep(message));
    }
    block.close(|id| emit(Edit::AnswerFailed(id)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::chat_view::{ChatView, Reading};
    use crate::transform::history_splice::repaired_body;
    use proptest::prelude::*;
    use serde_json::{json, Value};
    use std::cell::Cell;

    /// A history as JSON, read the way the provider's rule is stated.
    impl HistoryMessage for Value {
        type Id<'a> = &'a str;

        fn answers(&self) -> Option<Option<&str>> {
            (self.get("role").and_then(Value::as_str) == Some("tool"))
                .then(|| self.get("tool_call_id").and_then(Value::as_str))
        }

        fn call_ids(&self) -> impl Iterator<Item = &str> {
            let calls = match (self.get("role").and_then(Value::as_str), self.get("tool_calls")) {
                (Some("assistant"), Some(Value::Array(calls))) => calls.as_slice(),
                _ => &[],
            };
            calls.iter().filter_map(|call| call.get("id").and_then(Value::as_str))
        }
    }

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

    /// The repaired history when one is needed, as the handler makes it: the body's view says
    /// whether, and the repaired body is written from it.
    fn repaired(history: &[Value]) -> Option<(Vec<Value>, Repairs)> {
        let body = serde_json::to_vec(&json!({"model": "m", "messages": history, "stream": true})).unwrap();
        let view = ChatView::read(&body, Reading::EVERYTHING).unwrap();
        needs_repair(&view.messages).then(|| {
            let spliced = repaired_body(&body, &view.messages, usize::MAX).unwrap();
            let (mut body, repairs): (Value, _) = (serde_json::from_slice(&spliced.body).unwrap(), spliced.repairs);
            assert_eq!((&body["model"], &body["stream"]), (&json!("m"), &json!(true)), "the rest is kept");
            (serde_json::from_value(body["messages"].take()).unwrap(), repairs)
        })
    }

    #[test]
    fn a_complete_history_needs_no_repair() {
        let history = [user("hi"), call(&["a", "b"]), answer("b"), answer("a"), user("next")];
        assert!(!needs_repair(&history));
        assert_eq!(repaired(&history), None);
    }

    #[test]
    fn unanswered_calls_get_failed_answers_in_call_order_after_the_existing_ones() {
        let history = [user("hi"), call(&["a", "b", "c"]), answer("b"), user("next")];
        let (repaired, repairs) = repaired(&history).unwrap();
        assert_eq!(repaired, [user("hi"), call(&["a", "b", "c"]), answer("b"), failed("a"), failed("c"), user("next")]);
        assert_eq!(repairs, Repairs { inserted: 2, removed: 0 });
    }

    #[test]
    fn leftovers_at_the_end_are_answered_at_the_end() {
        let history = [user("hi"), call(&["a"])];
        let (repaired, _) = repaired(&history).unwrap();
        assert_eq!(repaired, [user("hi"), call(&["a"]), failed("a")]);
    }

    #[test]
    fn orphan_and_duplicate_tool_answers_are_removed() {
        let history = [user("hi"), answer("ghost"), call(&["a"]), answer("a"), answer("a"), user("next"), answer("a")];
        let (repaired, repairs) = repaired(&history).unwrap();
        assert_eq!(repaired, [user("hi"), call(&["a"]), answer("a"), user("next")]);
        assert_eq!(repairs, Repairs { inserted: 0, removed: 3 });
    }

    #[test]
    fn a_repeated_call_id_needs_an_answer_per_call_and_the_first_calls_are_answered_first() {
        let history = [call(&["a", "b", "a"]), answer("a")];
        let (repaired, _) = repaired(&history).unwrap();
        assert_eq!(repaired, [call(&["a", "b", "a"]), answer("a"), failed("b"), failed("a")]);
    }

    #[test]
    fn null_tool_calls_calls_without_ids_and_odd_contents_are_handled() {
        let odd = [
            json!({"role": "assistant", "content": [{"type": "text", "text": "x"}], "tool_calls": null}),
            json!({"role": "assistant", "tool_calls": [{"type": "function"}, {"id": 7}]}),
            json!({"role": "user", "content": {"weird": true}}),
            json!({"no_role": 1}),
        ];
        assert!(!needs_repair(&odd));
        assert_eq!(repaired(&odd), None);
        let toolless_answer = [json!({"role": "tool", "content": "x"})];
        assert_eq!(repaired(&toolless_answer).unwrap().1, Repairs { inserted: 0, removed: 1 });
    }

    #[test]
    fn consecutive_assistant_calls_close_the_previous_block() {
        let history = [call(&["a"]), call(&["b"]), answer("b")];
        let (repaired, _) = repaired(&history).unwrap();
        assert_eq!(repaired, [call(&["a"]), failed("a"), call(&["b"]), answer("b")]);
    }

    /// A history as the generators build it: a call block of ids, a tool answer, or another message.
    #[derive(Debug, Clone)]
    enum Turn {
        Calls(Vec<u8>),
        ToolResult(Option<u8>),
        Other,
        /// Not a message at all: it closes a block like any other.
        Odd,
    }

    fn turns() -> impl Strategy<Value = Vec<Turn>> {
        let turn = prop_oneof![
            prop::collection::vec(0u8..12, 0..6).prop_map(Turn::Calls),
            prop::option::weighted(0.9, 0u8..12).prop_map(Turn::ToolResult),
            Just(Turn::Other),
            Just(Turn::Odd),
        ];
        prop::collection::vec(turn, 0..40)
    }

    fn history(turns: &[Turn]) -> Vec<Value> {
        let id = |n: &u8| format!("call_{n}");
        turns
            .iter()
            .map(|turn| match turn {
                Turn::Calls(ids) => {
                    call(&ids.iter().map(id).collect::<Vec<_>>().iter().map(String::as_str).collect::<Vec<_>>())
                }
                Turn::ToolResult(Some(n)) => answer(&id(n)),
                Turn::ToolResult(None) => json!({"role": "tool", "content": "no id"}),
                Turn::Other => user("more"),
                Turn::Odd => json!(0),
            })
            .collect()
    }

    /// The providers' rule: every call of an assistant message is answered exactly once before the
    /// next non-tool message, and every tool message answers such a call.
    fn is_sound(history: &[Value]) -> bool {
        let mut open: Vec<&str> = Vec::new();
        for message in history {
            match message.answers() {
                Some(Some(id)) => match open.iter().position(|o| *o == id) {
                    Some(index) => drop(open.remove(index)),
                    None => return false,
                },
                Some(None) => return false,
                None if !open.is_empty() => return false,
                None => open = message.call_ids().collect(),
            }
        }
        open.is_empty()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn a_repaired_history_is_sound_and_a_sound_one_is_left_alone(turns in turns()) {
            let history = history(&turns);
            match repaired(&history) {
                None => prop_assert!(is_sound(&history), "{history:?}"),
                Some((repaired, repairs)) => {
                    prop_assert!(!is_sound(&history));
                    prop_assert!(is_sound(&repaired), "{repaired:?}");
                    prop_assert_ne!(repairs, Repairs::default());
                    let kept = history.len() - repairs.removed;
                    prop_assert_eq!(repaired.len(), kept + repairs.inserted);
                    prop_assert!(!needs_repair(&repaired), "a repair is final");
                }
            }
        }
    }

    /// A message whose ids count every hash and comparison made with them.
    struct Counted<'c> {
        answers: Option<u32>,
        calls: Vec<u32>,
        work: &'c Cell<u64>,
    }

    #[derive(Clone, Copy)]
    struct CountedId<'c>(u32, &'c Cell<u64>);

    impl PartialEq for CountedId<'_> {
        fn eq(&self, other: &Self) -> bool {
            self.1.set(self.1.get() + 1);
            self.0 == other.0
        }
    }
    impl Eq for CountedId<'_> {}
    impl Hash for CountedId<'_> {
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            self.1.set(self.1.get() + 1);
            self.0.hash(state);
        }
    }

    impl<'c> HistoryMessage for Counted<'c> {
        type Id<'a>
            = CountedId<'c>
        where
            Self: 'a;

        fn answers(&self) -> Option<Option<CountedId<'c>>> {
            self.answers.map(|id| Some(CountedId(id, self.work)))
        }
        fn call_ids(&self) -> impl Iterator<Item = CountedId<'c>> {
            self.calls.iter().map(|id| CountedId(*id, self.work))
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The attack on a search by vector: one block of many calls, then many answers that match
        /// none of them (or all of them). The work stays a small multiple of the ids seen.
        #[test]
        fn the_work_is_linear_in_the_ids_even_for_adversarial_histories(
            calls in prop_oneof![1u32..=8, 9u32..2000],
            answers in 1u32..2000,
            matching in any::<bool>(),
        ) {
            let work = Cell::new(0);
            let mut history = vec![Counted { answers: None, calls: (0..calls).collect(), work: &work }];
            let first = if matching { 0 } else { calls };
            history.extend((first..first + answers).map(|id| Counted { answers: Some(id), calls: Vec::new(), work: &work }));
            history.push(Counted { answers: None, calls: Vec::new(), work: &work });
            needs_repair(&history);
            let ids = u64::from(calls + answers);
            prop_assert!(work.get() <= 12 * ids, "{} hashes and comparisons for {ids} ids", work.get());
        }
    }
}
