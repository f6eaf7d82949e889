//! Builds the actors and the HTTP server from a `Config`; used by `main` and by tests alike.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Addr, Arbiter, Supervisor, SyncArbiter};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use arc_swap::ArcSwap;

use crate::actors::auth::AuthActor;
use crate::actors::key_rotator::{ClearRejections, CurrentKey, KeyRotator};
use crate::actors::key_sync::{Attach, AttachReloader, KeySync};
use crate::actors::keys_file::{KeysFile, Reload};
use crate::actors::limit_sync::LimitSync;
use crate::actors::logger::{Flush, LogFiles, LoggerActor};
use crate::actors::model_watch::{ModelWatch, Watched};
use crate::actors::upstream_router::{Health, UpstreamRouter};
use crate::admin::{self, AdminToken};
use crate::auth::gate::AuthGate;
use crate::auth::limit_link::LimitLink;
use crate::body_budget::BodyBudget;
use crate::catalogue::Catalogue;
use crate::config::{Config, ConfigError};
use crate::dashboard;
use crate::db::{self, DbError};
use crate::dispatch::{Dispatcher, Pool};
use crate::doors::{anthropic, openai, responses};
use crate::handlers::{models, status};
use crate::logging::sink::{LogQueue, LogSink};
use crate::metrics::{Metrics, Preset};
use crate::policy::circuit::CircuitView;
use crate::policy::key_pool::Cooldowns;
use crate::policy::routing::{Route, RoutingPolicy};
use crate::preflight;
use crate::providers::Provider;
use crate::request_id;
use crate::state::AppState;
use crate::upstream::client;

/// Problems that stop the proxy from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("cannot set up metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot listen on {address}: {source}")]
    Bind { address: String, source: std::io::Error },
    #[error("the server stopped with an error: {0}")]
    Serve(std::io::Error),
}

/// A started proxy: where it listens, and the server to await (or stop).
pub struct Running {
    pub addrs: Vec<SocketAddr>,
    pub server: actix_web::dev::Server,
    auth: Option<Arc<AuthGate>>,
    logs: Option<Arc<LogSink>>,
}

impl Running {
    /// Serves until the server stops (SIGTERM, SIGINT), then flushes pending usage counts.
    pub async fn serve(self) -> std::io::Result<()> {
        let served = self.server.await;
        if let Some(auth) = &self.auth {
            auth.sync().await;
            log::info!("event=usage_flushed");
        }
        if let Some(logs) = &self.logs {
            // The mailbox is FIFO: once this is answered, every record queued before it is written.
            let _ = logs.logger().send(Flush).await;
            log::info!("event=logs_flushed dropped={}", logs.dropped());
        }
        log::info!("event=stopped");
        served
    }
}

/// Starts the request logger on a thread of its own, when logging is on.
fn start_logs(config: &Config, metrics: &Metrics) -> Option<Arc<LogSink>> {
    if !config.log_requests {
        log::info!("event=config request_logs=off");
        return None;
    }
    log::info!(
        "event=config request_logs=on log_dir={} retention_days={} bodies={}",
        config.log_dir.display(),
        config.log_retention_days,
        config.log_limits.bodies
    );
    let files = LogFiles {
        dir: config.log_dir.clone(),
        retention_days: config.log_retention_days,
        max_day_bytes: config.log_limits.max_day_bytes,
        bodies: config.log_limits.bodies,
    };
    let limits = &config.log_limits;
    let queue =
        Arc::new(LogQueue::new(config.log_queue_capacity, limits.max_queue_bytes, metrics.log_queue_bytes.clone()));
    let (draining, omitted) = (queue.clone(), metrics.log_bodies_omitted.clone());
    let logger = Supervisor::start_in_arbiter(&Arbiter::new().handle(), move |_| {
        LoggerActor::new(files.clone(), draining.clone(), omitted.clone())
    });
    // Without bodies, none is even copied.
    let body_limit = if limits.bodies { limits.max_body_bytes } else { 0 };
    Some(Arc::new(LogSink::new(logger, queue, metrics.log_records_dropped.clone(), body_limit)))
}

