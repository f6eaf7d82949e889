//! A sliding window of one minute (or any span) over requests or tokens: never more than
//! `limit` in any span of that length, not a fixed minute that lets twice the limit through at
//! its edge.
//!
//! Exact windows keep a timestamp per request; this keeps a count per slot (a second of a
//! minute), so its memory is fixed whatever the limit. It is conservative: a slot is counted
//! whole until a span has passed since its end, so what it lets through in any span is at most
//! the limit, and a request is refused at most one slot early.

use std::collections::VecDeque;
use std::time::Duration;

/// Instants as the window sees them: time since some fixed origin (the clock is injected).
pub type Elapsed = Duration;

#[derive(Debug, Clone)]
pub struct Window {
    limit: u64,
    /// A slot's length in milliseconds: the arithmetic is in whole milliseconds, in `u64`.
    slot: u64,
    /// Slots in a span.
    slots: u64,
    /// (slot number, amount) of the slots in the current span that hold anything, oldest first.
    used: VecDeque<(u64, u64)>,
    total: u64,
}

/// What a check found when it refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// When enough of the window has passed for the amount to fit.
    pub retry_after: Duration,
}

impl Window {
    /// `limit` per `span`, counted in `slots` slots (60 for a minute of seconds).
    pub fn new(limit: u64, span: Duration, slots: u32) -> Self {
        let slots = u64::from(slots.max(1));
        let slot = (millis(span) / slots).max(1);
        Self { limit, slot, slots, used: VecDeque::new(), total: 0 }
    }

    /// Requests per minute.
    pub fn per_minute(limit: u64) -> Self {
        Self::new(limit, Duration::from_secs(60), 60)
    }

