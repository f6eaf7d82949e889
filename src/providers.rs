//! The upstream providers: Cerebras (a pool of keys) and the alternatives, Synthetic and Z.ai
//! (one key each, their own model names).

use crate::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    Cerebras,
    Synthetic,
    Zai,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 3] = [Self::Cerebras, Self::Synthetic, Self::Zai];

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
