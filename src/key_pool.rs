//! The state of the Cerebras keys and the rules that change it, as plain data.
//!
//! Pure: every call takes `now`, so cooldown arithmetic is tested without sleeping.
//! The `KeyRotator` actor owns one `KeyPool` and adds timers and waiting requests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::NamedKey;
use crate::secret::Secret;

/// What a failed attempt with a key says about the key. (Successes change no key state;
/// they are counted on the grant's `served`.)
#[derive(Debug, Clone, PartialEq)]
pub enum KeyVerdict {
    /// 429: the key works but must rest, at least for the configured cooldown.
    RateLimited { requested: Option<Duration> },
    /// 5xx, connection error or timeout: rest the key and count the error.
    Failed { reason: String },
    /// 401/402/403: the key itself is bad; out of rotation for much longer.
    Invalid { reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    Available,
    CoolingDown,
    Invalid,
}

/// How long keys rest after each kind of verdict.
#[derive(Debug, Clone, Copy)]
pub struct Cooldowns {
    pub rate_limited: Duration,
    pub invalid: Duration,
}

/// A key handed to a request: its position (to report back), its name and its value.
#[derive(Debug, Clone)]
pub struct KeyGrant {
    pub index: usize,
    pub name: Arc<str>,
    pub secret: Secret,
    /// Successes are counted here by the request itself: a success changes no key state, so
    /// it needs no message to the rotator.
    pub served: Arc<AtomicU64>,
}

/// The answer to "which key now?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    Ready(usize),
    /// Every key rests; the first is free at this instant.
    AllCooling {
        free_at: Instant,
    },
}

/// One key in `/_status`; the field names are the seed's.
#[derive(Debug, Clone, Serialize)]
pub struct KeyStatus {
    pub name: Arc<str>,
    pub available: bool,
    /// Seconds until the key is usable again; 0 when available.
    pub rate_limited_for: f64,
    pub error_count: u64,
    pub state: KeyState,
    pub requests: u64,
    pub last_error: Option<String>,
}

#[derive(Debug)]
struct Key {
    name: Arc<str>,
    secret: Secret,
    resting_until: Option<(Instant, KeyState)>,
    error_count: u64,
    served: Arc<AtomicU64>,
    last_error: Option<String>,
}

impl Key {
    fn rest(&self, now: Instant) -> Option<(Instant, KeyState)> {
        self.resting_until.filter(|(until, _)| *until > now)
    }
}

#[derive(Debug)]
pub struct KeyPool {
    keys: Vec<Key>,
    current: usize,
    cooldowns: Cooldowns,
}

impl KeyPool {
    /// A pool with every key available and the first one current.
    pub fn new(keys: &[NamedKey], cooldowns: Cooldowns) -> Self {
        assert!(!keys.is_empty(), "config validation guarantees at least one Cerebras key");
        let keys = keys
            .iter()
            .map(|k| Key {
                name: k.name.as_str().into(),
                secret: k.secret.clone(),
                resting_until: None,
                error_count: 0,
                served: Arc::default(),
                last_error: None,
            })
            .collect();
        Self { keys, current: 0, cooldowns }
    }

    /// Sticky choice: the current key while it is usable, else the next usable one after it.
    pub fn acquire(&mut self, now: Instant) -> Availability {
        let n = self.keys.len();
        let usable = (0..n).map(|offset| (self.current + offset) % n).find(|&i| self.keys[i].rest(now).is_none());
        match usable {
            Some(index) => {
                self.current = index;
                Availability::Ready(index)
            }
            None => Availability::AllCooling { free_at: self.earliest_free_at(now) },
        }
    }

    fn earliest_free_at(&self, now: Instant) -> Instant {
        self.keys.iter().filter_map(|k| k.rest(now).map(|(until, _)| until)).min().unwrap_or(now)
    }

    pub fn grant(&self, index: usize) -> KeyGrant {
        let key = &self.keys[index];
        KeyGrant { index, name: key.name.clone(), secret: key.secret.clone(), served: key.served.clone() }
    }

    /// Records what a failed attempt with key `index` said. Marks that key, whichever is
    /// current. Returns the instant the key is usable again.
    pub fn report(&mut self, index: usize, verdict: &KeyVerdict, now: Instant) -> Option<Instant> {
        let cooldowns = self.cooldowns;
        let key = self.keys.get_mut(index)?;
        let (rest, state, error) = match verdict {
            KeyVerdict::RateLimited { requested } => {
                let rest = requested.map_or(cooldowns.rate_limited, |r| r.max(cooldowns.rate_limited));
                (rest, KeyState::CoolingDown, "rate limited (429)".to_owned())
            }
            KeyVerdict::Failed { reason } => (cooldowns.rate_limited, KeyState::CoolingDown, reason.clone()),
            KeyVerdict::Invalid { reason } => (cooldowns.invalid, KeyState::Invalid, reason.clone()),
        };
        key.error_count += 1;
        key.last_error = Some(error);
        let until = now + rest;
        // A key cooled again while cooling keeps the later deadline, never the earlier one.
        key.resting_until = match key.rest(now) {
            Some(existing) if existing.0 >= until => Some(existing),
            _ => Some((until, state)),
        };
        key.resting_until.map(|(until, _)| until)
    }

