//! The OpenAI front door, every route but the proxy's own and the other doors': read and check
//! the request, dispatch it, and relay the reply as it is, since the providers speak OpenAI's
//! API already. The proxy's own errors are OpenAI's error shape.

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

use crate::dispatch::reply::Reply;
use crate::dispatch::Outgoing;
use crate::error::ProxyError;
use crate::handlers::chat::send_chat;
use crate::handlers::exchange::{fit_to_version, Exchange, Journal};
use crate::handlers::rate_headers::{self, Style};
use crate::handlers::receive::receive;
use crate::state::AppState;
use crate::upstream::headers::upstream_request_headers;

pub async fn forward(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
) -> HttpResponse {
    let mut exchange = Exchange::begin(&state, Style::OpenAi);
    let outcome = proxy(&request, payload, &state, &client, &mut exchange.journal).await;
    respond(&request, exchange.end(&request, outcome, &state))
}

/// The client's response in this door's dialect: the reply as it is, or the error as OpenAI's.
pub fn respond(request: &HttpRequest, outcome: Result<Reply, ProxyError>) -> HttpResponse {
    let response = match outcome {
        Ok(reply) => reply.into_response(),
        Err(error) => error.error_response(),
    };
    fit_to_version(request, rate_headers::add(request, response, Style::OpenAi))
}

async fn proxy(
    request: &HttpRequest,
    payload: web::Payload,
    state: &web::Data<AppState>,
    client: &awc::Client,
    journal: &mut Journal,
) -> Result<Reply, ProxyError> {
    // The body's share of the budget is held until the request is done with the body.
    let (body, _budget) = receive(request, payload, state, journal).await?;
    let path = upstream_path(request.path());
    let path_and_query = match request.query_string() {
        "" => path.to_owned(),
        query => format!("{path}?{query}"),
    };
    if request.method() == Method::POST && path == "/chat/completions" {
        return send_chat(request.headers(), body, path_and_query, state, client, journal).await;
    }
    let outgoing = Outgoing {
        method: request.method().clone(),
        path_and_query,
        headers: upstream_request_headers(request.headers()),
        body,
        chat: None,
        model: None,
        client: journal.client.clone(),
    };
    dispatch(outgoing, state, client, journal).await
}

/// Sends the request through its plan, and notes in the journal who answered.
pub async fn dispatch(
    outgoing: Outgoing,
    state: &AppState,
    client: &awc::Client,
    journal: &mut Journal,
) -> Result<Reply, ProxyError> {
    let dispatched = state.dispatcher.dispatch(client, outgoing).await;
    journal.attempts = dispatched.attempts;
    journal.served_by = dispatched.served_by;
    dispatched.result
}

/// The path below the provider's base URL: a leading `/v1` segment is dropped, since base
/// URLs already end in their version.
pub fn upstream_path(path: &str) -> &str {
    match path.strip_prefix("/v1") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        _ => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leading_v1_segment_is_dropped_and_nothing_else() {
        assert_eq!(upstream_path("/v1/chat/completions"), "/chat/completions");
        assert_eq!(upstream_path("/chat/completions"), "/chat/completions");
        assert_eq!(upstream_path("/v1/models"), "/models");
        assert_eq!(upstream_path("/v1"), "");
        assert_eq!(upstream_path("/v1beta/models"), "/v1beta/models");
    }
}
