//! `KeyRotator`: owns one provider's keys' state, their cooldown timers and the requests
//! waiting for one of its keys. It does no I/O; handlers ask it for a key and report back.
//! Every provider has one, the same way.
//!
//! It also publishes the current key in a [`CurrentKey`] cell that workers read without a
//! message: the common case (a usable current key) then costs no mailbox round trip. Only when
//! no key is usable do workers ask, and wait.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use arc_swap::ArcSwapOption;
use serde::Serialize;
use tokio::sync::oneshot;

use super::key_sync::Share;
use super::supervision::{guarded, ActorFault, Named};
use crate::config::NamedKey;
use prometheus::IntGauge;

use crate::metrics::Metrics;
use crate::policy::fair_queue::FairQueue;
use crate::policy::key_pool::{
    Availability, Cooldowns, KeyGrant, KeyPool, KeyState, KeyStatus, KeyVerdict, Rejection, Replaced,
};
use crate::providers::ProviderId;
use crate::shared::changes::{from_wall_ms, to_wall_ms, KeyChange};

/// Asks for a key. With `wait`, an all-cooling answer carries a ticket that yields the
/// first key to come free; `client` (the client key's name) is the turn it waits in.
#[derive(Message)]
#[rtype(result = "Result<Acquired, ActorFault>")]
pub struct Acquire {
    pub wait: bool,
    pub client: Option<Arc<str>>,
}

pub enum Acquired {
    Ready(KeyGrant),
    AllCooling {
        free_in: Duration,
        ticket: Option<Ticket>,
    },
    /// Every key is rejected by the upstream.
    AllRejected(Rejection),
}

/// A place in the queue for the first key to come free: the key, or the last rejection when
/// every key turned out to be rejected meanwhile.
pub type Ticket = oneshot::Receiver<Result<KeyGrant, Rejection>>;

/// Asks for a usable key other than `avoid`, without moving the sticky key: a second opinion
/// on an error that may be `avoid`'s own. `None` when no other key is usable now.
#[derive(Message)]
#[rtype(result = "Result<Option<KeyGrant>, ActorFault>")]
pub struct AcquireOther {
    pub avoid: usize,
}

/// A key just answered a request (a response came back): while requests wait, two more of
/// them are woken, so a queue drains as fast as the key proves it can take it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Proven;

/// Ends every key's rejection (on SIGHUP): the operator says the keys may be good now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ClearRejections;

/// What an attempt with a key said about it. Sent with `do_send`: nobody waits for it. The key
/// is `index` in the key list of `generation` (the grant's).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Report {
    pub index: usize,
    pub generation: u64,
    pub verdict: KeyVerdict,
}

/// The key list becomes this one (a reload of `CEREBRAS_API_KEYS_FILE`): unchanged keys keep
/// their state, removed keys leave (requests using one finish), added keys join.
#[derive(Message)]
#[rtype(result = "Result<Replaced, ActorFault>")]
pub struct Rekey(pub Vec<NamedKey>);

/// Ends the rest or rejection of the key named so (an operator's reset): `None` if the pool
/// has no such key, else whether it rested.
#[derive(Message)]
#[rtype(result = "Result<Option<bool>, ActorFault>")]
pub struct Lift(pub String);

#[derive(Message)]
#[rtype(result = "Result<RotatorStatus, ActorFault>")]
pub struct GetStatus;

/// The keys as `/_status` shows them.
#[derive(Debug, Clone, Serialize)]
pub struct RotatorStatus {
    pub keys: Vec<KeyStatus>,
    pub current_key: std::sync::Arc<str>,
    pub requests_waiting_for_key: usize,
}

/// The key requests should use now, as last published by the rotator; `None` while every
/// key rests.
pub type CurrentKey = Arc<ArcSwapOption<KeyGrant>>;

/// The requests waiting for a key, in their clients' turns (`FairQueue`): woken client by
/// client, so one client's 500 waiting requests delay another's by one turn. At most `max` at
/// once (`MAX_WAITING_REQUESTS`), counted in the provider's `glm_proxy_requests_waiting_for_key`.
struct Waiters {
    queue: FairQueue<Option<Arc<str>>, oneshot::Sender<Result<KeyGrant, Rejection>>>,
    max: usize,
    gauge: IntGauge,
}

impl Waiters {
    /// A place in `client`'s queue, unless the queue is full. Requests whose client left are
    /// let go first.
    fn join(&mut self, client: Option<Arc<str>>) -> Option<Ticket> {
        self.forget_gone();
        if self.queue.len() >= self.max {
            return None;
        }
        let (sender, receiver) = oneshot::channel();
        self.queue.push(client, sender);
        self.gauge.set(self.queue.len() as i64);
        Some(receiver)
    }

    fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The next `n` waiting requests, in their clients' turns, get the key that came free;
    /// those whose client left do not count.
    fn wake(&mut self, grant: &KeyGrant, mut n: usize) {
        while n > 0 {
            let Some(waiter) = self.queue.pop() else { break };
            n -= usize::from(waiter.send(Ok(grant.clone())).is_ok());
        }
        self.gauge.set(self.queue.len() as i64);
    }

    /// Every waiting request gets `outcome` (the last rejection, or a key) at once.
    fn settle(&mut self, outcome: &Result<KeyGrant, Rejection>) {
        for waiter in self.queue.drain() {
            // A waiter that gave up has dropped its receiver; nothing to do for it.
            let _ = waiter.send(outcome.clone());
        }
        self.gauge.set(0);
    }

    /// Lets go of every waiter (their tickets end, and they answer 503).
    fn clear(&mut self) {
        self.queue.retain(|_| false);
        self.gauge.set(0);
    }

    fn forget_gone(&mut self) -> usize {
        self.queue.retain(|w| !w.is_closed());
        self.gauge.set(self.queue.len() as i64);
        self.queue.len()
    }
}

pub struct KeyRotator {
    provider: ProviderId,
    keys: Vec<NamedKey>,
    current: CurrentKey,
    metrics: Arc<Metrics>,
    cooldowns: Cooldowns,
    pool: KeyPool,
    waiters: Waiters,
    /// The other replicas, through Redis (`REDIS_URL`): told of every change made here.
    shared: Option<Recipient<Share>>,
    /// Each key's served count as last added to the replicas' totals.
    served_shared: Vec<u64>,
    /// A timer to wake the next waiting request is set.
    pacing: bool,
}

impl KeyRotator {
    pub fn new(
        provider: ProviderId,
        keys: Vec<NamedKey>,
        cooldowns: Cooldowns,
        max_waiting: usize,
        metrics: Arc<Metrics>,
        current: CurrentKey,
    ) -> Self {
        let pool = KeyPool::new(&keys, cooldowns);
        let gauge = metrics.requests_waiting_for_key.with_label_values(&[provider.name()]);
        let waiters = Waiters { queue: FairQueue::default(), max: max_waiting, gauge };
        let served_shared = Vec::new();
        let mut rotator = Self {
            provider,
            keys,
            current,
            metrics,
            cooldowns,
            pool,
            waiters,
            shared: None,
            served_shared,
            pacing: false,
        };
        rotator.publish();
        rotator
    }

    /// Shares this rotator's changes with the other replicas.
    pub fn sharing(mut self, shared: Option<Recipient<Share>>) -> Self {
        self.shared = shared;
        self
    }

    fn share(&self, change: Share) {
        if let Some(shared) = &self.shared {
            shared.do_send(change);
        }
    }

    /// The requests each key served since the last time, for the replicas' totals (and, in
    /// return, the totals).
    fn share_served(&mut self) {
        let served: Vec<u64> = self.pool.status(Instant::now()).iter().map(|key| key.requests).collect();
        let deltas: Vec<(usize, u64)> = served
            .iter()
            .zip(self.served_shared.iter().chain(std::iter::repeat(&0)))
            .enumerate()
            .filter_map(|(index, (now, before))| {
                now.checked_sub(*before).filter(|delta| *delta > 0).map(|d| (index, d))
            })
            .collect();
        self.served_shared = served;
        // Sent even when empty: the answer brings the other replicas' counts.
        self.share(Share::Served(deltas));
    }

    /// A key rests until `until`: waiting requests hear of it when the rest is over.
    fn wake_at(ctx: &mut Context<Self>, until: Instant) {
        ctx.run_later(until.saturating_duration_since(Instant::now()), |this, ctx| this.wake_waiters(ctx));
    }

    /// Publishes the key requests should use now, if any, and every key's state as metrics.
    fn publish(&mut self) {
        let now = Instant::now();
        let grant = match self.pool.acquire(now) {
            Availability::Ready(index) => Some(self.pool.grant(index)),
            Availability::AllCooling { .. } | Availability::AllRejected(_) => None,
        };
        self.current.store(grant.map(Arc::new));
        let states =
            [(KeyState::Available, "available"), (KeyState::CoolingDown, "cooling"), (KeyState::Rejected, "invalid")];
        let keys = self.pool.status(now);
        let provider = self.provider.name();
        for (state, label) in states {
            let count = keys.iter().filter(|key| key.state == state).count();
            self.metrics.keys.with_label_values(&[provider, label]).set(count as i64);
            for key in &keys {
                let is = i64::from(key.state == state);
                self.metrics.key_state.with_label_values(&[provider, &key.name, label]).set(is);
            }
        }
    }

