//! `UpstreamRouter`: owns each provider's health, a circuit (see `policy::circuit`), and what
//! routing learns over time: per-provider counts, routing decisions and tool-call repairs, all
//! shown by `/_status`.
//!
//! Workers read the circuits from a published [`Health`] snapshot, the way they read the
//! rotator's current key, and report outcomes by `do_send`. Only a request that finds a
//! circuit past its deadline asks (to be the one probe). The routing rules are a pure function
//! (`policy::routing::plan`) that each worker applies itself: asking an actor per request would
//! put a mailbox round trip, and one thread, on every request's path.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde::Serialize;

use super::supervision::{guarded, ActorFault, Named};
use crate::metrics::Metrics;
use crate::policy::circuit::{Circuit, CircuitLabel, CircuitPolicy, CircuitView, HealthFault};
use crate::policy::routing::RouteReason;
use crate::providers::ProviderKind;
use crate::transform::tool_repair::Repairs;

/// Attempts per provider. Every request makes one, so workers count them in place rather
/// than send a message each; the router reads them when asked for its status.
#[derive(Debug, Default)]
pub struct ProviderRequests([AtomicU64; 3]);

impl ProviderRequests {
    pub fn count(&self, provider: ProviderKind) {
        self.0[provider as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn get(&self, provider: ProviderKind) -> u64 {
        self.0[provider as usize].load(Ordering::Relaxed)
    }
}

/// Each provider's circuit as last published, indexed by `ProviderKind`.
pub type Health = Arc<RwLock<[CircuitView; 3]>>;

/// Reads a provider's published circuit.
pub fn circuit_of(health: &Health, provider: ProviderKind) -> CircuitView {
    health.read().unwrap_or_else(PoisonError::into_inner)[provider as usize]
}

/// What happened at a provider. Sent with `do_send`: nobody waits for it.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum ProviderEvent {
    /// An attempt got no usable answer. `health` is set when the failure tells on the provider
    /// as a whole; `reason` says what it was.
    Failed { provider: ProviderKind, health: Option<HealthFault>, reason: String },
    /// A provider with strikes against it, or on probation, answered.
    Answered { provider: ProviderKind },
    /// A probe ended without an outcome (its client left): the next request may probe.
    ProbeAbandoned { provider: ProviderKind },
    /// A request left this provider for the next one.
    Failover { from: ProviderKind },
    /// A history was repaired before it went upstream.
    Repaired(Repairs),
    /// A request was planned past Cerebras (too long, or images).
    Routed(RouteReason),
}

/// Asks to be the one request that tries a provider whose circuit's deadline has passed.
/// `Err` says how long to stay away.
#[derive(Message)]
#[rtype(result = "Result<Result<(), Duration>, ActorFault>")]
pub struct ClaimProbe {
    pub provider: ProviderKind,
}

/// The probe's pass: reports the probe abandoned if dropped before its outcome was reported.
pub struct ProbeGuard {
    router: Addr<UpstreamRouter>,
    provider: ProviderKind,
    settled: bool,
}

impl ProbeGuard {
    pub fn new(router: Addr<UpstreamRouter>, provider: ProviderKind) -> Self {
        Self { router, provider, settled: false }
    }