/// With `REDIS_URL`, the actor that shares `provider`'s key state with the other replicas.
/// Cerebras' names on Redis are the prefix's own, as before providers were pools; every other
/// provider's are under `prefix:name`.
fn start_key_sync(
    config: &Config,
    provider: &Provider,
    metrics: &Metrics,
) -> Result<Option<Addr<KeySync>>, StartError> {
    let Some(url) = &config.redis_url else {
        return Ok(None);
    };
    let prefix = match provider.id.index() {
        0 => config.redis_prefix.clone(),
        _ => format!("{}:{}", config.redis_prefix, provider.id.name()),
    };
    let keys: Vec<(&str, &str)> = provider.keys.iter().map(|key| (key.name.as_str(), key.secret.expose())).collect();
    let sync = KeySync::new(url, &prefix, &keys, metrics.redis_errors.clone(), metrics.redis_up.clone())
        .map_err(|error| ConfigError::new("REDIS_URL", format!("is not usable: {error}")))?;
    Ok(Some(Actor::start(sync)))
}

/// One provider's pool: its rotator (sharing on Redis with `REDIS_URL`) and published key.
fn start_pool(
    config: &Config,
    provider: &Provider,
    metrics: &Arc<Metrics>,
) -> Result<(Pool, Option<Addr<KeySync>>), StartError> {
    let cooldowns =
        Cooldowns { rate_limited: config.cooldown, rejected: config.invalid_key_cooldown, max: config.max_cooldown };
    let names: Vec<&str> = provider.keys.iter().map(|k| k.name.as_str()).collect();
    log::info!(
        "event=config provider={} keys={} names={} base_url={}",
        provider.id.name(),
        names.len(),
        names.join(","),
        provider.base_url
    );
    let current = CurrentKey::default();
    let key_sync = start_key_sync(config, provider, metrics)?;
    let (id, keys, published, rotator_metrics) = (provider.id, provider.keys.clone(), current.clone(), metrics.clone());
    let (max_waiting, shared) = (config.max_waiting_requests, key_sync.clone().map(Addr::recipient));
    let rotator = Supervisor::start(move |_| {
        KeyRotator::new(id, keys, cooldowns, max_waiting, rotator_metrics, published).sharing(shared)
    });
    if let Some(sync) = &key_sync {
        sync.do_send(Attach(rotator.clone().recipient()));
    }
    let attempts = metrics.attempts.with_label_values(&[provider.id.name()]);
    let waiting = metrics.requests_waiting_for_key.with_label_values(&[provider.id.name()]);
    Ok((Pool { provider: provider.clone(), rotator, current, attempts, waiting }, key_sync))
}

/// How often usage is flushed and the key cache reloaded: revocations land within two.
const AUTH_SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// The client-key gate, and with Redis the actor sharing its limits.
struct Auth {
    gate: Arc<AuthGate>,
    limit_sync: Option<Addr<LimitSync>>,
    db: Addr<AuthActor>,
}

/// Opens (creating and migrating) the key database and starts the actor and the sync loop;
/// with `REDIS_URL`, the actor that shares client limits with the other replicas too.
fn start_auth(config: &Config, metrics: &Arc<Metrics>) -> Result<Option<Auth>, StartError> {
    if !config.enable_incoming_auth {
        log::info!("event=config incoming_auth=off");
        return Ok(None);
    }
    if let Some(problem) = &config.key_db_disagreement {
        log::warn!("event=key_db_disagreement problem=\"{problem}\"");
    }
    let keys = db::keys::all(&mut db::open(&config.key_db)?).map_err(DbError::from)?;
    let active_keys = keys.iter().filter(|k| !k.revoked).count();
    log::info!("event=config incoming_auth=on key_db={} active_keys={active_keys}", config.key_db);
    preflight::warn_if_no_client_keys(active_keys);
    let pool = db::pool(&config.key_db);
    let database = |pool: db::ConnectionPool| SyncArbiter::start(1, move || AuthActor::new(pool.clone()));
    let (lookups, syncs) = (database(pool.clone()), database(pool));
    let link = config.redis_url.is_some().then(|| Arc::new(LimitLink::new(metrics.client_limit_waits.clone())));
    let db = syncs.clone();
    let gate = Arc::new(AuthGate::new(lookups, syncs, &config.auth_limits, link.clone(), metrics));
    let limit_sync = match (&config.redis_url, link) {
        (Some(url), Some(link)) => {
            let (errors, shared) = (metrics.redis_errors.clone(), metrics.client_limits_shared.clone());
            let sync = LimitSync::new(url, &config.redis_prefix, gate.clone(), link.clone(), errors, shared)
                .map_err(|error| ConfigError::new("REDIS_URL", format!("is not usable: {error}")))?;
            let sync = Actor::start(sync);
            link.attach(sync.clone().recipient());
            Some(sync)
        }
        _ => None,
    };
    let syncing = gate.clone();
    actix_web::rt::spawn(async move {
        let mut interval = actix_web::rt::time::interval(AUTH_SYNC_INTERVAL);
        loop {
            interval.tick().await;
            syncing.sync().await;
        }
    });
    Ok(Some(Auth { gate, limit_sync, db }))
}

