//! What a request's attempts left behind: the log of each try, the failures to name in a 502,
//! and the last upstream answer, which the client gets if nothing better comes.

use std::time::Duration;

use super::reply::{HeldResponse, Reply, Source};
use crate::error::{AttemptFailure, ProxyError};
use crate::logging::record::AttemptLog;
use crate::policy::fault::Reason;
use crate::providers::ProviderId;

#[derive(Default)]
pub struct Trail {
    pub attempts: Vec<AttemptLog>,
    failures: Vec<AttemptFailure>,
    last_answer: Option<HeldResponse>,
    /// The soonest an open circuit that was passed over lets requests through again.
    retry_after: Option<Duration>,
    /// Who gave the answer the client got, if an upstream did.
    pub served_by: Option<Source>,
}

impl Trail {
    pub fn fail(&mut self, source: &Source, reason: Reason) {
        log::warn!(
            "event=attempt_failed target={} reason={:?} kind={}",
            source.target(),
            reason.to_string(),
            reason.label()
        );
        self.failures.push(AttemptFailure { target: source.target(), reason });
    }

    /// A provider passed over because its circuit is open until `retry_after` from now.
    pub fn pass_over(&mut self, provider: ProviderId, retry_after: Duration) {
        self.fail(&Source::provider(provider), Reason::CircuitOpen);
        self.retry_after = Some(self.retry_after.map_or(retry_after, |soonest| soonest.min(retry_after)));
    }

    /// Keeps an error answer as the one the client gets if no later attempt does better.
    pub fn keep(&mut self, answer: Option<HeldResponse>) {
        if answer.is_some() {
            self.last_answer = answer;
        }
    }

    pub fn last_reason(&self) -> Option<&Reason> {
        self.failures.last().map(|f| &f.reason)
    }

    /// The client gets this upstream answer.
    pub fn deliver(&mut self, source: &Source, reply: Reply) -> Reply {
        self.served_by = Some(source.clone());
        reply
    }

    /// Every provider had its turn: the client gets the last upstream answer, or a 502 naming
    /// every attempt.
    pub fn finish(&mut self) -> Result<Reply, ProxyError> {
        match self.last_answer.take() {
            Some(answer) => {
                self.served_by = Some(answer.source.clone());
                Ok(answer.into_reply())
            }
            None => Err(ProxyError::UpstreamFailed {
                failures: std::mem::take(&mut self.failures),
                retry_after: self.retry_after,
            }),
        }
    }
}