    /// Keys changed: publish the key to use now, and if waiting is over for the waiting
    /// requests, tell them: every one, when every key is rejected; the first in turn, when a key
    /// came free, and the next ones as the key proves itself (`Proven`), or one every
    /// `NEXT_WAKE` if it does not say. A queue of hundreds sent at once to a key that just came
    /// back would only rest it again, and who goes first is decided here, fairly.
    fn wake_waiters(&mut self, ctx: &mut Context<Self>) {
        self.publish();
        self.wake(ctx, 1);
    }

    fn wake(&mut self, ctx: &mut Context<Self>, n: usize) {
        if self.waiters.is_empty() {
            return;
        }
        match self.pool.acquire(Instant::now()) {
            Availability::Ready(index) => {
                let grant = self.pool.grant(index);
                self.waiters.wake(&grant, n);
                if !self.waiters.is_empty() && !self.pacing {
                    self.pacing = true;
                    ctx.run_later(NEXT_WAKE, |this, ctx| {
                        this.pacing = false;
                        this.wake(ctx, 1);
                    });
                }
            }
            Availability::AllRejected(rejection) => self.waiters.settle(&Err(rejection)),
            Availability::AllCooling { .. } => {}
        }
    }
}

/// The longest a woken request's key goes unproven before the next waiting request is woken.
const NEXT_WAKE: Duration = Duration::from_millis(250);

impl Named for KeyRotator {
    const NAME: &'static str = "key rotator";
}

impl Actor for KeyRotator {
    type Context = Context<Self>;

    /// With replicas, the requests each key served are added up on Redis every second.
    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.shared.is_some() {
            ctx.run_interval(SERVED_INTERVAL, |this, _| this.share_served());
        }
    }
}

/// How often the requests each key served are added to the replicas' totals.
const SERVED_INTERVAL: Duration = Duration::from_secs(1);

impl Supervised for KeyRotator {
    /// After a panic the pool may be half-updated: start again from the configured keys (and,
    /// with Redis, from what the replicas share). Waiting requests lose their ticket and answer
    /// 503 rather than hang.
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.pool = KeyPool::new(&self.keys, self.cooldowns);
        self.served_shared.clear();
        self.waiters.clear();
        self.publish();
        // The other replicas still know which keys rest.
        self.share(Share::Resync);
    }
}

impl Handler<Acquire> for KeyRotator {
    type Result = Result<Acquired, ActorFault>;

    /// The sticky key if usable; otherwise when the first key frees, with a ticket to wait on
    /// (none when the queue is full: the request is answered at once).
    fn handle(&mut self, msg: Acquire, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, |this, _| {
            let now = Instant::now();
            match this.pool.acquire(now) {
                Availability::Ready(index) => Acquired::Ready(this.pool.grant(index)),
                Availability::AllCooling { free_at } => {
                    let ticket = if msg.wait { this.waiters.join(msg.client) } else { None };
                    Acquired::AllCooling { free_in: free_at - now, ticket }
                }
                Availability::AllRejected(rejection) => Acquired::AllRejected(rejection),
            }
        })
    }
}

impl Handler<AcquireOther> for KeyRotator {
    type Result = Result<Option<KeyGrant>, ActorFault>;

    fn handle(&mut self, msg: AcquireOther, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, |this, _| this.pool.acquire_other(msg.avoid, Instant::now()).map(|i| this.pool.grant(i)))
    }
}

impl Handler<ClearRejections> for KeyRotator {
    type Result = ();

    fn handle(&mut self, _: ClearRejections, ctx: &mut Context<Self>) {
        let _ = guarded(self, ctx, |this, ctx| {
            let cleared = this.pool.clear_rejections(Instant::now());
            log::info!("event=key_rejections_cleared provider={} keys={cleared}", this.provider.name());
            this.share(Share::Change(KeyChange::ClearRejections));
            this.wake_waiters(ctx);
        });
    }
}

impl Handler<Report> for KeyRotator {
    type Result = ();

