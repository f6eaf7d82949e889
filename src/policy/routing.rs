//! Which providers a request goes to, in order: pure rules each worker applies to its request.
//! The plan is the order; what moves a request from one step to the next is its fault
//! (`policy::fault`), or an open circuit (`policy::circuit`). A provider that does not serve
//! the request's model (per the catalogue) has no step.

use serde::Serialize;

use crate::providers::ProviderKind;
use crate::transform::chat_view::Reading;
use crate::transform::token_estimate::ChatFacts;

/// One provider to try. Alternatives are named by their position in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Cerebras,
    Alternative { index: usize, vision: bool },
}

/// Why a request was routed the way it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteReason {
    /// Cerebras first; the alternatives only on failover.
    Default,
    /// The estimate exceeds `TOKEN_THRESHOLD`.
    TooLong,
    /// The request carries images; Cerebras models are text-only.
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
    /// The alternatives configured (Synthetic, then Z.ai, each only with its key), in order.
    pub alternatives: Vec<ProviderKind>,
    pub token_threshold: f64,
    pub chars_per_token: f64,
}

impl RoutingPolicy {
    /// What routing needs read from a chat body of `length` bytes: nothing without alternatives;
    /// the text only when the body is long enough for the estimate to pass the threshold, since
    /// a JSON body holds at least one byte for each character of text.
    pub fn reading(&self, length: usize) -> Reading {
        let alternatives = !self.alternatives.is_empty();
        let may_be_too_long = length as f64 / self.chars_per_token > self.token_threshold;
        Reading { count_text: alternatives && may_be_too_long, find_images: alternatives }
    }
}

/// The ordered steps for a request, over the providers that `serve` its model. Only chat
/// completions (`facts` known) can go to an alternative, since going there rewrites the body's
/// `model`. Images and long requests go to the alternatives that serve the model; when none
/// does, to Cerebras all the same, which judges them itself.
pub fn plan(policy: &RoutingPolicy, facts: Option<ChatFacts>, serves: impl Fn(ProviderKind) -> bool) -> Plan {
    let cerebras = serves(ProviderKind::Cerebras).then_some(Step::Cerebras);
    let serving: Vec<usize> =
        (0..policy.alternatives.len()).filter(|&index| serves(policy.alternatives[index])).collect();
    let alternatives = |vision| serving.iter().map(move |&index| Step::Alternative { index, vision });
    let Some(facts) = facts.filter(|_| !serving.is_empty()) else {
        return Plan { steps: cerebras.into_iter().collect(), reason: RouteReason::Default };
    };
    if facts.has_images {
        return Plan { steps: alternatives(true).collect(), reason: RouteReason::Images };
    }
    if facts.estimated_tokens(policy.chars_per_token) > policy.token_threshold {
        return Plan { steps: alternatives(false).collect(), reason: RouteReason::TooLong };
    }
    let steps = cerebras.into_iter().chain(alternatives(false)).collect();
    Plan { steps, reason: RouteReason::Default }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RoutingPolicy {
        RoutingPolicy {
            alternatives: vec![ProviderKind::Synthetic, ProviderKind::Zai],
            token_threshold: 100.0,
            chars_per_token: 2.0,
        }
    }

    fn all(_: ProviderKind) -> bool {
        true
    }

    fn chat(chars: usize, has_images: bool) -> Option<ChatFacts> {
        Some(ChatFacts { chars, has_images })
    }

    const SYNTHETIC: Step = Step::Alternative { index: 0, vision: false };
    const ZAI: Step = Step::Alternative { index: 1, vision: false };

    #[test]
    fn ordinary_requests_go_to_cerebras_first_then_the_alternatives() {
        assert_eq!(plan(&policy(), chat(200, false), all).steps, [Step::Cerebras, SYNTHETIC, ZAI]);
    }

    #[test]
    fn long_requests_skip_cerebras() {
        let long = plan(&policy(), chat(201, false), all);
        assert_eq!((long.steps, long.reason), (vec![SYNTHETIC, ZAI], RouteReason::TooLong));
    }

    #[test]
    fn images_go_to_the_vision_models() {
        let images = plan(&policy(), chat(10, true), all);
        let vision = vec![Step::Alternative { index: 0, vision: true }, Step::Alternative { index: 1, vision: true }];
        assert_eq!((images.steps, images.reason), (vision, RouteReason::Images));
    }

    #[test]
    fn text_is_counted_only_when_the_body_could_pass_the_threshold() {
        // The threshold is 100 tokens at 2 characters each: 200 characters, so 200 bytes at least.
        assert_eq!(policy().reading(200), Reading { count_text: false, find_images: true });
        assert_eq!(policy().reading(201), Reading { count_text: true, find_images: true });
        let none = RoutingPolicy { alternatives: Vec::new(), ..policy() };
        assert_eq!(none.reading(1_000_000), Reading { count_text: false, find_images: false });
    }

    #[test]
    fn without_alternatives_or_a_chat_body_everything_goes_to_cerebras() {
        let none = RoutingPolicy { alternatives: Vec::new(), ..policy() };
        assert_eq!(plan(&none, chat(1_000_000, true), all).steps, [Step::Cerebras]);
        assert_eq!(plan(&policy(), None, all).steps, [Step::Cerebras]);
    }

    #[test]
    fn providers_that_do_not_serve_the_model_have_no_step() {
        let not_cerebras = |provider| provider != ProviderKind::Cerebras;
        assert_eq!(plan(&policy(), chat(10, false), not_cerebras).steps, [SYNTHETIC, ZAI]);
        let zai_only = |provider| provider == ProviderKind::Zai;
        assert_eq!(plan(&policy(), chat(10, false), zai_only).steps, [ZAI]);
        let images = plan(&policy(), chat(10, true), zai_only);
        assert_eq!(images.steps, [Step::Alternative { index: 1, vision: true }]);
    }

    #[test]
    fn images_and_long_requests_go_to_cerebras_when_no_alternative_serves_the_model() {
        let cerebras_only = |provider| provider == ProviderKind::Cerebras;
        for facts in [chat(10, true), chat(1_000, false)] {
            let plan = plan(&policy(), facts, cerebras_only);
            assert_eq!((plan.steps, plan.reason), (vec![Step::Cerebras], RouteReason::Default));
        }
    }
}
