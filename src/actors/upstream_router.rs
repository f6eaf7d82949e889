//! `UpstreamRouter`: owns each provider's health, a circuit (see `policy::circuit`), and what
//! routing learns over time: errors, routing decisions and tool-call repairs, all shown by
//! `/_status` beside the attempts and failovers that the metrics count.
//!
//! Workers read the circuits from a published [`Health`] snapshot, the way they read the
//! rotator's current key, and report outcomes by `do_send`. Only a request that finds a
//! circuit past its deadline asks (to be the one probe). The routing rules are a pure function
//! (`policy::routing::plan`) that each worker applies itself: asking an actor per request would
//! put a mailbox round trip, and one thread, on every request's path.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use arc_swap::ArcSwap;
use serde::Serialize;

use super::key_rotator::RotatorStatus;
use super::supervision::{guarded, ActorFault, Named};
use crate::metrics::Metrics;
use crate::policy::circuit::{Circuit, CircuitLabel, CircuitPolicy, CircuitView, HealthFault};
use crate::policy::fault::Reason;
use crate::policy::routing::RouteReason;
use crate::providers::ProviderId;
use crate::transform::tool_repair::Repairs;

/// Each provider's circuit as last published, indexed by `ProviderId::index`.
pub type Health = Arc<ArcSwap<Vec<CircuitView>>>;

/// Reads a provider's published circuit.
pub fn circuit_of(health: &Health, provider: ProviderId) -> CircuitView {
    health.load().get(provider.index()).copied().unwrap_or(CircuitView::CLOSED)
}

/// What happened at a provider. Sent with `do_send`: nobody waits for it.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum ProviderEvent {
    /// An attempt got no usable answer. `health` is set when the failure tells on the provider
    /// as a whole; `reason` says what it was.
    Failed { provider: ProviderId, health: Option<HealthFault>, reason: Reason },
    /// A provider with strikes against it, or on probation, responded.
    Responded { provider: ProviderId },
    /// A probe ended without an outcome (its client left): the next request may probe.
    ProbeAbandoned { provider: ProviderId },
    /// A history was repaired before it went upstream.
    Repaired(Repairs),
    /// A request was planned past some providers (too long, or images).
    Routed(RouteReason),
}

/// Asks to be the one request that tries a provider whose circuit's deadline has passed.
/// `Err` says how long to stay away.
#[derive(Message)]
#[rtype(result = "Result<Result<(), Duration>, ActorFault>")]
pub struct ClaimProbe {
    pub provider: ProviderId,
}

/// The probe's pass: reports the probe abandoned if dropped before its outcome was reported.
pub struct ProbeGuard {
    router: Addr<UpstreamRouter>,
    provider: ProviderId,
    settled: bool,
}

impl ProbeGuard {
    pub fn new(router: Addr<UpstreamRouter>, provider: ProviderId) -> Self {
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
    /// The ids the proxy sends here that the provider no longer serves, added by `/_status`
    /// from the model watch.
    pub stale_models: Vec<String>,
    /// The provider's key pool, added by `/_status` from its rotator.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub pool: Option<RotatorStatus>,
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
    /// Requests planned past some providers, by reason (serialised in snake_case: `too_long`,
    /// `images`).
    pub routed: BTreeMap<RouteReason, u64>,
    pub tool_call_repairs: RepairCounts,
}

pub struct UpstreamRouter {
    status: RoutingStatus,
    /// The configured providers, in order: they index `circuits`.
    providers: Vec<ProviderId>,
    circuits: Vec<Circuit>,
    policy: CircuitPolicy,
    health: Health,
    metrics: Arc<Metrics>,
}

impl UpstreamRouter {
    /// `providers` are the configured ones, in order; `unconfigured` the built-in names shown
    /// in `/_status` as not configured.
    pub fn new(
        providers: Vec<ProviderId>,
        unconfigured: &[&'static str],
        policy: CircuitPolicy,
        health: Health,
        metrics: Arc<Metrics>,
    ) -> Self {
        let mut status = RoutingStatus::default();
        for name in unconfigured {
            status.providers.insert(name, ProviderCounts::default());
        }
        for provider in &providers {
            status.providers.insert(provider.name(), ProviderCounts { configured: true, ..ProviderCounts::default() });
        }
        let circuits = vec![Circuit::default(); providers.len()];
        let router = Self { status, providers, circuits, policy, health, metrics };
        router.publish();
        router
    }

    fn publish(&self) {
        self.health.store(Arc::new(self.circuits.iter().map(Circuit::view).collect()));
        for (provider, circuit) in self.providers.iter().zip(&self.circuits) {
            let open = circuit.label() != CircuitLabel::Closed;
            self.metrics.circuit_open.with_label_values(&[provider.name()]).set(i64::from(open));
        }
    }

    fn circuit(&mut self, provider: ProviderId) -> Option<&mut Circuit> {
        self.circuits.get_mut(provider.index())
    }

    fn failed(&mut self, provider: ProviderId, health: Option<HealthFault>, reason: Reason) {
        let counts = self.status.providers.entry(provider.name()).or_default();
        counts.errors += 1;
        let reason = reason.to_string();
        counts.last_error = Some(reason.clone());
        let policy = self.policy;
        let Some(opened) = health.and_then(|fault| self.circuit(provider)?.failed(fault, Instant::now(), &policy))
        else {
            return;
        };
        log::warn!(
            "event=circuit_open provider={} seconds={:.1} reason={reason:?}",
            provider.name(),
            opened.as_secs_f64()
        );
        self.metrics.circuit_opens.with_label_values(&[provider.name()]).inc();
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
        self.circuits = vec![Circuit::default(); self.providers.len()];
        self.publish();
    }
}

impl Handler<ProviderEvent> for UpstreamRouter {
    type Result = ();

    fn handle(&mut self, event: ProviderEvent, ctx: &mut Context<Self>) {
        let _ = guarded(self, ctx, |this, _| {
            match event {
                ProviderEvent::Failed { provider, health, reason } => this.failed(provider, health, reason),
                ProviderEvent::Responded { provider } => {
                    if let Some(circuit) = this.circuit(provider) {
                        if circuit.label() == CircuitLabel::HalfOpen {
                            log::info!("event=circuit_closed provider={}", provider.name());
                        }
                        circuit.responded();
                    }
                }
                ProviderEvent::ProbeAbandoned { provider } => {
                    if let Some(circuit) = this.circuit(provider) {
                        circuit.abandon_probe(Instant::now());
                    }
                }
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
            let claimed = this.circuit(msg.provider).map_or(Ok(()), |circuit| circuit.claim_probe(Instant::now()));
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
            for (provider, circuit) in this.providers.iter().zip(&this.circuits) {
                let name = provider.name();
                let counts = status.providers.entry(name).or_default();
                counts.requests = this.metrics.attempts.with_label_values(&[name]).get();
                counts.failovers = Reason::LABELS
                    .iter()
                    .map(|reason| this.metrics.failovers.with_label_values(&[name, reason]).get())
                    .sum();
                counts.state = circuit.label();
                counts.open_for = circuit.open_for(now);
                counts.circuit_opens = circuit.opens;
            }
            status
        })
    }
}
