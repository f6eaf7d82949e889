//! Configuration read from the environment (and `.env`), validated before anything starts.
//!
//! Every default lives here. A bad value stops the program with one line naming the
//! variable; no error message ever contains a key value.

pub mod json_error;
mod providers;
pub use providers::keys_file;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::catalogue::{Catalogue, CatalogueError};
use crate::policy::circuit::CircuitPolicy;
use crate::providers::Provider;
use crate::secret::Secret;

/// A problem with one variable; `Display` is the one line printed at start.
#[derive(Debug, thiserror::Error)]
#[error("{var} {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

impl ConfigError {
    pub fn new(var: &'static str, problem: impl Into<String>) -> Self {
        Self { var, problem: problem.into() }
    }
}

/// A provider key with the operator's name for it. Only the name is ever shown.
#[derive(Debug, Clone)]
pub struct NamedKey {
    pub name: String,
    pub secret: Secret,
}

/// Limits on the conversation with an upstream.
#[derive(Debug, Clone)]
pub struct Timeouts {
    /// TCP connect (and TLS handshake).
    pub connect: Duration,
    /// From sending the request to the first byte of the answer.
    pub first_byte: Duration,
    /// Longest silence between two chunks of a streamed answer.
    pub idle: Duration,
    /// How long an idle upstream connection is kept for reuse: below the usual upstream
    /// keep-alive timeouts (5 s for many servers), so a pooled connection is rarely stale.
    pub pool_idle: Duration,
}

/// Limits on the conversation with a client: no phase of it can last forever.
#[derive(Debug, Clone)]
pub struct ClientTimeouts {
    /// From the connection (or the previous answer) to the end of the request head.
    pub header: Duration,
    /// For the whole request body.
    pub body: Duration,
    /// How long an idle keep-alive connection is kept open.
    pub keep_alive: Duration,
}

/// How much of the traffic the request logs keep.
#[derive(Debug, Clone)]
pub struct LogLimits {
    /// Whether records keep bodies at all (`LOG_BODIES`).
    pub bodies: bool,
    /// Bytes of each body a record keeps.
    pub max_body_bytes: usize,
    /// Bytes of records waiting for the writer.
    pub max_queue_bytes: usize,
    /// Bytes a day's file holds before records lose their bodies.
    pub max_day_bytes: u64,
}

