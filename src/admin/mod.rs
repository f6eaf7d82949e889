//! The admin API under `/admin/`, JSON in and out, for operators without a shell in the
//! container: client keys (what the `keys` CLI does, through the same code) and the Cerebras
//! pools as the rotators see them: their keys' states, a key's reset, the keys file's reload.
//!
//! Off unless `ADMIN_TOKEN` (or `ADMIN_TOKEN_FILE`) is set: then every `/admin/` path answers
//! 404, as if it did not exist. On, a request without `Authorization: Bearer <token>` gets 401.
//! The token is compared by digest, in constant time, and never logged, counted or echoed.

mod keys;
mod upstream;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

use crate::error::{error_body, ProxyError};
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

/// Every route, under `/admin`.
pub fn routes() -> actix_web::Scope {
    web::scope("/admin")
        .route("/keys", web::get().to(keys::list))
        .route("/keys", web::post().to(keys::add))
        .route("/keys/{id}", web::patch().to(keys::change))
        .route("/keys/{id}/revoke", web::post().to(keys::revoke))
        .route("/keys/{id}/enable", web::post().to(keys::enable))
        .route("/usage", web::get().to(keys::usage))
        .route("/upstream-keys", web::get().to(upstream::keys))
        .route("/upstream-keys/reload", web::post().to(upstream::reload))
        .route("/upstream-keys/{name}/reset", web::post().to(upstream::reset))
        .default_service(web::to(not_found))
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

async fn not_found(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    match allowed(&request, &state) {
        Some(refused) => refused,
        None => failure(StatusCode::NOT_FOUND, "not_found", "no such admin route (see README: Admin API)"),
    }
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
