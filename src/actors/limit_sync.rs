//! `LimitSync`: with `REDIS_URL`, makes client keys' `rpm`, `tpm` and `max_parallel` hold over
//! every replica (budgets already do, through the shared key database).
//!
//! Every tick it pushes, in one pipelined round trip, what each limited key's counters did on
//! this replica since the last push, and each key's answer (what the other replicas hold) goes
//! back into its limiter; a request past its credit asks for a push at once. No request waits
//! on this but those past their credit (see `policy::limits::shared`).
//!
//! If Redis does not answer, every key's share is cut: each replica enforces the limits on its
//! own traffic, says so once in the log and in `/_status`, and pushes what it counted meanwhile
//! when Redis answers again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use prometheus::{IntCounter, IntGauge};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use serde::Serialize;

use crate::auth::gate::{AuthGate, Tracked};
use crate::auth::limit_link::{LimitLink, PushNow};
use crate::policy::limits::shared::{Answer, Counts, Push};
use crate::shared::redis_script;

/// How often the counters are pushed; what the other replicas did is this late at most, plus
/// a round trip.
const TICK: Duration = Duration::from_millis(100);
/// How often a replica says it is there, when it has nothing to push.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long one Redis command may take.
const TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Message)]
#[rtype(result = "LimitSyncStatus")]
pub struct GetLimitSyncStatus;

/// Client limits as `/_status` shows them.
#[derive(Debug, Clone, Serialize)]
pub struct LimitSyncStatus {
    /// `all_replicas` while Redis answers, `this_replica` while each replica counts alone.
    pub scope: &'static str,
    /// Replicas sharing the limits, as Redis last counted them.
    pub replicas: u64,
    pub errors: u64,
    pub last_error: Option<String>,
}

pub struct LimitSync {
    connection: ConnectionManager,
    /// This replica's name among the counters: its own are told apart from the others'.
    origin: String,
    counters_prefix: String,
    replicas_key: String,
    gate: Arc<AuthGate>,
    link: Arc<LimitLink>,
    push: Script,
    heartbeat: Script,
    last_heartbeat: Option<Instant>,
    replicas: u64,
    pushing: bool,
    push_again: bool,
    up: bool,
    /// Failed pushes: this actor's, where `glm_proxy_redis_errors_total` counts every Redis error.
    failures: u64,
    errors: IntCounter,
    shared_gauge: IntGauge,
    last_error: Option<String>,
}

