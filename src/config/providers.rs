//! The providers, read from their variables and `PROVIDERS_FILE`: the three built-in ones
//! with their defaults, then the file's, each where its `after` puts it.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{json_error, valid_base_url, ConfigError, Env, NamedKey};
use crate::policy::fault::FaultRules;
use crate::providers::{Provider, ProviderId};
use crate::secret::Secret;

/// The built-in providers' names, in their order.
const BUILT_IN: [&str; 3] = ["cerebras", "synthetic", "zai"];

/// How the built-in providers (Z.ai above all) say a quota is spent in a 200.
const QUOTA_MESSAGE: &str = "token quota is not enough";

/// A provider before it has its place (and so its id).
struct Entry {
    name: String,
    provider: Provider,
    /// The provider this one comes after; `None` for the end of the order.
    after: Option<String>,
    /// Its ids for public models, for the catalogue (from the file's `models`).
    models: Map<String, Value>,
}

/// The configured providers in failover order, the built-in names left unconfigured, and each
/// file provider's `models` by its index.
pub(super) struct Providers {
    pub providers: Vec<Provider>,
    pub unconfigured: Vec<&'static str>,
    pub models: Vec<(ProviderId, Map<String, Value>)>,
    /// `CEREBRAS_API_KEYS_FILE`, when the Cerebras keys come from it: read again on reload.
    pub cerebras_keys_file: Option<PathBuf>,
}

pub(super) fn read(env: &Env) -> Result<Providers, ConfigError> {
    let mut entries = Vec::new();
    let mut unconfigured = Vec::new();
    let cerebras_keys_file = match (env.get("CEREBRAS_API_KEYS"), env.get(KEYS_FILE)) {
        (Some(_), Some(_)) => return Err(ConfigError::new(KEYS_FILE, "and CEREBRAS_API_KEYS are both set: give one")),
        (_, file) => file.map(|path| PathBuf::from(path.trim())),
    };
    let cerebras_keys = match &cerebras_keys_file {
        Some(path) => keys_file(path)?,
        None => pool(env, "CEREBRAS_API_KEYS", None)?.ok_or_else(|| {
            let problem =
                r#"is required (or CEREBRAS_API_KEYS_FILE): a JSON object of name → key, e.g. {"key1":"csk-..."}"#;
            ConfigError::new("CEREBRAS_API_KEYS", problem)
        })?,
    };
    entries.push(built_in(
        "cerebras",
        Provider {
            base_url: env.base_url("CEREBRAS_BASE_URL", "https://api.cerebras.ai/v1")?,
            keys: cerebras_keys,
            model: None,
            vision_model: None,
            long_requests: false,
            fallback_on_cooldown: env.flag("FALLBACK_ON_COOLDOWN", false)?,
            faults: FaultRules { reset_windows: true, quota_message: Some(QUOTA_MESSAGE.into()) },
            ..placeholder()
        },
    ));
    match pool(env, "SYNTHETIC_API_KEYS", Some("SYNTHETIC_API_KEY"))? {
        None => unconfigured.push("synthetic"),
        Some(keys) => entries.push(built_in(
            "synthetic",
            Provider {
                base_url: env.base_url("SYNTHETIC_BASE_URL", "https://api.synthetic.new/openai/v1")?,
                keys,
                model: Some(env.string("SYNTHETIC_MODEL", "hf:zai-org/GLM-4.6")),
                vision_model: Some(env.string("SYNTHETIC_VISION_MODEL", "hf:Qwen/Qwen3-VL-235B-A22B-Instruct")),
                ..built_in_defaults()
            },
        )),
    }
    match pool(env, "ZAI_API_KEYS", Some("ZAI_API_KEY"))? {
        None => unconfigured.push("zai"),
        Some(keys) => {
            let model = env.string("ZAI_MODEL", "glm-4.6");
            entries.push(built_in(
                "zai",
                Provider {
                    base_url: env.base_url("ZAI_BASE_URL", "https://api.z.ai/api/coding/paas/v4")?,
                    keys,
                    vision_model: Some(model.clone()),
                    model: Some(model),
                    ..built_in_defaults()
                },
            ))
        }
    }
    if let Some(path) = env.get("PROVIDERS_FILE") {
        let text = std::fs::read_to_string(path.trim())
            .map_err(|e| ConfigError::new("PROVIDERS_FILE", format!("cannot be read ({path}): {e}")))?;
        entries.extend(file_entries(&text, &unconfigured)?);
    }
    Ok(Providers { cerebras_keys_file, ..place(entries, unconfigured) })
}

const KEYS_FILE: &str = "CEREBRAS_API_KEYS_FILE";

/// The longest keys file read: a pool of thousands of keys is far less.
const KEYS_FILE_MAX_BYTES: u64 = 1 << 20;

