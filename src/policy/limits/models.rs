//! The models a client key may use: public model names or `*` globs, comma-separated as the
//! CLI takes them (`glm,glm-flash`, `qwen-*`, `*`).

use std::fmt;

use crate::catalogue::glob::Glob;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelList {
    /// As given, for messages and the database.
    patterns: Vec<String>,
    globs: Vec<Glob>,
}

/// Characters a pattern may hold besides `*`: those of model ids (`zai-org/GLM-4.6`,
/// `llama3.1:8b`, `model@2025`). Anything else (`?`, `[`, spaces) is a syntax this does not have.
fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_./:@*".contains(c)
}

impl ModelList {
    /// Reads `glm,glm-flash`; an empty entry or a character no model id has is an error that
    /// names the pattern.
    pub fn parse(list: &str) -> Result<Self, String> {
        let patterns: Vec<String> = list.split(',').map(|p| p.trim().to_owned()).collect();
        for pattern in &patterns {
            if pattern.is_empty() {
                return Err(format!("an empty model pattern in {list:?}"));
            }
            if let Some(bad) = pattern.chars().find(|&c| !allowed(c)) {
                return Err(format!(
                    "model pattern {pattern:?} holds {bad:?}: patterns are names with * for any run of characters"
                ));
            }
        }
        let globs = patterns.iter().map(|p| Glob::new(p)).collect();
        Ok(Self { patterns, globs })
    }

    /// A list that allows no model.
    pub fn none() -> Self {
        Self { patterns: Vec::new(), globs: Vec::new() }
    }

    /// May the key use `model` (the catalogue's public name after aliases, or the client's own
    /// model without a catalogue)?
    pub fn allows(&self, model: &str) -> bool {
        self.globs.iter().any(|glob| glob.matches(model))
    }
}

/// The list as the CLI takes it, for the 403 that names the models a key may use.
impl fmt::Display for ModelList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.patterns.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_globs_allow_what_they_match() {
        let list = ModelList::parse("glm, qwen-*").unwrap();
        assert!(list.allows("glm"));
        assert!(list.allows("qwen-3-coder"));
        assert!(!list.allows("glm-flash"));
        assert!(!list.allows("qwen"));
        assert_eq!(list.to_string(), "glm,qwen-*");
        assert!(ModelList::parse("*").unwrap().allows("anything/at:all"));
    }

    #[test]
    fn a_syntax_it_does_not_have_is_refused_with_the_pattern_named() {
        for (list, named) in [("glm,", "empty"), ("glm?", "\"glm?\""), ("[ab]", "\"[ab]\""), ("glm 4", "\"glm 4\"")] {
            let error = ModelList::parse(list).unwrap_err();
            assert!(error.contains(named), "{list}: {error}");
        }
    }
}
