//! `GET /_status` (the seed's monitoring shape, plus extra fields), `GET /health` and
//! `GET /metrics`: the routes that need no client key.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::json;

use crate::actors::key_rotator::GetStatus;
use crate::actors::key_sync::{GetSyncStatus, SyncStatus};
use crate::actors::limit_sync::{GetLimitSyncStatus, LimitSyncStatus};
use crate::actors::model_watch::GetModels;
use crate::actors::supervision::ask;
use crate::actors::upstream_router::{GetRoutingStatus, RoutingStatus};
use crate::error::ProxyError;
use crate::policy::key_pool::KeyStatus;
use crate::state::AppState;

/// The seed's fields (`keys`, `current_key`, `requests_waiting_for_key`) are Cerebras';
/// every provider's pool is under `providers`.
#[derive(Serialize)]
struct StatusBody {
    keys: Vec<KeyStatus>,
    current_key: std::sync::Arc<str>,
    requests_waiting_for_key: usize,
    uptime_seconds: u64,
    /// Request log records dropped because the writer could not keep up.
    log_records_dropped: u64,
    #[serde(flatten)]
    routing: RoutingStatus,
    /// The model catalogue as configured; `null` without one.
    catalogue: Option<serde_json::Value>,
    /// Redis, where replicas share key state; `null` without `REDIS_URL`.
    redis: Option<SyncStatus>,
    /// Whether client keys' limits hold over every replica (`all_replicas`) or, Redis being
    /// away, over each one's own traffic (`this_replica`); `null` without Redis and client keys.
    client_limits: Option<LimitSyncStatus>,
}

pub async fn status(state: web::Data<AppState>) -> Result<HttpResponse, ProxyError> {
    let dispatcher = &state.dispatcher;
    let mut routing = ask(&dispatcher.router, GetRoutingStatus).await?;
    let mut primary = None;
    for pool in &dispatcher.pools {
        let pool_status = ask(&pool.rotator, GetStatus).await?;
        primary.get_or_insert_with(|| pool_status.clone());
        if let Some(counts) = routing.providers.get_mut(pool.provider.id.name()) {
            counts.pool = Some(pool_status);
        }
    }
    let primary = primary.ok_or(ProxyError::ActorUnavailable("key rotator"))?;
    // The model watch restarting leaves the lists empty for a moment; the status still answers.
    for watched in ask(&dispatcher.models, GetModels).await.unwrap_or_default() {
        if let Some(counts) = routing.providers.get_mut(watched.provider) {
            counts.stale_models = watched.stale_models;
        }
    }
    let mut redis: Option<SyncStatus> = None;
    for sync in &state.key_syncs {
        let one = sync.send(GetSyncStatus).await.map_err(|_| ProxyError::ActorUnavailable("key sync"))?;
        redis = Some(match redis {
            // The first is Cerebras': its counts are the seed's; the others add their errors.
            None => one,
            Some(all) => all.and(one),
        });
    }
    let client_limits = match &state.limit_sync {
        Some(sync) => {
            Some(sync.send(GetLimitSyncStatus).await.map_err(|_| ProxyError::ActorUnavailable("limit sync"))?)
        }
        None => None,
    };
    Ok(HttpResponse::Ok().json(StatusBody {
        keys: primary.keys,
        current_key: primary.current_key,
        requests_waiting_for_key: primary.requests_waiting_for_key,
        uptime_seconds: state.started.elapsed().as_secs(),
        log_records_dropped: state.logs.as_ref().map_or(0, |logs| logs.dropped()),
        routing,
        catalogue: dispatcher.catalogue.as_ref().map(|catalogue| catalogue.status()),
        redis,
        client_limits,
    }))
}

/// Liveness for container health checks: cheap, and 503 if an actor is gone.
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let rotators = state.dispatcher.pools.iter().all(|pool| pool.rotator.connected());
    if rotators && state.dispatcher.router.connected() {
        HttpResponse::Ok().json(json!({ "status": "ok" }))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({ "status": "unavailable" }))
    }
}

/// Prometheus metrics in the text exposition format.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    match state.metrics.render() {
        Ok(text) => HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(text),
        Err(error) => {
            log::error!("event=metrics_failed error={error}");
            HttpResponse::InternalServerError().finish()
        }
    }
}
