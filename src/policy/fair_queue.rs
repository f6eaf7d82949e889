//! The order in which requests waiting for a key are woken: in turn by client (round robin
//! across clients), first come first served within one. A client with 500 requests waiting
//! delays another client's single request by at most one turn.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

#[derive(Debug)]
pub struct FairQueue<C, T> {
    /// Clients with something waiting, in the order of their turns.
    turns: VecDeque<C>,
    waiting: HashMap<C, VecDeque<T>>,
    len: usize,
}

impl<C: Eq + Hash + Clone, T> Default for FairQueue<C, T> {
    fn default() -> Self {
        Self { turns: VecDeque::new(), waiting: HashMap::new(), len: 0 }
    }
}

impl<C: Eq + Hash + Clone, T> FairQueue<C, T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `item` waits behind `client`'s earlier ones; a client new to the queue takes its turn
    /// after every client already waiting.
    pub fn push(&mut self, client: C, item: T) {
        let queue = self.waiting.entry(client.clone()).or_default();
        if queue.is_empty() {
            self.turns.push_back(client);
        }
        queue.push_back(item);
        self.len += 1;
    }

    /// The next to wake: the first item of the client whose turn it is, who then goes last.
    pub fn pop(&mut self) -> Option<T> {
        let client = self.turns.pop_front()?;
        let queue = self.waiting.get_mut(&client)?;
        let item = queue.pop_front();
        if queue.is_empty() {
            self.waiting.remove(&client);
        } else {
            self.turns.push_back(client);
        }
        self.len -= usize::from(item.is_some());
        item
    }

    /// Keeps only the items `keep` says still wait (a request whose client left is let go).
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        for queue in self.waiting.values_mut() {
            queue.retain(&mut keep);
        }
        self.waiting.retain(|_, queue| !queue.is_empty());
        let waiting = &self.waiting;
        self.turns.retain(|client| waiting.contains_key(client));
        self.len = self.waiting.values().map(VecDeque::len).sum();
    }

    /// Every item, turn by turn (to wake them all at once).
    pub fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.pop())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_request_waits_at_most_one_turn_behind_a_flood() {
        let mut queue = FairQueue::default();
        for i in 0..50 {
            queue.push("a", format!("a{i}"));
        }
        queue.push("b", "b0".to_owned());
        let order: Vec<String> = queue.drain().collect();
        assert_eq!(&order[..3], ["a0", "b0", "a1"]);
        assert_eq!(order.len(), 51);
        assert_eq!(order[50], "a49");
    }

    #[test]
    fn clients_take_turns_and_each_keeps_its_own_order() {
        let mut queue = FairQueue::default();
        for (client, item) in [("a", 1), ("a", 2), ("b", 3), ("c", 4), ("b", 5), ("a", 6)] {
            queue.push(client, item);
        }
        assert_eq!(queue.len(), 6);
        assert_eq!(queue.drain().collect::<Vec<_>>(), [1, 3, 4, 2, 5, 6]);
        assert!(queue.is_empty());
    }

    #[test]
    fn a_client_that_comes_back_goes_to_the_end_of_the_turns() {
        let mut queue = FairQueue::default();
        queue.push("a", 1);
        queue.push("b", 2);
        assert_eq!(queue.pop(), Some(1));
        queue.push("a", 3);
        queue.push("c", 4);
        assert_eq!(queue.drain().collect::<Vec<_>>(), [2, 3, 4]);
    }

    #[test]
    fn items_let_go_leave_no_empty_turn_behind() {
        let mut queue = FairQueue::default();
        queue.push("a", 1);
        queue.push("b", 2);
        queue.push("b", 3);
        queue.push("c", 4);
        queue.retain(|&item| item != 1 && item != 2);
        assert_eq!(queue.len(), 2);
        assert_eq!(queue.drain().collect::<Vec<_>>(), [3, 4]);
    }
}
