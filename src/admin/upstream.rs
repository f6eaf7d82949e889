//! The admin API's providers: their keys' states, a key's reset, the keys file's reload, and
//! the model ids they have retired.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{allowed, failure, proxy_error};
use crate::actors::key_rotator::{GetStatus, Lift};
use crate::actors::keys_file::{Reload, ReloadError};
use crate::actors::model_watch::GetModels;
use crate::actors::supervision::ask;
use crate::error::ProxyError;
use crate::state::AppState;

/// `GET /admin/upstream-keys`: each provider's keys, by name, with their state, cooldown and
/// counts, never a key's value.
pub async fn keys(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Some(refused) = allowed(&request, &state) {
        return refused;
    }
    let mut providers = serde_json::Map::new();
    for pool in &state.dispatcher.pools {
        match ask(&pool.rotator, GetStatus).await {
            Ok(status) => {
                let status = serde_json::to_value(status).unwrap_or_default();
                providers.insert(pool.provider.id.name().to_owned(), status);
            }
            Err(error) => return proxy_error(error),
        }
    }
    HttpResponse::Ok().json(json!({ "providers": providers }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Which {
    /// The provider whose key it is; Cerebras (the first) when not given.
    provider: Option<String>,
}

/// `POST /admin/upstream-keys/{name}/reset[?provider=NAME]`: the key's rest or rejection ends,
/// here and, with Redis, on every replica.
pub async fn reset(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Some(refused) = allowed(&request, &state) {
        return refused;
    }
    let which = match web::Query::<Which>::from_query(request.query_string()) {
        Ok(which) => which.into_inner(),
        Err(error) => return failure(StatusCode::BAD_REQUEST, "invalid_request", &error.to_string()),
    };
    let pools = &state.dispatcher.pools;
    let pool = match &which.provider {
        None => pools.first(),
        Some(name) => pools.iter().find(|pool| pool.provider.id.name() == name),
    };
    let Some(pool) = pool else {
        return failure(StatusCode::NOT_FOUND, "provider_not_found", "no configured provider has this name");
    };
    let name = request.match_info().get("name").unwrap_or_default().to_owned();
    match ask(&pool.rotator, Lift(name.clone())).await {
        Ok(Some(rested)) => HttpResponse::Ok().json(json!({
            "provider": pool.provider.id.name(),
            "key": name,
            "was_resting": rested,
            "state": "available",
        })),
        Ok(None) => failure(StatusCode::NOT_FOUND, "upstream_key_not_found", "the provider has no key of this name"),
        Err(error) => proxy_error(error),
    }
}

/// `POST /admin/upstream-keys/reload`: `CEREBRAS_API_KEYS_FILE` read again, and with Redis
/// on every replica; what changed, by key name.
pub async fn reload(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Some(refused) = allowed(&request, &state) {
        return refused;
    }
    let Some(keys_file) = &state.keys_file else {
        let message = "the Cerebras keys are not from a file: set CEREBRAS_API_KEYS_FILE to reload them";
        return failure(StatusCode::NOT_FOUND, "keys_file_off", message);
    };
    match keys_file.send(Reload { announce: true }).await {
        Ok(Ok(replaced)) => HttpResponse::Ok().json(replaced),
        Ok(Err(ReloadError::Broken(problem))) => {
            failure(StatusCode::BAD_REQUEST, "invalid_keys_file", &format!("{problem}; the keys in use are unchanged"))
        }
        Ok(Err(ReloadError::Gone)) => proxy_error(ProxyError::ActorUnavailable("key rotator")),
        Err(_) => proxy_error(ProxyError::ActorUnavailable("keys file")),
    }
}

/// `GET /admin/models`: per provider, every id the proxy sends it (with the public models it
/// serves), which are stale and why, and what the last read of its `GET /models` found.
pub async fn models(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Some(refused) = allowed(&request, &state) {
        return refused;
    }
    match ask(&state.dispatcher.models, GetModels).await {
        Ok(watched) => {
            let providers: serde_json::Map<String, serde_json::Value> = watched
                .into_iter()
                .map(|view| (view.provider.to_owned(), serde_json::to_value(view).unwrap_or_default()))
                .collect();
            HttpResponse::Ok().json(json!({ "providers": providers }))
        }
        Err(error) => proxy_error(error),
    }
}
