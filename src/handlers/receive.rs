//! The client's side of a request: its key checked, then its body read whole, within
//! `MAX_BODY_BYTES`, the shared body budget and `CLIENT_BODY_TIMEOUT`; and the body's reading
//! (a chat's, an Anthropic request's translation) kept off the worker when it is long.

use actix_web::http::header::{self, HeaderMap};
use actix_web::{web, HttpRequest};
use bytes::Bytes;

use super::exchange::Journal;
use crate::body_budget::{read_into, BodyPermit, Buffered, Refused, Stopped};
use crate::error::ProxyError;
use crate::logging::record::BodyCopy;
use crate::state::AppState;

/// Checks the client's key (when auth is on) and reads the body, copying what the log keeps.
/// The permit holds the body's share of the budget until the request is done with the body.
pub async fn receive(
    request: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    journal: &mut Journal,
) -> Result<(Bytes, BodyPermit), ProxyError> {
    admit(request, state, journal).await?;
    let (body, permit) = read_body(payload, request.headers(), state).await?;
    if let Some(logs) = &state.logs {
        journal.body = BodyCopy::of(&body, logs.body_limit());
    }
    Ok((body, permit))
}

/// Checks the client's key and its limits, when auth is on, and gives the journal its pass.
pub async fn admit(request: &HttpRequest, state: &AppState, journal: &mut Journal) -> Result<(), ProxyError> {
    if let Some(auth) = &state.auth {
        let admitted = auth.admit(request.headers()).await;
        if let Err(ProxyError::Unauthorized(refusal)) = &admitted {
            state.metrics.auth_failures.with_label_values(&[refusal.code()]).inc();
        }
        let pass = admitted?;
        journal.client = Some(pass.client().clone());
        journal.pass = Some(pass);
    }
    Ok(())
}

/// Reads the whole body (attempts may resend it).
async fn read_body(
    mut payload: web::Payload,
    headers: &HeaderMap,
    state: &AppState,
) -> Result<(Bytes, BodyPermit), ProxyError> {
    let limit = state.max_body_bytes;
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(ProxyError::PayloadTooLarge { limit });
    }
    let mut body = Buffered::new(&state.body_budget, limit, declared.unwrap_or(0))?;
    let deadline = tokio::time::Instant::now() + state.body_timeout;
    read_into(&mut payload, &mut body, Some(deadline)).await.map_err(|stopped| match stopped {
        Stopped::TimedOut => ProxyError::BodyTimeout(state.body_timeout),
        Stopped::Failed(error) => ProxyError::PayloadRead(error.to_string()),
        Stopped::Refused(Refused::TooLarge) => ProxyError::PayloadTooLarge { limit },
        Stopped::Refused(Refused::Overloaded(error)) => error,
    })?;
    let (body, permit) = body.finish();
    Ok((body, permit.expect("a body read within the budget holds a permit")))
}

/// Bodies at least this long are read on the blocking pool, not the worker: reading a body of
/// many megabytes takes long enough to hold up every other stream on the worker.
const OFF_THE_WORKER: usize = 256 * 1024;

/// `read(body)`: on the worker for a short body, on the blocking pool for a long one.
pub async fn off_the_worker<T: Send + 'static>(
    body: Bytes,
    read: impl FnOnce(Bytes) -> T + Send + 'static,
) -> Result<T, ProxyError> {
    if body.len() < OFF_THE_WORKER {
        return Ok(read(body));
    }
    web::block(move || read(body)).await.map_err(|_| ProxyError::ActorUnavailable("body reader"))
}
