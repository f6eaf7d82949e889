//! `AuthGate`: admits requests by client key without waiting on SQLite.
//!
//! Known keys live in memory, refreshed from the database every second (so a revocation from
//! the CLI lands within two), and usage is counted in memory and flushed in batches. This state
//! is a published snapshot and two small locks rather than an actor because every request reads
//! it: a mailbox round trip per request would put one thread on the hot path.
//!
//! Only a key the cache has never seen costs a trip to the database, and that trip is bounded:
//! - a hash the database did not know is remembered (`AUTH_MISS_CACHE_SIZE`, `AUTH_MISS_CACHE_TTL`),
//!   so a repeated bad key reaches SQLite once a window;
//! - at most `AUTH_LOOKUP_QUEUE` lookups are in progress; past it, 503 `overloaded` at once;
//! - lookups run on a database thread of their own, so a flood of them never delays the usage
//!   flush and the reload (which carries revocations).
//!
//! A key with limits carries its limiter in its cached entry, so admission is a few lookups in
//! memory behind that key's own lock: no message, and no lock that other keys share. The
//! limiter outlives reloads (the entry is rebuilt, the limiter moves over), and a reload brings
//! the limits the CLI set and the spend of keys with a budget, as the database has it (with
//! PostgreSQL, every replica's) plus what this proxy has not flushed yet.
//!
//! A reload that keeps failing is never silent: each failure is logged and counted, and once
//! the cache is older than `AUTH_CACHE_MAX_AGE` it is no longer trusted (503 `auth_unavailable`),
//! since a key revoked meanwhile must not keep working.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use actix_web::http::header::HeaderMap;
use arc_swap::ArcSwap;
use chrono::Utc;
use parking_lot::Mutex;
use prometheus::{IntCounter, IntCounterVec, IntGauge};
use tokio::sync::Semaphore;

use super::client_key::{self, Refusal};
use super::ledger::Ledger;
use super::limit_link::{LimitLink, CREDIT_WAIT};
use super::miss_cache::MissCache;
use super::pass::{ClientPass, Limiting};
use crate::actors::auth::{AuthActor, FlushUsage, LoadAll, Loaded, Lookup};
use crate::actors::supervision::ask;
use crate::config::AuthLimits;
use crate::db::keys::{ApiKey, Usage};
use crate::error::ProxyError;
use crate::metrics::Metrics;
use crate::policy::limits::budget::Spent;
use crate::policy::limits::limiter::Limiter;

#[derive(Debug, Clone)]
struct KnownKey {
    id: i32,
    name: Arc<str>,
    revoked: bool,
    /// `None` for a key without limits.
    limiting: Option<Limiting>,
}

impl KnownKey {
    /// The cache's entry for a stored key, with its one limiter (`limiters`, made sharing on
    /// `link` when there is one), told what the key has `spent` (this day, this month).
    fn of(key: ApiKey, limiters: &mut Limiters, link: Option<&LimitLink>, spent: Option<&(Spent, Spent)>) -> Self {
        let limits = key.limits();
        let limiting = limits.any().then(|| {
            let tracked = limiters.entry(key.id).or_insert_with(|| Tracked {
                // A digest of the key's digest: a name for Redis that says nothing of it.
                tag: client_key::hash(&key.key_hash)[..16].into(),
                limiter: Arc::new(Mutex::new(link.map(LimitLink::limiter).unwrap_or_default())),
            });
            let limiter = tracked.limiter.clone();
            if let Some(&(day, month)) = spent {
                limiter.lock().set_spent(day, month);
            }
            Limiting { limits: Arc::new(limits), limiter }
        });
        Self { id: key.id, name: key.name.into(), revoked: key.revoked, limiting }
    }
}

/// Each limited key's limiter, by id: one per key whichever entry of the cache holds it, so
/// that a reload and a lookup racing it never leave a request charging a limiter the next
/// request does not read. Never pruned: a reload that began before a key was made does not
/// list it. Keys are never deleted, so this is bounded by the keys with limits.
type Limiters = HashMap<i32, Tracked>;

/// A limited key's limiter, and the name its share goes by on Redis.
#[derive(Clone)]
pub struct Tracked {
    pub tag: Arc<str>,
    pub limiter: Arc<Mutex<Limiter>>,
}