/// SIGTERM and SIGINT (Ctrl-C, and the stop signal of some container runtimes) both stop
/// accepting connections and let requests and streams in flight finish, for up to
/// `SHUTDOWN_TIMEOUT`. A second signal stops at once.
fn drain_on_signals(server: actix_web::dev::ServerHandle, timeout: Duration) {
    use actix_web::rt::signal::unix::{signal, SignalKind};
    let (Ok(mut terminate), Ok(mut interrupt)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        log::warn!("event=signals_unavailable");
        return;
    };
    actix_web::rt::spawn(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        log::info!("event=signal signal={name} action=drain seconds={}", timeout.as_secs());
        let draining = server.stop(true);
        tokio::select! {
            () = draining => {}
            _ = terminate.recv() => server.stop(false).await,
            _ = interrupt.recv() => server.stop(false).await,
        }
    });
}

/// With `CEREBRAS_API_KEYS_FILE`, the actor that reads it again; with Redis, another replica's
/// reload reaches it too.
fn start_keys_file(
    config: &Config,
    pools: &[Pool],
    key_syncs: &[Addr<KeySync>],
    metrics: &Metrics,
) -> Option<Addr<KeysFile>> {
    let path = config.cerebras_keys_file.clone()?;
    let (rotator, reloads) = (pools[0].rotator.clone(), metrics.key_reloads.clone());
    let sync = key_syncs.first().cloned();
    let shared = sync.clone().map(Addr::recipient);
    let keys_file =
        Supervisor::start(move |_| KeysFile::new(path.clone(), rotator.clone(), shared.clone(), reloads.clone()));
    if let Some(sync) = sync {
        sync.do_send(AttachReloader(keys_file.clone().recipient()));
    }
    Some(keys_file)
}

/// On SIGHUP, `CEREBRAS_API_KEYS_FILE` is read again (when set), and every key an upstream
/// rejected is tried again: for an operator who changed the keys, or fixed their account (or
/// the upstream's outage that rejected them), and wants no wait.
fn reload_on_sighup(rotators: Vec<Addr<KeyRotator>>, keys_file: Option<Addr<KeysFile>>) {
    use actix_web::rt::signal::unix::{signal, SignalKind};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        log::warn!("event=sighup_unavailable");
        return;
    };
    actix_web::rt::spawn(async move {
        while hangups.recv().await.is_some() {
            log::info!("event=sighup action=reload_keys,clear_key_rejections");
            if let Some(keys_file) = &keys_file {
                keys_file.do_send(Reload { announce: true });
            }
            rotators.iter().for_each(|rotator| rotator.do_send(ClearRejections));
        }
    });
}

/// The ids the proxy sends `provider` (the catalogue's, and its configured model and vision
/// model), each with the public names it serves: what the metrics preset and the model watch
/// judge.
fn sent_ids(catalogue: Option<&Catalogue>, provider: &Provider) -> BTreeMap<String, Vec<String>> {
    let mut ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (public, id) in catalogue.into_iter().flat_map(|catalogue| catalogue.ids_at(provider.id)) {
        let public_names = ids.entry(id.to_owned()).or_default();
        if !public_names.iter().any(|name| name == public) {
            public_names.push(public.to_owned());
        }
    }
    for id in provider.model.iter().chain(&provider.vision_model) {
        ids.entry(id.clone()).or_default();
    }
    ids
}

