//! The Responses door: `POST /v1/responses`, OpenAI's Responses API, which Codex CLI speaks. A
//! request is translated into a chat completion (`request`, its tools by `tools`) and goes
//! through the same pipeline as every chat completion: auth, catalogue, routing, key
//! rotation, failover, repair, logs and metrics, which all see the OpenAI chat side. The reply
//! is rendered back here: a `response` object (`response`), a stream of Responses events
//! (`events`), or an error in OpenAI's shape. Nothing is stored.

pub mod events;
pub mod request;
pub mod response;
pub mod tools;

use actix_web::http::header;
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use self::request::Asked;
use super::events::EventStream;
use super::{serve, Door, Failure};
use crate::error::{error_body, ProxyError};
use crate::handlers::exchange::fit_to_version;
use crate::handlers::rate_headers::{self, Style};
use crate::request_id;
use crate::state::AppState;
use crate::wire::chat::Completion;

pub struct Responses;

impl Door for Responses {
    type Asked = Asked;
    type Dialect = events::Responses;
    const RATE_HEADERS: Style = Style::OpenAi;

    fn to_chat(body: &[u8]) -> Result<(Vec<u8>, Asked), ProxyError> {
        request::to_chat(body)
    }

    fn streams(asked: &Asked) -> bool {
        asked.stream
    }

    /// The stream's own translation, its events left unwritten: one mapping for both answers.
    fn whole(completion: Completion, id: &str, asked: Asked) -> Vec<u8> {
        // The completion was read within MAX_BODY_BYTES already.
        let mut stream = events::quiet(id.to_owned(), asked);
        stream.whole(completion);
        stream.into_dialect().into_response()
    }

    fn events(id: String, asked: Asked, keep: usize) -> EventStream<events::Responses> {
        events::stream(id, asked, keep)
    }

    fn error(failure: &Failure) -> (StatusCode, Value) {
        response::error(failure)
    }
}

pub async fn responses(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
) -> HttpResponse {
    let id = format!("resp_{}", request_id::of(&request));
    let response = serve::serve::<Responses>(&request, payload, state, client, id).await;
    // The translated stream is a new body: it too goes close-delimited to an HTTP/1.0 client.
    fit_to_version(&request, rate_headers::add(&request, response, Style::OpenAi))
}

/// Anything else under the Responses routes, in OpenAI's shape: a stored response asked for
/// (404: nothing is stored), another method (405), or another path (404).
pub async fn not_served(request: HttpRequest) -> HttpResponse {
    let at_root = matches!(request.path().trim_end_matches('/'), "/v1/responses" | "/responses");
    if at_root && request.method() != Method::POST {
        let message = format!("{} is not allowed here: the Responses API takes POST", request.method());
        return HttpResponse::MethodNotAllowed().insert_header((header::ALLOW, "POST")).json(error_body(
            &message,
            "invalid_request_error",
            "method_not_allowed",
        ));
    }
    let message = format!(
        "{} {} is not served here: glm-proxy stores no responses; each request carries its whole input",
        request.method(),
        request.path()
    );
    HttpResponse::NotFound().json(error_body(&message, "invalid_request_error", "not_found"))
}