    /// A changed limit keeps what the window holds: lowering it does not forgive the minute.
    pub fn set_limit(&mut self, limit: u64) {
        self.limit = limit;
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    fn slot_of(&self, now: Elapsed) -> u64 {
        millis(now) / self.slot
    }

    /// When (in milliseconds) what slot `slot` holds has left every span ending from then on:
    /// a span after the slot's own end, since any of it may have come at that end.
    fn leaves(&self, slot: u64) -> u64 {
        self.slot.saturating_mul(slot + self.slots + 1)
    }

    /// How long from `now` until `slot` leaves.
    fn until_leaves(&self, slot: u64, now: Elapsed) -> Duration {
        Duration::from_millis(self.leaves(slot).saturating_sub(millis(now)))
    }

    /// Drops the slots that have left the span ending at `now`.
    fn expire(&mut self, now: Elapsed) {
        let now = millis(now);
        while let Some(&(slot, amount)) = self.used.front() {
            if self.leaves(slot) > now {
                break;
            }
            self.total -= amount;
            self.used.pop_front();
        }
    }

    /// What the span ending at `now` holds.
    pub fn used(&mut self, now: Elapsed) -> u64 {
        self.expire(now);
        self.total
    }

    /// What is left of the limit at `now`.
    pub fn remaining(&mut self, now: Elapsed) -> u64 {
        self.limit.saturating_sub(self.used(now))
    }

    /// Admits `amount` at `now` if it fits, and counts it. An amount larger than the whole
    /// limit is admitted into an empty window (one big request must not be refused forever);
    /// the window then stays full for a span.
    pub fn admit(&mut self, amount: u64, now: Elapsed) -> Result<(), Refused> {
        self.admit_beside(amount, 0, now)
    }

    /// [`Self::admit`], with `others` counted in the span besides what this window holds
    /// (the other replicas'), which it cannot see leave: a refusal they cause says to retry
    /// in a slot.
    pub fn admit_beside(&mut self, amount: u64, others: u64, now: Elapsed) -> Result<(), Refused> {
        self.expire(now);
        let held = self.total + others;
        let fits = held + amount <= self.limit || (held == 0 && amount > 0);
        if !fits {
            let alone = self.total + amount > self.limit;
            let retry_after = if alone { self.free_after(amount, now) } else { Duration::from_millis(self.slot) };
            return Err(Refused { retry_after });
        }
        self.add(amount, now);
        Ok(())
    }

    /// Counts `amount` without asking (usage reported after the fact, beyond the estimate).
    pub fn add(&mut self, amount: u64, now: Elapsed) {
        if amount == 0 {
            return;
        }
        self.expire(now);
        let current = self.slot_of(now);
        match self.used.back_mut() {
            Some((slot, held)) if *slot == current => *held += amount,
            _ => self.used.push_back((current, amount)),
        }
        self.total += amount;
    }

    /// Gives back `amount` counted too much (an estimate above the usage reported), from the
    /// newest slots first, where it was charged.
    pub fn refund(&mut self, mut amount: u64) {
        while amount > 0 {
            let Some((_, held)) = self.used.back_mut() else { return };
            let taken = amount.min(*held);
            *held -= taken;
            self.total -= taken;
            amount -= taken;
            if *held == 0 {
                self.used.pop_back();
            }
        }
    }

    /// How long until `amount` fits: until enough of the oldest slots have left the span.
    fn free_after(&self, amount: u64, now: Elapsed) -> Duration {
        let need = (self.total + amount).saturating_sub(self.limit).max(1);
        let mut freed = 0;
        for &(slot, held) in &self.used {
            freed += held;
            if freed >= need {
                return self.until_leaves(slot, now).max(Duration::from_millis(1));
            }
        }
        Duration::from_millis(self.slot.saturating_mul(self.slots + 1))
    }

    /// When the window is next empty of what it holds now: the `reset` a client is told.
    pub fn reset_after(&mut self, now: Elapsed) -> Duration {
        self.expire(now);
        match self.used.back() {
            Some(&(slot, _)) => self.until_leaves(slot, now),
            None => Duration::ZERO,
        }
    }
}

/// Whole milliseconds, without `Duration::as_millis`'s `u128`.
pub fn millis(at: Duration) -> u64 {
    at.as_secs().saturating_mul(1000).saturating_add(u64::from(at.subsec_millis()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_full_minute_refuses_until_its_oldest_second_leaves() {
        let mut window = Window::per_minute(3);
        let start = Duration::from_secs(100);
        for i in 0..3 {
            window.admit(1, start + SECOND * i).unwrap();
        }
        let refused = window.admit(1, start + SECOND * 10).unwrap_err();
        assert_eq!(refused.retry_after, SECOND * 51, "the first request's second leaves at 161 s");
        assert!(window.admit(1, start + SECOND * 60).is_err());
        window.admit(1, start + SECOND * 61).unwrap();
        assert_eq!(window.remaining(start + SECOND * 61), 0);
        assert_eq!(window.remaining(start + SECOND * 63), 2);
    }

    #[test]
    fn the_edge_of_a_minute_does_not_let_twice_the_limit_through() {
        let mut window = Window::per_minute(10);
        let mut admitted = 0;
        // Ten at 59.9 s, then as many as it takes right after the minute turns.
        for _ in 0..10 {
            admitted += u32::from(window.admit(1, Duration::from_millis(59_900)).is_ok());
        }
        for _ in 0..10 {
            admitted += u32::from(window.admit(1, Duration::from_millis(60_100)).is_ok());
        }
        assert_eq!(admitted, 10);
    }

    #[test]
    fn usage_corrects_an_estimate_both_ways() {
        let mut window = Window::per_minute(1000);
        let now = Duration::from_secs(5);
        window.admit(400, now).unwrap();
        window.refund(300);
        assert_eq!(window.used(now), 100);
        window.add(250, now + SECOND);
        assert_eq!(window.used(now + SECOND), 350);
        window.refund(10_000);
        assert_eq!(window.used(now + SECOND), 0);
    }

    #[test]
    fn one_request_larger_than_the_limit_gets_an_empty_window_and_fills_it() {
        let mut window = Window::per_minute(100);
        window.admit(500, Duration::ZERO).unwrap();
        assert!(window.admit(1, SECOND * 60).is_err());
        window.admit(1, SECOND * 61).unwrap();
    }

    #[test]
    fn what_others_hold_fills_the_window_too_and_says_to_retry_in_a_slot() {
        let mut window = Window::per_minute(5);
        window.admit_beside(1, 3, SECOND).unwrap();
        assert_eq!(window.admit_beside(2, 3, SECOND).unwrap_err().retry_after, SECOND, "1 + 3 + 2 > 5");
        window.admit_beside(1, 3, SECOND).unwrap();
        // Full on its own, it says when its own first slot leaves.
        let mut alone = Window::per_minute(1);
        alone.admit_beside(1, 0, SECOND).unwrap();
        assert_eq!(alone.admit_beside(1, 0, SECOND * 2).unwrap_err().retry_after, SECOND * 60);
        assert!(Window::per_minute(5).admit_beside(9, 0, SECOND).is_ok(), "an empty window takes one big request");
        assert!(Window::per_minute(5).admit_beside(9, 1, SECOND).is_err(), "not when others hold some of it");
    }

    #[test]
    fn reset_is_when_the_newest_slot_leaves() {
        let mut window = Window::per_minute(5);
        assert_eq!(window.reset_after(SECOND), Duration::ZERO);
        window.admit(1, SECOND * 2).unwrap();
        window.admit(1, SECOND * 30).unwrap();
        assert_eq!(window.reset_after(SECOND * 40), SECOND * 51);
    }

    /// Requests one at a time, `gaps` milliseconds apart: when each came, and whether it was let in.
    fn arrivals(limit: u64, gaps: Vec<u64>) -> Vec<(Duration, bool)> {
        let mut window = Window::per_minute(limit);
        let mut now = Duration::ZERO;
        gaps.into_iter()
            .map(|gap| {
                now += Duration::from_millis(gap);
                (now, window.admit(1, now).is_ok())
            })
            .collect()
    }

    proptest! {
        /// Whatever the arrivals, no span of a minute holds more than the limit.
        #[test]
        fn no_minute_ever_holds_more_than_the_limit(
            limit in 1u64..20,
            gaps in prop::collection::vec(0u64..5_000, 1..300),
        ) {
            let admitted: Vec<Duration> =
                arrivals(limit, gaps).into_iter().filter(|(_, admitted)| *admitted).map(|(at, _)| at).collect();
            for (i, &from) in admitted.iter().enumerate() {
                let within = admitted[i..].iter().take_while(|&&t| t < from + Duration::from_secs(60)).count();
                prop_assert!(within as u64 <= limit, "{within} in the minute from {from:?}");
            }
        }

        /// Nor is it stricter than a minute and one slot: a refusal means the last 61 seconds
        /// already hold the limit.
        #[test]
        fn a_refusal_means_the_last_61_seconds_are_full(
            limit in 1u64..20,
            gaps in prop::collection::vec(0u64..5_000, 1..300),
        ) {
            let arrivals = arrivals(limit, gaps);
            for (i, &(now, admitted)) in arrivals.iter().enumerate() {
                if !admitted {
                    let recent = arrivals[..i].iter().filter(|(t, a)| *a && *t + Duration::from_secs(61) > now).count();
                    prop_assert!(recent as u64 >= limit);
                }
            }
        }
    }
}
