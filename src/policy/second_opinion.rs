//! The attempts at one provider as a state machine: what each attempt's fault means for the
//! request, given what earlier keys said. Pure; the dispatcher only does what it decides.
//!
//! A 402, 403 or 500 may be the key's or the request's (`Fault::Unproven`): a second key
//! tells. If it gets the same, the request's (a 402/403 goes to the client, a 500 moves on, as
//! another provider may serve what this one cannot); if it succeeds, the first key's, which
//! then leaves the sticky place. Without a second key to ask, the error stands: it moves on if
//! a provider comes next, and is the client's answer if none does.

use super::fault::{Fault, Reason};
use super::key_pool::KeyVerdict;

/// What the dispatcher does after one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The answer goes to the client. `blame` is the key, by index, whose unproven error
    /// turned out its own: another key succeeded where it failed.
    Deliver { blame: Option<(usize, KeyVerdict)> },
    /// The key's fault: it rests (by the verdict), and the next key is tried.
    Rest(KeyVerdict),
    /// Unproven: keep the answer, and ask another key.
    AskAnother { avoid: usize },
    /// Whatever failed is the request's, here: the kept answer goes to the client.
    DeliverKept,
    /// Nothing more to do here: the request moves on to the next provider.
    MoveOn,
}

/// The attempts at one provider so far.
#[derive(Debug, Default)]
pub struct SecondOpinion {
    /// The key with an unproven error, and what it was.
    suspect: Option<(usize, Reason)>,
}

impl SecondOpinion {
    /// The key a second opinion must not come from, if one is being sought.
    pub fn avoiding(&self) -> Option<usize> {
        self.suspect.as_ref().map(|(index, _)| *index)
    }

    /// What an attempt with key `key` that came to `fault` means.
    pub fn judge(&mut self, key: usize, fault: Fault) -> Decision {
        match fault {
            Fault::None => {
                let blame = self.suspect.take().map(|(index, reason)| (index, KeyVerdict::Failed { reason }));
                Decision::Deliver { blame }
            }
            Fault::Key(verdict) => Decision::Rest(verdict),
            Fault::Unproven(reason) => match self.suspect.take() {
                None => {
                    self.suspect = Some((key, reason));
                    Decision::AskAnother { avoid: key }
                }
                // A second key got it too: the request's, and no key is marked.
                Some(_) if reason == Reason::Status(500) => Decision::MoveOn,
                Some(_) => Decision::DeliverKept,
            },
            Fault::Unservable(_) | Fault::Provider(..) => Decision::MoveOn,
        }
    }

    /// No second key was to be had (or the attempts ran out): the error stands.
    pub fn no_response(&mut self, can_fail_over: bool) -> Decision {
        match self.suspect.take() {
            Some(_) if !can_fail_over => Decision::DeliverKept,
            _ => Decision::MoveOn,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> Fault {
        Fault::Unproven(Reason::Status(code))
    }

    #[test]
    fn a_success_after_an_unproven_error_blames_the_first_key() {
        let mut opinion = SecondOpinion::default();
        assert_eq!(opinion.judge(0, status(403)), Decision::AskAnother { avoid: 0 });
        assert_eq!(opinion.avoiding(), Some(0));
        let blame = Some((0, KeyVerdict::Failed { reason: Reason::Status(403) }));
        assert_eq!(opinion.judge(1, Fault::None), Decision::Deliver { blame });
        assert_eq!(opinion.avoiding(), None);
    }

    #[test]
    fn two_keys_with_the_same_error_prove_it_the_requests() {
        let mut opinion = SecondOpinion::default();
        opinion.judge(0, status(402));
        assert_eq!(opinion.judge(1, status(402)), Decision::DeliverKept);
        let mut opinion = SecondOpinion::default();
        opinion.judge(0, status(500));
        assert_eq!(opinion.judge(1, status(500)), Decision::MoveOn, "another provider may serve it");
    }

    #[test]
    fn without_a_second_key_the_error_moves_on_or_stands() {
        let mut opinion = SecondOpinion::default();
        opinion.judge(0, status(403));
        assert_eq!(opinion.no_response(true), Decision::MoveOn);
        opinion.judge(0, status(403));
        assert_eq!(opinion.no_response(false), Decision::DeliverKept);
        assert_eq!(opinion.no_response(false), Decision::MoveOn, "nothing kept, nothing to deliver");
    }

    #[test]
    fn key_faults_rest_the_key_and_provider_faults_move_on() {
        let mut opinion = SecondOpinion::default();
        let limited = KeyVerdict::RateLimited { requested: None };
        assert_eq!(opinion.judge(0, Fault::Key(limited.clone())), Decision::Rest(limited));
        assert_eq!(opinion.judge(1, Fault::Unservable(Reason::ModelNotFound)), Decision::MoveOn);
        assert_eq!(opinion.judge(1, Fault::Unservable(Reason::QuotaExhausted)), Decision::MoveOn);
        assert_eq!(opinion.avoiding(), None);
    }
}
