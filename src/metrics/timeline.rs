//! The last 15 minutes, second by second, for the dashboard: answers per provider, upstream
//! 429s, failovers and the upstream's time to first byte. A fixed ring of atomic counters
//! (`SECONDS` slots, about 150 KB), written by the workers without a lock and read by
//! `GET /admin/timeline`. A slot is cleared by the first write of its new second; a write
//! racing that clear may be lost, which a chart does not show.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use parking_lot::Mutex;
use serde::Serialize;

/// Seconds kept: 15 minutes.
pub const SECONDS: usize = 900;

/// Time-to-first-byte buckets: bucket `i` holds times below `FIRST_MS * GROWTH^i` ms.
const BUCKETS: usize = 24;
const FIRST_MS: f64 = 1.0;
const GROWTH: f64 = 1.6;

struct Slot {
    /// The second (since the timeline began) the counts are for; `u64::MAX` for none yet.
    second: AtomicU64,
    /// Answers by provider index, the proxy's own last.
    answers: Vec<AtomicU64>,
    rate_limited: AtomicU64,
    failovers: AtomicU64,
    ttfb: [AtomicU32; BUCKETS],
}

impl Slot {
    fn new(answerers: usize) -> Self {
        Self {
            second: AtomicU64::new(u64::MAX),
            answers: (0..answerers).map(|_| AtomicU64::new(0)).collect(),
            rate_limited: AtomicU64::new(0),
            failovers: AtomicU64::new(0),
            ttfb: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }

    fn clear(&self) {
        self.answers.iter().chain([&self.rate_limited, &self.failovers]).for_each(|n| n.store(0, Ordering::Relaxed));
        self.ttfb.iter().for_each(|n| n.store(0, Ordering::Relaxed));
    }
}

/// Providers counted apart; those past it count as the proxy's (no configuration has so many).
const MAX_PROVIDERS: usize = 16;

pub struct Timeline {
    began: Instant,
    /// The providers' names, in their order, once the configuration is read.
    providers: OnceLock<Vec<String>>,
    slots: Vec<Slot>,
    /// The second each client key was last refused by its own limits (as many as there are
    /// client keys: only a known key's limits refuse).
    limited: Mutex<HashMap<String, u64>>,
}

impl Default for Timeline {
    fn default() -> Self {
        Self::new()
    }
}

impl Timeline {
    pub fn new() -> Self {
        let slots = (0..SECONDS).map(|_| Slot::new(MAX_PROVIDERS + 1)).collect();
        Self { began: Instant::now(), providers: OnceLock::new(), slots, limited: Mutex::default() }
    }

    /// The providers' names, in their order: set once, at start.
    pub fn name(&self, providers: Vec<String>) {
        let _ = self.providers.set(providers.into_iter().take(MAX_PROVIDERS).collect());
    }

    fn providers(&self) -> &[String] {
        self.providers.get().map_or(&[], Vec::as_slice)
    }

    fn second(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.began).as_secs()
    }

    /// The slot for the second of `at`, cleared first if it still holds an older second.
    fn slot(&self, at: Instant) -> &Slot {
        let second = self.second(at);
        let slot = &self.slots[(second % SECONDS as u64) as usize];
        let held = slot.second.load(Ordering::Acquire);
        // A newer second already there (a late write) is left alone.
        if (held == u64::MAX || held < second)
            && slot.second.compare_exchange(held, second, Ordering::AcqRel, Ordering::Relaxed).is_ok()
        {
            slot.clear();
        }
        slot
    }

    /// An answer sent at `at`, by the provider of index `provider` (`None`: the proxy's own).
    pub fn answer(&self, provider: Option<usize>, at: Instant) {
        let slot = self.slot(at);
        let index = provider.filter(|&i| i < self.providers().len()).unwrap_or(MAX_PROVIDERS);
        slot.answers[index].fetch_add(1, Ordering::Relaxed);
    }

