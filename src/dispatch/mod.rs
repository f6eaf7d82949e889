//! Runs one client request through its plan: the routing rules order the providers, circuits
//! pass over the ones that are down, each provider's `KeyRotator` hands out its keys, and each
//! attempt's fault (`policy::fault`), judged by `policy::second_opinion`, says whether to
//! answer, try another key, or move on to the next provider. Every provider is a pool of keys,
//! and goes through the same loop.
//!
//! Runs on the worker that accepted the request, with that worker's client: the actors only
//! decide, so the bytes never queue behind one thread.
//!
//! - `attempt`: one send over awc, classified and reported;
//! - `reply`: what the client may get of an upstream answer, and its body watched;
//! - `trail`: what the attempts left behind, for the log and the final answer.

mod attempt;
pub mod reply;
mod trail;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use actix_web::http::header::HeaderMap;
use actix_web::http::{Method, StatusCode};
use bytes::Bytes;
use prometheus::{IntCounter, IntGauge};

use self::attempt::{Response, Target};
use self::reply::{relay, HeldResponse, Reply, ReplyBody};
use self::trail::Trail;
use crate::actors::key_rotator::{Acquire, AcquireOther, Acquired, CurrentKey, KeyRotator, Proven, Report};
use crate::actors::model_watch::ModelWatch;
use crate::actors::supervision::ask;
use crate::actors::upstream_router::{Health, ProviderEvent, UpstreamRouter};
use crate::catalogue::{Catalogue, PublicModel};
use crate::error::ProxyError;
use crate::logging::record::AttemptLog;
use crate::metrics::Metrics;
use crate::policy::fault::Reason;
use crate::policy::key_pool::{KeyGrant, Rejection};
use crate::policy::routing::{plan, RouteReason, RoutingPolicy};
use crate::policy::second_opinion::{Decision, SecondOpinion};
use crate::providers::Provider;
use crate::transform::model::{with_model, ModelSlot};
use crate::transform::token_estimate::ChatFacts;

pub use self::reply::{is_event_stream, Source, KEY_HEADER, PROVIDER_HEADER};

/// A request as it goes upstream: built once, sent as often as attempts need.
pub struct Outgoing {
    pub method: Method,
    /// Path and query after the base URL, e.g. `/chat/completions?x=1`.
    pub path_and_query: String,
    pub headers: HeaderMap,
    /// The client's bytes, or the repaired history, with the client's `model`.
    pub body: Bytes,
    /// A chat completion's routing facts and model; `None` for other requests, which only
    /// Cerebras serves, as they are.
    pub chat: Option<Chat>,
    /// The client's `model`.
    pub model: Option<Arc<str>>,
    /// The client key's name (with auth on): the turn the request waits in for a key.
    pub client: Option<Arc<str>>,
}

impl Outgoing {
    /// The body with `model`: the client's bytes when they name it already, else a copy with it
    /// spliced in.
    fn body_with(&self, chat: &Chat, model: &str) -> Bytes {
        if self.model.as_deref() == Some(model) {
            return self.body.clone();
        }
        with_model(&self.body, &chat.model_slot, model)
    }
}

/// What routing needs of a chat completion.
pub struct Chat {
    pub facts: ChatFacts,
    /// Where the body's `model` goes, for a provider that gets another.
    pub model_slot: ModelSlot,
    /// The catalogue's model the client asked for; `None` without a catalogue.
    pub public: Option<Arc<PublicModel>>,
}

/// One provider as the dispatcher uses it: its data, its keys' rotator and the key that
/// rotator last published, and its attempts' counter.
pub struct Pool {
    pub provider: Provider,
    pub rotator: Addr<KeyRotator>,
    /// The rotator's published current key: read without a message on the common path.
    pub current: CurrentKey,
    /// `glm_proxy_upstream_attempts_total` for this provider, looked up once.
    pub attempts: IntCounter,
    /// The requests waiting for one of its keys, as the rotator counts them.
    pub waiting: IntGauge,
}

/// What a dispatch needs from the application, shared by all workers.
pub struct Dispatcher {
    /// Every configured provider, in the failover order (`ProviderId::index`).
    pub pools: Vec<Pool>,
    pub router: Addr<UpstreamRouter>,
    /// Told of a provider's `404 model_not_found`, to flag the id.
    pub models: Addr<ModelWatch>,
    /// The router's published circuits: read without a message on the common path.
    pub health: Health,
    /// The routing rules, applied here: planning is pure and needs no round trip.
    pub routing: Arc<RoutingPolicy>,
    /// Public model names and each provider's ids; `None` passes models as clients send them.
    pub catalogue: Option<Arc<Catalogue>>,
    pub max_key_wait: Duration,
    pub idle_timeout: Duration,
    pub metrics: Arc<Metrics>,
}

