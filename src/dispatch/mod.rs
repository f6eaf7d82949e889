//! Runs one client request through its plan: the routing rules order the providers, circuits
//! pass over the ones that are down, the `KeyRotator` hands out Cerebras keys, and each
//! attempt's fault (`policy::fault`) says whether to answer, try another key, or move on to
//! the next provider.
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
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use actix::Addr;
use actix_web::http::header::HeaderMap;
use actix_web::http::{Method, StatusCode};
use bytes::Bytes;

use self::attempt::{Answer, Target};
use self::reply::{relay, HeldAnswer, Reply, ReplyBody};
use self::trail::Trail;
use crate::actors::key_rotator::{Acquire, AcquireOther, Acquired, CurrentKey, KeyRotator, Report};
use crate::actors::supervision::ask;
use crate::actors::upstream_router::{Health, ProviderEvent, ProviderRequests, UpstreamRouter};
use crate::catalogue::{Catalogue, PublicModel};
use crate::error::ProxyError;
use crate::logging::record::AttemptLog;
use crate::metrics::Metrics;
use crate::policy::fault::{Fault, Reason};
use crate::policy::key_pool::{KeyGrant, KeyVerdict};
use crate::policy::routing::{plan, RouteReason, RoutingPolicy, Step};
use crate::providers::{Alternative, ProviderKind};
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

/// What a dispatch needs from the application, shared by all workers.
pub struct Dispatcher {
    pub rotator: Addr<KeyRotator>,
    /// The rotator's published current key: read without a message on the common path.
    pub current_key: CurrentKey,
    pub router: Addr<UpstreamRouter>,
    /// The router's published circuits: read without a message on the common path.
    pub health: Health,
    /// Attempts per provider, counted here; the router reads them for `/_status`.
    pub provider_requests: Arc<ProviderRequests>,
    /// The routing rules, applied here: planning is pure and needs no round trip.
    pub routing: Arc<RoutingPolicy>,
    /// Public model names and each provider's ids; `None` passes models as clients send them.
    pub catalogue: Option<Arc<Catalogue>>,
    pub cerebras_base_url: String,
    pub alternatives: Vec<Alternative>,
    pub max_key_attempts: usize,
    pub max_key_wait: Duration,
    pub idle_timeout: Duration,
    pub fallback_on_cooldown: bool,
    pub metrics: Arc<Metrics>,
}

/// How a request ended: the reply (or the proxy's own error), who answered (provider, key
/// and model), and every attempt, for the log.
pub struct Dispatched {
    pub result: Result<Reply, ProxyError>,
    pub answered_by: Option<Source>,
    pub attempts: Vec<AttemptLog>,
}

/// A 402, 403 or 500 from one key, waiting for a second key to say whose fault it is.
struct Suspect {
    index: usize,
    reason: Reason,
    answer: Option<HeldAnswer>,
}

/// Why no Cerebras key could be had.
enum NoKey {
    /// Every key rests; waiting was not allowed, or would take too long.
    Cooling(ProxyError),
    /// Every key is rejected: the upstream's message.
    Rejected(String),
    /// The rotator is restarting.
    Unavailable(ProxyError),
}

impl Dispatcher {
    /// Whether a configured provider serves the public model.
    pub fn serves(&self, model: &PublicModel) -> bool {
        std::iter::once(ProviderKind::Cerebras)
            .chain(self.alternatives.iter().map(|alternative| alternative.kind))
            .any(|provider| model.on(provider).is_some())
    }

    pub async fn dispatch(&self, client: &awc::Client, outgoing: Outgoing) -> Dispatched {
        let mut trail = Trail::default();
        let result = self.run(client, &outgoing, &mut trail).await;
        Dispatched { result, answered_by: trail.answered_by, attempts: trail.attempts }
    }

    async fn run(&self, client: &awc::Client, outgoing: &Outgoing, trail: &mut Trail) -> Result<Reply, ProxyError> {
        let public = outgoing.chat.as_ref().and_then(|chat| chat.public.as_deref());
        let plan = plan(&self.routing, outgoing.chat.as_ref().map(|chat| chat.facts), |provider| {
            public.is_none_or(|model| model.on(provider).is_some())
        });
        if plan.reason != RouteReason::Default {
            log::info!("event=routed reason={}", plan.reason.label());
            self.router.do_send(ProviderEvent::Routed(plan.reason));
        }
        for (position, step) in plan.steps.iter().enumerate() {
            let can_fail_over = position + 1 < plan.steps.len();
            let (provider, reply) = match *step {
                Step::Cerebras => {
                    (ProviderKind::Cerebras, self.via_cerebras(client, outgoing, can_fail_over, trail).await?)
                }
                Step::Alternative { index, vision } => {
                    let alternative = &self.alternatives[index];
                    let reply = self.via_alternative(client, outgoing, alternative, vision, can_fail_over, trail);
                    (alternative.kind, reply.await)
                }
            };
            if let Some(reply) = reply {
                return Ok(reply);
            }
            if can_fail_over {
                let reason = trail.last_reason().map_or("other", Reason::label);
                log::warn!("event=failover from={} reason={reason}", provider.name());
                self.metrics.failovers.with_label_values(&[provider.name(), reason]).inc();
                self.router.do_send(ProviderEvent::Failover { from: provider });
            }
        }
        trail.finish()
    }

