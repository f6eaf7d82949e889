//! The upstream providers, as data: a name, a base URL, a pool of keys, the models a request is
//! sent with, its place in the failover order, and what is peculiar to it (which rate-limit
//! headers it sends, how it says a quota is spent). The three built-in providers (Cerebras,
//! Synthetic, Z.ai) are defined this way from their variables (`config::providers`), and
//! `PROVIDERS_FILE` adds more.

use crate::catalogue::PublicModel;
use crate::config::NamedKey;
use crate::policy::fault::FaultRules;

/// A configured provider: its place in the failover order (which indexes every per-provider
/// table) and its name in headers, logs, metrics and `/_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProviderId {
    index: usize,
    name: &'static str,
}

impl ProviderId {
    pub fn new(index: usize, name: &str) -> Self {
        Self { index, name: intern(name) }
    }

    pub fn index(self) -> usize {
        self.index
    }

    pub fn name(self) -> &'static str {
        self.name
    }
}

/// A provider name that lives as long as the process: ids are copied into every attempt's
/// source, log and metric, so they hold no reference count. The set grows only with the names
/// configured, once each.
fn intern(name: &str) -> &'static str {
    static NAMES: parking_lot::Mutex<Vec<&'static str>> = parking_lot::Mutex::new(Vec::new());
    let mut names = NAMES.lock();
    if let Some(known) = names.iter().find(|known| **known == name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.into());
    names.push(leaked);
    leaked
}

#[derive(Debug, Clone)]
pub struct Provider {
    pub id: ProviderId,
    /// Without its trailing slash: `https://api.cerebras.ai/v1`.
    pub base_url: String,
    /// In the operator's order; the first is the sticky key at start.
    pub keys: Vec<NamedKey>,
    /// The model a chat request is sent with when the catalogue names no id for this provider.
    /// `None` passes the client's model as it is: such a provider can take any request, not
    /// only chat completions (whose body the proxy rewrites).
    pub model: Option<String>,
    /// The model for requests with images; `None` for a provider that takes no images.
    pub vision_model: Option<String>,
    /// Takes requests estimated over `TOKEN_THRESHOLD`.
    pub long_requests: bool,
    /// When every key rests, the request moves on to the next provider rather than wait (it
    /// waits all the same where no provider comes after).
    pub fallback_on_cooldown: bool,
    pub faults: FaultRules,
}

impl Provider {
    /// The model a chat request goes with: the catalogue's id for this provider (its vision id,
    /// or else the configured vision model, for images), or the configured models without one.
    /// `None` sends the client's model as it is.
    pub fn model_for<'a>(&'a self, public: Option<&'a PublicModel>, vision: bool) -> Option<&'a str> {
        let vision_model = self.vision_model.as_deref().filter(|_| vision);
        match public.and_then(|model| model.on(self.id)) {
            Some(ids) => Some(ids.vision.as_deref().filter(|_| vision).or(vision_model).unwrap_or(&ids.id)),
            None => vision_model.or(self.model.as_deref()),
        }
    }

    /// Takes requests that are not chat completions, which go as the client sent them.
    pub fn any_request(&self) -> bool {
        self.model.is_none()
    }

    /// Attempts a request may make here: two full passes over the keys, so a request that
    /// waited out a rest still gets its turn.
    pub fn max_attempts(&self) -> usize {
        2 * self.keys.len() + 1
    }
}
