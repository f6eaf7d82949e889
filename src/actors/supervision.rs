//! Restart-on-panic for supervised actors, and the one way handlers ask them questions.
//!
//! actix's `Supervisor` restarts an actor that stops, but a panic would unwind through the
//! arbiter and drop the actor with its mailbox. So every handler runs its work through
//! [`guarded`]: a panic is caught, the actor stops, the supervisor calls `restarting` (which
//! restores sane state) and the mailbox keeps serving.

use std::panic::{catch_unwind, AssertUnwindSafe};

use actix::dev::ToEnvelope;
use actix::{Actor, ActorContext, Addr, Handler, Message};

use crate::error::ProxyError;

/// An actor's name, for logs and for the 503 a handler answers when it is unavailable.
pub trait Named {
    const NAME: &'static str;
}

/// The actor panicked while handling the message; it is being restarted.
#[derive(Debug, thiserror::Error)]
#[error("{0} failed while handling a message and is restarting")]
pub struct ActorFault(pub &'static str);

/// Runs a handler's work; on panic, stops the actor so its supervisor restarts it.
pub fn guarded<A, R>(
    actor: &mut A,
    ctx: &mut A::Context,
    work: impl FnOnce(&mut A, &mut A::Context) -> R,
) -> Result<R, ActorFault>
where
    A: Actor + Named,
    A::Context: ActorContext,
{
    match catch_unwind(AssertUnwindSafe(|| work(actor, ctx))) {
        Ok(result) => Ok(result),
        Err(_) => {
            log::error!("actor={} event=panic action=restart", A::NAME);
            ctx.stop();
            Err(ActorFault(A::NAME))
        }
    }
}

/// Sends `message` and waits for the answer. A dead mailbox or a fault becomes a 503, never a hang.
pub async fn ask<A, M, T>(addr: &Addr<A>, message: M) -> Result<T, ProxyError>
where
    A: Actor + Named + Handler<M>,
    A::Context: ToEnvelope<A, M>,
    M: Message<Result = Result<T, ActorFault>> + Send + 'static,
    T: Send + 'static,
{
    match addr.send(message).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(_)) | Err(_) => Err(ProxyError::ActorUnavailable(A::NAME)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix::{Arbiter, Context};

    struct Echo;

    impl Named for Echo {
        const NAME: &'static str = "echo";
    }

    impl Actor for Echo {
        type Context = Context<Self>;
    }

    #[derive(actix::Message)]
    #[rtype(result = "Result<u8, ActorFault>")]
    struct Ping;

    impl Handler<Ping> for Echo {
        type Result = Result<u8, ActorFault>;
        fn handle(&mut self, _: Ping, ctx: &mut Context<Self>) -> Self::Result {
            guarded(self, ctx, |_, _| 7)
        }
    }

    #[actix_rt::test]
    async fn asking_a_dead_actor_is_a_503_not_a_hang() {
        let arbiter = Arbiter::new();
        let addr = Echo::start_in_arbiter(&arbiter.handle(), |_| Echo);
        assert_eq!(ask(&addr, Ping).await.unwrap(), 7);

        arbiter.stop();
        arbiter.join().unwrap();
        let error = ask(&addr, Ping).await.unwrap_err();
        assert!(matches!(error, ProxyError::ActorUnavailable("echo")), "{error:?}");
        assert_eq!(actix_web::ResponseError::status_code(&error), 503);
    }
}