/// Watches every provider's listing for the ids the proxy sends it (`sent`, in the pools'
/// order).
fn start_model_watch(
    config: &Config,
    pools: &[Pool],
    sent: Vec<BTreeMap<String, Vec<String>>>,
    tls: Arc<rustls::ClientConfig>,
    metrics: &Arc<Metrics>,
) -> Addr<ModelWatch> {
    let watched: Vec<Watched> = pools
        .iter()
        .zip(sent)
        .filter_map(|(pool, ids)| {
            let provider = &pool.provider;
            Some(Watched {
                provider: provider.id,
                url: format!("{}/models", provider.base_url),
                current: pool.current.clone(),
                first_key: provider.keys.first()?.secret.clone(),
                ids: ids.into_iter().collect(),
            })
        })
        .collect();
    let (config, metrics) = (config.clone(), metrics.clone());
    Supervisor::start(move |_| {
        let client = client::build(&config, tls);
        ModelWatch::new(watched, client, config.model_check_interval, metrics)
    })
}

/// The catalogue at start, and a warning for each public model no configured provider serves.
fn log_catalogue(catalogue: &Catalogue) {
    log::info!("event=config models=\"{}\"", catalogue.public_names());
    for model in catalogue.unserved() {
        log::warn!(
            "event=model_unserved model={model:?} problem=\"no configured provider has an id for it: its requests get 404\""
        );
    }
}

/// The Anthropic front door under `base`: the Messages API and its token count, POST only.
fn messages_routes(base: &str) -> actix_web::Scope {
    web::scope(base)
        .route("", web::post().to(anthropic::messages))
        .route("/count_tokens", web::post().to(anthropic::count_tokens))
        .default_service(web::to(anthropic::not_allowed))
}

/// The Responses door under `base`: POST only; nothing under it is stored to be read back.
fn responses_routes(base: &str) -> actix_web::Scope {
    web::scope(base).route("", web::post().to(responses::responses)).default_service(web::to(responses::not_served))
}