pub struct AuthGate {
    /// The database thread for lookups of keys the cache does not know.
    lookups: Addr<AuthActor>,
    /// The database thread for the usage flush and the reload, which lookups cannot starve.
    syncs: Addr<AuthActor>,
    /// By SHA-256 of the key. Lookups compare digests, never the keys themselves, so their
    /// timing says nothing about a stored key (the constant-time property that matters).
    /// Replaced whole by each reload; a key first seen between reloads is added by copy.
    known: ArcSwap<HashMap<String, KnownKey>>,
    misses: Mutex<MissCache>,
    lookup_slots: Semaphore,
    usage: Mutex<HashMap<i32, Usage>>,
    ledger: Arc<Ledger>,
    /// Locked by reloads, lookups and `LimitSync`'s pushes, never on a cached key's admission.
    limiters: Mutex<Limiters>,
    /// With `REDIS_URL`: limits hold over every replica, shared through it.
    link: Option<Arc<LimitLink>>,
    /// When the cache was last reloaded, in milliseconds since `epoch`: read by every request,
    /// so an atomic rather than a lock.
    reloaded_ms: AtomicU64,
    epoch: Instant,
    cache_max_age: Duration,
    reload_failures: IntCounter,
    cache_age: IntGauge,
    missed_keys: IntGauge,
    lookups_made: IntCounter,
    client_requests: IntCounterVec,
}

impl AuthGate {
    pub fn new(
        lookups: Addr<AuthActor>,
        syncs: Addr<AuthActor>,
        limits: &AuthLimits,
        link: Option<Arc<LimitLink>>,
        metrics: &Arc<Metrics>,
    ) -> Self {
        Self {
            lookups,
            syncs,
            known: ArcSwap::default(),
            misses: Mutex::new(MissCache::new(limits.miss_cache_size, limits.miss_cache_ttl)),
            lookup_slots: Semaphore::new(limits.lookup_queue),
            usage: Mutex::default(),
            ledger: Arc::new(Ledger::new(metrics)),
            limiters: Mutex::default(),
            link,
            reloaded_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            cache_max_age: limits.cache_max_age,
            reload_failures: metrics.auth_reload_failures.clone(),
            cache_age: metrics.auth_cache_age_seconds.clone(),
            missed_keys: metrics.auth_missed_keys.clone(),
            lookups_made: metrics.auth_lookups.clone(),
            client_requests: metrics.client_requests.clone(),
        }
    }

    /// The pass of the client whose key the request carries, or the error to answer: its key
    /// unknown, revoked, expired, or over one of its limits.
    pub async fn admit(&self, headers: &HeaderMap) -> Result<ClientPass, ProxyError> {
        let presented = client_key::presented(headers).map_err(ProxyError::Unauthorized)?;
        if self.cache_age() > self.cache_max_age {
            return Err(ProxyError::AuthUnavailable);
        }
        let key_hash = client_key::hash(presented);
        let cached = self.known.load().get(&key_hash).cloned();
        let key = match cached {
            Some(key) => key,
            None => self.look_up(key_hash).await?,
        };
        if key.revoked {
            return Err(ProxyError::Unauthorized(Refusal::Unknown));
        }
        if let Some(limiting) = &key.limiting {
            self.admit_limited(&key.name, limiting).await?;
        }
        self.count_use(key.id);
        self.client_requests.with_label_values(&[&key.name]).inc();
        Ok(ClientPass::new(key.id, key.name, key.limiting, self.ledger.clone()))
    }

    /// The first step of a limited key's admission. Past its credit between two answers from
    /// Redis (replicas sharing limits), the request waits for the next answer, for
    /// `CREDIT_WAIT` at most.
    async fn admit_limited(&self, client: &str, limiting: &Limiting) -> Result<(), ProxyError> {
        let deadline = Instant::now() + CREDIT_WAIT;
        loop {
            let answer = {
                let clock = self.ledger.clock();
                let mut limiter = limiting.limiter.lock();
                match &self.link {
                    Some(link) if limiter.over_credit(&limiting.limits) && Instant::now() < deadline => {
                        link.next_answer()
                    }
                    _ => {
                        let Err(refusal) = limiter.admit(&limiting.limits, clock) else { return Ok(()) };
                        let rate = limiter.view(&limiting.limits, clock);
                        drop(limiter);
                        self.ledger.refused(client, &refusal);
                        return Err(ProxyError::ClientRefused { refusal, rate });
                    }
                }
            };
            let _ = tokio::time::timeout_at(deadline.into(), answer).await;
        }
    }

