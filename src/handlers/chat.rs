//! A chat completion on its way upstream, from either front door: read once for routing, its
//! model looked up in the catalogue, its tool-call history repaired if it must be, then
//! dispatched.

use std::sync::Arc;

use actix_web::http::header::HeaderMap;
use actix_web::http::Method;
use actix_web::web;
use bytes::Bytes;

use super::exchange::Journal;
use super::receive::off_the_worker;
use crate::actors::upstream_router::ProviderEvent;
use crate::dispatch::reply::Reply;
use crate::dispatch::{Chat, Outgoing};
use crate::error::ProxyError;
use crate::state::AppState;
use crate::transform::chat_view::ChatView;
use crate::transform::history_splice::{repaired_body, SpliceError, Spliced};
use crate::transform::model::{shifted, ModelSlot};
use crate::transform::stream_usage::asking_usage;
use crate::transform::token_estimate::ChatFacts;
use crate::transform::tool_repair::{needs_repair, Repairs};
use crate::upstream::headers::upstream_request_headers;

/// Sends a chat completion body to `path_and_query` below the providers' base URLs.
pub async fn send_chat(
    headers: &HeaderMap,
    body: Bytes,
    path_and_query: String,
    state: &web::Data<AppState>,
    client: &awc::Client,
    journal: &mut Journal,
) -> Result<Reply, ProxyError> {
    let reading_state = state.clone();
    // A client key is charged what its answers used: a stream is asked for its usage.
    let needs =
        Needs { usage: journal.pass.is_some(), count_text: journal.pass.as_ref().is_some_and(|p| p.counts_tokens()) };
    let prepared = off_the_worker(body, move |body| prepare_chat(body, &reading_state, needs)).await??;
    journal.model = prepared.model.clone();
    journal.hide_usage = prepared.hide_usage;
    let public = match &state.dispatcher.catalogue {
        None => None,
        Some(catalogue) => {
            let requested = prepared.model.as_deref().unwrap_or_default();
            let served = catalogue.resolve(requested).filter(|model| state.dispatcher.serves(model));
            Some(served.ok_or_else(|| ProxyError::model_not_found(requested, catalogue))?.clone())
        }
    };
    if let Some(pass) = &mut journal.pass {
        let model = public.as_ref().map(|model| model.name.as_str()).or(prepared.model.as_deref());
        let estimate = prepared.facts.estimated_tokens(state.dispatcher.routing.chars_per_token).ceil() as u64;
        pass.chat(model, estimate).map_err(|refusal| {
            let rate = pass.view().unwrap_or_default();
            ProxyError::ClientRefused { refusal, rate }
        })?;
    }
    let outgoing = Outgoing {
        method: Method::POST,
        path_and_query,
        headers: upstream_request_headers(headers),
        body: prepared.body,
        chat: Some(Chat { facts: prepared.facts, model_slot: prepared.model_slot, public }),
        model: prepared.model,
        client: journal.client.clone(),
    };
    crate::doors::openai::dispatch(outgoing, state, client, journal).await
}

/// What the client key's pass needs of the body.
#[derive(Clone, Copy)]
struct Needs {
    /// A stream's usage, to charge it.
    usage: bool,
    /// The prompt's text counted, for a key with tokens per minute.
    count_text: bool,
}

/// A chat body as it goes upstream, and what was read of it.
struct Prepared {
    body: Bytes,
    facts: ChatFacts,
    model: Option<Arc<str>>,
    model_slot: ModelSlot,
    /// The body asks for a stream's usage on the client's behalf.
    hide_usage: bool,
}

/// Reads a chat completion once for routing, repairs its tool-call history if it must, and
/// asks a stream for its usage when the client key is charged and the client did not. A body
/// that needs neither keeps the client's bytes exactly.
fn prepare_chat(body: Bytes, state: &AppState, needs: Needs) -> Result<Prepared, ProxyError> {
    let mut reading = state.dispatcher.routing.reading(body.len());
    reading.count_text |= needs.count_text;
    let view = ChatView::read(&body, reading).map_err(|e| ProxyError::InvalidBody(e.to_string()))?;
    let (facts, model, mut model_slot) = (view.facts, view.model.as_deref().map(Arc::from), view.model_slot.clone());
    let mut stream = view.stream.clone();
    let mut body = match repaired(&body, &view, state).transpose()? {
        Some(spliced) => {
            model_slot = model_slot.moved(&spliced.replaced, spliced.new_len);
            stream.options = stream.options.map(|options| shifted(options, &spliced.replaced, spliced.new_len));
            spliced.body
        }
        None => body.clone(),
    };
    let asked = needs.usage.then(|| asking_usage(&body, &stream)).flatten();
    let hide_usage = asked.is_some();
    if let Some((asking, replaced, new_len)) = asked {
        model_slot = model_slot.moved(&replaced, new_len);
        body = asking;
    }
    Ok(Prepared { body, facts, model, model_slot, hide_usage })
}

/// The body with its tool-call history repaired, when it needs that.
fn repaired(body: &Bytes, view: &ChatView, state: &AppState) -> Option<Result<Spliced, ProxyError>> {
    if !needs_repair(&view.messages) {
        return None;
    }
    let spliced = match repaired_body(body, &view.messages, state.max_body_bytes) {
        Ok(spliced) => spliced,
        Err(SpliceError::TooLarge(limit)) => return Some(Err(ProxyError::RepairTooLarge { limit })),
        // Not expected: the body read the same way twice. The provider judges it as it came.
        Err(SpliceError::Unreadable(error)) => {
            log::warn!("event=tool_call_repair_skipped error={error}");
            return None;
        }
    };
    let Repairs { inserted, removed } = spliced.repairs;
    log::info!("event=tool_calls_repaired inserted={inserted} removed={removed}");
    state.dispatcher.router.do_send(ProviderEvent::Repaired(spliced.repairs));
    Some(Ok(spliced))
}
