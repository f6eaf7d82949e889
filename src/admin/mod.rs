//! The admin API under `/admin/`, JSON in and out, for operators without a shell in the
//! container: client keys (what the `keys` CLI does, through the same code) and the Cerebras
//! pools as the rotators see them: their keys' states, a key's reset, the keys file's reload;
//! and the model ids providers have retired.
//!
//! Off unless `ADMIN_TOKEN` (or `ADMIN_TOKEN_FILE`) is set: then every `/admin/` path answers
//! 404, as if it did not exist. On, a request without `Authorization: Bearer <token>` gets 401.
//! The token is compared by digest, in constant time, and never logged, counted or echoed.

mod keys;
mod upstream;

use actix_web::dev::ResourceDef;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, Route};
use sha2::{Digest, Sha256};

use crate::error::{error_body, ProxyError};
use crate::metrics::timeline::SECONDS;
use crate::secret::Secret;
use crate::state::AppState;

/// The admin token, as its digest: a comparison of digests takes the same time whatever the
/// presented token shares with it.
pub struct AdminToken([u8; 32]);

impl AdminToken {
    pub fn new(token: &Secret) -> Self {
        Self(Sha256::digest(token.expose().as_bytes()).into())
    }

    fn admits(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        digest.iter().zip(&self.0).fold(0u8, |differ, (a, b)| differ | (a ^ b)) == 0
    }
}

/// Every route under `/admin`: method, path (as `openapi.json` writes it) and handler.
fn table() -> Vec<(Method, &'static str, Route)> {
    vec![
        (Method::GET, "/keys", web::get().to(keys::list)),
        (Method::POST, "/keys", web::post().to(keys::add)),
        (Method::PATCH, "/keys/{id}", web::patch().to(keys::change)),
        (Method::POST, "/keys/{id}/revoke", web::post().to(keys::revoke)),
        (Method::POST, "/keys/{id}/enable", web::post().to(keys::enable)),
        (Method::GET, "/usage", web::get().to(keys::usage)),
        (Method::GET, "/upstream-keys", web::get().to(upstream::keys)),
        (Method::POST, "/upstream-keys/reload", web::post().to(upstream::reload)),
        (Method::POST, "/upstream-keys/{name}/reset", web::post().to(upstream::reset)),
        (Method::GET, "/models", web::get().to(upstream::models)),
        (Method::GET, "/timeline", web::get().to(timeline)),
        (Method::GET, "/openapi.json", web::get().to(openapi)),
    ]
}

pub fn routes() -> actix_web::Scope {
    let scope = table().into_iter().fold(web::scope("/admin"), |scope, (_, path, route)| scope.route(path, route));
    scope.default_service(web::to(not_found))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TimelineQuery {
    seconds: Option<usize>,
}

/// `GET /admin/timeline[?seconds=N]`: the last N seconds (900, 15 minutes, at most and by
/// default), one value per second: answers by provider, upstream 429s, failovers, time to first
/// byte; and the client keys being limited now.
async fn timeline(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Some(refused) = allowed(&request, &state) {
        return refused;
    }
    let seconds = match web::Query::<TimelineQuery>::from_query(request.query_string()) {
        Ok(query) => match query.seconds {
            None => SECONDS,
            Some(seconds @ 1..=SECONDS) => seconds,
            Some(_) => return failure(StatusCode::BAD_REQUEST, "invalid_request", "seconds must be from 1 to 900"),
        },
        Err(error) => return failure(StatusCode::BAD_REQUEST, "invalid_request", &error.to_string()),
    };
    HttpResponse::Ok().json(state.metrics.timeline.view(seconds, std::time::Instant::now()))
}

/// This API, as an OpenAPI 3.1 document.
const OPENAPI: &str = include_str!("openapi.json");

async fn openapi(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Some(refused) = allowed(&request, &state) {
        return refused;
    }
    HttpResponse::Ok().content_type("application/json").body(OPENAPI)
}

/// An admin error, in the OpenAI shape the rest of the proxy answers with.
fn failure(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    let kind = match status {
        StatusCode::UNAUTHORIZED => "authentication_error",
        StatusCode::NOT_FOUND => "not_found_error",
        _ => "invalid_request_error",
    };
    HttpResponse::build(status).json(error_body(message, kind, code))
}

/// No route for the method and path: 405 with `Allow` when the path has other methods, else 404.
async fn not_found(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Some(refused) = allowed(&request, &state) {
        return refused;
    }
    let path = request.path().strip_prefix("/admin").unwrap_or_default();
    let methods: Vec<String> = table()
        .into_iter()
        .filter(|(_, pattern, _)| ResourceDef::new(*pattern).is_match(path))
        .map(|(method, _, _)| method.to_string())
        .collect();
    if methods.is_empty() {
        return failure(StatusCode::NOT_FOUND, "not_found", "no such admin route (see README: Admin API)");
    }
    let allow = methods.join(", ");
    let mut refused =
        failure(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", &format!("this route takes {allow}"));
    if let Ok(value) = HeaderValue::from_str(&allow) {
        refused.headers_mut().insert(header::ALLOW, value);
    }
    refused
}

/// The answer to a request that may not use the admin API; `None` if it may.
fn allowed(request: &HttpRequest, state: &AppState) -> Option<HttpResponse> {
    let Some(token) = &state.admin_token else {
        return Some(failure(StatusCode::NOT_FOUND, "not_found", "not found"));
    };
    let presented = request.headers().get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    match presented.and_then(|value| value.strip_prefix("Bearer ")) {
        Some(presented) if token.admits(presented.trim()) => None,
        _ => {
            let mut refused = failure(
                StatusCode::UNAUTHORIZED,
                "invalid_admin_token",
                "this needs Authorization: Bearer <ADMIN_TOKEN>",
            );
            refused.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            Some(refused)
        }
    }
}

/// An error of the proxy's own (an actor gone), as it renders everywhere.
fn proxy_error(error: ProxyError) -> HttpResponse {
    actix_web::ResponseError::error_response(&error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_describes_every_route_and_only_those() {
        let document: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(document["openapi"], "3.1.0");
        let mut documented: Vec<(String, String)> = document["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, operations)| {
                operations.as_object().unwrap().keys().map(move |method| (method.to_uppercase(), path.clone()))
            })
            .collect();
        let mut routed: Vec<(String, String)> =
            table().into_iter().map(|(method, path, _)| (method.to_string(), format!("/admin{path}"))).collect();
        documented.sort();
        routed.sort();
        assert_eq!(documented, routed);
    }
}
