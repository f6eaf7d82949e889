//! Every route but `/_status` and `/health`: read and check the request, then dispatch it.

use actix_web::http::header::{self, HeaderMap};
use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde_json::{Map, Value};

use crate::actors::upstream_router::ProviderEvent;
use crate::transform::token_estimate::inspect;
use crate::transform::tool_repair::repair;

use crate::dispatch::{ChatRequest, Outgoing};
use crate::error::ProxyError;
use crate::server::AppState;
use crate::upstream::headers::upstream_request_headers;

pub async fn forward(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
) -> Result<HttpResponse, ProxyError> {
    if let Some(auth) = &state.auth {
        let client = auth.admit(request.headers()).await?;
        log::debug!("event=admitted client={client}");
    }
    let body = read_body(payload, request.headers(), state.max_body_bytes).await?;
    let path = upstream_path(request.path());
    let (body, chat) = if request.method() == Method::POST && path == "/chat/completions" {
        let (body, chat) = prepare_chat(body, &state)?;
        (body, Some(chat))
    } else {
        (body, None)
    };
    let path_and_query = match request.query_string() {
        "" => path.to_owned(),
        query => format!("{path}?{query}"),
    };
    let outgoing = Outgoing {
        method: request.method().clone(),
        path_and_query,
        headers: upstream_request_headers(request.headers()),
        body,
        chat,
    };
    state.dispatcher.dispatch(&client, outgoing).await
}

/// The path below the provider's base URL: a leading `/v1` segment is dropped, since base
/// URLs already end in their version.
fn upstream_path(path: &str) -> &str {
    match path.strip_prefix("/v1") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        _ => path,
    }
}

/// Reads the whole body (attempts may resend it), refusing more than `limit` bytes.
async fn read_body(mut payload: web::Payload, headers: &HeaderMap, limit: usize) -> Result<Bytes, ProxyError> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(ProxyError::PayloadTooLarge { limit });
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ProxyError::PayloadRead(e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(ProxyError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Parses a chat completion once, measures it for routing and repairs its tool-call history.
/// A history that needs no repair keeps the client's bytes exactly.
fn prepare_chat(body: Bytes, state: &AppState) -> Result<(Bytes, ChatRequest), ProxyError> {
    let mut chat = parse_chat_body(&body)?;
    let facts = inspect(&chat);
    let repaired = match chat.get("messages") {
        Some(Value::Array(messages)) => repair(messages),
        _ => None,
    };
    let Some((messages, repairs)) = repaired else {
        return Ok((body, ChatRequest { body: chat, facts }));
    };
    log::info!("event=tool_calls_repaired inserted={} removed={}", repairs.inserted, repairs.removed);
    state.dispatcher.router.do_send(ProviderEvent::Repaired(repairs));
    chat.insert("messages".to_owned(), Value::Array(messages));
    let body = serde_json::to_vec(&chat).map_err(|e| ProxyError::InvalidBody(e.to_string()))?;
    Ok((Bytes::from(body), ChatRequest { body: chat, facts }))
}

/// A chat completion must be a JSON object; anything else is the client's error, said now.
fn parse_chat_body(body: &[u8]) -> Result<Map<String, Value>, ProxyError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(chat)) => Ok(chat),
        Ok(_) => Err(ProxyError::InvalidBody("request body must be a JSON object".to_owned())),
        Err(e) => Err(ProxyError::InvalidBody(format!("request body is not valid JSON: {e}"))),
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

    #[test]
    fn chat_bodies_must_be_json_objects() {
        assert!(parse_chat_body(br#"{"model":"m","messages":[]}"#).is_ok());
        assert!(parse_chat_body(b"[1,2]").is_err());
        assert!(parse_chat_body(b"").is_err());
        assert!(parse_chat_body(b"{\"model\":").is_err());
    }
}
