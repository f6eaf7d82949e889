//! What every worker shares: the dispatcher and the optional client-key gate and log sink.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;

use crate::actors::auth::AuthActor;
use crate::actors::key_sync::KeySync;
use crate::actors::keys_file::KeysFile;
use crate::actors::limit_sync::LimitSync;
use crate::admin::AdminToken;
use crate::auth::gate::AuthGate;
use crate::body_budget::BodyBudget;
use crate::dispatch::Dispatcher;
use crate::logging::sink::LogSink;
use crate::metrics::Metrics;

pub struct AppState {
    pub dispatcher: Dispatcher,
    /// Present when `ENABLE_INCOMING_AUTH` is on.
    pub auth: Option<Arc<AuthGate>>,
    /// Present when `LOG_REQUESTS` is on.
    pub logs: Option<Arc<LogSink>>,
    pub metrics: Arc<Metrics>,
    pub max_body_bytes: usize,
    pub body_budget: BodyBudget,
    /// `CLIENT_BODY_TIMEOUT`: the longest a client may take to send a whole body.
    pub body_timeout: Duration,
    pub started: Instant,
    /// `ANTHROPIC_PING_INTERVAL`: how long a streamed Anthropic answer may be silent before a
    /// ping, while the upstream has not answered.
    pub ping_interval: Duration,
    /// With `REDIS_URL`, one per provider, in their order: the key state shared with the other
    /// replicas. Empty without.
    pub key_syncs: Vec<Addr<KeySync>>,
    /// With `REDIS_URL` and client keys: client limits shared with the other replicas.
    pub limit_sync: Option<Addr<LimitSync>>,
    /// With `ADMIN_TOKEN`: the admin API is there, behind it.
    pub admin_token: Option<AdminToken>,
    /// With client keys on: the key database, for the admin API.
    pub key_db: Option<Addr<AuthActor>>,
    /// With `CEREBRAS_API_KEYS_FILE`: its reloader.
    pub keys_file: Option<Addr<KeysFile>>,
}