    /// Cerebras with key rotation. `None` when the request should go to the next provider.
    async fn via_cerebras(
        &self,
        client: &awc::Client,
        outgoing: &Outgoing,
        can_fail_over: bool,
        trail: &mut Trail,
    ) -> Result<Option<Reply>, ProxyError> {
        let mut pass = match self.admit(ProviderKind::Cerebras).await {
            Ok(pass) => pass,
            Err(retry_after) => {
                trail.pass_over(ProviderKind::Cerebras, retry_after);
                return Ok(None);
            }
        };
        let url = format!("{}{}", self.cerebras_base_url, outgoing.path_and_query);
        let (model, body) = match outgoing.chat.as_ref().and_then(|chat| Some((chat, chat.public.as_ref()?))) {
            Some((chat, public)) => {
                let id = public.on(ProviderKind::Cerebras).map_or("", |ids| ids.id.as_str());
                (Some(Arc::from(id)), outgoing.body_with(chat, id))
            }
            None => (outgoing.model.clone(), outgoing.body.clone()),
        };
        let wait_deadline = Instant::now() + self.max_key_wait;
        let wait = !(self.fallback_on_cooldown && can_fail_over);
        let mut suspect: Option<Suspect> = None;
        for attempt in 0..self.max_key_attempts {
            let key = match suspect.as_ref().map(|suspect| suspect.index) {
                None => match self.next_key(attempt, wait_deadline, wait).await {
                    Ok(key) => key,
                    Err(no_key) => return self.no_key(no_key, can_fail_over, trail),
                },
                Some(avoid) => match ask(&self.rotator, AcquireOther { avoid }).await? {
                    Some(key) => key,
                    // No second opinion to be had: the error stands as the request's.
                    None => break,
                },
            };
            let source =
                Source { provider: ProviderKind::Cerebras, key_name: Some(key.name.clone()), model: model.clone() };
            let target =
                Target { url: &url, body: body.clone(), key: &key.secret, source: source.clone(), can_fail_over };
            let (fault, answer) = self.attempt(client, outgoing, target, &mut pass, trail).await;
            match fault {
                Fault::None => {
                    key.served.fetch_add(1, Ordering::Relaxed);
                    if let Some(Suspect { index, reason, .. }) = suspect {
                        // Another key succeeded where this one failed: it was the key's after all.
                        self.rotator.do_send(Report { index, verdict: KeyVerdict::Failed { reason } });
                    }
                    return Ok(Some(self.deliver(answer, &source, trail)));
                }
                Fault::Key(verdict) => {
                    self.rotator.do_send(Report { index: key.index, verdict });
                    trail.keep(answer.held());
                }
                Fault::Unproven(reason) if suspect.is_none() => {
                    suspect = Some(Suspect { index: key.index, reason, answer: answer.held() });
                }
                // A second key got it too: the request's fault, and no key is marked.
                Fault::Unproven(reason) => {
                    return Ok(self.request_fault(Suspect { index: key.index, reason, answer: answer.held() }, trail))
                }
                Fault::Unservable(_) | Fault::Provider(..) => {
                    trail.keep(suspect.and_then(|suspect| suspect.answer));
                    trail.keep(answer.held());
                    return Ok(None);
                }
            }
        }
        Ok(suspect.and_then(|suspect| self.request_fault(suspect, trail)))
    }