/// Bounds on client-key checks for keys the cache does not know.
#[derive(Debug, Clone)]
pub struct AuthLimits {
    /// Database lookups in progress at once; past it, 503 at once.
    pub lookup_queue: usize,
    /// Unknown key hashes remembered, and for how long.
    pub miss_cache_size: usize,
    pub miss_cache_ttl: Duration,
    /// How old the key cache may grow while reloads fail before it is no longer trusted.
    pub cache_max_age: Duration,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    pub port: u16,
    /// HTTP worker threads; each has its own upstream client.
    pub workers: usize,
    /// Every configured provider, in failover order: Cerebras, Synthetic and Z.ai where their
    /// keys are set, and `PROVIDERS_FILE`'s where it puts them.
    pub providers: Vec<Provider>,
    /// The built-in providers without keys, shown in `/_status` as not configured.
    pub unconfigured_providers: Vec<&'static str>,
    /// `CEREBRAS_API_KEYS_FILE`: the Cerebras keys' file, read again on SIGHUP or
    /// `POST /admin/upstream-keys/reload`.
    pub cerebras_keys_file: Option<PathBuf>,
    /// Cooldown after a 429, at least: a longer Retry-After wins, up to `max_cooldown`.
    pub cooldown: Duration,
    /// How long a key answered with 401 stays out of rotation.
    pub invalid_key_cooldown: Duration,
    /// The longest rest an upstream's rate-limit headers can ask for.
    pub max_cooldown: Duration,
    /// When a provider's circuit opens, and for how long.
    pub circuit: CircuitPolicy,
    /// Longest a request waits for a cooled-down key before a 503.
    pub max_key_wait: Duration,
    /// Requests waiting for a key at once; past it, a 503 at once.
    pub max_waiting_requests: usize,
    pub max_body_bytes: usize,
    /// Request body bytes buffered at once, over all requests.
    pub max_buffered_body_bytes: usize,
    /// Limits on the conversation with a client.
    pub client_timeouts: ClientTimeouts,
    pub timeouts: Timeouts,
    /// Extra trusted CA certificates (PEM), the OpenSSL convention.
    pub ssl_cert_file: Option<PathBuf>,
    /// Requests estimated above this many tokens go to the alternatives.
    pub token_threshold: f64,
    pub chars_per_token: f64,
    /// Public model names and each provider's ids (`MODELS` or `MODELS_FILE`, `MODEL_ALIASES`).
    pub catalogue: Option<Arc<Catalogue>>,
    /// Require a client key (from the key database) on every proxied request.
    pub enable_incoming_auth: bool,
    /// `ADMIN_TOKEN` (or the file `ADMIN_TOKEN_FILE` names): the admin API's bearer token;
    /// without it, the admin API is not there.
    pub admin_token: Option<Secret>,
    pub key_db: crate::db::Location,
    /// Set when `DATABASE_URL` and `INCOMING_KEY_DB` disagree, for a warning at start.
    pub key_db_disagreement: Option<String>,
    pub auth_limits: AuthLimits,
    /// Write one JSON record per request under `log_dir`.
    pub log_requests: bool,
    pub log_dir: PathBuf,
    /// Day folders older than this are deleted; 0 keeps everything.
    pub log_retention_days: u32,
    /// Records waiting for the writer; past this they are dropped, never the request.
    pub log_queue_capacity: usize,
    pub log_limits: LogLimits,
    /// Time in-flight requests get to finish on SIGTERM.
    pub shutdown_timeout: Duration,
    /// Redis for the key state replicas share (`REDIS_URL`); `None` keeps it local.
    pub redis_url: Option<String>,
    /// The prefix of every Redis name the proxy uses: replicas sharing keys share it.
    pub redis_prefix: String,
    /// How long a streamed Anthropic answer waits for the upstream before a ping, and between pings.
    pub anthropic_ping_interval: Duration,
    /// How often each provider's `GET /models` is read for retired ids; zero never.
    pub model_check_interval: Duration,
}