/// The Cerebras keys from `CEREBRAS_API_KEYS_FILE`, at start and at each reload: a JSON object
/// of name → key. Its mistakes say where, never what (the file holds keys).
pub fn keys_file(path: &Path) -> Result<Vec<NamedKey>, ConfigError> {
    let unreadable =
        |e: std::io::Error| ConfigError::new(KEYS_FILE, format!("cannot be read ({}): {e}", path.display()));
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut text = String::new();
    file.take(KEYS_FILE_MAX_BYTES + 1).read_to_string(&mut text).map_err(unreadable)?;
    if text.len() as u64 > KEYS_FILE_MAX_BYTES {
        return Err(ConfigError::new(KEYS_FILE, "is over 1 MiB: no list of keys is that long"));
    }
    keys_in(KEYS_FILE, &text, "")
}

/// The defaults every provider starts from, built-in or from the file.
fn placeholder() -> Provider {
    Provider {
        id: ProviderId::new(0, ""),
        base_url: String::new(),
        keys: Vec::new(),
        model: None,
        vision_model: None,
        long_requests: true,
        fallback_on_cooldown: true,
        faults: FaultRules::default(),
    }
}

/// The defaults of the built-in alternatives: a file provider's, and the quota message.
fn built_in_defaults() -> Provider {
    Provider { faults: FaultRules { reset_windows: false, quota_message: Some(QUOTA_MESSAGE.into()) }, ..placeholder() }
}

fn built_in(name: &str, provider: Provider) -> Entry {
    Entry { name: name.to_owned(), provider, after: None, models: Map::new() }
}

/// Orders the entries: each after the one its `after` names (checked to exist), else at the
/// end; then gives each its id.
fn place(entries: Vec<Entry>, unconfigured: Vec<&'static str>) -> Providers {
    let mut ordered: Vec<Entry> = Vec::with_capacity(entries.len());
    for entry in entries {
        let at = match &entry.after {
            // After the named one and those already placed after it, so that file order holds.
            Some(after) => {
                let mut at = ordered.iter().position(|placed| placed.name == *after).map_or(ordered.len(), |i| i + 1);
                while at < ordered.len() && ordered[at].after.as_deref() == Some(after.as_str()) {
                    at += 1;
                }
                at
            }
            None => ordered.len(),
        };
        ordered.insert(at, entry);
    }
    let mut models = Vec::new();
    let providers = ordered
        .into_iter()
        .enumerate()
        .map(|(index, entry)| {
            let id = ProviderId::new(index, &entry.name);
            if !entry.models.is_empty() {
                models.push((id, entry.models));
            }
            Provider { id, ..entry.provider }
        })
        .collect();
    Providers { providers, unconfigured, models, cerebras_keys_file: None }
}

/// A provider's keys: `keys_var`, a JSON object of name → key, or `key_var`, one key (a pool
/// of one, named `key1`). Setting both is a mistake; setting neither leaves it unconfigured.
fn pool(
    env: &Env,
    keys_var: &'static str,
    key_var: Option<&'static str>,
) -> Result<Option<Vec<NamedKey>>, ConfigError> {
    let single = key_var.and_then(|var| Some((var, env.get(var)?)));
    match (env.get(keys_var), single) {
        (Some(_), Some((key_var, _))) => Err(ConfigError::new(
            keys_var,
            format!("and {key_var} are both set: give one (a JSON object of name → key, or the one key)"),
        )),
        (Some(raw), None) => parse_keys(keys_var, &raw).map(Some),
        (None, Some((_, key))) => Ok(Some(vec![NamedKey { name: "key1".into(), secret: Secret::new(key.trim()) }])),
        (None, None) => Ok(None),
    }
}