    /// Rests the reported key (or moves the sticky key past it); a timer at the end of a rest
    /// wakes waiting requests.
    fn handle(&mut self, msg: Report, ctx: &mut Context<Self>) {
        let _ = guarded(self, ctx, |this, ctx| {
            // A key removed by a reload since: nothing to mark.
            let Some(index) = this.pool.resolve(msg.index, msg.generation) else { return };
            let now = Instant::now();
            let sticky = this.pool.current_index();
            let rested = this.pool.report(index, &msg.verdict, now);
            this.wake_waiters(ctx);
            if let Some((until, rest)) = rested {
                let (provider, name) = (this.provider.name(), this.pool.grant(index).name);
                this.metrics.key_cooldowns.with_label_values(&[provider, &*name]).inc();
                log::warn!(
                    "event=key_cooldown provider={provider} key={name} seconds={:.1} reason={:?}",
                    (until - now).as_secs_f64(),
                    msg.verdict.reason().to_string()
                );
                let until_ms = to_wall_ms(until, now, SystemTime::now());
                this.share(Share::Change(KeyChange::Rest { key: index, until_ms, rest }));
                Self::wake_at(ctx, until);
            }
            let moved_to = this.pool.current_index();
            if moved_to != sticky {
                this.share(Share::Change(KeyChange::Current { from: Some(sticky), to: moved_to }));
            }
        });
    }
}

impl Handler<KeyChange<usize>> for KeyRotator {
    type Result = ();

    /// Another replica's change: applied to the local state, and never shared back.
    fn handle(&mut self, msg: KeyChange<usize>, ctx: &mut Context<Self>) {
        let _ = guarded(self, ctx, |this, ctx| {
            let now = Instant::now();
            match msg {
                KeyChange::Rest { key: index, until_ms, rest } => {
                    let Some(until) = from_wall_ms(until_ms, now, SystemTime::now()) else {
                        return;
                    };
                    if let Some(until) = this.pool.apply_rest(index, until, rest, now) {
                        log::info!(
                            "event=key_cooldown_shared provider={} key={} seconds={:.1}",
                            this.provider.name(),
                            this.pool.grant(index).name,
                            (until - now).as_secs_f64()
                        );
                        Self::wake_at(ctx, until);
                    }
                }
                KeyChange::Current { to, .. } => {
                    this.pool.follow(to, now);
                }
                KeyChange::ClearRejections => {
                    this.pool.clear_rejections(now);
                }
                KeyChange::Lift { key } => {
                    this.pool.lift(key, now);
                }
                // The replicas' reload is the keys file's to do (`KeysFile`), not the pool's.
                KeyChange::Reload => {}
            }
            this.wake_waiters(ctx);
        });
    }
}

impl Handler<Rekey> for KeyRotator {
    type Result = Result<Replaced, ActorFault>;

    fn handle(&mut self, msg: Rekey, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, |this, ctx| {
            // What was served under the old list is counted under it first.
            if this.shared.is_some() {
                this.share_served();
            }
            let replaced = this.pool.replace(&msg.0, Instant::now());
            let provider = this.provider.name();
            for name in &replaced.removed {
                this.metrics.forget_key(provider, name);
            }
            this.served_shared = this.pool.status(Instant::now()).iter().map(|key| key.requests).collect();
            this.keys = msg.0;
            this.share(Share::Keys(this.keys.clone()));
            this.wake_waiters(ctx);
            replaced
        })
    }
}

impl Handler<Lift> for KeyRotator {
    type Result = Result<Option<bool>, ActorFault>;

    fn handle(&mut self, msg: Lift, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, |this, ctx| {
            let index = this.pool.position(&msg.0)?;
            let rested = this.pool.lift(index, Instant::now());
            log::info!("event=key_reset provider={} key={} rested={rested}", this.provider.name(), msg.0);
            this.share(Share::Change(KeyChange::Lift { key: index }));
            this.wake_waiters(ctx);
            Some(rested)
        })
    }
}

impl Handler<Proven> for KeyRotator {
    type Result = ();

    fn handle(&mut self, _: Proven, ctx: &mut Context<Self>) {
        let _ = guarded(self, ctx, |this, ctx| this.wake(ctx, 2));
    }
}

impl Handler<GetStatus> for KeyRotator {
    type Result = Result<RotatorStatus, ActorFault>;