const MIB: usize = 1024 * 1024;

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// `HOST` and `PORT` alone, read as `from_env` reads them: what `glm-proxy health` asks.
    pub fn listen_address_from_env() -> Result<(String, u16), ConfigError> {
        let lookup = |name: &str| std::env::var(name).ok();
        let env = Env(&lookup);
        Ok((env.string("HOST", "0.0.0.0"), env.parsed("PORT", 18080)?))
    }

    /// Reads configuration through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let default_workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let providers = providers::read(&env)?;
        let config = Self {
            host: env.string("HOST", "0.0.0.0"),
            port: env.parsed("PORT", 18080)?,
            workers: env.parsed("WORKERS", default_workers)?,
            cooldown: env.seconds("CEREBRAS_COOLDOWN", 60.0)?,
            invalid_key_cooldown: env.seconds("INVALID_KEY_COOLDOWN", 3600.0)?,
            max_cooldown: env.seconds("MAX_COOLDOWN", 86_400.0)?,
            circuit: CircuitPolicy {
                threshold: env.parsed("CIRCUIT_FAILURE_THRESHOLD", 3)?,
                open_for: env.positive_seconds("CIRCUIT_OPEN_TIME", 5.0)?,
                max_open: env.positive_seconds("CIRCUIT_MAX_OPEN_TIME", 60.0)?,
            },
            max_key_wait: env.seconds("MAX_KEY_WAIT", 120.0)?,
            max_waiting_requests: env.parsed("MAX_WAITING_REQUESTS", 1000)?,
            max_body_bytes: env.parsed("MAX_BODY_BYTES", 64 * MIB)?,
            max_buffered_body_bytes: env.parsed("MAX_BUFFERED_BODY_BYTES", 512 * MIB)?,
            client_timeouts: ClientTimeouts {
                header: env.positive_seconds("CLIENT_HEADER_TIMEOUT", 5.0)?,
                body: env.positive_seconds("CLIENT_BODY_TIMEOUT", 60.0)?,
                keep_alive: env.positive_seconds("CLIENT_KEEPALIVE", 30.0)?,
            },
            timeouts: Timeouts {
                connect: env.positive_seconds("UPSTREAM_CONNECT_TIMEOUT", 10.0)?,
                first_byte: env.positive_seconds("UPSTREAM_TIMEOUT", 300.0)?,
                idle: env.positive_seconds("UPSTREAM_IDLE_TIMEOUT", 120.0)?,
                pool_idle: env.positive_seconds("UPSTREAM_KEEPALIVE", 4.0)?,
            },
            ssl_cert_file: env.get("SSL_CERT_FILE").map(PathBuf::from),
            catalogue: catalogue(&env, &providers)?,
            token_threshold: env.parsed("TOKEN_THRESHOLD", 120_000.0)?,
            chars_per_token: env.parsed("CHARS_PER_TOKEN", 1.7)?,
            enable_incoming_auth: env.flag("ENABLE_INCOMING_AUTH", false)?,
            admin_token: admin_token(&env)?,
            key_db: crate::db::location_from_env(&lookup),
            key_db_disagreement: crate::db::disagreement(&lookup),
            auth_limits: AuthLimits {
                lookup_queue: env.parsed("AUTH_LOOKUP_QUEUE", 64)?,
                miss_cache_size: env.parsed("AUTH_MISS_CACHE_SIZE", 10_000)?,
                miss_cache_ttl: env.seconds("AUTH_MISS_CACHE_TTL", 10.0)?,
                cache_max_age: env.positive_seconds("AUTH_CACHE_MAX_AGE", 30.0)?,
            },
            log_requests: env.flag("LOG_REQUESTS", true)?,
            log_dir: PathBuf::from(env.string("LOG_DIR", "./logs")),
            log_retention_days: env.parsed("LOG_RETENTION_DAYS", 14)?,
            log_queue_capacity: env.parsed("LOG_QUEUE_CAPACITY", 10_000)?,
            log_limits: LogLimits {
                bodies: env.flag("LOG_BODIES", true)?,
                max_body_bytes: env.parsed("LOG_BODY_MAX_BYTES", 64 * 1024)?,
                max_queue_bytes: env.parsed("LOG_QUEUE_MAX_BYTES", 64 * MIB)?,
                max_day_bytes: env.parsed("LOG_MAX_DAY_BYTES", 1 << 30)?,
            },
            shutdown_timeout: env.seconds("SHUTDOWN_TIMEOUT", 30.0)?,
            anthropic_ping_interval: env.positive_seconds("ANTHROPIC_PING_INTERVAL", 5.0)?,
            model_check_interval: env.seconds("MODEL_CHECK_INTERVAL", 3600.0)?,
            redis_url: env.get("REDIS_URL").map(|url| url.trim().to_owned()),
            redis_prefix: env.string("REDIS_KEY_PREFIX", "glm-proxy"),
            providers: providers.providers,
            unconfigured_providers: providers.unconfigured,
            cerebras_keys_file: providers.cerebras_keys_file,
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.workers == 0 {
            return Err(ConfigError::new("WORKERS", "must be at least 1"));
        }
        if self.auth_limits.lookup_queue == 0 {
            return Err(ConfigError::new("AUTH_LOOKUP_QUEUE", "must be at least 1"));
        }
        if self.log_queue_capacity == 0 {
            return Err(ConfigError::new("LOG_QUEUE_CAPACITY", "must be at least 1"));
        }
        if self.circuit.threshold == 0 {
            return Err(ConfigError::new("CIRCUIT_FAILURE_THRESHOLD", "must be at least 1"));
        }
        if self.circuit.max_open < self.circuit.open_for {
            return Err(ConfigError::new("CIRCUIT_MAX_OPEN_TIME", "must be at least CIRCUIT_OPEN_TIME"));
        }
        if self.max_body_bytes == 0 {
            return Err(ConfigError::new("MAX_BODY_BYTES", "must be at least 1"));
        }
        // A body reserves its bytes from the budget in one piece (at most 4 GiB at a time).
        if self.max_body_bytes > self.max_buffered_body_bytes || self.max_body_bytes > u32::MAX as usize {
            return Err(ConfigError::new(
                "MAX_BODY_BYTES",
                "must be at most MAX_BUFFERED_BODY_BYTES (and 4 GiB): a larger body could never be read",
            ));
        }
        if !(self.chars_per_token.is_finite() && self.chars_per_token > 0.0) {
            return Err(ConfigError::new("CHARS_PER_TOKEN", "must be a number above 0"));
        }
        if !(self.token_threshold.is_finite() && self.token_threshold >= 0.0) {
            return Err(ConfigError::new("TOKEN_THRESHOLD", "must be a non-negative number"));
        }
        if let Some(url) = &self.redis_url {
            if !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("unix://")) {
                return Err(ConfigError::new("REDIS_URL", "must be a redis://, rediss:// or unix:// URL"));
            }
        }
        if let Some(path) = &self.ssl_cert_file {
            if !path.is_file() {
                let shown = path.display();
                return Err(ConfigError::new("SSL_CERT_FILE", format!("names no readable file: {shown}")));
            }
        }
        Ok(())
    }
}