    /// The probe's outcome has been reported.
    pub fn settle(mut self) {
        self.settled = true;
    }
}

impl Drop for ProbeGuard {
    fn drop(&mut self) {
        if !self.settled {
            self.router.do_send(ProviderEvent::ProbeAbandoned { provider: self.provider });
        }
    }
}

#[derive(Message)]
#[rtype(result = "Result<RoutingStatus, ActorFault>")]
pub struct GetRoutingStatus;

#[derive(Debug, Clone, Default, Serialize)]
pub struct ProviderCounts {
    pub configured: bool,
    pub requests: u64,
    pub errors: u64,
    pub failovers: u64,
    /// The circuit: `closed`, `open` (requests go elsewhere) or `half_open` (one probe is out).
    pub state: CircuitLabel,
    /// Seconds until an open circuit lets requests through again.
    pub open_for: f64,
    pub circuit_opens: u64,
    /// Why the last attempt that got no usable answer failed.
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct RepairCounts {
    pub requests: u64,
    pub inserted_answers: u64,
    pub removed_answers: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RoutingStatus {
    pub providers: BTreeMap<&'static str, ProviderCounts>,
    /// Requests planned past Cerebras, by reason (serialised in snake_case: `too_long`, `images`).
    pub routed: BTreeMap<RouteReason, u64>,
    pub tool_call_repairs: RepairCounts,
}

pub struct UpstreamRouter {
    status: RoutingStatus,
    requests: Arc<ProviderRequests>,
    circuits: [Circuit; 3],
    policy: CircuitPolicy,
    health: Health,
    metrics: Arc<Metrics>,
}

impl UpstreamRouter {
    /// `configured` lists the providers in use: Cerebras and the alternatives with a key.
    pub fn new(
        configured: &[ProviderKind],
        requests: Arc<ProviderRequests>,
        policy: CircuitPolicy,
        health: Health,
        metrics: Arc<Metrics>,
    ) -> Self {
        let mut status = RoutingStatus::default();
        for kind in ProviderKind::ALL {
            let counts = ProviderCounts { configured: configured.contains(&kind), ..ProviderCounts::default() };
            status.providers.insert(kind.name(), counts);
        }
        let router = Self { status, requests, circuits: Default::default(), policy, health, metrics };
        router.publish();
        router
    }

    fn counts(&mut self, provider: ProviderKind) -> &mut ProviderCounts {
        self.status.providers.entry(provider.name()).or_default()
    }

    fn publish(&self) {
        let views = self.circuits.each_ref().map(Circuit::view);
        *self.health.write().unwrap_or_else(PoisonError::into_inner) = views;
        for kind in ProviderKind::ALL {
            let open = self.circuits[kind as usize].label() != CircuitLabel::Closed;
            self.metrics.circuit_open.with_label_values(&[kind.name()]).set(i64::from(open));
        }
    }

    fn failed(&mut self, provider: ProviderKind, health: Option<HealthFault>, reason: String) {
        let counts = self.counts(provider);
        counts.errors += 1;
        counts.last_error = Some(reason.clone());
        let Some(fault) = health else {
            return;
        };
        let opened = self.circuits[provider as usize].failed(fault, Instant::now(), &self.policy);
        if let Some(period) = opened {
            log::warn!(
                "event=circuit_open provider={} seconds={:.1} reason={reason:?}",
                provider.name(),
                period.as_secs_f64()
            );
            self.metrics.circuit_opens.with_label_values(&[provider.name()]).inc();
        }
    }
}

impl Named for UpstreamRouter {
    const NAME: &'static str = "upstream router";
}

impl Actor for UpstreamRouter {
    type Context = Context<Self>;
}

/// The counts are only ever added to, so they survive a restart as they are; the circuits
/// start closed again, the sane state when nothing is known.
impl Supervised for UpstreamRouter {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.circuits = Default::default();
        self.publish();
    }
}

impl Handler<ProviderEvent> for UpstreamRouter {
    type Result = ();

    fn handle(&mut self, event: ProviderEvent, ctx: &mut Context<Self>) {
        let _ = guarded(self, ctx, |this, _| {
            match event {
                ProviderEvent::Failed { provider, health, reason } => this.failed(provider, health, reason),
                ProviderEvent::Answered { provider } => {
                    if this.circuits[provider as usize].label() == CircuitLabel::HalfOpen {
                        log::info!("event=circuit_closed provider={}", provider.name());
                    }
                    this.circuits[provider as usize].answered();
                }
                ProviderEvent::ProbeAbandoned { provider } => {
                    this.circuits[provider as usize].abandon_probe(Instant::now());
                }
                ProviderEvent::Failover { from } => this.counts(from).failovers += 1,
                ProviderEvent::Routed(reason) => *this.status.routed.entry(reason).or_default() += 1,
                ProviderEvent::Repaired(repairs) => {
                    let counts = &mut this.status.tool_call_repairs;
                    counts.requests += 1;
                    counts.inserted_answers += repairs.inserted as u64;
                    counts.removed_answers += repairs.removed as u64;
                }
            }
            this.publish();
        });
    }
}

impl Handler<ClaimProbe> for UpstreamRouter {
    type Result = Result<Result<(), Duration>, ActorFault>;

    fn handle(&mut self, msg: ClaimProbe, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, |this, _| {
            let claimed = this.circuits[msg.provider as usize].claim_probe(Instant::now());
            this.publish();
            claimed
        })
    }
}

impl Handler<GetRoutingStatus> for UpstreamRouter {
    type Result = Result<RoutingStatus, ActorFault>;

    fn handle(&mut self, _: GetRoutingStatus, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, |this, _| {
            let now = Instant::now();
            let mut status = this.status.clone();
            for kind in ProviderKind::ALL {
                let circuit = &this.circuits[kind as usize];
                let counts = status.providers.entry(kind.name()).or_default();
                counts.requests = this.requests.get(kind);
                counts.state = circuit.label();
                counts.open_for = circuit.open_for(now);
                counts.circuit_opens = circuit.opens;
            }
            status
        })
    }
}
