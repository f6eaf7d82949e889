//! A client's pass: what an admitted request carries until its answer's body is done. It holds
//! the request's place among the key's requests in flight, and, when the body ends, charges the
//! usage the provider reported to the key's limiter and to the ledger.

use std::sync::Arc;

use parking_lot::Mutex;

use super::ledger::Ledger;
use crate::policy::limits::limiter::{Limiter, RateView, Refusal};
use crate::policy::limits::Limits;
use crate::wire::chat::Usage;

/// A key with limits: what they are now, and its limiter (shared by its requests, kept across
/// reloads of the key cache).
#[derive(Debug, Clone)]
pub struct Limiting {
    pub limits: Arc<Limits>,
    pub limiter: Arc<Mutex<Limiter>>,
}

pub struct ClientPass {
    key_id: i32,
    client: Arc<str>,
    limiting: Option<Limiting>,
    ledger: Arc<Ledger>,
    /// The model the client asked for, as the key's usage rows name it.
    model: Option<Arc<str>>,
    /// The prompt's estimate, counted in the key's tokens per minute.
    estimate: u64,
    /// Taken back before anything went upstream: nothing to charge.
    withdrawn: bool,
    /// The key's rate-limit headers as the chat's admission left them.
    view: Option<RateView>,
}

impl ClientPass {
    pub fn new(key_id: i32, client: Arc<str>, limiting: Option<Limiting>, ledger: Arc<Ledger>) -> Self {
        Self { key_id, client, limiting, ledger, model: None, estimate: 0, withdrawn: false, view: None }
    }

    pub fn client(&self) -> &Arc<str> {
        &self.client
    }

    /// Whether the key counts tokens per minute, for which the prompt must be counted well.
    pub fn counts_tokens(&self) -> bool {
        self.limiting.as_ref().is_some_and(|l| l.limits.tpm.is_some())
    }

    /// The second step of admission, for a chat: the key's model list (`model` is the public
    /// name after aliases, or the client's own), then its tokens per minute. A refused request
    /// spends nothing: it is withdrawn from the key's minute and from its requests in flight.
    pub fn chat(&mut self, model: Option<&str>, estimate: u64) -> Result<(), Refusal> {
        self.model = model.map(Arc::from);
        let Some(limiting) = &self.limiting else { return Ok(()) };
        let clock = self.ledger.clock();
        let mut limiter = limiting.limiter.lock();
        let refused = self.may_use(model).and_then(|()| limiter.admit_tokens(&limiting.limits, estimate, clock));
        match refused {
            Ok(()) => {
                self.estimate = estimate;
                // Read under the same lock and clock: the answer's headers cost no second look.
                self.view = Some(limiter.view(&limiting.limits, clock));
                Ok(())
            }
            Err(refusal) => {
                limiter.withdraw();
                drop(limiter);
                self.withdrawn = true;
                self.ledger.refused(&self.client, &refusal);
                Err(refusal)
            }
        }
    }

    /// The key's model list against `model` (the public name after aliases, or the client's
    /// own): every model, for a key without one.
    pub fn may_use(&self, model: Option<&str>) -> Result<(), Refusal> {
        match self.limiting.as_ref().and_then(|limiting| limiting.limits.models.as_ref()) {
            Some(list) if !model.is_some_and(|model| list.allows(model)) => {
                Err(Refusal::ModelNotAllowed { model: model.unwrap_or_default().to_owned(), allowed: list.to_string() })
            }
            _ => Ok(()),
        }
    }

    /// The key's rate-limit headers: for an admitted chat, where the key stood once it was
    /// counted (as a provider's headers say), else where it stands now; `None` for a key
    /// without limits.
    pub fn view(&self) -> Option<RateView> {
        let limiting = self.limiting.as_ref()?;
        self.view.or_else(|| Some(limiting.limiter.lock().view(&limiting.limits, self.ledger.clock())))
    }

    /// The answer's body is done: its usage (if the provider reported it) is charged.
    pub fn settle(mut self, usage: Option<Usage>) {
        self.charge(usage);
    }

    fn charge(&mut self, usage: Option<Usage>) {
        if std::mem::replace(&mut self.withdrawn, true) {
            return;
        }
        let clock = self.ledger.clock();
        let finish = || {
            if let Some(limiting) = &self.limiting {
                let used = usage.map(|u| u.prompt_tokens + u.completion_tokens);
                limiting.limiter.lock().finish(self.estimate, used, clock);
            }
        };
        // A request that named no model and used nothing (a model list, a token count) has no
        // row to add to.
        if self.model.is_none() && usage.is_none() {
            return finish();
        }
        let day = clock.calendar.day;
        self.ledger.record(self.key_id, &self.client, self.model.as_deref(), usage, day, finish);
    }
}

/// A pass dropped unsettled (the request failed before an answer): it is no longer in flight.
impl Drop for ClientPass {
    fn drop(&mut self) {
        self.charge(None);
    }
}