/// The shortest admin token taken: one a person could guess or type is refused.
const ADMIN_TOKEN_MIN: usize = 32;

/// `ADMIN_TOKEN`, or the first line of the file `ADMIN_TOKEN_FILE` names (a container's
/// secret); at least `ADMIN_TOKEN_MIN` characters.
fn admin_token(env: &Env) -> Result<Option<Secret>, ConfigError> {
    let (token, var) = match (env.get("ADMIN_TOKEN"), env.get("ADMIN_TOKEN_FILE")) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new("ADMIN_TOKEN_FILE", "and ADMIN_TOKEN are both set: give one"))
        }
        (Some(token), None) => (token, "ADMIN_TOKEN"),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| ConfigError::new("ADMIN_TOKEN_FILE", format!("cannot be read ({path}): {e}")))?;
            (text, "ADMIN_TOKEN_FILE")
        }
        (None, None) => return Ok(None),
    };
    let token = token.trim();
    if token.chars().count() < ADMIN_TOKEN_MIN || token.chars().any(char::is_whitespace) {
        let problem =
            format!("must be at least {ADMIN_TOKEN_MIN} characters, without spaces (openssl rand -hex 32 makes one)");
        return Err(ConfigError::new(var, problem));
    }
    Ok(Some(Secret::new(token)))
}

/// The model catalogue, from `MODELS` or the file `MODELS_FILE` names, with `MODEL_ALIASES`,
/// and the ids `PROVIDERS_FILE` gives its providers.
fn catalogue(env: &Env, providers: &providers::Providers) -> Result<Option<Arc<Catalogue>>, ConfigError> {
    let (models, var) = match (env.get("MODELS"), env.get("MODELS_FILE")) {
        (Some(_), Some(_)) => return Err(ConfigError::new("MODELS_FILE", "and MODELS are both set: give one")),
        (Some(models), None) => (models, "MODELS"),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| ConfigError::new("MODELS_FILE", format!("cannot be read ({path}): {e}")))?;
            (text, "MODELS_FILE")
        }
        (None, None) if env.get("MODEL_ALIASES").is_some() => {
            return Err(ConfigError::new("MODEL_ALIASES", "needs MODELS (or MODELS_FILE): aliases map onto its names"))
        }
        (None, None) => match providers.models.first() {
            Some((provider, _)) => {
                let problem = format!("gives {:?} models, which needs MODELS (or MODELS_FILE)", provider.name());
                return Err(ConfigError::new("PROVIDERS_FILE", problem));
            }
            None => return Ok(None),
        },
    };
    let ids: Vec<_> = providers.providers.iter().map(|provider| provider.id).collect();
    let aliases = env.get("MODEL_ALIASES");
    let mut catalogue =
        Catalogue::parse(&models, aliases.as_deref(), &ids, &providers.unconfigured).map_err(|error| {
            let var = if matches!(error, CatalogueError::Aliases(_)) { "MODEL_ALIASES" } else { var };
            ConfigError::new(var, error.to_string())
        })?;
    for (provider, models) in &providers.models {
        for (name, id) in models {
            catalogue.add(*provider, name, id).map_err(|problem| {
                ConfigError::new("PROVIDERS_FILE", format!("{:?} models: {problem}", provider.name()))
            })?;
        }
    }
    Ok(Some(Arc::new(catalogue)))
}