/// Starts the actors and binds the server. Must be called inside an actix system.
pub fn start(config: Config) -> Result<Running, StartError> {
    preflight::check_folders(&config)?;
    preflight::warn_if_open(&config);
    let tls = client::tls_config(&config)?;
    let metrics = Arc::new(Metrics::new()?);
    let (auth, limit_sync, key_db) =
        start_auth(&config, &metrics)?.map_or((None, None, None), |a| (Some(a.gate), a.limit_sync, Some(a.db)));
    let logs = start_logs(&config, &metrics);
    if config.redis_url.is_some() {
        log::info!("event=config shared_key_state=redis prefix={}", config.redis_prefix);
    } else {
        log::info!("event=config shared_key_state=off");
    }
    let mut pools = Vec::with_capacity(config.providers.len());
    let mut key_syncs = Vec::new();
    for provider in &config.providers {
        let (pool, key_sync) = start_pool(&config, provider, &metrics)?;
        pools.push(pool);
        key_syncs.extend(key_sync);
    }
    let keys_file = start_keys_file(&config, &pools, &key_syncs, &metrics);
    reload_on_sighup(pools.iter().map(|pool| pool.rotator.clone()).collect(), keys_file.clone());

    let presets: Vec<Preset> = config
        .providers
        .iter()
        .map(|p| Preset { name: p.id.name(), keys: p.keys.iter().map(|k| k.name.as_str()).collect() })
        .collect();
    let sent: Vec<_> =
        config.providers.iter().map(|provider| sent_ids(config.catalogue.as_deref(), provider)).collect();
    let sent_models = config.providers.iter().zip(&sent);
    metrics.preset(&presets, sent_models.flat_map(|(p, ids)| ids.keys().map(move |id| (p.id.name(), id.as_str()))));
    if let Some(catalogue) = &config.catalogue {
        log_catalogue(catalogue);
    }
    let names: Vec<&str> = config.providers.iter().map(|p| p.id.name()).collect();
    log::info!(
        "event=config providers={} token_threshold={} fallback_on_cooldown={}",
        names.join(","),
        config.token_threshold,
        config.providers[0].fallback_on_cooldown
    );
    let routes = config.providers.iter().map(|provider| Route {
        any_request: provider.any_request(),
        vision: provider.vision_model.is_some(),
        long_requests: provider.long_requests,
    });
    let routing = Arc::new(RoutingPolicy {
        providers: routes.collect(),
        token_threshold: config.token_threshold,
        chars_per_token: config.chars_per_token,
    });
    let health: Health = Arc::new(ArcSwap::from_pointee(vec![CircuitView::CLOSED; config.providers.len()]));
    let ids: Vec<_> = config.providers.iter().map(|provider| provider.id).collect();
    let unconfigured = config.unconfigured_providers.clone();
    let (published, circuit, router_metrics) = (health.clone(), config.circuit, metrics.clone());
    let router = Supervisor::start(move |_| {
        UpstreamRouter::new(ids.clone(), &unconfigured, circuit, published.clone(), router_metrics.clone())
    });

    let models = start_model_watch(&config, &pools, sent, tls.clone(), &metrics);

    let state = web::Data::new(AppState {
        dispatcher: Dispatcher {
            pools,
            router,
            models,
            health,
            routing,
            catalogue: config.catalogue.clone(),
            max_key_wait: config.max_key_wait,
            idle_timeout: config.timeouts.idle,
            metrics: metrics.clone(),
        },
        auth: auth.clone(),
        logs: logs.clone(),
        metrics: metrics.clone(),
        max_body_bytes: config.max_body_bytes,
        body_budget: BodyBudget::new(config.max_buffered_body_bytes, metrics.body_bytes_buffered.clone()),
        body_timeout: config.client_timeouts.body,
        started: Instant::now(),
        ping_interval: config.anthropic_ping_interval,
        key_syncs,
        limit_sync,
        admin_token: config.admin_token.as_ref().map(AdminToken::new),
        key_db,
        keys_file,
    });

    let worker_config = config.clone();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(request_id::middleware))
            .app_data(state.clone())
            .app_data(web::Data::new(client::build(&worker_config, tls.clone())))
            // Chat completions first: every route before it costs each request a match.
            .route("/v1/chat/completions", web::post().to(openai::forward))
            .route("/_status", web::get().to(status::status))
            .route("/health", web::get().to(status::health))
            .route("/metrics", web::get().to(status::metrics))
            .service(messages_routes("/v1/messages"))
            .service(messages_routes("/messages"))
            .service(responses_routes("/v1/responses"))
            .service(responses_routes("/responses"))
            .route("/v1/models", web::get().to(models::list))
            .route("/models", web::get().to(models::list))
            .route("/v1/models/{id:.+}", web::get().to(models::list))
            .route("/models/{id:.+}", web::get().to(models::list))
            .service(admin::routes())
            .service(dashboard::routes())
            .default_service(web::to(openai::forward))
    })
    .workers(config.workers)
    .shutdown_timeout(config.shutdown_timeout.as_secs())
    .client_request_timeout(config.client_timeouts.header)
    .keep_alive(config.client_timeouts.keep_alive)
    // A client that hangs up before its answer ends its request everywhere: the handler is
    // dropped, with its wait for a key or its upstream request.
    .h1_allow_half_closed(false)
    .tcp_nodelay(true)
    .backlog(4096)
    // SIGINT must drain like SIGTERM; actix would stop at once on it.
    .disable_signals();

    let server = server
        .bind((config.host.as_str(), config.port))
        .map_err(|source| StartError::Bind { address: format!("{}:{}", config.host, config.port), source })?;
    let addrs = server.addrs();
    for addr in &addrs {
        log::info!("event=listening address={addr} workers={}", config.workers);
    }
    let server = server.run();
    drain_on_signals(server.handle(), config.shutdown_timeout);
    Ok(Running { addrs, server, auth, logs })
}
