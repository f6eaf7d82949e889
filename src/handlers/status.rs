//! `GET /_status` (the seed's monitoring shape, plus extra fields) and `GET /health`.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::json;

use crate::actors::key_rotator::GetStatus;
use crate::actors::supervision::ask;
use crate::error::ProxyError;
use crate::key_pool::KeyStatus;
use crate::server::AppState;

#[derive(Serialize)]
struct StatusBody {
    keys: Vec<KeyStatus>,
    current_key: std::sync::Arc<str>,
    requests_waiting_for_key: usize,
    uptime_seconds: u64,
}

pub async fn status(state: web::Data<AppState>) -> Result<HttpResponse, ProxyError> {
    let rotator = ask(&state.dispatcher.rotator, GetStatus).await?;
    Ok(HttpResponse::Ok().json(StatusBody {
        keys: rotator.keys,
        current_key: rotator.current_key,
        requests_waiting_for_key: rotator.requests_waiting_for_key,
        uptime_seconds: state.started.elapsed().as_secs(),
    }))
}

/// Liveness for container health checks: cheap, and 503 if the key rotator is gone.
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    if state.dispatcher.rotator.connected() {
        HttpResponse::Ok().json(json!({ "status": "ok" }))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({ "status": "unavailable" }))
    }
}
