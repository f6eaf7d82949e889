//! The model catalogue: public model names, each provider's own id for them, and aliases that
//! map the names clients send (`claude-*`) onto public names.
//!
//! Provider ids churn (Cerebras retires its GLM ids within months); clients keep one public
//! name and the operator edits one line. Without a catalogue, models pass as they always did.

mod glob;

use std::sync::Arc;

use serde_json::{json, Map, Value};

use self::glob::Glob;
use crate::providers::ProviderKind;

/// A public model: the id each provider serves it under, if it does.
#[derive(Debug, PartialEq, Eq)]
pub struct PublicModel {
    pub name: String,
    /// Indexed by `ProviderKind::index`.
    ids: [Option<ProviderModel>; 3],
}

/// One provider's ids for a public model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderModel {
    pub id: String,
    /// The id for requests with images; the provider's configured vision model when unset.
    pub vision: Option<String>,
}

impl PublicModel {
    pub fn on(&self, provider: ProviderKind) -> Option<&ProviderModel> {
        self.ids[provider.index()].as_ref()
    }
}

#[derive(Debug)]
struct Alias {
    pattern: String,
    glob: Glob,
    /// Index into `Catalogue::models`.
    model: usize,
}

#[derive(Debug, Default)]
pub struct Catalogue {
    /// In the operator's order.
    models: Vec<Arc<PublicModel>>,
    /// Tried in the operator's order; the first match wins.
    aliases: Vec<Alias>,
}

/// Why a catalogue cannot be used; names the entry, never a key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CatalogueError {
    #[error("is not a JSON object of public name → {{provider: id}}: {0}")]
    Models(String),
    #[error("is not a JSON object of pattern → public name: {0}")]
    Aliases(String),
}

impl Catalogue {
    /// Reads `MODELS` (or the `MODELS_FILE` text) and `MODEL_ALIASES`, both JSON objects whose
    /// order is kept.
    pub fn parse(models: &str, aliases: Option<&str>) -> Result<Self, CatalogueError> {
        let object = |text: &str| -> Result<Map<String, Value>, String> {
            match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(object)) => Ok(object),
                Ok(_) => Err("JSON, but not an object".to_owned()),
                Err(error) => Err(format!("not valid JSON at character {}", error.column())),
            }
        };
        let mut catalogue = Catalogue::default();
        for (name, ids) in object(models).map_err(CatalogueError::Models)? {
            let ids = provider_ids(&name, ids).map_err(CatalogueError::Models)?;
            catalogue.models.push(Arc::new(PublicModel { name, ids }));
        }
        if catalogue.models.is_empty() {
            return Err(CatalogueError::Models("it names no model".to_owned()));
        }
        for (pattern, target) in object(aliases.unwrap_or("{}")).map_err(CatalogueError::Aliases)? {
            let model = target
                .as_str()
                .and_then(|target| catalogue.models.iter().position(|m| m.name == target))
                .ok_or_else(|| {
                    CatalogueError::Aliases(format!("{pattern:?} maps to {target}, which is no public model in MODELS"))
                })?;
            catalogue.aliases.push(Alias { glob: Glob::new(&pattern), pattern, model });
        }
        Ok(catalogue)
    }

    /// The public model a client's name stands for: the name itself, or the first alias that
    /// matches it.
    pub fn resolve(&self, requested: &str) -> Option<&Arc<PublicModel>> {
        self.models.iter().find(|model| model.name == requested).or_else(|| {
            let alias = self.aliases.iter().find(|alias| alias.glob.matches(requested))?;
            Some(&self.models[alias.model])
        })
    }

    /// The public names, then the aliases that are plain names: what `/v1/models` lists.
    pub fn listed_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.models.iter().map(|model| model.name.as_str()).collect();
        for alias in self.aliases.iter().filter(|alias| alias.glob.is_plain()) {
            if !names.contains(&alias.pattern.as_str()) {
                names.push(&alias.pattern);
            }
        }
        names
    }

    /// Every provider id the catalogue names, vision ids included.
    pub fn ids(&self) -> impl Iterator<Item = (ProviderKind, &str)> {
        self.models.iter().flat_map(|model| {
            ProviderKind::ALL.into_iter().filter_map(|provider| Some((provider, model.on(provider)?))).flat_map(
                |(provider, ids)| {
                    std::iter::once(ids.id.as_str()).chain(ids.vision.as_deref()).map(move |id| (provider, id))
                },
            )
        })
    }

    /// The public names, for error messages.
    pub fn public_names(&self) -> String {
        let names: Vec<&str> = self.models.iter().map(|model| model.name.as_str()).collect();
        names.join(", ")
    }

    /// The public models that no configured provider serves, for a warning at start.
    pub fn unserved(&self, configured: &[ProviderKind]) -> Vec<&str> {
        let served = |model: &PublicModel| configured.iter().any(|&provider| model.on(provider).is_some());
        self.models.iter().filter(|model| !served(model)).map(|model| model.name.as_str()).collect()
    }

    /// The catalogue as `/_status` shows it, in the shape it was configured in.
    pub fn status(&self) -> Value {
        let models: Map<String, Value> = self
            .models
            .iter()
            .map(|model| {
                let ids: Map<String, Value> = ProviderKind::ALL
                    .into_iter()
                    .filter_map(|provider| {
                        let ids = model.on(provider)?;
                        let shown = match &ids.vision {
                            None => json!(ids.id),
                            Some(vision) => json!({ "id": ids.id, "vision": vision }),
                        };
                        Some((provider.name().to_owned(), shown))
                    })
                    .collect();
                (model.name.clone(), Value::Object(ids))
            })
            .collect();
        let aliases: Map<String, Value> =
            self.aliases.iter().map(|alias| (alias.pattern.clone(), json!(self.models[alias.model].name))).collect();
        json!({ "models": models, "aliases": aliases })
    }
}

