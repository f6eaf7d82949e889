//! A key's share of limits that hold over every replica (`REDIS_URL`), pure.
//!
//! Each replica counts its own requests in its own windows, and pushes what changed to Redis in
//! batches; each answer says what the other replicas hold (their requests and tokens in the
//! minute, their requests in flight), which admission adds to its own. No request waits on
//! Redis for that: a replica may admit on its own, between two answers, up to a credit of
//! `max(1, limit / (10 N))` requests for N replicas. Every request past the last answer that
//! saw room is one of some replica's credit, so a key with `rpm` R is let through at most
//! `R + max(N, R / 10)` times in any minute. Only a request past the credit, in a burst faster
//! than Redis answers, waits for the answer already asked for.
//!
//! If Redis fails, the share is cut: the others count for nothing, the credit is not asked
//! (each replica enforces the limits on its own traffic), and what changed meanwhile is pushed
//! when Redis answers again.

/// What a replica's counters hold, as one push sends it or one answer tells it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests in the minute.
    pub requests: i64,
    /// Tokens in the minute.
    pub tokens: i64,
    /// Requests in flight.
    pub in_flight: i64,
}

/// What one push sends: the changes to this replica's minute, and its requests in flight now.
pub type Push = Counts;

/// What one answer says: the other replicas' counts, and how many replicas there are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Answer {
    pub others: Counts,
    pub replicas: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Share {
    /// The other replicas' counts, as of the last answer; nothing while cut.
    others: Counts,
    replicas: u64,
    /// Changes to this replica's minute not sent yet (requests, tokens; either may be negative).
    unsent: Counts,
    /// Requests admitted here that no answer has counted yet: sent, or not sent yet.
    unconfirmed: u64,
    /// Of those, the ones in the push now on its way.
    sending: u64,
    /// Redis answered the last push.
    linked: bool,
    /// A push is on its way.
    pushing: bool,
}

/// How many requests a replica may admit between two answers, with `replicas` sharing `limit`.
pub fn credit(limit: u64, replicas: u64) -> u64 {
    (limit / (10 * replicas.max(1))).max(1)
}

impl Share {
    /// A key's share, as the replica's link to Redis is now: `replicas` sharing, and whether
    /// Redis answers.
    pub fn new(replicas: u64, linked: bool) -> Self {
        Self { replicas, linked, ..Self::default() }
    }

    /// The other replicas' counts to add to this replica's own (nothing while cut).
    pub fn others(&self) -> Counts {
        self.others
    }

    /// Whether admitting one more request now would take it past its credit under one of
    /// `limits` (requests per minute, or in flight): it should wait for the answer on its way.
    pub fn over_credit(&self, limits: impl IntoIterator<Item = u64>) -> bool {
        self.linked && limits.into_iter().any(|limit| self.unconfirmed >= credit(limit, self.replicas))
    }

    /// A request admitted here (`requests` is 1), or given back (-1); `tokens` counted in the
    /// minute (or given back).
    pub fn count(&mut self, requests: i64, tokens: i64) {
        self.unsent.requests += requests;
        self.unsent.tokens += tokens;
        if requests > 0 {
            self.unconfirmed += requests as u64;
        }
    }

    /// Whether anything is waiting for a push: a change, or requests in flight whose level
    /// the others must keep seeing, or others' counts to refresh as their minute passes.
    pub fn wants_push(&self, in_flight: u64) -> bool {
        !self.pushing && (self.unsent != Counts::default() || in_flight > 0 || self.others != Counts::default())
    }

    /// Starts a push: what changed since the last one, and the requests in flight now.
    pub fn start_push(&mut self, in_flight: u64) -> Push {
        self.pushing = true;
        self.sending = self.unconfirmed;
        Counts { in_flight: in_flight as i64, ..std::mem::take(&mut self.unsent) }
    }

    /// Redis counted the push: its answer replaces what this replica knew of the others.
    pub fn answered(&mut self, answer: Answer) {
        self.others = answer.others;
        self.replicas = answer.replicas.max(1);
        self.unconfirmed -= self.sending.min(self.unconfirmed);
        self.sending = 0;
        self.linked = true;
        self.pushing = false;
    }

