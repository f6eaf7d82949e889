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
use crate::transform::history_splice::{repaired_body, SpliceError};
use crate::transform::model::ModelSlot;
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
    let prepared = off_the_worker(body, move |body| prepare_chat(body, &reading_state)).await??;
    journal.model = prepared.model.clone();
    let public = match &state.dispatcher.catalogue {
        None => None,
        Some(catalogue) => {
            let requested = prepared.model.as_deref().unwrap_or_default();
            let served = catalogue.resolve(requested).filter(|model| state.dispatcher.serves(model));
            Some(served.ok_or_else(|| ProxyError::model_not_found(requested, catalogue))?.clone())
        }
    };
    let outgoing = Outgoing {
        method: Method::POST,
        path_and_query,
        headers: upstream_request_headers(headers),
        body: prepared.body,
        chat: Some(Chat { facts: prepared.facts, model_slot: prepared.model_slot, public }),
        model: prepared.model,
    };
    crate::doors::openai::dispatch(outgoing, state, client, journal).await
}

/// A chat body as it goes upstream, and what was read of it.
struct Prepared {
    body: Bytes,
    facts: ChatFacts,
    model: Option<Arc<str>>,
    model_slot: ModelSlot,
}

/// Reads a chat completion once for routing, and repairs its tool-call history if it must.
/// A history that needs no repair keeps the client's bytes exactly.
fn prepare_chat(body: Bytes, state: &AppState) -> Result<Prepared, ProxyError> {
    let reading = state.dispatcher.routing.reading(body.len());
    let view = ChatView::read(&body, reading).map_err(|e| ProxyError::InvalidBody(e.to_string()))?;
    let (facts, model, model_slot) = (view.facts, view.model.as_deref().map(Arc::from), view.model_slot.clone());
    if !needs_repair(&view.messages) {
        return Ok(Prepared { body, facts, model, model_slot });
    }
    let spliced = match repaired_body(&body, &view.messages, state.max_body_bytes) {
        Ok(spliced) => spliced,
        Err(SpliceError::TooLarge(limit)) => return Err(ProxyError::RepairTooLarge { limit }),
        // Not expected: the body read the same way twice. The provider judges it as it came.
        Err(SpliceError::Unreadable(error)) => {
            log::warn!("event=tool_call_repair_skipped error={error}");
            return Ok(Prepared { body, facts, model, model_slot });
        }
    };
    let Repairs { inserted, removed } = spliced.repairs;
    log::info!("event=tool_calls_repaired inserted={inserted} removed={removed}");
    state.dispatcher.router.do_send(ProviderEvent::Repaired(spliced.repairs));
    let model_slot = model_slot.moved(&spliced.replaced, spliced.new_len);
    Ok(Prepared { body: spliced.body, facts, model, model_slot })
}
