//! The model catalogue: public model names, each provider's own id for them, and aliases that
//! map the names clients send (`claude-*`) onto public names.
//!
//! Provider ids churn (Cerebras retires its GLM ids within months); clients keep one public
//! name and the operator edits one line. Without a catalogue, models pass as they always did.

pub mod glob;

use std::sync::Arc;

use serde_json::{json, Map, Value};

use self::glob::Glob;
use crate::providers::ProviderId;

/// A public model: the id each provider serves it under, if it does.
#[derive(Debug, PartialEq, Eq)]
pub struct PublicModel {
    pub name: String,
    /// Indexed by `ProviderId::index`; see [`Catalogue::providers`].
    ids: Vec<Option<ProviderModel>>,
}

/// One provider's ids for a public model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderModel {
    pub id: String,
    /// The id for requests with images; the provider's configured vision model when unset.
    pub vision: Option<String>,
}

impl PublicModel {
    pub fn on(&self, provider: ProviderId) -> Option<&ProviderModel> {
        self.ids.get(provider.index())?.as_ref()
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
    /// The provider names a model may name: the configured providers in their order (so a
    /// name's position is its `ProviderId::index`), then the built-in names not configured.
    providers: Vec<&'static str>,
    /// How many of `providers` are configured.
    configured: usize,
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
    /// order is kept. `configured` are the providers in use; a model may also name a built-in
    /// provider among `unconfigured`, which then serves it nowhere.
    pub fn parse(
        models: &str,
        aliases: Option<&str>,
        configured: &[ProviderId],
        unconfigured: &[&'static str],
    ) -> Result<Self, CatalogueError> {
        let object = |text: &str| -> Result<Map<String, Value>, String> {
            match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(object)) => Ok(object),
                Ok(_) => Err("JSON, but not an object".to_owned()),
                Err(error) => Err(crate::config::json_error::problem(&error, "an object")),
            }
        };
        let mut providers: Vec<&'static str> = configured.iter().map(|provider| provider.name()).collect();
        for name in unconfigured {
            if !providers.contains(name) {
                providers.push(name);
            }
        }
        let mut catalogue = Catalogue { configured: configured.len(), providers, ..Catalogue::default() };
        for (name, ids) in object(models).map_err(CatalogueError::Models)? {
            let Value::Object(ids) = ids else {
                return Err(CatalogueError::Models(format!("{name:?} must map provider names to model ids")));
            };
            let mut model = PublicModel { name, ids: vec![None; catalogue.providers.len()] };
            for (provider, id) in ids {
                let index = catalogue.providers.iter().position(|known| *known == provider).ok_or_else(|| {
                    let known = catalogue.providers.join(", ");
                    CatalogueError::Models(format!(
                        "{:?} names the provider {provider:?}; the providers are {known}",
                        model.name
                    ))
                })?;
                model.ids[index] = Some(provider_model(&model.name, &provider, &id).map_err(CatalogueError::Models)?);
            }
            catalogue.models.push(Arc::new(model));
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

    /// Gives `provider` its id for the public model `name` (a `PROVIDERS_FILE` entry's
    /// `models`), as if `MODELS` named it.
    pub fn add(&mut self, provider: ProviderId, name: &str, id: &Value) -> Result<(), String> {
        let ids = provider_model(name, provider.name(), id)?;
        let model = self
            .models
            .iter_mut()
            .find(|model| model.name == name)
            .ok_or_else(|| format!("names {name:?}, which is no public model in MODELS"))?;
        // Only at start, before the catalogue is shared: the model has one owner.
        let model = Arc::get_mut(model).ok_or_else(|| "the catalogue is in use already".to_owned())?;
        model.ids[provider.index()] = Some(ids);
        Ok(())
    }

    /// The ids `provider` serves public models under, vision ids included, each with its
    /// model's public name.
    pub fn ids_at(&self, provider: ProviderId) -> impl Iterator<Item = (&str, &str)> {
        self.models.iter().filter_map(move |model| Some((model.name.as_str(), model.on(provider)?))).flat_map(
            |(name, ids)| std::iter::once(ids.id.as_str()).chain(ids.vision.as_deref()).map(move |id| (name, id)),
        )
    }

    /// The public names, for error messages.
    pub fn public_names(&self) -> String {
        let names: Vec<&str> = self.models.iter().map(|model| model.name.as_str()).collect();
        names.join(", ")
    }

    /// The public models that no configured provider serves, for a warning at start.
    pub fn unserved(&self) -> Vec<&str> {
        let served = |model: &PublicModel| model.ids.iter().take(self.configured).any(Option::is_some);
        self.models.iter().filter(|model| !served(model)).map(|model| model.name.as_str()).collect()
    }

    /// The catalogue as `/_status` shows it, in the shape it was configured in.
    pub fn status(&self) -> Value {
        let models: Map<String, Value> = self
            .models
            .iter()
            .map(|model| {
                let ids: Map<String, Value> = model
                    .ids
                    .iter()
                    .zip(&self.providers)
                    .filter_map(|(ids, provider)| {
                        let ids = ids.as_ref()?;
                        let shown = match &ids.vision {
                            None => json!(ids.id),
                            Some(vision) => json!({ "id": ids.id, "vision": vision }),
                        };
                        Some(((*provider).to_owned(), shown))
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

/// One provider's entry for a public model: `"id"` or `{"id": "id", "vision": "id"}`. A
/// provider a model does not name does not serve it.
fn provider_model(name: &str, provider: &str, id: &Value) -> Result<ProviderModel, String> {
    let text = |value: Option<&Value>| value.and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
    let ids = match id {
        Value::String(_) => text(Some(id)).map(|id| ProviderModel { id, vision: None }),
        Value::Object(fields) => {
            text(fields.get("id")).map(|id| ProviderModel { id, vision: text(fields.get("vision")) })
        }
        _ => None,
    };
    ids.ok_or_else(|| format!(r#"{name:?}/{provider}: give a model id, or {{"id": "...", "vision": "..."}}"#))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODELS: &str = r#"{
        "glm": {"cerebras": "zai-glm-4.7", "synthetic": "hf:zai-org/GLM-4.7", "zai": {"id": "glm-4.7", "vision": "glm-4.6v"}},
        "glm-flash": {"zai": "glm-4.5-flash"}
    }"#;
    const ALIASES: &str = r#"{"claude-*haiku*": "glm-flash", "claude-*": "glm", "gpt-4o": "glm"}"#;

    const CEREBRAS: &str = "cerebras";

    fn providers() -> [ProviderId; 3] {
        [ProviderId::new(0, CEREBRAS), ProviderId::new(1, "synthetic"), ProviderId::new(2, "zai")]
    }

    fn parse(models: &str, aliases: Option<&str>) -> Result<Catalogue, CatalogueError> {
        Catalogue::parse(models, aliases, &providers(), &[])
    }

    fn catalogue() -> Catalogue {
        parse(MODELS, Some(ALIASES)).unwrap()
    }

    #[test]
    fn public_names_map_to_each_providers_id() {
        let catalogue = catalogue();
        let glm = catalogue.resolve("glm").unwrap();
        let [cerebras, synthetic, zai] = providers();
        assert_eq!(glm.on(cerebras).unwrap().id, "zai-glm-4.7");
        assert_eq!(glm.on(synthetic).unwrap().vision, None);
        assert_eq!(glm.on(zai).unwrap().vision.as_deref(), Some("glm-4.6v"));
        let flash = catalogue.resolve("glm-flash").unwrap();
        assert!(flash.on(cerebras).is_none(), "a provider not named does not serve it");
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
        let shadowed = parse(MODELS, Some(r#"{"claude-*": "glm", "claude-*haiku*": "glm-flash"}"#)).unwrap();
        assert_eq!(shadowed.resolve("claude-3-5-haiku").unwrap().name, "glm");
    }

    #[test]
    fn the_listing_has_public_names_and_plain_aliases() {
        assert_eq!(catalogue().listed_names(), ["glm", "glm-flash", "gpt-4o"]);
        assert_eq!(catalogue().public_names(), "glm, glm-flash");
    }

    #[test]
    fn models_no_configured_provider_serves_are_named() {
        assert!(catalogue().unserved().is_empty());
        let cerebras_only = Catalogue::parse(MODELS, None, &providers()[..1], &["synthetic", "zai"]).unwrap();
        assert_eq!(cerebras_only.unserved(), ["glm-flash"], "zai is a known name, but not configured");
        assert_eq!(cerebras_only.ids_at(providers()[0]).collect::<Vec<_>>(), [("glm", "zai-glm-4.7")]);
    }

    #[test]
    fn a_provider_from_the_providers_file_adds_its_ids() {
        let second = ProviderId::new(3, "cerebras-b");
        let mut catalogue = Catalogue::parse(MODELS, None, &[providers().as_slice(), &[second]].concat(), &[]).unwrap();
        catalogue.add(second, "glm", &json!("zai-glm-4.7")).unwrap();
        assert_eq!(catalogue.resolve("glm").unwrap().on(second).unwrap().id, "zai-glm-4.7");
        assert!(catalogue.add(second, "nope", &json!("x")).unwrap_err().contains("no public model"));
        assert_eq!(catalogue.status()["models"]["glm"]["cerebras-b"], "zai-glm-4.7");
    }

    #[test]
    fn mistakes_are_named() {
        let models = |text| parse(text, None).unwrap_err().to_string();
        assert!(models("[]").contains("not an object"));
        assert!(models("{glm}").contains("not valid JSON at line 1, column 2"));
        assert!(models("{}").contains("names no model"));
        assert!(models(r#"{"glm": "zai-glm-4.7"}"#).contains("must map provider names"));
        assert!(models(r#"{"glm": {"cerebas": "x"}}"#).contains("\"cerebas\""));
        assert!(models(r#"{"glm": {"zai": {"vision": "v"}}}"#).contains("glm\"/zai: give a model id"));
        let alias = parse(MODELS, Some(r#"{"claude-*": "claude"}"#)).unwrap_err();
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