/// `{"cerebras": "id", "zai": {"id": "id", "vision": "id"}}`: a provider not named does not
/// serve the model.
fn provider_ids(name: &str, ids: Value) -> Result<[Option<ProviderModel>; 3], String> {
    let Value::Object(ids) = ids else {
        return Err(format!("{name:?} must map provider names to model ids"));
    };
    let mut found: [Option<ProviderModel>; 3] = Default::default();
    for (provider, id) in ids {
        let kind = ProviderKind::ALL.into_iter().find(|kind| kind.name() == provider).ok_or_else(|| {
            format!("{name:?} names the provider {provider:?}; the providers are cerebras, synthetic and zai")
        })?;
        let text = |value: Option<&Value>| value.and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
        let ids = match &id {
            Value::String(_) => text(Some(&id)).map(|id| ProviderModel { id, vision: None }),
            Value::Object(fields) => {
                text(fields.get("id")).map(|id| ProviderModel { id, vision: text(fields.get("vision")) })
            }
            _ => None,
        };
        let ids =
            ids.ok_or_else(|| format!(r#"{name:?}/{provider}: give a model id, or {{"id": "...", "vision": "..."}}"#))?;
        found[kind.index()] = Some(ids);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODELS: &str = r#"{
        "glm": {"cerebras": "zai-glm-4.7", "synthetic": "hf:zai-org/GLM-4.7", "zai": {"id": "glm-4.7", "vision": "glm-4.6v"}},
        "glm-flash": {"zai": "glm-4.5-flash"}
    }"#;
    const ALIASES: &str = r#"{"claude-*haiku*": "glm-flash", "claude-*": "glm", "gpt-4o": "glm"}"#;

    fn catalogue() -> Catalogue {
        Catalogue::parse(MODELS, Some(ALIASES)).unwrap()
    }

    #[test]
    fn public_names_map_to_each_providers_id() {
        let catalogue = catalogue();
        let glm = catalogue.resolve("glm").unwrap();
        assert_eq!(glm.on(ProviderKind::Cerebras).unwrap().id, "zai-glm-4.7");
        assert_eq!(glm.on(ProviderKind::Synthetic).unwrap().vision, None);
        assert_eq!(glm.on(ProviderKind::Zai).unwrap().vision.as_deref(), Some("glm-4.6v"));
        let flash = catalogue.resolve("glm-flash").unwrap();
        assert!(flash.on(ProviderKind::Cerebras).is_none(), "a provider not named does not serve it");
    }

    #[test]
    fn aliases_are_tried_in_the_order_written() {
        let catalogue = catalogue();
        let resolved = |name| catalogue.resolve(name).map(|model| model.name.as_str());
        assert_eq!(resolved("claude-3-5-haiku-20241022"), Some("glm-flash"));
        assert_eq!(resolved("claude-sonnet-4-5"), Some("glm"));
        assert_eq!(resolved("gpt-4o"), Some("glm"));
        assert_eq!(resolved("gpt-4o-mini"), None);
        assert_eq!(resolved("zai-glm-4.7"), None, "provider ids are no public names");
        // The other order shadows the haiku alias.
        let shadowed = Catalogue::parse(MODELS, Some(r#"{"claude-*": "glm", "claude-*haiku*": "glm-flash"}"#)).unwrap();
        assert_eq!(shadowed.resolve("claude-3-5-haiku").unwrap().name, "glm");
    }

    #[test]
    fn the_listing_has_public_names_and_plain_aliases() {
        assert_eq!(catalogue().listed_names(), ["glm", "glm-flash", "gpt-4o"]);
        assert_eq!(catalogue().public_names(), "glm, glm-flash");
    }

    #[test]
    fn models_no_configured_provider_serves_are_named() {
        assert_eq!(catalogue().unserved(&[ProviderKind::Cerebras]), ["glm-flash"]);
        assert!(catalogue().unserved(&ProviderKind::ALL).is_empty());
    }

    #[test]
    fn mistakes_are_named() {
        let models = |text| Catalogue::parse(text, None).unwrap_err().to_string();
        assert!(models("[]").contains("not an object"));
        assert!(models("{glm}").contains("not valid JSON at character 2"));
        assert!(models("{}").contains("names no model"));
        assert!(models(r#"{"glm": "zai-glm-4.7"}"#).contains("must map provider names"));
        assert!(models(r#"{"glm": {"cerebas": "x"}}"#).contains("\"cerebas\""));
        assert!(models(r#"{"glm": {"zai": {"vision": "v"}}}"#).contains("glm\"/zai: give a model id"));
        let alias = Catalogue::parse(MODELS, Some(r#"{"claude-*": "claude"}"#)).unwrap_err();
        assert!(alias.to_string().contains("\"claude-*\" maps to \"claude\", which is no public model"));
    }

    #[test]
    fn the_status_shows_the_catalogue_as_configured() {
        let status = catalogue().status();
        assert_eq!(status["models"]["glm"]["cerebras"], "zai-glm-4.7");
        assert_eq!(status["models"]["glm"]["zai"], json!({"id": "glm-4.7", "vision": "glm-4.6v"}));
        assert_eq!(status["aliases"]["claude-*"], "glm");
        let order: Vec<&String> = status["aliases"].as_object().unwrap().keys().collect();
        assert_eq!(order, ["claude-*haiku*", "claude-*", "gpt-4o"]);
    }
}
