//! The Anthropic door: `POST /v1/messages` and `/v1/messages/count_tokens`, Anthropic's
//! Messages API. A request is translated into a chat completion (`request`) and goes through
//! the same pipeline as every chat completion: auth, routing, key rotation, failover, repair,
//! logs and metrics, which all see the OpenAI side. The reply is rendered back here: a message
//! (`message`), a stream of Anthropic events (`events`), or an Anthropic error (`error`).

pub mod error;
pub mod events;
pub mod message;
pub mod request;

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use self::request::{to_chat, Asked};
use super::events::EventStream;
use super::{serve, Door, Failure};
use crate::dispatch::reply::Reply;
use crate::error::ProxyError;
use crate::handlers::exchange::{fit_to_version, Exchange};
use crate::handlers::rate_headers::{self, Style};
use crate::handlers::receive::{off_the_worker, receive};
use crate::request_id;
use crate::state::AppState;
use crate::transform::chat_view::{ChatView, Reading};
use crate::wire::chat::Completion;

/// The id Anthropic's SDKs read from a response.
const REQUEST_ID: HeaderName = HeaderName::from_static("request-id");

pub struct Anthropic;

impl Door for Anthropic {
    type Asked = Asked;
    type Dialect = events::Anthropic;
    const RATE_HEADERS: Style = Style::Anthropic;

    fn to_chat(body: &[u8]) -> Result<(Vec<u8>, Asked), ProxyError> {
        to_chat(body).map_err(|e| ProxyError::InvalidBody(e.to_string()))
    }

    fn streams(asked: &Asked) -> bool {
        asked.stream
    }

    fn whole(completion: Completion, id: &str, asked: Asked) -> Vec<u8> {
        // A message of plain fields always serialises.
        serde_json::to_vec(&message::to_message(completion, id, &asked)).unwrap_or_default()
    }

    /// Anthropic's events repeat nothing: nothing is kept.
    fn events(id: String, asked: Asked, _keep: usize) -> EventStream<events::Anthropic> {
        events::stream(id, asked)
    }

    fn error(failure: &Failure) -> (StatusCode, Value) {
        let (status, body) = error::of(failure);
        (StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY), body)
    }
}

pub async fn messages(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
) -> HttpResponse {
    let id = request_id::of(&request);
    let response = serve::serve::<Anthropic>(&request, payload, state, client, format!("msg_{id}")).await;
    // The translated stream is a new body: it too goes close-delimited to an HTTP/1.0 client.
    let response = rate_headers::add(&request, response, Style::Anthropic);
    with_request_id(fit_to_version(&request, response), &id)
}

/// Anything else under the Messages routes, in Anthropic's shape: another method (405), or a
/// path the proxy does not serve (404).
pub async fn not_allowed(request: HttpRequest) -> HttpResponse {
    if request.method() == actix_web::http::Method::POST {
        let message = format!("{} is not served here", request.path());
        return HttpResponse::NotFound().json(error::body("not_found_error", &message));
    }
    let message = format!("{} is not allowed here: the Messages API takes POST", request.method());
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, "POST"))
        .json(error::body("invalid_request_error", &message))
}

/// `POST /v1/messages/count_tokens`: the proxy's own estimate, as routing makes it
/// (`CHARS_PER_TOKEN`); it never goes upstream.
pub async fn count_tokens(request: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> HttpResponse {
    let id = request_id::of(&request);
    let mut exchange = Exchange::begin(&state, Style::Anthropic);
    let outcome = match receive(&request, payload, &state, &mut exchange.journal).await {
        Ok((body, _permit)) => {
            let chars_per_token = state.dispatcher.routing.chars_per_token;
            off_the_worker(body, move |body| estimate(&body, chars_per_token))
                .await
                .and_then(|estimated| estimated)
                .map(|tokens| Reply::json(&json!({ "input_tokens": tokens })))
        }
        Err(error) => Err(error),
    };
    let response = match exchange.end(&request, outcome, &state) {
        Ok(reply) => reply.into_response(),
        Err(error) => serve::error_response::<Anthropic>(&Failure::Proxy(error), None),
    };
    with_request_id(rate_headers::add(&request, response, Style::Anthropic), &id)
}

fn estimate(body: &[u8], chars_per_token: f64) -> Result<u64, ProxyError> {
    let invalid = |e: &dyn std::fmt::Display| ProxyError::InvalidBody(e.to_string());
    let (chat, _) = to_chat(body).map_err(|e| invalid(&e))?;
    let view = ChatView::read(&chat, Reading::EVERYTHING).map_err(|e| invalid(&e))?;
    Ok(view.facts.estimated_tokens(chars_per_token).ceil() as u64)
}

/// Anthropic's SDKs read a response's id from `request-id`.
fn with_request_id(mut response: HttpResponse, id: &str) -> HttpResponse {
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}