/// `CEREBRAS_API_KEYS` and its kin: a JSON object of name → key, in the operator's order.
fn parse_keys(var: &'static str, raw: &str) -> Result<Vec<NamedKey>, ConfigError> {
    let quoting = format!(r#" (in a .env file, single-quote it: {var}='{{"key1":"..."}}')"#);
    keys_in(var, raw, &quoting)
}

/// The keys of `raw`, read for `var`; `hint` follows a syntax error. Where and what kind of
/// error, never serde's message: it could quote part of a key.
fn keys_in(var: &'static str, raw: &str, hint: &str) -> Result<Vec<NamedKey>, ConfigError> {
    let object: Map<String, Value> = serde_json::from_str(raw).map_err(|e| {
        let what = json_error::problem(&e, "an object");
        ConfigError::new(var, format!("is not a JSON object of name → key: {what}{hint}"))
    })?;
    keys_of(object).map_err(|problem| ConfigError::new(var, problem))
}

/// The keys of a JSON object of name → key; the problem names an entry, never a value.
fn keys_of(object: Map<String, Value>) -> Result<Vec<NamedKey>, String> {
    if object.is_empty() {
        return Err("holds no key: give at least one name → key".to_owned());
    }
    object
        .into_iter()
        .map(|(name, value)| match value {
            Value::String(key) if !key.trim().is_empty() && !name.is_empty() => {
                Ok(NamedKey { name, secret: Secret::new(key.trim()) })
            }
            _ => Err(format!("entry {name:?} is not a non-empty string key (names must be non-empty too)")),
        })
        .collect()
}

/// `PROVIDERS_FILE`: a JSON array of providers. Its mistakes name the entry and the field,
/// with the line and column of a syntax error, and never a value (keys live here).
fn file_entries(text: &str, unconfigured: &[&str]) -> Result<Vec<Entry>, ConfigError> {
    let error = |problem: String| ConfigError::new("PROVIDERS_FILE", problem);
    let value: Value =
        serde_json::from_str(text).map_err(|e| error(format!("is {}", json_error::problem(&e, "an array"))))?;
    let Value::Array(items) = value else {
        return Err(error(
            "must hold a JSON array of providers: [{\"name\": ..., \"base_url\": ..., \"keys\": {...}}]".into(),
        ));
    };
    let mut entries: Vec<Entry> = Vec::with_capacity(items.len());
    let mut known: Vec<String> =
        BUILT_IN.iter().filter(|name| !unconfigured.contains(name)).map(|n| n.to_string()).collect();
    for (position, item) in items.into_iter().enumerate() {
        let entry = file_entry(item, &known).map_err(|problem| error(format!("entry {}: {problem}", position + 1)))?;
        known.push(entry.name.clone());
        entries.push(entry);
    }
    Ok(entries)
}

const FIELDS: [&str; 11] = [
    "name",
    "base_url",
    "keys",
    "model",
    "vision_model",
    "models",
    "after",
    "long_requests",
    "fallback_on_cooldown",
    "rate_limit_headers",
    "quota_message",
];

/// One provider of the file; `known` are the names placed before it.
fn file_entry(item: Value, known: &[String]) -> Result<Entry, String> {
    let Value::Object(mut fields) = item else {
        return Err("must be a JSON object".into());
    };
    if let Some(unknown) = fields.keys().find(|field| !FIELDS.contains(&field.as_str())) {
        return Err(format!("has the unknown field {unknown:?}; the fields are {}", FIELDS.join(", ")));
    }
    let name = text(&mut fields, "name")?.ok_or("needs a \"name\"")?;
    let well_formed = name.len() <= 32
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    if !well_formed {
        return Err(format!(
            "name {name:?} must be 1 to 32 of a-z, 0-9, '-', '_', '.', starting with a letter or digit"
        ));
    }
    if BUILT_IN.contains(&name.as_str()) || known.contains(&name) {
        return Err(format!("name {name:?} is taken (built-in providers are set by their variables)"));
    }
    let named = |problem: String| format!("{name:?} {problem}");
    let base_url = text(&mut fields, "base_url").map_err(named)?.ok_or_else(|| named("needs a \"base_url\"".into()))?;
    let base_url = valid_base_url(&base_url)
        .ok_or_else(|| named("base_url must be an http:// or https:// URL with a host and no query".into()))?;
    let keys = match fields.remove("keys") {
        Some(Value::Object(keys)) => keys_of(keys).map_err(|problem| named(format!("keys {problem}")))?,
        _ => return Err(named("needs \"keys\": a JSON object of name → key".into())),
    };
    let after = text(&mut fields, "after").map_err(named)?;
    if let Some(after) = &after {
        if !known.contains(after) {
            return Err(named(format!("comes after {after:?}, which is no provider configured before it")));
        }
    }
    let models = match fields.remove("models") {
        None => Map::new(),
        Some(Value::Object(models)) => models,
        Some(_) => return Err(named("models must map public model names to this provider's ids".into())),
    };
    let defaults = placeholder();
    let provider = Provider {
        base_url,
        keys,
        model: text(&mut fields, "model").map_err(named)?,
        vision_model: text(&mut fields, "vision_model").map_err(named)?,
        long_requests: flag(&mut fields, "long_requests", defaults.long_requests).map_err(named)?,
        fallback_on_cooldown: flag(&mut fields, "fallback_on_cooldown", defaults.fallback_on_cooldown)
            .map_err(named)?,
        faults: FaultRules {
            reset_windows: flag(&mut fields, "rate_limit_headers", false).map_err(named)?,
            quota_message: text(&mut fields, "quota_message").map_err(named)?,
        },
        ..defaults
    };
    Ok(Entry { name, provider, after, models })
}

fn text(fields: &mut Map<String, Value>, field: &str) -> Result<Option<String>, String> {
    match fields.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(Some(text.trim().to_owned())),
        Some(_) => Err(format!("{field} must be a non-empty string")),
    }
}

fn flag(fields: &mut Map<String, Value>, field: &str, default: bool) -> Result<bool, String> {
    match fields.remove(field) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(flag)) => Ok(flag),
        Some(_) => Err(format!("{field} must be true or false")),
    }
}
