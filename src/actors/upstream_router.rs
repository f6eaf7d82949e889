//! `UpstreamRouter`: owns what routing learns over time: the per-provider counts of requests,
//! errors and failovers, routing decisions and tool-call repairs that `/_status` shows.
//!
//! The routing rules themselves are a pure function of the configuration and the request
//! (`routing::plan`), so each worker applies them itself: asking an actor per request would put
//! a mailbox round trip, and one thread, on every request's path. Outcomes come here by `do_send`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use serde::Serialize;

use super::supervision::{guarded, ActorFault, Named};
use crate::providers::ProviderKind;
use crate::routing::RouteReason;
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

/// What happened at a provider. Sent with `do_send`: nobody waits for it.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub enum ProviderEvent {
    /// An attempt got no usable answer.
    Failed { provider: ProviderKind },
    /// A request left this provider for the next one.
    Failover { from: ProviderKind },
    /// A history was repaired before it went upstream.
    Repaired(Repairs),
    /// A request was planned past Cerebras (too long, or images).
    Routed(RouteReason),
}

#[derive(Message)]
#[rtype(result = "Result<RoutingStatus, ActorFault>")]
pub struct GetRoutingStatus;

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ProviderCounts {
    pub configured: bool,
    pub requests: u64,
    pub errors: u64,
    pub failovers: u64,
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
}

impl UpstreamRouter {
    /// `configured` lists the providers in use: Cerebras and the alternatives with a key.
    pub fn new(configured: &[ProviderKind], requests: Arc<ProviderRequests>) -> Self {
        let mut status = RoutingStatus::default();
        for kind in ProviderKind::ALL {
            let counts = ProviderCounts { configured: configured.contains(&kind), ..ProviderCounts::default() };
            status.providers.insert(kind.name(), counts);
        }
        Self { status, requests }
    }

    fn counts(&mut self, provider: ProviderKind) -> &mut ProviderCounts {
        self.status.providers.entry(provider.name()).or_default()
    }
}

impl Named for UpstreamRouter {
    const NAME: &'static str = "upstream router";
}

impl Actor for UpstreamRouter {
    type Context = Context<Self>;
}

/// The counts are only ever added to, so they survive a restart as they are.
impl Supervised for UpstreamRouter {}

impl Handler<ProviderEvent> for UpstreamRouter {
    type Result = ();

    fn handle(&mut self, event: ProviderEvent, ctx: &mut Context<Self>) {
        let _ = guarded(self, ctx, |this, _| match event {
            ProviderEvent::Failed { provider } => this.counts(provider).errors += 1,
            ProviderEvent::Failover { from } => this.counts(from).failovers += 1,
            ProviderEvent::Routed(reason) => *this.status.routed.entry(reason).or_default() += 1,
            ProviderEvent::Repaired(repairs) => {
                let counts = &mut this.status.tool_call_repairs;
                counts.requests += 1;
                counts.inserted_answers += repairs.inserted as u64;
                counts.removed_answers += repairs.removed as u64;
            }
        });
    }
}

impl Handler<GetRoutingStatus> for UpstreamRouter {
    type Result = Result<RoutingStatus, ActorFault>;

    fn handle(&mut self, _: GetRoutingStatus, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, |this, _| {
            let mut status = this.status.clone();
            for kind in ProviderKind::ALL {
                status.providers.entry(kind.name()).or_default().requests = this.requests.get(kind);
            }
            status
        })
    }
}