/// Typed reads of environment variables, each error naming its variable.
struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    /// The value, with blank treated as unset (as `.env` files often leave them).
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|value| !value.trim().is_empty())
    }

    fn string(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_owned())
    }

    fn parsed<T: std::str::FromStr>(&self, name: &'static str, default: T) -> Result<T, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => {
                raw.trim().parse().map_err(|_| ConfigError::new(name, format!("is not a valid number: {raw:?}")))
            }
        }
    }

    fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name).map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(other) => Err(ConfigError::new(name, format!("must be true or false, got {other:?}"))),
        }
    }

    /// Seconds, fractions allowed (short cooldowns make tests fast), zero allowed, a year at most:
    /// deadlines computed from these never come near the clock's limits.
    fn seconds(&self, name: &'static str, default: f64) -> Result<Duration, ConfigError> {
        const YEAR: f64 = 365.0 * 86_400.0;
        let secs: f64 = self.parsed(name, default)?;
        match Duration::try_from_secs_f64(secs) {
            Ok(duration) if secs <= YEAR => Ok(duration),
            _ => Err(ConfigError::new(name, format!("must be a number of seconds from 0 to a year, got {secs}"))),
        }
    }

    fn positive_seconds(&self, name: &'static str, default: f64) -> Result<Duration, ConfigError> {
        let duration = self.seconds(name, default)?;
        if duration.is_zero() {
            return Err(ConfigError::new(name, "must be more than 0 seconds"));
        }
        Ok(duration)
    }

    /// An `http(s)://host[:port][/path]` URL, kept without its trailing slash.
    fn base_url(&self, name: &'static str, default: &str) -> Result<String, ConfigError> {
        let url = self.string(name, default);
        valid_base_url(&url).ok_or_else(|| {
            let url = url.trim();
            ConfigError::new(name, format!("must be an http:// or https:// URL with a host and no query, got {url:?}"))
        })
    }
}

