//! Which providers a request goes to, in order: pure rules each worker applies to its request.
//! The plan is the order; what moves a request from one step to the next is its fault
//! (`policy::fault`), or an open circuit (`policy::circuit`). A provider that does not serve
//! the request's model (per the catalogue) has no step.

use serde::Serialize;

use crate::transform::chat_view::Reading;
use crate::transform::token_estimate::ChatFacts;

/// One provider to try, by its place in the failover order; `vision` sends it the provider's
/// model for images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub provider: usize,
    pub vision: bool,
}

/// What routing knows of one provider (see `providers::Provider`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Takes requests other than chat completions, as the client sent them.
    pub any_request: bool,
    /// Takes images (it has a model for them).
    pub vision: bool,
    /// Takes requests estimated over the threshold.
    pub long_requests: bool,
}

/// Why a request was routed the way it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteReason {
    /// Every provider in order; the later ones only on failover.
    Default,
    /// The estimate exceeds `TOKEN_THRESHOLD`: past the providers that take no long requests.
    TooLong,
    /// The request carries images: to the providers with a vision model.
    Images,
}

impl RouteReason {
    /// The reason's name in logs and `/_status`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::TooLong => "too_long",
            Self::Images => "images",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub reason: RouteReason,
}

#[derive(Debug, Clone)]
pub struct RoutingPolicy {
    /// Every configured provider, in the failover order.
    pub providers: Vec<Route>,
    pub token_threshold: f64,
    pub chars_per_token: f64,
}

impl RoutingPolicy {
    /// What routing needs read from a chat body of `length` bytes: images only where some
    /// provider has a vision model; the text only where the providers differ in taking long
    /// requests, and only when the body is long enough for the estimate to pass the threshold,
    /// since a JSON body holds at least one byte for each character of text.
    pub fn reading(&self, length: usize) -> Reading {
        let long = |takes: bool| self.providers.iter().any(|route| route.long_requests == takes);
        let may_be_too_long = length as f64 / self.chars_per_token > self.token_threshold;
        Reading {
            count_text: long(true) && long(false) && may_be_too_long,
            find_images: self.providers.iter().any(|route| route.vision),
        }
    }
}