    pub fn status(&self, now: Instant) -> Vec<KeyStatus> {
        self.keys
            .iter()
            .map(|key| {
                let rest = key.rest(now);
                KeyStatus {
                    name: key.name.clone(),
                    available: rest.is_none(),
                    rate_limited_for: rest.map_or(0.0, |(until, _)| (until - now).as_secs_f64()),
                    error_count: key.error_count,
                    state: rest.map_or(KeyState::Available, |(_, state)| state),
                    requests: key.served.load(Ordering::Relaxed),
                    last_error: key.last_error.clone(),
                }
            })
            .collect()
    }

    pub fn current_name(&self) -> Arc<str> {
        self.keys[self.current].name.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOLDOWNS: Cooldowns =
        Cooldowns { rate_limited: Duration::from_secs(60), invalid: Duration::from_secs(3600) };

    fn pool(n: usize) -> KeyPool {
        let keys: Vec<NamedKey> =
            (1..=n).map(|i| NamedKey { name: format!("key{i}"), secret: Secret::new(format!("sk-{i}")) }).collect();
        KeyPool::new(&keys, COOLDOWNS)
    }

    fn limited(secs: Option<u64>) -> KeyVerdict {
        KeyVerdict::RateLimited { requested: secs.map(Duration::from_secs) }
    }

    #[test]
    fn sticks_to_the_current_key_until_it_fails() {
        let mut pool = pool(3);
        let now = Instant::now();
        assert_eq!(pool.acquire(now), Availability::Ready(0));
        assert_eq!(pool.acquire(now), Availability::Ready(0));
        pool.report(0, &limited(None), now);
        assert_eq!(pool.acquire(now), Availability::Ready(1));
        assert_eq!(pool.acquire(now), Availability::Ready(1));
        assert_eq!(&*pool.current_name(), "key2");
    }

    #[test]
    fn a_failure_marks_the_failed_key_not_the_current_one() {
        let mut pool = pool(3);
        let now = Instant::now();
        pool.acquire(now);
        // Two requests held key1; the second reports after the first already moved on.
        pool.report(0, &limited(None), now);
        assert_eq!(pool.acquire(now), Availability::Ready(1));
        pool.report(0, &limited(None), now);
        assert_eq!(pool.acquire(now), Availability::Ready(1), "key2 is good and must not be skipped");
    }

    #[test]
    fn retry_after_longer_than_the_cooldown_wins_and_shorter_does_not() {
        let mut pool = pool(1);
        let now = Instant::now();
        assert_eq!(pool.report(0, &limited(Some(90)), now), Some(now + Duration::from_secs(90)));
        let mut pool2 = self::pool(1);
        assert_eq!(pool2.report(0, &limited(Some(5)), now), Some(now + Duration::from_secs(60)));
    }

    #[test]
    fn cooling_again_keeps_the_later_deadline() {
        let mut pool = pool(1);
        let now = Instant::now();
        pool.report(0, &limited(Some(300)), now);
        let later = now + Duration::from_secs(10);
        assert_eq!(pool.report(0, &limited(None), later), Some(now + Duration::from_secs(300)));
        assert_eq!(pool.acquire(later), Availability::AllCooling { free_at: now + Duration::from_secs(300) });
    }

    #[test]
    fn all_cooling_names_the_first_key_to_come_free_and_then_serves_it() {
        let mut pool = pool(2);
        let now = Instant::now();
        pool.report(0, &limited(Some(120)), now);
        pool.report(1, &limited(None), now);
        let free_at = now + Duration::from_secs(60);
        assert_eq!(pool.acquire(now), Availability::AllCooling { free_at });
        assert_eq!(pool.acquire(free_at), Availability::Ready(1));
    }

    #[test]
    fn invalid_keys_rest_far_longer_and_show_it() {
        let mut pool = pool(2);
        let now = Instant::now();
        pool.report(0, &KeyVerdict::Invalid { reason: "401".into() }, now);
        let status = pool.status(now + Duration::from_secs(120));
        assert_eq!(status[0].state, KeyState::Invalid);
        assert!(!status[0].available);
        assert!(status[0].rate_limited_for > 3000.0);
        assert_eq!(status[0].error_count, 1);
        assert_eq!(status[1].state, KeyState::Available);
        assert_eq!(pool.acquire(now + Duration::from_secs(120)), Availability::Ready(1));
    }

    #[test]
    fn status_counts_errors_and_requests_and_frees_keys_on_time() {
        let mut pool = pool(1);
        let now = Instant::now();
        pool.grant(0).served.fetch_add(1, Ordering::Relaxed);
        pool.report(0, &KeyVerdict::Failed { reason: "HTTP 500".into() }, now);
        let cooling = &pool.status(now + Duration::from_secs(30))[0];
        assert_eq!((cooling.requests, cooling.error_count), (1, 1));
        assert!((cooling.rate_limited_for - 30.0).abs() < 0.001);
        assert_eq!(cooling.last_error.as_deref(), Some("HTTP 500"));
        let free = &pool.status(now + Duration::from_secs(60))[0];
        assert!(free.available && free.rate_limited_for == 0.0);
    }
}