/// `url` as a base URL (`http(s)://host[:port][/path]`, no query), without its trailing slash.
fn valid_base_url(url: &str) -> Option<String> {
    let url = url.trim().trim_end_matches('/');
    let uri: awc::http::Uri = url.parse().ok()?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    (scheme_ok && uri.host().is_some() && uri.query().is_none()).then(|| url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    const KEYS: (&str, &str) = ("CEREBRAS_API_KEYS", r#"{"b":"sk-2","a":"sk-1"}"#);

    #[test]
    fn defaults_match_the_seed() {
        let config = config(&[KEYS]).unwrap();
        assert_eq!(config.port, 18080);
        assert_eq!(config.host, "0.0.0.0");
        assert_eq!(config.cooldown, Duration::from_secs(60));
        assert_eq!(config.max_body_bytes, 64 * MIB);
        assert_eq!(config.providers[0].base_url, "https://api.cerebras.ai/v1");
        assert_eq!(config.timeouts.first_byte, Duration::from_secs(300));
        assert_eq!(config.max_cooldown, Duration::from_secs(86_400));
        assert_eq!(config.circuit.threshold, 3);
        assert_eq!(
            (config.circuit.open_for, config.circuit.max_open),
            (Duration::from_secs(5), Duration::from_secs(60))
        );
        assert_eq!(config.timeouts.pool_idle, Duration::from_secs(4));
        assert_eq!((config.max_waiting_requests, config.max_buffered_body_bytes), (1000, 512 * MIB));
        let client = &config.client_timeouts;
        assert_eq!(
            (client.header, client.body, client.keep_alive),
            (Duration::from_secs(5), Duration::from_secs(60), Duration::from_secs(30))
        );
    }

    #[test]
    fn keys_keep_the_operators_order() {
        let config = config(&[KEYS]).unwrap();
        let names: Vec<_> = config.providers[0].keys.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        assert_eq!(config.providers[0].keys[1].secret.expose(), "sk-1");
    }

    #[test]
    fn bad_values_name_the_variable_and_never_the_key() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "CEREBRAS_API_KEYS is required"),
            (
                &[("CEREBRAS_API_KEYS", "[\"sk-secret\"]")],
                "CEREBRAS_API_KEYS is not a JSON object of name → key: JSON, but not an object",
            ),
            (
                &[("CEREBRAS_API_KEYS", "{\"a\":\"sk-secret\"")],
                "CEREBRAS_API_KEYS is not a JSON object of name → key: cut short at line 1, column 16",
            ),
            (
                &[("CEREBRAS_API_KEYS", "{key1:sk-secret}")],
                "CEREBRAS_API_KEYS is not a JSON object of name → key: not valid JSON at line 1, column 2",
            ),
            (&[("CEREBRAS_API_KEYS", "{}")], "CEREBRAS_API_KEYS holds no key"),
            (&[("CEREBRAS_API_KEYS", "{\"a\":1}")], "CEREBRAS_API_KEYS entry \"a\""),
            (&[KEYS, ("CEREBRAS_API_KEYS_FILE", "keys.json")], "CEREBRAS_API_KEYS_FILE and CEREBRAS_API_KEYS are both"),
            (&[("CEREBRAS_API_KEYS_FILE", "/no/such/keys.json")], "CEREBRAS_API_KEYS_FILE cannot be read (/no/such"),
            (&[KEYS, ("PORT", "eighty")], "PORT is not a valid number"),
            (&[KEYS, ("CEREBRAS_COOLDOWN", "-1")], "CEREBRAS_COOLDOWN must be a number of seconds from 0"),
            (&[KEYS, ("MAX_COOLDOWN", "1e19")], "MAX_COOLDOWN must be a number of seconds from 0 to a year"),
            (&[KEYS, ("CIRCUIT_FAILURE_THRESHOLD", "0")], "CIRCUIT_FAILURE_THRESHOLD must be at least 1"),
            (&[KEYS, ("MAX_BUFFERED_BODY_BYTES", "1000")], "MAX_BODY_BYTES must be at most MAX_BUFFERED_BODY_BYTES"),
            (&[KEYS, ("CLIENT_BODY_TIMEOUT", "0")], "CLIENT_BODY_TIMEOUT must be more than 0"),
            (&[KEYS, ("CIRCUIT_OPEN_TIME", "10"), ("CIRCUIT_MAX_OPEN_TIME", "5")], "CIRCUIT_MAX_OPEN_TIME must be"),
            (&[KEYS, ("UPSTREAM_TIMEOUT", "0")], "UPSTREAM_TIMEOUT must be more than 0"),
            (&[KEYS, ("CEREBRAS_BASE_URL", "ftp://x")], "CEREBRAS_BASE_URL must be an http"),
            (&[KEYS, ("SSL_CERT_FILE", "/nonexistent.pem")], "SSL_CERT_FILE names no readable file"),
            (&[KEYS, ("FALLBACK_ON_COOLDOWN", "maybe")], "FALLBACK_ON_COOLDOWN must be true or false"),
            (&[KEYS, ("CHARS_PER_TOKEN", "0")], "CHARS_PER_TOKEN must be a number above 0"),
            (&[KEYS, ("ZAI_API_KEY", "sk-secret"), ("ZAI_BASE_URL", "nope")], "ZAI_BASE_URL must be an http"),
        ];
        for (vars, expected) in cases {
            let message = config(vars).unwrap_err().to_string();
            assert!(message.starts_with(expected), "{message:?} should start with {expected:?}");
            assert!(!["sk-secret", "sk-1", "sk-2"].iter().any(|k| message.contains(k)), "{message:?} leaks a key");
        }
    }

    #[test]
    fn alternatives_are_configured_by_their_keys_in_order() {
        let alone = config(&[KEYS]).unwrap();
        assert_eq!(
            (alone.providers.len(), alone.unconfigured_providers.as_slice()),
            (1, ["synthetic", "zai"].as_slice())
        );
        let config = config(&[KEYS, ("ZAI_API_KEY", "sk-z"), ("SYNTHETIC_API_KEY", "sk-s")]).unwrap();
        let names: Vec<_> = config.providers.iter().map(|p| (p.id.index(), p.id.name())).collect();
        assert_eq!(names, [(0, "cerebras"), (1, "synthetic"), (2, "zai")]);
        let [cerebras, synthetic, zai] = [&config.providers[0], &config.providers[1], &config.providers[2]];
        assert_eq!(synthetic.model.as_deref(), Some("hf:zai-org/GLM-4.6"));
        assert_eq!(synthetic.vision_model.as_deref(), Some("hf:Qwen/Qwen3-VL-235B-A22B-Instruct"));
        assert_eq!(zai.base_url, "https://api.z.ai/api/coding/paas/v4");
        assert_eq!(zai.model.as_deref(), Some("glm-4.6"));
        assert_eq!(
            (synthetic.keys.len(), &*synthetic.keys[0].name, synthetic.keys[0].secret.expose()),
            (1, "key1", "sk-s")
        );
        assert!((config.token_threshold - 120_000.0).abs() < f64::EPSILON);
        assert!(!cerebras.fallback_on_cooldown && synthetic.fallback_on_cooldown);
        assert!(cerebras.faults.reset_windows && !zai.faults.reset_windows);
        assert_eq!(zai.faults.quota_message.as_deref(), Some("token quota is not enough"));
        assert_eq!(cerebras.faults.quota_message, zai.faults.quota_message);
        assert!(!cerebras.long_requests && cerebras.any_request() && !zai.any_request());
    }

    #[test]
    fn alternatives_take_pools_of_keys_but_not_both_forms() {
        let pools = config(&[KEYS, ("SYNTHETIC_API_KEYS", r#"{"pack1":"sk-s1","pack2":"sk-s2"}"#)]).unwrap();
        let names: Vec<_> = pools.providers[1].keys.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["pack1", "pack2"]);
        let both = config(&[KEYS, ("ZAI_API_KEYS", r#"{"a":"sk-secret"}"#), ("ZAI_API_KEY", "sk-secret")]);
        let message = both.unwrap_err().to_string();
        assert!(message.starts_with("ZAI_API_KEYS and ZAI_API_KEY are both set"), "{message}");
        assert!(!message.contains("sk-secret"));
        let broken = config(&[KEYS, ("SYNTHETIC_API_KEYS", r#"{"a":"sk-secret""#)]).unwrap_err().to_string();
        assert!(broken.starts_with("SYNTHETIC_API_KEYS is not a JSON object of name → key: cut short"), "{broken}");
    }

    fn providers_file(text: &str) -> (tempfile::NamedTempFile, String) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        let path = file.path().to_str().unwrap().to_owned();
        (file, path)
    }

    #[test]
    fn the_providers_file_adds_providers_where_they_go() {
        let (_file, path) = providers_file(
            r#"[{"name": "cerebras-b", "base_url": "https://api.cerebras.ai/v1/", "keys": {"b1": "csk-b1"},
                 "after": "cerebras", "long_requests": false, "rate_limit_headers": true},
                {"name": "vllm", "base_url": "http://10.0.0.5:8000/v1", "keys": {"local": "none"}, "model": "glm-4.6",
                 "models": {"glm": "zai-org/GLM-4.6"}}]"#,
        );
        let models = r#"{"glm": {"cerebras": "zai-glm-4.7", "zai": "glm-4.7"}}"#;
        let config = config(&[KEYS, ("ZAI_API_KEY", "sk-z"), ("PROVIDERS_FILE", &path), ("MODELS", models)]).unwrap();
        let names: Vec<_> = config.providers.iter().map(|p| p.id.name()).collect();
        assert_eq!(names, ["cerebras", "cerebras-b", "zai", "vllm"]);
        let [second, vllm] = [&config.providers[1], &config.providers[3]];
        assert_eq!(second.base_url, "https://api.cerebras.ai/v1");
        assert!(second.any_request() && !second.long_requests && second.faults.reset_windows);
        assert!(second.fallback_on_cooldown, "a file provider moves on by default");
        assert_eq!(vllm.id.index(), 3);
        let glm = config.catalogue.unwrap().resolve("glm").unwrap().clone();
        assert_eq!(glm.on(vllm.id).unwrap().id, "zai-org/GLM-4.6");
        assert!(glm.on(second.id).is_none(), "a provider the catalogue does not name does not serve it");
    }

    #[test]
    fn mistakes_in_the_providers_file_name_the_entry_and_never_a_key() {
        let cases: &[(&str, &str)] = &[
            (r#"[{"name": "x","#, "PROVIDERS_FILE is cut short at line 1, column 14"),
            ("{}", "PROVIDERS_FILE must hold a JSON array"),
            (
                r#"[{"name": "Bad Name", "base_url": "http://h", "keys": {"a": "sk-secret"}}]"#,
                r#"PROVIDERS_FILE entry 1: name "Bad Name" must be"#,
            ),
            (
                r#"[{"name": "zai", "base_url": "http://h", "keys": {"a": "sk-secret"}}]"#,
                r#"PROVIDERS_FILE entry 1: name "zai" is taken"#,
            ),
            (
                r#"[{"name": "x", "base_url": "ftp://h", "keys": {"a": "sk-secret"}}]"#,
                r#"PROVIDERS_FILE entry 1: "x" base_url must be"#,
            ),
            (
                r#"[{"name": "x", "base_url": "http://h", "keys": "sk-secret"}]"#,
                r#"PROVIDERS_FILE entry 1: "x" needs "keys""#,
            ),
            (
                r#"[{"name": "x", "base_url": "http://h", "keys": {"a": 7}}]"#,
                r#"PROVIDERS_FILE entry 1: "x" keys entry "a""#,
            ),
            (
                r#"[{"name": "x", "base_url": "http://h", "keys": {"a": "sk-secret"}, "after": "zai"}]"#,
                r#"PROVIDERS_FILE entry 1: "x" comes after "zai""#,
            ),
            (
                r#"[{"name": "x", "base_url": "http://h", "keys": {"a": "sk-secret"}, "modle": "m"}]"#,
                r#"PROVIDERS_FILE entry 1: has the unknown field "modle""#,
            ),
            (
                r#"[{"name": "x", "base_url": "http://h", "keys": {"a": "sk-secret"}, "models": {"glm": "m"}}]"#,
                r#"PROVIDERS_FILE gives "x" models, which needs MODELS"#,
            ),
        ];
        for (text, expected) in cases {
            let (_file, path) = providers_file(text);
            let message = config(&[KEYS, ("PROVIDERS_FILE", &path)]).unwrap_err().to_string();
            assert!(message.starts_with(expected), "{message:?} should start with {expected:?}");
            assert!(!message.contains("sk-secret"), "{message:?} leaks a key");
        }
        let missing = config(&[KEYS, ("PROVIDERS_FILE", "/nonexistent.json")]).unwrap_err().to_string();
        assert!(missing.starts_with("PROVIDERS_FILE cannot be read"), "{missing}");
    }

    #[test]
    fn the_catalogue_comes_from_models_or_a_file_and_its_mistakes_name_their_variable() {
        assert!(config(&[KEYS]).unwrap().catalogue.is_none());
        let models = r#"{"glm":{"cerebras":"zai-glm-4.7"}}"#;
        let inline = config(&[KEYS, ("MODELS", models), ("MODEL_ALIASES", r#"{"claude-*":"glm"}"#)]).unwrap();
        assert_eq!(inline.catalogue.unwrap().resolve("claude-opus").unwrap().name, "glm");
        let file = std::env::temp_dir().join(format!("glm-proxy-models-{}.json", std::process::id()));
        std::fs::write(&file, models).unwrap();
        let from_file = config(&[KEYS, ("MODELS_FILE", file.to_str().unwrap())]).unwrap();
        std::fs::remove_file(&file).unwrap();
        assert!(from_file.catalogue.unwrap().resolve("glm").is_some());
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[KEYS, ("MODELS", "{glm}")], "MODELS is not a JSON object"),
            (&[KEYS, ("MODELS_FILE", "/nonexistent.json")], "MODELS_FILE cannot be read"),
            (&[KEYS, ("MODELS", models), ("MODELS_FILE", "/x")], "MODELS_FILE and MODELS are both set"),
            (&[KEYS, ("MODEL_ALIASES", r#"{"a":"glm"}"#)], "MODEL_ALIASES needs MODELS"),
            (&[KEYS, ("MODELS", models), ("MODEL_ALIASES", r#"{"a":"b"}"#)], "MODEL_ALIASES is not a JSON object"),
        ];
        for (vars, expected) in cases {
            let message = config(vars).unwrap_err().to_string();
            assert!(message.starts_with(expected), "{message:?} should start with {expected:?}");
        }
    }

    #[test]
    fn fractional_cooldowns_and_trailing_slashes_are_accepted() {
        let config =
            config(&[KEYS, ("CEREBRAS_COOLDOWN", "0.25"), ("CEREBRAS_BASE_URL", "http://127.0.0.1:9/v1/")]).unwrap();
        assert_eq!(config.cooldown, Duration::from_millis(250));
        assert_eq!(config.providers[0].base_url, "http://127.0.0.1:9/v1");
    }
}
