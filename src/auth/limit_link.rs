//! What the auth gate and `LimitSync` share when client limits hold over every replica
//! (`REDIS_URL`): whether Redis answers, how many replicas there are, and a way for a request
//! past its key's credit to wait for the next answer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use actix::Recipient;
use prometheus::IntCounter;
use tokio::sync::Notify;

use crate::policy::limits::limiter::Limiter;
use crate::policy::limits::shared::Share;

/// The longest a request past its key's credit waits for Redis to answer: beyond Redis' own
/// timeout (500 ms), after which the replica counts on its own.
pub const CREDIT_WAIT: Duration = Duration::from_secs(1);

/// Asks `LimitSync` to push now, rather than at its next tick.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct PushNow;

pub struct LimitLink {
    linked: AtomicBool,
    replicas: AtomicU64,
    answered: Notify,
    sync: OnceLock<Recipient<PushNow>>,
    waits: IntCounter,
}

impl LimitLink {
    pub fn new(waits: IntCounter) -> Self {
        Self {
            // Until Redis is heard from, a request waits for it within its credit.
            linked: AtomicBool::new(true),
            replicas: AtomicU64::new(1),
            answered: Notify::new(),
            sync: OnceLock::new(),
            waits,
        }
    }

    pub fn attach(&self, sync: Recipient<PushNow>) {
        let _ = self.sync.set(sync);
    }

    /// A new key's limiter, sharing as the link is now.
    pub fn limiter(&self) -> Limiter {
        let replicas = self.replicas.load(Ordering::Relaxed);
        Limiter::sharing(Share::new(replicas, self.linked.load(Ordering::Relaxed)))
    }

    /// Redis answered (with the replicas it counts) or did not (`None`); the requests waiting
    /// for it try again.
    pub fn heard(&self, replicas: Option<u64>) {
        self.linked.store(replicas.is_some(), Ordering::Relaxed);
        if let Some(replicas) = replicas {
            self.replicas.store(replicas.max(1), Ordering::Relaxed);
        }
        self.answered.notify_waiters();
    }

    /// A future that resolves at the next answer, made while the caller still holds its
    /// key's limiter, so that an answer between the two is not missed; it asks for a push now.
    pub fn next_answer(&self) -> impl std::future::Future<Output = ()> + '_ {
        self.waits.inc();
        let mut notified = Box::pin(self.answered.notified());
        notified.as_mut().enable();
        if let Some(sync) = self.sync.get() {
            sync.do_send(PushNow);
        }
        notified
    }
}