    /// An upstream's answer head arrived `seconds` after it was asked, at `at`; `status` its code.
    pub fn upstream(&self, seconds: f64, status: u16, at: Instant) {
        let slot = self.slot(at);
        slot.ttfb[bucket(seconds * 1000.0)].fetch_add(1, Ordering::Relaxed);
        if status == 429 {
            slot.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn failover(&self, at: Instant) {
        self.slot(at).failovers.fetch_add(1, Ordering::Relaxed);
    }

    /// `client` was refused by its own limits.
    pub fn limited(&self, client: &str, at: Instant) {
        let second = self.second(at);
        self.limited.lock().insert(client.to_owned(), second);
    }

    /// The last `seconds` seconds (at most `SECONDS`), oldest first, as of `now`.
    pub fn view(&self, seconds: usize, now: Instant) -> View {
        let current = self.second(now);
        let seconds = seconds.clamp(1, SECONDS) as u64;
        let mut view = View {
            seconds: seconds as usize,
            answers: self
                .providers()
                .iter()
                .map(|name| Series { provider: name.clone(), per_second: Vec::new() })
                .collect(),
            proxy: Vec::new(),
            rate_limited: Vec::new(),
            failovers: Vec::new(),
            ttfb_p50_ms: Vec::new(),
            ttfb_p99_ms: Vec::new(),
            limited_clients: HashMap::new(),
        };
        // Seconds before the timeline began read as zeros, so that a view is always `seconds` long.
        for back in (0..seconds).rev() {
            let second = current.checked_sub(back);
            let slot = &self.slots[(second.unwrap_or(0) % SECONDS as u64) as usize];
            let held = second.is_some_and(|second| slot.second.load(Ordering::Acquire) == second);
            let read = |n: &AtomicU64| if held { n.load(Ordering::Relaxed) } else { 0 };
            for (series, n) in view.answers.iter_mut().zip(&slot.answers) {
                series.per_second.push(read(n));
            }
            view.proxy.push(read(&slot.answers[MAX_PROVIDERS]));
            view.rate_limited.push(read(&slot.rate_limited));
            view.failovers.push(read(&slot.failovers));
            let counts: [u32; BUCKETS] =
                std::array::from_fn(|i| if held { slot.ttfb[i].load(Ordering::Relaxed) } else { 0 });
            view.ttfb_p50_ms.push(quantile(&counts, 0.5));
            view.ttfb_p99_ms.push(quantile(&counts, 0.99));
        }
        // A client refused within the last 10 seconds is being limited now.
        for (client, &second) in self.limited.lock().iter() {
            if current.saturating_sub(second) < 10 {
                view.limited_clients.insert(client.clone(), current - second);
            }
        }
        view
    }
}

/// What `GET /admin/timeline` answers: one value per second, oldest first.
#[derive(Debug, Serialize)]
pub struct View {
    pub seconds: usize,
    /// Answers per second by provider, in the providers' order.
    pub answers: Vec<Series>,
    /// The proxy's own answers (refusals, errors) per second.
    pub proxy: Vec<u64>,
    pub rate_limited: Vec<u64>,
    pub failovers: Vec<u64>,
    /// Upstream time to first byte in that second (the bucket's upper bound); null for none.
    pub ttfb_p50_ms: Vec<Option<f64>>,
    pub ttfb_p99_ms: Vec<Option<f64>>,
    /// Client keys refused by their own limits in the last 10 s: seconds since the last.
    pub limited_clients: HashMap<String, u64>,
}

/// One provider's answers per second.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct Series {
    pub provider: String,
    pub per_second: Vec<u64>,
}

fn bucket(ms: f64) -> usize {
    let mut bound = FIRST_MS;
    for i in 0..BUCKETS - 1 {
        if ms < bound {
            return i;
        }
        bound *= GROWTH;
    }
    BUCKETS - 1
}

/// The `q` quantile of the bucket counts, as its bucket's upper bound in ms; `None` for no count.
fn quantile(counts: &[u32; BUCKETS], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().map(|&n| u64::from(n)).sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, &n) in counts.iter().enumerate() {
        seen += u64::from(n);
        if seen >= rank {
            return Some((FIRST_MS * GROWTH.powi(i as i32) * 10.0).round() / 10.0);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn counts_land_in_their_second_and_old_seconds_are_cleared() {
        let timeline = Timeline::new();
        timeline.name(vec!["cerebras".into(), "zai".into()]);
        let start = timeline.began;
        timeline.answer(Some(0), start);
        timeline.answer(Some(1), start + Duration::from_secs(1));
        timeline.answer(None, start + Duration::from_secs(1));
        timeline.answer(Some(9), start + Duration::from_secs(1));
        timeline.failover(start + Duration::from_secs(1));
        let view = timeline.view(3, start + Duration::from_secs(1));
        assert_eq!(view.answers[0], Series { provider: "cerebras".into(), per_second: vec![0, 1, 0] });
        assert_eq!(view.answers[1].per_second, [0, 0, 1]);
        assert_eq!(view.proxy, [0, 0, 2], "an unknown provider is the proxy's");
        assert_eq!(view.failovers, [0, 0, 1]);
        // A lap later, the slot of second 0 holds second 900, and second 0 is gone.
        let lap = start + Duration::from_secs(SECONDS as u64);
        timeline.answer(Some(0), lap);
        let view = timeline.view(SECONDS, lap);
        let cerebras = &view.answers[0].per_second;
        assert_eq!((cerebras.iter().sum::<u64>(), cerebras.last(), cerebras.len()), (1, Some(&1), SECONDS));
    }

    #[test]
    fn quantiles_come_from_the_buckets() {
        let timeline = Timeline::new();
        let at = timeline.began;
        for _ in 0..98 {
            timeline.upstream(0.0005, 200, at);
        }
        timeline.upstream(0.2, 429, at);
        timeline.upstream(0.2, 200, at);
        let view = timeline.view(1, at);
        assert_eq!(view.ttfb_p50_ms, [Some(1.0)]);
        let p99 = view.ttfb_p99_ms[0].unwrap();
        assert!((200.0..330.0).contains(&p99), "{p99}");
        assert_eq!(view.rate_limited, [1]);
        assert_eq!(timeline.view(2, at + Duration::from_secs(1)).ttfb_p50_ms, [Some(1.0), None]);
    }

    #[test]
    fn a_client_is_limited_now_for_ten_seconds_after_a_refusal() {
        let timeline = Timeline::new();
        let at = timeline.began + Duration::from_secs(5);
        timeline.limited("ci", at);
        assert_eq!(timeline.view(1, at + Duration::from_secs(3)).limited_clients.get("ci"), Some(&3));
        assert!(timeline.view(1, at + Duration::from_secs(10)).limited_clients.is_empty());
    }
}
