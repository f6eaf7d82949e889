//! `AuthGate`: admits requests by client key without waiting on SQLite.
//!
//! Known keys live in memory, refreshed from the `AuthActor` every second (so a revocation
//! from the CLI lands within two), and usage is counted in memory and flushed in batches.
//! Only a key the cache has never seen costs a trip to the database thread. This state sits
//! behind locks rather than in an actor because every request reads it: a mailbox round trip
//! per request would put one thread on the hot path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use actix::Addr;
use actix_web::http::header::HeaderMap;
use chrono::Utc;

use super::client_key::{self, Refusal};
use crate::actors::auth::{AuthActor, FlushUsage, LoadAll, Lookup};
use crate::actors::supervision::ask;
use crate::db::keys::{ApiKey, Usage};
use crate::error::ProxyError;

#[derive(Debug, Clone)]
struct KnownKey {
    id: i32,
    name: Arc<str>,
    revoked: bool,
}

impl From<ApiKey> for KnownKey {
    fn from(key: ApiKey) -> Self {
        Self { id: key.id, name: key.name.into(), revoked: key.revoked }
    }
}

pub struct AuthGate {
    actor: Addr<AuthActor>,
    /// By SHA-256 of the key. Lookups compare digests, never the keys themselves, so their
    /// timing says nothing about a stored key (the constant-time property that matters).
    known: RwLock<HashMap<String, KnownKey>>,
    usage: Mutex<HashMap<i32, Usage>>,
}

impl AuthGate {
    pub fn new(actor: Addr<AuthActor>) -> Self {
        Self { actor, known: RwLock::default(), usage: Mutex::default() }
    }

    /// The name of the client whose key the request carries, or the 401 to answer.
    pub async fn admit(&self, headers: &HeaderMap) -> Result<Arc<str>, ProxyError> {
        let presented = client_key::presented(headers).map_err(ProxyError::Unauthorized)?;
        let key_hash = client_key::hash(presented);
        let cached = self.known.read().unwrap_or_else(PoisonError::into_inner).get(&key_hash).cloned();
        let key = match cached {
            Some(key) => key,
            None => {
                let found = ask(&self.actor, Lookup { key_hash: key_hash.clone() }).await?;
                let key = KnownKey::from(found.ok_or(ProxyError::Unauthorized(Refusal::Unknown))?);
                self.known.write().unwrap_or_else(PoisonError::into_inner).insert(key_hash, key.clone());
                key
            }
        };
        if key.revoked {
            return Err(ProxyError::Unauthorized(Refusal::Unknown));
        }
        self.count_use(key.id);
        Ok(key.name)
    }

    fn count_use(&self, id: i32) {
        let now = Utc::now().naive_utc();
        let mut usage = self.usage.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = usage.entry(id).or_insert(Usage { id, requests: 0, last_used_at: now });
        entry.requests += 1;
        entry.last_used_at = now;
    }

    /// Flushes counted usage, then reloads every key. Usage that cannot be written is kept
    /// for the next flush, never dropped.
    pub async fn sync(&self) {
        let pending: Vec<Usage> =
            self.usage.lock().unwrap_or_else(PoisonError::into_inner).drain().map(|(_, u)| u).collect();
        if !pending.is_empty() && ask(&self.actor, FlushUsage(pending.clone())).await.is_err() {
            let mut usage = self.usage.lock().unwrap_or_else(PoisonError::into_inner);
            for u in pending {
                let entry = usage.entry(u.id).or_insert(Usage { requests: 0, ..u });
                entry.requests += u.requests;
                entry.last_used_at = entry.last_used_at.max(u.last_used_at);
            }
        }
        if let Ok(keys) = ask(&self.actor, LoadAll).await {
            let known = keys.into_iter().map(|key| (key.key_hash.clone(), KnownKey::from(key))).collect();
            *self.known.write().unwrap_or_else(PoisonError::into_inner) = known;
        }
    }
}