/// How a request ended: the reply (or the proxy's own error), who answered (provider, key
/// and model), and every attempt, for the log.
pub struct Dispatched {
    pub result: Result<Reply, ProxyError>,
    pub served_by: Option<Source>,
    pub attempts: Vec<AttemptLog>,
}

/// Why no key of a provider could be had.
enum NoKey {
    /// Every key rests; waiting was not allowed, or would take too long.
    Cooling(Duration),
    /// Every key is rejected.
    Rejected(Rejection),
    /// The rotator is restarting.
    Unavailable(ProxyError),
}

impl Dispatcher {
    /// Whether a configured provider serves the public model.
    pub fn serves(&self, model: &PublicModel) -> bool {
        self.pools.iter().any(|pool| model.on(pool.provider.id).is_some())
    }

    /// The Cerebras pool: the first provider, always configured.
    pub fn primary(&self) -> &Pool {
        &self.pools[0]
    }

    pub async fn dispatch(&self, client: &awc::Client, outgoing: Outgoing) -> Dispatched {
        let mut trail = Trail::default();
        let result = self.run(client, &outgoing, &mut trail).await;
        Dispatched { result, served_by: trail.served_by, attempts: trail.attempts }
    }

    async fn run(&self, client: &awc::Client, outgoing: &Outgoing, trail: &mut Trail) -> Result<Reply, ProxyError> {
        let public = outgoing.chat.as_ref().and_then(|chat| chat.public.as_deref());
        let plan = plan(&self.routing, outgoing.chat.as_ref().map(|chat| chat.facts), |index| {
            public.is_none_or(|model| model.on(self.pools[index].provider.id).is_some())
        });
        if plan.reason != RouteReason::Default {
            log::info!("event=routed reason={}", plan.reason.label());
            self.router.do_send(ProviderEvent::Routed(plan.reason));
        }
        for (position, step) in plan.steps.iter().enumerate() {
            let can_fail_over = position + 1 < plan.steps.len();
            let pool = &self.pools[step.provider];
            if let Some(reply) = self.via(client, outgoing, pool, step.vision, can_fail_over, trail).await? {
                return Ok(reply);
            }
            if can_fail_over {
                let reason = trail.last_reason().map_or("other", Reason::label);
                let from = pool.provider.id.name();
                log::warn!("event=failover from={from} reason={reason}");
                self.metrics.failovers.with_label_values(&[from, reason]).inc();
                self.metrics.timeline.failover(Instant::now());
            }
        }
        trail.finish()
    }

    /// One provider, its keys in rotation. `None` when the request should go to the next one.
    async fn via(
        &self,
        client: &awc::Client,
        outgoing: &Outgoing,
        pool: &Pool,
        vision: bool,
        can_fail_over: bool,
        trail: &mut Trail,
    ) -> Result<Option<Reply>, ProxyError> {
        let provider = &pool.provider;
        let mut pass = match self.admit(provider.id).await {
            Ok(pass) => pass,
            Err(retry_after) => {
                trail.pass_over(provider.id, retry_after);
                return Ok(None);
            }
        };
        let url = format!("{}{}", provider.base_url, outgoing.path_and_query);
        let chat = outgoing.chat.as_ref();
        let (model, body) =
            match chat.and_then(|chat| Some((chat, provider.model_for(chat.public.as_deref(), vision)?))) {
                Some((chat, model)) => (Some(Arc::from(model)), outgoing.body_with(chat, model)),
                None => (outgoing.model.clone(), outgoing.body.clone()),
            };
        let wait_deadline = Instant::now() + self.max_key_wait;
        // Only where no provider comes after, or where the provider says to wait for its keys.
        let wait = !(provider.fallback_on_cooldown && can_fail_over);
        let mut opinion = SecondOpinion::default();
        // The unproven answer a second key is asked about.
        let mut suspect: Option<HeldResponse> = None;
        for attempt in 0..provider.max_attempts() {
            let key = match opinion.avoiding() {
                None => match self.next_key(pool, attempt, wait_deadline, wait, &outgoing.client).await {
                    Ok(key) => key,
                    Err(no_key) => return self.no_key(provider, no_key, can_fail_over, trail),
                },
                Some(avoid) => match ask(&pool.rotator, AcquireOther { avoid }).await? {
                    Some(key) => key,
                    None => break,
                },
            };
            let source = Source { provider: provider.id, key_name: Some(key.name.clone()), model: model.clone() };
            let target =
                Target { url: &url, body: body.clone(), key: &key.secret, source: source.clone(), can_fail_over, pool };
            let (fault, answer) = self.attempt(client, outgoing, target, &mut pass, trail).await;
            match opinion.judge(key.index, fault) {
                Decision::Deliver { blame } => {
                    key.served.fetch_add(1, Ordering::Relaxed);
                    // Requests wait for a key: this one proved itself, the next may go.
                    if pool.waiting.get() > 0 {
                        pool.rotator.do_send(Proven);
                    }
                    if let Some((index, verdict)) = blame {
                        pool.rotator.do_send(Report { index, generation: key.generation, verdict });
                    }
                    return Ok(Some(self.deliver(answer, &source, trail)));
                }
                Decision::Rest(verdict) => {
                    pool.rotator.do_send(Report { index: key.index, generation: key.generation, verdict });
                    trail.keep(answer.held());
                }
                Decision::AskAnother { .. } => suspect = answer.held(),
                Decision::DeliverKept => return Ok(deliver_kept(answer.held().or(suspect), trail)),
                Decision::MoveOn => {
                    trail.keep(suspect);
                    trail.keep(answer.held());
                    return Ok(None);
                }
            }
        }
        // No second key to ask, or no attempt left.
        match opinion.no_response(can_fail_over) {
            Decision::DeliverKept => Ok(deliver_kept(suspect, trail)),
            _ => {
                trail.keep(suspect);
                Ok(None)
            }
        }
    }