    /// Every limited key's limiter, for `LimitSync` to push and answer.
    pub fn tracked(&self) -> Vec<Tracked> {
        self.limiters.lock().values().cloned().collect()
    }

    /// A key the cache does not know: one bounded trip to the database, unless it missed lately.
    async fn look_up(&self, key_hash: String) -> Result<KnownKey, ProxyError> {
        let unknown = ProxyError::Unauthorized(Refusal::Unknown);
        if self.misses.lock().contains(&key_hash, Instant::now()) {
            return Err(unknown);
        }
        let _slot = self.lookup_slots.try_acquire().map_err(|_| ProxyError::Overloaded("client-key lookups"))?;
        self.lookups_made.inc();
        match ask(&self.lookups, Lookup { key_hash: key_hash.clone() }).await? {
            Some(found) => {
                // Its spend is read with the next reload, within a second.
                let key = KnownKey::of(found, &mut self.limiters.lock(), self.link.as_deref(), None);
                self.known.rcu(|known| {
                    let mut known = HashMap::clone(known);
                    known.insert(key_hash.clone(), key.clone());
                    known
                });
                Ok(key)
            }
            None => {
                let mut misses = self.misses.lock();
                misses.insert(&key_hash, Instant::now());
                self.missed_keys.set(misses.len() as i64);
                Err(unknown)
            }
        }
    }

    fn count_use(&self, id: i32) {
        let now = Utc::now().naive_utc();
        let mut usage = self.usage.lock();
        let entry = usage.entry(id).or_insert(Usage { id, requests: 0, last_used_at: now });
        entry.requests += 1;
        entry.last_used_at = now;
    }

    /// Flushes counted usage and spent tokens, then reloads every key. What cannot be written
    /// is kept for the next flush, never dropped.
    pub async fn sync(&self) {
        let requests: Vec<Usage> = self.usage.lock().drain().map(|(_, u)| u).collect();
        let tokens = self.ledger.take();
        let flush = FlushUsage { requests: requests.clone(), tokens: tokens.clone() };
        if !(requests.is_empty() && tokens.is_empty()) && ask(&self.syncs, flush).await.is_err() {
            self.ledger.restore(tokens);
            let mut usage = self.usage.lock();
            for u in requests {
                let entry = usage.entry(u.id).or_insert(Usage { requests: 0, ..u });
                entry.requests += u.requests;
                entry.last_used_at = entry.last_used_at.max(u.last_used_at);
            }
        }
        match ask(&self.syncs, LoadAll).await {
            Ok(Loaded { keys, spent }) => {
                for key in &keys {
                    // A client's counters exist from the moment its key does.
                    self.client_requests.with_label_values(&[&key.name]);
                    self.ledger.preset(&key.name);
                }
                let known = self.ledger.spent(&spent, |spent| {
                    let mut limiters = self.limiters.lock();
                    keys.into_iter()
                        .map(|key| {
                            let (hash, id) = (key.key_hash.clone(), key.id);
                            (hash, KnownKey::of(key, &mut limiters, self.link.as_deref(), spent.get(&id)))
                        })
                        .collect()
                });
                self.known.store(Arc::new(known));
                let now = self.epoch.elapsed().as_millis() as u64;
                self.reloaded_ms.store(now, Ordering::Relaxed);
            }
            Err(_) => {
                self.reload_failures.inc();
                let age = self.cache_age();
                log::error!(
                    "event=key_reload_failed cache_age_seconds={:.0} trusted_for={:.0}",
                    age.as_secs_f64(),
                    self.cache_max_age.saturating_sub(age).as_secs_f64()
                );
            }
        }
        self.cache_age.set(self.cache_age().as_secs() as i64);
    }

    /// How long since the cache was last reloaded.
    fn cache_age(&self) -> Duration {
        let reloaded = Duration::from_millis(self.reloaded_ms.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(reloaded)
    }
}
