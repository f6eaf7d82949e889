//! The state of one provider's keys and the rules that change it, as plain data.
//!
//! Pure: every call takes `now`, so cooldown arithmetic is tested without sleeping.
//! The `KeyRotator` actor owns one `KeyPool` and adds timers and waiting requests.
//! Which outcomes reach this pool at all is decided in `policy::fault`: only a key's own fault
//! (429, 401) rests a key.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::deadline;
use super::fault::Reason;
use crate::config::NamedKey;
use crate::secret::Secret;

/// What an attempt said about the key it used. (Successes change no key state; they are
/// counted on the grant's `served`.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyVerdict {
    /// 429: the key works but must rest: what the upstream asked, at least the configured
    /// cooldown, at most `MAX_COOLDOWN`.
    RateLimited { requested: Option<Duration> },
    /// 401: the key is rejected; out of rotation for `INVALID_KEY_COOLDOWN`.
    Rejected(Rejection),
    /// An error this key got and another key did not (402, 403, 500): the sticky position moves
    /// past this key, which does not rest.
    Failed { reason: Reason },
}

impl KeyVerdict {
    pub fn reason(&self) -> Reason {
        match self {
            Self::RateLimited { .. } => Reason::RateLimited,
            Self::Rejected(rejection) => Reason::KeyRejected(rejection.clone()),
            Self::Failed { reason } => reason.clone(),
        }
    }
}

/// An upstream's refusal of a key (a 401), in the upstream's own words, never the key's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection(pub String);

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    Available,
    CoolingDown,
    /// Shown as `invalid`, the name `/_status` and the metrics have always used.
    #[serde(rename = "invalid")]
    Rejected,
}

/// Why a key rests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rest {
    CoolingDown,
    Rejected,
}

impl From<Rest> for KeyState {
    fn from(rest: Rest) -> Self {
        match rest {
            Rest::CoolingDown => Self::CoolingDown,
            Rest::Rejected => Self::Rejected,
        }
    }
}

/// How long keys rest after each kind of verdict.
#[derive(Debug, Clone, Copy)]
pub struct Cooldowns {
    /// After a 429, at least.
    pub rate_limited: Duration,
    /// After a 401 (`INVALID_KEY_COOLDOWN`).
    pub rejected: Duration,
    /// The longest rest an upstream can ask for (`MAX_COOLDOWN`).
    pub max: Duration,
}

/// A key handed to a request: its position (to report back), its name and its value.
#[derive(Debug, Clone)]
pub struct KeyGrant {
    pub index: usize,
    /// The key list it was granted from: a report on a key from before a reload finds it by
    /// this, wherever the reload moved it.
    pub generation: u64,
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
    /// Every key is rejected by the upstream: the pool is refused, and waiting will not help.
    /// The last rejection says why.
    AllRejected(Rejection),
}

/// One key in `/_status`; the first four field names are the seed's.
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
    resting_until: Option<(Instant, Rest)>,
    error_count: u64,
    served: Arc<AtomicU64>,
    last_error: Option<String>,
}

impl Key {
    fn fresh(key: &NamedKey) -> Self {
        Self {
            name: key.name.as_str().into(),
            secret: key.secret.clone(),
            resting_until: None,
            error_count: 0,
            served: Arc::default(),
            last_error: None,
        }
    }

    fn rest(&self, now: Instant) -> Option<(Instant, Rest)> {
        self.resting_until.filter(|(until, _)| *until > now)
    }
}

#[derive(Debug)]
pub struct KeyPool {
    keys: Vec<Key>,
    current: usize,
    cooldowns: Cooldowns,
    /// The last key's rejection, for the answer when all are rejected.
    last_rejection: Option<Rejection>,
    /// How many times the key list was replaced, and where each key of the list before the
    /// last replacement is now (`None`: removed).
    generation: u64,
    moved: Vec<Option<usize>>,
}

/// What replacing the key list did, by key name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Replaced {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Same name and value: their state (a rest, a rejection, their counts) carries over.
    pub unchanged: Vec<String>,
}

impl KeyPool {
    /// A pool with every key available and the first one current.
    pub fn new(keys: &[NamedKey], cooldowns: Cooldowns) -> Self {
        assert!(!keys.is_empty(), "config validation guarantees every provider at least one key");
        let keys = keys.iter().map(Key::fresh).collect();
        Self { keys, current: 0, cooldowns, last_rejection: None, generation: 0, moved: Vec::new() }
    }