    /// The reply for a response the client gets.
    fn deliver(&self, response: Response, source: &Source, trail: &mut Trail) -> Reply {
        let reply = match response {
            Response::Live { response, first } => relay(response, first, source, self.idle_timeout),
            Response::Held(held) => held.into_reply(),
            // Only a response is ever delivered; this would be a bug, said as a 502.
            Response::Nothing => {
                Reply { status: StatusCode::BAD_GATEWAY, headers: HeaderMap::new(), body: ReplyBody::empty() }
            }
        };
        trail.deliver(source, reply)
    }

    /// The sticky key, or the first to come free if every key rests, within the wait budget.
    async fn next_key(
        &self,
        pool: &Pool,
        attempt: usize,
        wait_deadline: Instant,
        wait: bool,
        client: &Option<Arc<str>>,
    ) -> Result<KeyGrant, NoKey> {
        // A retry asks the rotator, whose mailbox holds the report that rested the failed key;
        // the published key may not show that report yet.
        if attempt == 0 {
            if let Some(key) = pool.current.load().as_deref() {
                return Ok(key.clone());
            }
        }
        let acquired =
            ask(&pool.rotator, Acquire { wait, client: client.clone() }).await.map_err(NoKey::Unavailable)?;
        let (free_in, ticket) = match acquired {
            Acquired::Ready(grant) => return Ok(grant),
            Acquired::AllRejected(rejection) => return Err(NoKey::Rejected(rejection)),
            Acquired::AllCooling { free_in, ticket } => (free_in, ticket),
        };
        let budget = wait_deadline.saturating_duration_since(Instant::now());
        let Some(ticket) = ticket.filter(|_| free_in <= budget) else {
            return Err(NoKey::Cooling(free_in));
        };
        let provider = pool.provider.id.name();
        log::info!("event=waiting_for_key provider={provider} seconds={:.2}", free_in.as_secs_f64());
        let waiting = Instant::now();
        let waited = tokio::time::timeout(budget, ticket).await;
        self.metrics.key_wait.with_label_values(&[provider]).observe(waiting.elapsed().as_secs_f64());
        match waited {
            Ok(Ok(Ok(grant))) => Ok(grant),
            Ok(Ok(Err(rejection))) => Err(NoKey::Rejected(rejection)),
            Ok(Err(_)) => Err(NoKey::Unavailable(ProxyError::ActorUnavailable("key rotator"))),
            Err(_) => Err(NoKey::Cooling(free_in)),
        }
    }

    /// No key to be had: the next provider takes the request where it can, else the client is
    /// told why.
    fn no_key(
        &self,
        provider: &Provider,
        no_key: NoKey,
        can_fail_over: bool,
        trail: &mut Trail,
    ) -> Result<Option<Reply>, ProxyError> {
        let source = Source::provider(provider.id);
        let name = provider.id.name();
        match no_key {
            NoKey::Cooling(_) if can_fail_over && provider.fallback_on_cooldown => {
                trail.fail(&source, Reason::AllKeysCooling);
                Ok(None)
            }
            NoKey::Rejected(_) if can_fail_over => {
                trail.fail(&source, Reason::AllKeysRejected);
                Ok(None)
            }
            NoKey::Rejected(rejection) => Err(ProxyError::KeysRejected { provider: name, rejection }),
            NoKey::Cooling(retry_after) => Err(ProxyError::AllKeysCooling { provider: name, retry_after }),
            NoKey::Unavailable(error) => Err(error),
        }
    }
}

/// An error answer that is the request's, here: the client gets it as the upstream sent it.
fn deliver_kept(kept: Option<HeldResponse>, trail: &mut Trail) -> Option<Reply> {
    let held = kept?;
    let source = held.source.clone();
    Some(trail.deliver(&source, held.into_reply()))
}