/// The ordered steps for a request, over the providers that `serve` its model (by index). A
/// request that is not a chat completion (`facts` unknown) goes only where it can go as it is.
/// Images go to the providers with a vision model, long requests past those that take none;
/// when no provider would be left, to every serving provider all the same, which judge them.
pub fn plan(policy: &RoutingPolicy, facts: Option<ChatFacts>, serves: impl Fn(usize) -> bool) -> Plan {
    let candidates = policy
        .providers
        .iter()
        .enumerate()
        .filter(|&(index, route)| serves(index) && (facts.is_some() || route.any_request));
    let steps = |vision: bool, takes: &dyn Fn(&Route) -> bool| -> Vec<Step> {
        candidates.clone().filter(|(_, route)| takes(route)).map(|(provider, _)| Step { provider, vision }).collect()
    };
    let default = || Plan { steps: steps(false, &|_| true), reason: RouteReason::Default };
    let Some(facts) = facts else {
        return default();
    };
    if facts.has_images {
        let vision = steps(true, &|route| route.vision);
        if !vision.is_empty() {
            return Plan { steps: vision, reason: RouteReason::Images };
        }
    }
    if facts.estimated_tokens(policy.chars_per_token) > policy.token_threshold {
        let long = steps(false, &|route| route.long_requests);
        if !long.is_empty() && long.len() < candidates.clone().count() {
            return Plan { steps: long, reason: RouteReason::TooLong };
        }
    }
    default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cerebras (any request, text only, short), then Synthetic and Z.ai.
    fn policy() -> RoutingPolicy {
        let cerebras = Route { any_request: true, vision: false, long_requests: false };
        let alternative = Route { any_request: false, vision: true, long_requests: true };
        RoutingPolicy {
            providers: vec![cerebras, alternative, alternative],
            token_threshold: 100.0,
            chars_per_token: 2.0,
        }
    }

    fn cerebras_only() -> RoutingPolicy {
        RoutingPolicy { providers: policy().providers[..1].to_vec(), ..policy() }
    }

    fn all(_: usize) -> bool {
        true
    }

    fn chat(chars: usize, has_images: bool) -> Option<ChatFacts> {
        Some(ChatFacts { chars, has_images })
    }

    const CEREBRAS: Step = Step { provider: 0, vision: false };
    const SYNTHETIC: Step = Step { provider: 1, vision: false };
    const ZAI: Step = Step { provider: 2, vision: false };

    #[test]
    fn ordinary_requests_go_to_cerebras_first_then_the_alternatives() {
        assert_eq!(plan(&policy(), chat(200, false), all).steps, [CEREBRAS, SYNTHETIC, ZAI]);
    }

    #[test]
    fn long_requests_skip_the_providers_that_take_none() {
        let long = plan(&policy(), chat(201, false), all);
        assert_eq!((long.steps, long.reason), (vec![SYNTHETIC, ZAI], RouteReason::TooLong));
    }

    #[test]
    fn images_go_to_the_vision_models() {
        let images = plan(&policy(), chat(10, true), all);
        let vision = vec![Step { provider: 1, vision: true }, Step { provider: 2, vision: true }];
        assert_eq!((images.steps, images.reason), (vision, RouteReason::Images));
    }

    #[test]
    fn text_is_counted_only_when_the_body_could_pass_the_threshold() {
        // The threshold is 100 tokens at 2 characters each: 200 characters, so 200 bytes at least.
        assert_eq!(policy().reading(200), Reading { count_text: false, find_images: true });
        assert_eq!(policy().reading(201), Reading { count_text: true, find_images: true });
        assert_eq!(cerebras_only().reading(1_000_000), Reading { count_text: false, find_images: false });
    }

    #[test]
    fn without_alternatives_or_a_chat_body_everything_goes_where_it_can_go_as_it_is() {
        assert_eq!(plan(&cerebras_only(), chat(1_000_000, true), all).steps, [CEREBRAS]);
        assert_eq!(plan(&policy(), None, all).steps, [CEREBRAS]);
        let second_org = Route { any_request: true, vision: false, long_requests: false };
        let two = RoutingPolicy { providers: [policy().providers, vec![second_org]].concat(), ..policy() };
        assert_eq!(plan(&two, None, all).steps, [CEREBRAS, Step { provider: 3, vision: false }]);
    }

    #[test]
    fn providers_that_do_not_serve_the_model_have_no_step() {
        let not_cerebras = |provider| provider != 0;
        assert_eq!(plan(&policy(), chat(10, false), not_cerebras).steps, [SYNTHETIC, ZAI]);
        let zai_only = |provider| provider == 2;
        assert_eq!(plan(&policy(), chat(10, false), zai_only).steps, [ZAI]);
        let images = plan(&policy(), chat(10, true), zai_only);
        assert_eq!(images.steps, [Step { provider: 2, vision: true }]);
    }

    #[test]
    fn images_and_long_requests_go_to_cerebras_when_no_alternative_serves_the_model() {
        let cerebras = |provider| provider == 0;
        for facts in [chat(10, true), chat(1_000, false)] {
            let plan = plan(&policy(), facts, cerebras);
            assert_eq!((plan.steps, plan.reason), (vec![CEREBRAS], RouteReason::Default));
        }
    }

    #[test]
    fn a_plan_over_many_providers_is_linear() {
        // 16 providers: the walk is one pass, whatever the request.
        let many = RoutingPolicy { providers: vec![policy().providers[1]; 16], ..policy() };
        assert_eq!(plan(&many, chat(10, false), all).steps.len(), 16);
        assert_eq!(plan(&many, chat(10, true), |index| index % 2 == 0).steps.len(), 8);
    }
}
