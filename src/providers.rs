//! The upstream providers: Cerebras (a pool of keys) and the alternatives, Synthetic and Z.ai
//! (one key each, their own model names).

use crate::catalogue::PublicModel;
use crate::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    Cerebras,
    Synthetic,
    Zai,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 3] = [Self::Cerebras, Self::Synthetic, Self::Zai];

    /// The provider's place in `ALL`, for tables indexed by provider.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The name in headers, logs and `/_status`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cerebras => "cerebras",
            Self::Synthetic => "synthetic",
            Self::Zai => "zai",
        }
    }
}

/// An alternative provider, configured only when its key is set.
#[derive(Debug, Clone)]
pub struct Alternative {
    pub kind: ProviderKind,
    pub base_url: String,
    pub key: Secret,
    /// The model a text request is sent with.
    pub model: String,
    /// The model a request with images is sent with.
    pub vision_model: String,
}

impl Alternative {
    /// The model a request goes with: the catalogue's id for this provider (its vision id, or
    /// else the configured vision model, for images), or the configured models without one.
    pub fn model_for<'a>(&'a self, public: Option<&'a PublicModel>, vision: bool) -> &'a str {
        let ids = public.and_then(|model| model.on(self.kind));
        match (ids, vision) {
            (Some(ids), false) => &ids.id,
            (Some(ids), true) => ids.vision.as_deref().unwrap_or(&self.vision_model),
            (None, false) => &self.model,
            (None, true) => &self.vision_model,
        }
    }
}