    /// The key list becomes `keys` (a reload): a key of the same name and value keeps its
    /// state, the others start afresh, and the sticky key stays if it is still there.
    pub fn replace(&mut self, keys: &[NamedKey], now: Instant) -> Replaced {
        assert!(!keys.is_empty(), "a reload with no key is refused before it gets here");
        let mut old: Vec<Option<Key>> = std::mem::take(&mut self.keys).into_iter().map(Some).collect();
        let mut replaced = Replaced::default();
        let mut moved = vec![None; old.len()];
        for key in keys {
            let same = old.iter().position(|o| {
                o.as_ref().is_some_and(|o| *o.name == *key.name && o.secret.expose() == key.secret.expose())
            });
            match same {
                Some(at) => {
                    moved[at] = Some(self.keys.len());
                    replaced.unchanged.push(key.name.clone());
                    self.keys.extend(old[at].take());
                }
                None => {
                    replaced.added.push(key.name.clone());
                    self.keys.push(Key::fresh(key));
                }
            }
        }
        replaced.removed = old.into_iter().flatten().map(|key| key.name.to_string()).collect();
        let sticky = moved.get(self.current).copied().flatten();
        self.current = sticky.or_else(|| self.usable_from(0, now)).unwrap_or(0);
        self.generation += 1;
        self.moved = moved;
        replaced
    }

    /// Where the key `index` of the list of `generation` is now, if it still is.
    pub fn resolve(&self, index: usize, generation: u64) -> Option<usize> {
        match self.generation.checked_sub(generation) {
            Some(0) => (index < self.keys.len()).then_some(index),
            Some(1) => self.moved.get(index).copied().flatten(),
            _ => None,
        }
    }