impl LimitSync {
    pub fn new(
        url: &str,
        prefix: &str,
        gate: Arc<AuthGate>,
        link: Arc<LimitLink>,
        errors: IntCounter,
        shared_gauge: IntGauge,
    ) -> redis::RedisResult<Self> {
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT));
        let connection = ConnectionManager::new_lazy_with_config(redis::Client::open(url)?, config)?;
        let mut origin = [0u8; 6];
        let _ = getrandom::fill(&mut origin);
        Ok(Self {
            connection,
            origin: origin.iter().map(|b| format!("{b:02x}")).collect(),
            counters_prefix: format!("{prefix}:limits:"),
            replicas_key: format!("{prefix}:limit_replicas"),
            gate,
            link,
            push: Script::new(redis_script::PUSH_LIMITS),
            heartbeat: Script::new(redis_script::LIMIT_REPLICAS),
            last_heartbeat: None,
            replicas: 1,
            pushing: false,
            push_again: false,
            up: true,
            failures: 0,
            errors,
            shared_gauge,
            last_error: None,
        })
    }

    /// Pushes every key that has something to push, with the heartbeat; one push at a time.
    fn push(&mut self, ctx: &mut Context<Self>) {
        if self.pushing {
            self.push_again = true;
            return;
        }
        let heartbeat_due = self.last_heartbeat.is_none_or(|at| at.elapsed() >= HEARTBEAT);
        // Cut off, Redis is tried again with the heartbeat, each second.
        if !self.up && !heartbeat_due {
            return;
        }
        let pushes: Vec<(Tracked, Push)> = self
            .gate
            .tracked()
            .into_iter()
            .filter_map(|tracked| {
                let push = tracked.limiter.lock().start_push()?;
                Some((tracked, push))
            })
            .collect();
        if pushes.is_empty() && !heartbeat_due {
            return;
        }
        self.pushing = true;
        self.last_heartbeat = Some(Instant::now());
        // The scripts are loaded each time: a Redis restarted meanwhile has forgotten them.
        let mut pipe = redis::pipe();
        pipe.load_script(&self.heartbeat).ignore().load_script(&self.push).ignore();
        let mut heartbeat = self.heartbeat.key(&self.replicas_key);
        pipe.invoke_script(heartbeat.arg(&self.origin));
        for (tracked, push) in &pushes {
            let mut call = self.push.key(format!("{}{}", self.counters_prefix, tracked.tag));
            call.arg(&self.origin).arg(push.requests).arg(push.tokens).arg(push.in_flight);
            pipe.invoke_script(&call);
        }
        let mut connection = self.connection.clone();
        // The replica count, then each key's answer: the others' requests, tokens, in flight.
        let asking = async move {
            let mut replies = pipe.query_async::<Vec<redis::Value>>(&mut connection).await?.into_iter();
            let replicas: u64 = redis::from_redis_value(replies.next().unwrap_or(redis::Value::Nil))?;
            let answers = replies.map(redis::from_redis_value::<(i64, i64, i64)>).collect::<Result<Vec<_>, _>>()?;
            Ok::<_, redis::RedisError>((replicas, answers))
        };
        ctx.spawn(asking.into_actor(self).map(move |outcome, this, ctx| {
            this.pushing = false;
            match outcome {
                Ok((replicas, answers)) if answers.len() == pushes.len() => this.answered(replicas, &pushes, answers),
                Ok(_) => this.failed("an answer for each key pushed was expected", pushes),
                Err(error) => this.failed(&error.to_string(), pushes),
            }
            if std::mem::take(&mut this.push_again) {
                this.push(ctx);
            }
        }));
    }

    fn answered(&mut self, replicas: u64, pushes: &[(Tracked, Push)], answers: Vec<(i64, i64, i64)>) {
        if !self.up {
            log::info!("event=redis_connected scope=client_limits");
            self.up = true;
            self.shared_gauge.set(1);
        }
        self.replicas = replicas.max(1);
        for ((tracked, _), (requests, tokens, in_flight)) in pushes.iter().zip(answers) {
            let others = Counts { requests, tokens, in_flight };
            tracked.limiter.lock().answered(Answer { others, replicas: self.replicas });
        }
        self.link.heard(Some(self.replicas));
    }

    /// Logged once per outage; every failure counts. Every key's share is cut, not only those
    /// pushed, so that none waits on Redis meanwhile.
    fn failed(&mut self, error: &str, pushes: Vec<(Tracked, Push)>) {
        self.errors.inc();
        self.failures += 1;
        self.last_error = Some(error.to_owned());
        if self.up {
            log::warn!("event=redis_unavailable scope=client_limits action=limits_per_replica error={error:?}");
            self.up = false;
            self.shared_gauge.set(0);
        }
        for (tracked, push) in pushes {
            tracked.limiter.lock().cut(push);
        }
        for tracked in self.gate.tracked() {
            tracked.limiter.lock().cut(Push::default());
        }
        self.link.heard(None);
    }
}

impl Actor for LimitSync {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.shared_gauge.set(1);
        ctx.run_interval(TICK, |this, ctx| this.push(ctx));
        self.push(ctx);
    }
}

impl Handler<PushNow> for LimitSync {
    type Result = ();

    fn handle(&mut self, _: PushNow, ctx: &mut Context<Self>) {
        self.push(ctx);
    }
}

impl Handler<GetLimitSyncStatus> for LimitSync {
    type Result = MessageResult<GetLimitSyncStatus>;

    fn handle(&mut self, _: GetLimitSyncStatus, _: &mut Context<Self>) -> Self::Result {
        MessageResult(LimitSyncStatus {
            scope: if self.up { "all_replicas" } else { "this_replica" },
            replicas: self.replicas,
            errors: self.failures,
            last_error: self.last_error.clone(),
        })
    }
}