    /// One try at an alternative, with its model written into the body. Whatever fails there
    /// moves the request on: an alternative has one key, and no second opinion.
    async fn via_alternative(
        &self,
        client: &awc::Client,
        outgoing: &Outgoing,
        alternative: &Alternative,
        vision: bool,
        can_fail_over: bool,
        trail: &mut Trail,
    ) -> Option<Reply> {
        let chat = outgoing.chat.as_ref()?;
        let mut pass = match self.admit(alternative.kind).await {
            Ok(pass) => pass,
            Err(retry_after) => {
                trail.pass_over(alternative.kind, retry_after);
                return None;
            }
        };
        let model = alternative.model_for(chat.public.as_deref(), vision);
        let source = Source { provider: alternative.kind, key_name: None, model: Some(model.into()) };
        let url = format!("{}{}", alternative.base_url, outgoing.path_and_query);
        let target = Target {
            url: &url,
            body: outgoing.body_with(chat, model),
            key: &alternative.key,
            source: source.clone(),
            can_fail_over,
        };
        match self.attempt(client, outgoing, target, &mut pass, trail).await {
            (Fault::None, answer) => Some(self.deliver(answer, &source, trail)),
            (_, answer) => {
                trail.keep(answer.held());
                None
            }
        }
    }

    /// The reply for an answer the client gets.
    fn deliver(&self, answer: Answer, source: &Source, trail: &mut Trail) -> Reply {
        let reply = match answer {
            Answer::Live { response, first } => relay(response, first, source, self.idle_timeout),
            Answer::Held(held) => held.into_reply(),
            // Only an answer is ever delivered; this would be a bug, said as a 502.
            Answer::Nothing => {
                Reply { status: StatusCode::BAD_GATEWAY, headers: HeaderMap::new(), body: ReplyBody::empty() }
            }
        };
        trail.deliver(source, reply)
    }

    /// A 402/403/500 that is the request's: a second key got it too, or none could check. A
    /// 500 moves on to the next provider like a 503 (another may serve what Cerebras cannot);
    /// a 402/403 goes back to the client as the upstream sent it.
    fn request_fault(&self, suspect: Suspect, trail: &mut Trail) -> Option<Reply> {
        match (suspect.reason, suspect.answer) {
            (Reason::Status(500), answer) | (_, answer @ None) => {
                trail.keep(answer);
                None
            }
            (_, Some(held)) => {
                let source = held.source.clone();
                Some(trail.deliver(&source, held.into_reply()))
            }
        }
    }

    /// The sticky key, or the first to come free if every key rests, within the wait budget.
    async fn next_key(&self, attempt: usize, wait_deadline: Instant, wait: bool) -> Result<KeyGrant, NoKey> {
        // A retry asks the rotator, whose mailbox holds the report that rested the failed key;
        // the published key may not show that report yet.
        if attempt == 0 {
            if let Some(key) = self.current_key.read().unwrap_or_else(PoisonError::into_inner).clone() {
                return Ok(key);
            }
        }
        let acquired = ask(&self.rotator, Acquire { wait }).await.map_err(NoKey::Unavailable)?;
        let (free_in, ticket) = match acquired {
            Acquired::Ready(grant) => return Ok(grant),
            Acquired::AllRejected { message } => return Err(NoKey::Rejected(message)),
            Acquired::AllCooling { free_in, ticket } => (free_in, ticket),
        };
        let budget = wait_deadline.saturating_duration_since(Instant::now());
        let cooling = || NoKey::Cooling(ProxyError::AllKeysCooling { retry_after: free_in });
        let Some(ticket) = ticket.filter(|_| free_in <= budget) else {
            return Err(cooling());
        };
        log::info!("event=waiting_for_key seconds={:.2}", free_in.as_secs_f64());
        let waiting = Instant::now();
        let waited = tokio::time::timeout(budget, ticket).await;
        self.metrics.key_wait.observe(waiting.elapsed().as_secs_f64());
        match waited {
            Ok(Ok(Ok(grant))) => Ok(grant),
            Ok(Ok(Err(message))) => Err(NoKey::Rejected(message)),
            Ok(Err(_)) => Err(NoKey::Unavailable(ProxyError::ActorUnavailable("key rotator"))),
            Err(_) => Err(cooling()),
        }
    }

    /// No key to be had: the alternatives take the request where they can, else the client
    /// is told why.
    fn no_key(&self, no_key: NoKey, can_fail_over: bool, trail: &mut Trail) -> Result<Option<Reply>, ProxyError> {
        let source = Source::provider(ProviderKind::Cerebras);
        match no_key {
            NoKey::Cooling(_) if can_fail_over && self.fallback_on_cooldown => {
                trail.fail(&source, Reason::AllKeysCooling);
                Ok(None)
            }
            NoKey::Rejected(_) if can_fail_over => {
                trail.fail(&source, Reason::AllKeysRejected);
                Ok(None)
            }
            NoKey::Rejected(message) => Err(ProxyError::KeysRejected { message }),
            NoKey::Cooling(error) | NoKey::Unavailable(error) => Err(error),
        }
    }
}