    /// The key named `name`, if the list has it.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.keys.iter().position(|key| *key.name == *name)
    }

    /// Ends key `index`'s rest or rejection (an operator's reset). Whether it rested.
    pub fn lift(&mut self, index: usize, now: Instant) -> bool {
        // Another replica's lift may name a key a reload here just removed.
        let Some(key) = self.keys.get_mut(index) else { return false };
        let rested = key.rest(now).is_some();
        key.resting_until = None;
        rested
    }

    /// Sticky choice: the current key while it is usable, else the next usable one after it.
    pub fn acquire(&mut self, now: Instant) -> Availability {
        match self.usable_from(self.current, now) {
            Some(index) => {
                self.current = index;
                Availability::Ready(index)
            }
            None if self.all_rejected(now) => Availability::AllRejected(
                self.last_rejection.clone().unwrap_or_else(|| Rejection("every key was rejected".to_owned())),
            ),
            None => Availability::AllCooling { free_at: self.earliest_free_at(now) },
        }
    }

    /// A usable key other than `avoid`, to learn whether an error was `avoid`'s own. The
    /// sticky position does not move: only the outcome may move it.
    pub fn acquire_other(&self, avoid: usize, now: Instant) -> Option<usize> {
        self.usable_from(avoid + 1, now).filter(|&index| index != avoid)
    }

    /// The first usable key at or after `start`, in rotation order.
    fn usable_from(&self, start: usize, now: Instant) -> Option<usize> {
        let n = self.keys.len();
        (0..n).map(|offset| (start + offset) % n).find(|&i| self.keys[i].rest(now).is_none())
    }

    fn all_rejected(&self, now: Instant) -> bool {
        self.keys.iter().all(|k| matches!(k.rest(now), Some((_, Rest::Rejected))))
    }

    fn earliest_free_at(&self, now: Instant) -> Instant {
        self.keys.iter().filter_map(|k| k.rest(now).map(|(until, _)| until)).min().unwrap_or(now)
    }

    pub fn grant(&self, index: usize) -> KeyGrant {
        let key = &self.keys[index];
        KeyGrant {
            index,
            generation: self.generation,
            name: key.name.clone(),
            secret: key.secret.clone(),
            served: key.served.clone(),
        }
    }

    /// Records what an attempt with key `index` said. Marks that key, whichever is current.
    /// Returns the instant the key is usable again, and why it rests, when it now rests.
    pub fn report(&mut self, index: usize, verdict: &KeyVerdict, now: Instant) -> Option<(Instant, Rest)> {
        let cooldowns = self.cooldowns;
        let key = self.keys.get_mut(index)?;
        key.error_count += 1;
        let (period, rest) = match verdict {
            KeyVerdict::RateLimited { requested } => {
                key.last_error = Some("rate limited (429)".to_owned());
                let asked = requested.map_or(cooldowns.rate_limited, |r| r.max(cooldowns.rate_limited));
                (asked.min(cooldowns.max), Rest::CoolingDown)
            }
            KeyVerdict::Rejected(rejection) => {
                key.last_error = Some(format!("rejected (401): {rejection}"));
                self.last_rejection = Some(rejection.clone());
                (cooldowns.rejected, Rest::Rejected)
            }
            KeyVerdict::Failed { reason } => {
                key.last_error = Some(reason.to_string());
                if self.current == index {
                    self.current = self.usable_from(index + 1, now).unwrap_or(index);
                }
                return None;
            }
        };
        let until = deadline(now, period);
        // A key rested again while resting keeps the later deadline, never the earlier one.
        key.resting_until = match key.rest(now) {
            Some(existing) if existing.0 >= until => Some(existing),
            _ => Some((until, rest)),
        };
        key.resting_until
    }

    /// Ends every rejection (SIGHUP): the operator says the keys may be good now. Returns how
    /// many keys were freed.
    pub fn clear_rejections(&mut self, now: Instant) -> usize {
        let mut cleared = 0;
        for key in &mut self.keys {
            if matches!(key.rest(now), Some((_, Rest::Rejected))) {
                key.resting_until = None;
                cleared += 1;
            }
        }
        cleared
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
                    state: rest.map_or(KeyState::Available, |(_, rest)| rest.into()),
                    requests: key.served.load(Ordering::Relaxed),
                    last_error: key.last_error.clone(),
                }
            })
            .collect()
    }

    pub fn current_name(&self) -> Arc<str> {
        self.keys[self.current].name.clone()
    }

    pub fn current_index(&self) -> usize {
        self.current
    }

    /// A rest another replica gave a key: the later deadline wins, as for local rests, and no
    /// rest runs longer than this pool allows. Returns the new deadline if it changed.
    pub fn apply_rest(&mut self, index: usize, until: Instant, rest: Rest, now: Instant) -> Option<Instant> {
        let longest = self.cooldowns.max.max(self.cooldowns.rejected);
        let until = until.min(deadline(now, longest));
        let key = self.keys.get_mut(index)?;
        if key.rest(now).is_some_and(|(existing, _)| existing >= until) || until <= now {
            return None;
        }
        key.resting_until = Some((until, rest));
        let what = if rest == Rest::Rejected { "rejected" } else { "rate limited" };
        key.last_error = Some(format!("{what} (seen by another replica)"));
        Some(until)
    }

    /// Makes `index` the sticky key, as another replica moved it, if it is usable here.
    pub fn follow(&mut self, index: usize, now: Instant) -> bool {
        let usable = self.keys.get(index).is_some_and(|key| key.rest(now).is_none());
        if usable {
            self.current = index;
        }
        usable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_replicas_rest_keeps_the_later_deadline_and_the_pools_limit() {
        let now = Instant::now();
        let mut pool = pool(2);
        let (local, _) = pool.report(0, &KeyVerdict::RateLimited { requested: None }, now).unwrap();
        assert_eq!(pool.apply_rest(0, now + Duration::from_secs(10), Rest::CoolingDown, now), None, "earlier");
        let later = now + Duration::from_secs(120);
        assert_eq!(pool.apply_rest(0, later, Rest::CoolingDown, now), Some(later));
        assert!(later > local);
        let forever = now + Duration::from_secs(10 * 86_400);
        let clamped = pool.apply_rest(1, forever, Rest::CoolingDown, now).unwrap();
        assert_eq!(clamped, now + Duration::from_secs(86_400), "no rest longer than MAX_COOLDOWN");
        assert_eq!(pool.apply_rest(1, now, Rest::CoolingDown, now), None, "already over");
    }

    #[test]
    fn the_sticky_key_follows_another_replica_only_to_a_usable_key() {
        let now = Instant::now();
        let mut pool = pool(3);
        assert!(pool.follow(2, now));
        assert_eq!(pool.current_index(), 2);
        pool.report(1, &KeyVerdict::RateLimited { requested: None }, now);
        assert!(!pool.follow(1, now), "resting here");
        assert_eq!(pool.current_index(), 2);
    }

    const COOLDOWNS: Cooldowns = Cooldowns {
        rate_limited: Duration::from_secs(60),
        rejected: Duration::from_secs(3600),
        max: Duration::from_secs(86_400),
    };

    fn pool(n: usize) -> KeyPool {
        let keys: Vec<NamedKey> =
            (1..=n).map(|i| NamedKey { name: format!("key{i}"), secret: Secret::new(format!("sk-{i}")) }).collect();
        KeyPool::new(&keys, COOLDOWNS)
    }

    fn limited(secs: Option<u64>) -> KeyVerdict {
        KeyVerdict::RateLimited { requested: secs.map(Duration::from_secs) }
    }

    fn rejected() -> KeyVerdict {
        KeyVerdict::Rejected(Rejection("Wrong API Key".into()))
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
        assert_eq!(
            pool.report(0, &limited(Some(90)), now).map(|(until, _)| until),
            Some(now + Duration::from_secs(90))
        );
        let mut pool2 = self::pool(1);
        assert_eq!(
            pool2.report(0, &limited(Some(5)), now).map(|(until, _)| until),
            Some(now + Duration::from_secs(60))
        );
    }

    #[test]
    fn a_huge_wait_is_clamped_to_the_maximum_cooldown() {
        let mut pool = pool(1);
        let now = Instant::now();
        let huge = KeyVerdict::RateLimited { requested: Some(Duration::from_secs(10_000_000_000_000_000_000)) };
        assert_eq!(pool.report(0, &huge, now).map(|(until, _)| until), Some(now + COOLDOWNS.max));
        let endless = KeyVerdict::RateLimited { requested: Some(Duration::MAX) };
        assert_eq!(pool.report(0, &endless, now).map(|(until, _)| until), Some(now + COOLDOWNS.max));
    }

    #[test]
    fn cooling_again_keeps_the_later_deadline() {
        let mut pool = pool(1);
        let now = Instant::now();
        pool.report(0, &limited(Some(300)), now);
        let later = now + Duration::from_secs(10);
        assert_eq!(pool.report(0, &limited(None), later).map(|(until, _)| until), Some(now + Duration::from_secs(300)));
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
    fn rejected_keys_rest_far_longer_and_show_it() {
        let mut pool = pool(2);
        let now = Instant::now();
        pool.report(0, &rejected(), now);
        let status = pool.status(now + Duration::from_secs(120));
        assert_eq!(status[0].state, KeyState::Rejected);
        assert!(!status[0].available);
        assert!(status[0].rate_limited_for > 3000.0);
        assert_eq!(status[0].error_count, 1);
        assert_eq!(status[0].last_error.as_deref(), Some("rejected (401): Wrong API Key"));
        assert_eq!(status[1].state, KeyState::Available);
        assert_eq!(pool.acquire(now + Duration::from_secs(120)), Availability::Ready(1));
    }

    #[test]
    fn a_pool_whose_every_key_is_rejected_says_so_instead_of_waiting() {
        let mut pool = pool(2);
        let now = Instant::now();
        pool.report(0, &rejected(), now);
        pool.report(1, &rejected(), now);
        assert_eq!(pool.acquire(now), Availability::AllRejected(Rejection("Wrong API Key".into())));
        // One key merely cooling means waiting can help.
        let mut mixed = self::pool(2);
        mixed.report(0, &rejected(), now);
        mixed.report(1, &limited(None), now);
        assert!(matches!(mixed.acquire(now), Availability::AllCooling { .. }));
        // A rejection ends after INVALID_KEY_COOLDOWN, or when cleared.
        assert_eq!(pool.acquire(now + COOLDOWNS.rejected), Availability::Ready(0));
        assert_eq!(pool.clear_rejections(now), 2);
        assert_eq!(pool.acquire(now), Availability::Ready(0));
    }

    #[test]
    fn a_failure_only_one_key_got_moves_the_sticky_key_past_it_without_a_rest() {
        let mut pool = pool(3);
        let now = Instant::now();
        pool.acquire(now);
        assert_eq!(pool.report(0, &KeyVerdict::Failed { reason: Reason::Status(500) }, now), None);
        assert_eq!(pool.acquire(now), Availability::Ready(1));
        let status = pool.status(now);
        assert!(status[0].available);
        assert_eq!((status[0].error_count, status[0].last_error.as_deref()), (1, Some("HTTP 500")));
        // A report on a key that is no longer current moves nothing.
        pool.report(0, &KeyVerdict::Failed { reason: Reason::Status(500) }, now);
        assert_eq!(pool.acquire(now), Availability::Ready(1));
    }

    #[test]
    fn another_key_is_offered_without_moving_the_sticky_one() {
        let mut pool = pool(3);
        let now = Instant::now();
        assert_eq!(pool.acquire_other(0, now), Some(1));
        pool.report(1, &limited(None), now);
        assert_eq!(pool.acquire_other(0, now), Some(2));
        assert_eq!(pool.acquire(now), Availability::Ready(0));
        let single = self::pool(1);
        assert_eq!(single.acquire_other(0, now), None);
    }

    fn named(pairs: &[(&str, &str)]) -> Vec<NamedKey> {
        pairs.iter().map(|(name, key)| NamedKey { name: (*name).into(), secret: Secret::new(*key) }).collect()
    }

    #[test]
    fn a_replaced_list_keeps_the_state_of_unchanged_keys_only() {
        let now = Instant::now();
        let mut pool = pool(3);
        pool.report(0, &limited(None), now);
        pool.report(1, &rejected(), now);
        pool.grant(0).served.fetch_add(5, Ordering::Relaxed);
        assert_eq!(pool.acquire(now), Availability::Ready(2));
        // key2's value changed, key3 left, key4 joined; key1 is unchanged and still rests.
        let replaced = pool.replace(&named(&[("key4", "sk-4"), ("key1", "sk-1"), ("key2", "sk-new")]), now);
        assert_eq!(replaced.added, ["key4", "key2"]);
        assert_eq!(replaced.removed, ["key2", "key3"], "a changed value is the old key gone");
        assert_eq!(replaced.unchanged, ["key1"]);
        let status = pool.status(now);
        let names: Vec<&str> = status.iter().map(|key| &*key.name).collect();
        assert_eq!(names, ["key4", "key1", "key2"]);
        assert_eq!((status[1].state, status[1].requests), (KeyState::CoolingDown, 5));
        assert_eq!(status[2].state, KeyState::Available, "a new value is a new key");
        // The sticky key left: the first usable one takes its place.
        assert_eq!(pool.acquire(now), Availability::Ready(0));
    }

    #[test]
    fn a_report_from_before_a_reload_finds_its_key_where_it_went() {
        let now = Instant::now();
        let mut pool = pool(2);
        let before = pool.grant(1);
        assert_eq!(pool.resolve(1, before.generation), Some(1));
        pool.replace(&named(&[("key2", "sk-2"), ("key5", "sk-5")]), now);
        assert_eq!(pool.resolve(before.index, before.generation), Some(0));
        assert_eq!(pool.resolve(0, before.generation), None, "key1 was removed");
        assert_eq!(pool.resolve(1, pool.grant(1).generation), Some(1));
        assert_eq!(pool.resolve(7, pool.grant(1).generation), None);
        pool.replace(&named(&[("key2", "sk-2")]), now);
        assert_eq!(pool.resolve(before.index, before.generation), None, "two reloads back");
    }

    #[test]
    fn a_lifted_key_is_usable_at_once() {
        let now = Instant::now();
        let mut pool = pool(1);
        pool.report(0, &rejected(), now);
        assert_eq!(pool.position("key1"), Some(0));
        assert_eq!(pool.position("nope"), None);
        assert!(pool.lift(0, now));
        assert_eq!(pool.acquire(now), Availability::Ready(0));
        assert!(!pool.lift(0, now), "it was not resting");
        assert!(!pool.lift(5, now), "no such key");
    }

    #[test]
    fn status_counts_errors_and_requests_and_frees_keys_on_time() {
        let mut pool = pool(1);
        let now = Instant::now();
        pool.grant(0).served.fetch_add(1, Ordering::Relaxed);
        pool.report(0, &limited(None), now);
        let cooling = &pool.status(now + Duration::from_secs(30))[0];
        assert_eq!((cooling.requests, cooling.error_count), (1, 1));
        assert!((cooling.rate_limited_for - 30.0).abs() < 0.001);
        assert_eq!(cooling.last_error.as_deref(), Some("rate limited (429)"));
        let free = &pool.status(now + Duration::from_secs(60))[0];
        assert!(free.available && free.rate_limited_for == 0.0);
    }
}