    fn handle(&mut self, _: GetStatus, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, |this, _| RotatorStatus {
            keys: this.pool.status(Instant::now()),
            current_key: this.pool.current_name(),
            requests_waiting_for_key: this.waiters.forget_gone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn rotator(cooldown: Duration) -> Addr<KeyRotator> {
        let keys = vec![
            NamedKey { name: "key1".into(), secret: Secret::new("sk-1") },
            NamedKey { name: "key2".into(), secret: Secret::new("sk-2") },
        ];
        let cooldowns =
            Cooldowns { rate_limited: cooldown, rejected: Duration::from_secs(3600), max: Duration::from_secs(86_400) };
        let metrics = Arc::new(Metrics::new().unwrap());
        let provider = ProviderId::new(0, "cerebras");
        Supervisor::start(move |_| KeyRotator::new(provider, keys, cooldowns, 2, metrics, CurrentKey::default()))
    }

    /// A message whose handling panics, to prove the supervisor restarts the rotator.
    #[derive(Message)]
    #[rtype(result = "Result<(), ActorFault>")]
    struct Explode;

    impl Handler<Explode> for KeyRotator {
        type Result = Result<(), ActorFault>;
        fn handle(&mut self, _: Explode, ctx: &mut Context<Self>) -> Self::Result {
            guarded(self, ctx, |_, _| panic!("deliberate panic in a test"))
        }
    }

    fn ready_name(acquired: Acquired) -> String {
        match acquired {
            Acquired::Ready(grant) => grant.name.to_string(),
            Acquired::AllCooling { .. } | Acquired::AllRejected(_) => panic!("expected a ready key"),
        }
    }

    #[actix_rt::test]
    async fn a_panic_restarts_the_rotator_with_fresh_state() {
        let addr = rotator(Duration::from_secs(60));
        addr.send(Report { index: 0, generation: 0, verdict: KeyVerdict::RateLimited { requested: None } })
            .await
            .unwrap();
        assert_eq!(ready_name(addr.send(Acquire { wait: true, client: None }).await.unwrap().unwrap()), "key2");

        assert!(addr.send(Explode).await.unwrap().is_err());

        // Same address, same mailbox, sane state: every key available again, key1 current.
        assert!(addr.connected());
        assert_eq!(ready_name(addr.send(Acquire { wait: true, client: None }).await.unwrap().unwrap()), "key1");
        let status = addr.send(GetStatus).await.unwrap().unwrap();
        assert!(status.keys.iter().all(|k| k.available));
    }

    #[actix_rt::test]
    async fn waiters_get_the_first_key_that_comes_free() {
        let addr = rotator(Duration::from_millis(50));
        addr.send(Report { index: 0, generation: 0, verdict: KeyVerdict::RateLimited { requested: None } })
            .await
            .unwrap();
        // key2 rests longer, so key1 is the first to come free.
        let longer = KeyVerdict::RateLimited { requested: Some(Duration::from_secs(5)) };
        addr.send(Report { index: 1, generation: 0, verdict: longer }).await.unwrap();
        let Acquired::AllCooling { free_in, ticket: Some(ticket) } =
            addr.send(Acquire { wait: true, client: None }).await.unwrap().unwrap()
        else {
            panic!("every key should be cooling");
        };
        assert!(free_in <= Duration::from_millis(50));
        let grant = tokio::time::timeout(Duration::from_secs(5), ticket).await.unwrap().unwrap().unwrap();
        assert_eq!(&*grant.name, "key1");
    }

    #[actix_rt::test]
    async fn past_the_waiting_cap_an_all_cooling_answer_has_no_ticket() {
        let addr = rotator(Duration::from_secs(60));
        for index in 0..2 {
            addr.send(Report { index, generation: 0, verdict: KeyVerdict::RateLimited { requested: None } })
                .await
                .unwrap();
        }
        let mut tickets = Vec::new();
        for _ in 0..3 {
            let Acquired::AllCooling { ticket, .. } =
                addr.send(Acquire { wait: true, client: None }).await.unwrap().unwrap()
            else {
                panic!("every key should be cooling");
            };
            tickets.push(ticket);
        }
        assert!(tickets[0].is_some() && tickets[1].is_some() && tickets[2].is_none(), "the cap is two");
        drop(tickets);
        let Acquired::AllCooling { ticket, .. } =
            addr.send(Acquire { wait: true, client: None }).await.unwrap().unwrap()
        else {
            panic!("every key should be cooling");
        };
        assert!(ticket.is_some(), "requests whose client left free their place");
    }

    #[actix_rt::test]
    async fn without_wait_an_all_cooling_answer_has_no_ticket() {
        let addr = rotator(Duration::from_secs(60));
        for index in 0..2 {
            addr.send(Report { index, generation: 0, verdict: KeyVerdict::RateLimited { requested: None } })
                .await
                .unwrap();
        }
        let acquired = addr.send(Acquire { wait: false, client: None }).await.unwrap().unwrap();
        assert!(matches!(acquired, Acquired::AllCooling { ticket: None, .. }));
        assert_eq!(addr.send(GetStatus).await.unwrap().unwrap().requests_waiting_for_key, 0);
    }
}
