//! The ledger: tokens each client key spent, by model and UTC day, as the providers reported
//! them, held in memory until the gate's next flush writes them as daily rows (once a second,
//! never once a request). It also answers what a key spent that is not in the database yet, so
//! that a budget read back from the database misses nothing.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{NaiveDate, Utc};
use parking_lot::Mutex;
use prometheus::IntCounterVec;

use super::clock::LimitClock;
use crate::db::keys::{spent_by_key, TokenUsage};
use crate::metrics::Metrics;
use crate::policy::limits::budget::Spent;
use crate::policy::limits::limiter::{Clock, Refusal};
use crate::wire::chat::Usage;

type Row = (i32, NaiveDate, Arc<str>);

pub struct Ledger {
    clock: LimitClock,
    /// Rows not yet written. Bounded: keys are the operator's, models bounded as their metric
    /// labels are, and each day's rows leave with the flush.
    pending: Mutex<HashMap<Row, TokenUsage>>,
    metrics: Arc<Metrics>,
    client_tokens: IntCounterVec,
    client_limited: IntCounterVec,
}

impl Ledger {
    pub fn new(metrics: &Arc<Metrics>) -> Self {
        Self {
            clock: LimitClock::default(),
            pending: Mutex::default(),
            metrics: metrics.clone(),
            client_tokens: metrics.client_tokens.clone(),
            client_limited: metrics.client_limited.clone(),
        }
    }

    pub fn clock(&self) -> Clock {
        self.clock.now()
    }

    /// One answer's usage, on the model the client asked for (`""` when it named none);
    /// `charge` (the key's limiter) runs under the same lock, so that a reload reading what is
    /// not written yet sees both or neither.
    pub fn record(
        &self,
        key_id: i32,
        client: &str,
        model: Option<&str>,
        usage: Option<Usage>,
        day: NaiveDate,
        charge: impl FnOnce(),
    ) {
        let model = self.metrics.model_label(model.unwrap_or_default());
        let (prompt, completion) = usage.map_or((0, 0), |u| (u.prompt_tokens, u.completion_tokens));
        self.client_tokens.with_label_values(&[client, "in"]).inc_by(prompt);
        self.client_tokens.with_label_values(&[client, "out"]).inc_by(completion);
        let row = TokenUsage {
            key_id,
            day,
            model: model.to_string(),
            requests: 1,
            prompt_tokens: prompt as i64,
            completion_tokens: completion as i64,
        };
        let mut pending = self.pending.lock();
        charge();
        add(&mut pending, row);
    }

    pub fn refused(&self, client: &str, refusal: &Refusal) {
        self.client_limited.with_label_values(&[client, refusal.limit().label()]).inc();
        self.metrics.timeline.limited(client, Instant::now());
    }

    /// A client's series exist from the moment its key does.
    pub fn preset(&self, client: &str) {
        for direction in ["in", "out"] {
            self.client_tokens.with_label_values(&[client, direction]);
        }
    }

    /// The rows to write now.
    pub fn take(&self) -> Vec<TokenUsage> {
        self.pending.lock().drain().map(|(_, row)| row).collect()
    }

    /// Rows that could not be written, kept for the next flush.
    pub fn restore(&self, rows: Vec<TokenUsage>) {
        let mut pending = self.pending.lock();
        for row in rows {
            add(&mut pending, row);
        }
    }

    /// What each key spent today and this month, from `stored` rows and those not written
    /// yet, handed to `apply` under the lock that charges take (so none is missed or counted
    /// twice while it runs).
    pub fn spent<R>(&self, stored: &[TokenUsage], apply: impl FnOnce(&HashMap<i32, (Spent, Spent)>) -> R) -> R {
        let pending = self.pending.lock();
        apply(&spent_by_key(stored.iter().chain(pending.values()), Utc::now()))
    }
}

/// Adds `row` to the pending row of its key, day and model.
fn add(pending: &mut HashMap<Row, TokenUsage>, row: TokenUsage) {
    match pending.entry((row.key_id, row.day, Arc::from(row.model.as_str()))) {
        Entry::Occupied(mut entry) => {
            let entry = entry.get_mut();
            entry.requests += row.requests;
            entry.prompt_tokens += row.prompt_tokens;
            entry.completion_tokens += row.completion_tokens;
        }
        Entry::Vacant(entry) => {
            entry.insert(row);
        }
    }
}