    /// The push failed: `push` is kept to send again, and the replica counts on its own.
    pub fn cut(&mut self, push: Push) {
        self.others = Counts::default();
        self.unsent.requests += push.requests;
        self.unsent.tokens += push.tokens;
        self.sending = 0;
        self.linked = false;
        self.pushing = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_credit_is_a_tenth_of_the_limit_split_over_the_replicas_and_never_nothing() {
        assert_eq!(credit(30, 2), 1);
        assert_eq!(credit(6000, 2), 300);
        assert_eq!(credit(6000, 0), 600, "no answer yet counts one replica");
        assert_eq!(credit(5, 3), 1);
    }

    #[test]
    fn a_push_sends_what_changed_and_its_answer_confirms_it() {
        let mut share = Share::new(2, true);
        share.count(1, 40);
        assert!(share.over_credit([30]), "credit(30, 2) = 1 is used");
        assert!(!share.over_credit([600]));
        share.count(1, 0);
        let push = share.start_push(2);
        assert_eq!(push, Counts { requests: 2, tokens: 40, in_flight: 2 });
        assert!(!share.wants_push(2), "one push at a time");
        share.count(1, 0);
        share.answered(Answer { others: Counts { requests: 5, tokens: 9, in_flight: 1 }, replicas: 2 });
        assert_eq!(share.others().requests, 5);
        // The request admitted while the push was on its way is still unconfirmed.
        assert!(share.over_credit([30]), "credit(30, 2) = 1 is used");
        assert!(!share.over_credit([600]));
        assert_eq!(share.start_push(0), Counts { requests: 1, tokens: 0, in_flight: 0 });
    }

    #[test]
    fn a_failed_push_is_sent_again_and_the_replica_counts_alone_meanwhile() {
        let mut share = Share::new(2, true);
        share.count(1, 10);
        share.start_push(1);
        share.answered(Answer { others: Counts { requests: 3, ..Counts::default() }, replicas: 2 });
        share.count(1, 5);
        let push = share.start_push(1);
        share.cut(push);
        assert_eq!(share.others(), Counts::default());
        share.count(1, 0);
        assert!(!share.over_credit([30]), "cut: no credit to wait for");
        assert_eq!(share.start_push(0), Counts { requests: 2, tokens: 5, in_flight: 0 });
    }

    /// Several replicas sharing one minute through a Redis that sums what they push; each step
    /// one of them either takes a request (admitting it if it may, or holding it while over its
    /// credit) or pushes and hears the answer.
    fn shared_minute(limit: u64, replicas: usize, steps: &[(usize, bool)]) -> u64 {
        let mut shares = vec![Share::new(replicas as u64, true); replicas];
        let mut own = vec![0i64; replicas];
        // What Redis holds from each replica, and the push each has on its way.
        let mut stored = vec![0i64; replicas];
        let mut on_the_way: Vec<Option<Push>> = vec![None; replicas];
        for &(at, arrives) in steps {
            let share = &mut shares[at];
            if arrives {
                let known = own[at] + share.others().requests;
                if (known as u64) < limit && !share.over_credit([limit]) {
                    own[at] += 1;
                    share.count(1, 0);
                }
            } else if let Some(push) = on_the_way[at].take() {
                stored[at] += push.requests;
                let others: i64 = stored.iter().enumerate().filter(|(i, _)| *i != at).map(|(_, n)| n).sum();
                let others = Counts { requests: others, ..Counts::default() };
                share.answered(Answer { others, replicas: replicas as u64 });
            } else {
                on_the_way[at] = Some(share.start_push(0));
            }
        }
        own.iter().sum::<i64>() as u64
    }

    proptest! {
        /// However requests and answers interleave, a minute lets through at most
        /// `R + max(N, R / 10)`.
        #[test]
        fn replicas_together_never_pass_the_limit_by_more_than_the_bound(
            limit in 1u64..200,
            replicas in 1usize..5,
            steps in prop::collection::vec((0usize..4, prop::bool::weighted(0.7)), 1..2000),
        ) {
            let steps: Vec<(usize, bool)> = steps.into_iter().map(|(at, arrives)| (at % replicas, arrives)).collect();
            let admitted = shared_minute(limit, replicas, &steps);
            let bound = limit + (replicas as u64).max(limit / 10);
            prop_assert!(admitted <= bound, "{admitted} admitted, bound {bound}");
        }
    }
}
