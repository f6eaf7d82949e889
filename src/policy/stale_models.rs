//! Which model ids the proxy sends a provider that the provider no longer serves: the ids its
//! `GET /models` does not list, and the ids it answered `404 model_not_found` for.
//!
//! Only the ids the proxy itself chooses are judged (the catalogue's, and the provider's
//! configured model and vision model), so the flags are bounded by the configuration, whatever
//! clients send. A provider that does not answer `/models` with a listing flags nothing by it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

/// Why an id is flagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Staleness {
    /// The provider's `GET /models` does not list it.
    NotListed,
    /// The provider answered a request for it with `404 model_not_found`.
    NotFound,
}

/// What the last look at a provider's listing found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Listing {
    /// Not read yet, or the proxy sends this provider no id of its own choosing.
    Unchecked,
    /// Read: it lists this many ids.
    Listed { models: usize },
    /// No listing came: nothing is flagged by it.
    Unavailable { problem: String },
}

/// One provider's ids, and which of them are flagged.
#[derive(Debug)]
pub struct ProviderModels {
    /// Each id the proxy may send, with the reason it is flagged, if it is.
    ids: BTreeMap<String, Option<Staleness>>,
    listing: Listing,
}

/// What a listing changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Flagged by this listing, and not before.
    pub flagged: Vec<String>,
    /// Flagged before, listed now.
    pub cleared: Vec<String>,
}

impl ProviderModels {
    pub fn new(ids: impl IntoIterator<Item = String>) -> Self {
        Self { ids: ids.into_iter().map(|id| (id, None)).collect(), listing: Listing::Unchecked }
    }

    /// Whether the proxy sends this provider any id of its own choosing: else there is nothing
    /// to check.
    pub fn any(&self) -> bool {
        !self.ids.is_empty()
    }

    /// The provider listed `listed`: every id it does not list is flagged, and an id it lists
    /// is flagged no more (a `404` included: the provider says it serves it again).
    pub fn listed(&mut self, listed: &BTreeSet<String>) -> Changes {
        let mut changes = Changes::default();
        for (id, flag) in &mut self.ids {
            let now = (!listed.contains(id)).then_some(Staleness::NotListed);
            match (*flag, now) {
                (None, Some(_)) => changes.flagged.push(id.clone()),
                (Some(_), None) => changes.cleared.push(id.clone()),
                _ => {}
            }
            // A 404 is the stronger word: it stays the reason while the id is still unlisted.
            *flag = now.map(|now| flag.unwrap_or(now));
        }
        self.listing = Listing::Listed { models: listed.len() };
        changes
    }

    /// No listing came: the flags stay as the last listing and 404s left them.
    pub fn unavailable(&mut self, problem: String) {
        self.listing = Listing::Unavailable { problem };
    }

    /// The provider answered `404 model_not_found` for `id`. True when that flags it anew;
    /// an id the proxy does not choose (a client's own) is not judged.
    pub fn not_found(&mut self, id: &str) -> bool {
        match self.ids.get_mut(id) {
            Some(flag @ (None | Some(Staleness::NotListed))) => {
                let anew = flag.is_none();
                *flag = Some(Staleness::NotFound);
                anew
            }
            _ => false,
        }
    }

    /// The flagged ids, in order.
    pub fn stale(&self) -> Vec<String> {
        self.ids.iter().filter(|(_, flag)| flag.is_some()).map(|(id, _)| id.clone()).collect()
    }

    /// Every id, with its flag.
    pub fn ids(&self) -> impl Iterator<Item = (&str, Option<Staleness>)> {
        self.ids.iter().map(|(id, flag)| (id.as_str(), *flag))
    }

    pub fn listing(&self) -> &Listing {
        &self.listing
    }

    /// Forgets what was learned (a restart): every id unflagged, the listing unread.
    pub fn forget(&mut self) {
        self.ids.values_mut().for_each(|flag| *flag = None);
        self.listing = Listing::Unchecked;
    }
}

/// The ids a `GET /models` answer lists, in OpenAI's shape (`{"data": [{"id": ...}]}`), which
/// Anthropic's shares; `None` when the body is no such listing, or lists nothing (an account
/// that sees no model says nothing of the ids).
pub fn listed_ids(body: &[u8]) -> Option<BTreeSet<String>> {
    let listing: Value = serde_json::from_slice(body).ok()?;
    let data = listing.get("data")?.as_array()?;
    let ids: BTreeSet<String> = data.iter().filter_map(|model| Some(model.get("id")?.as_str()?.to_owned())).collect();
    (!ids.is_empty()).then_some(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn models(ids: &[&str]) -> ProviderModels {
        ProviderModels::new(ids.iter().map(|id| (*id).to_owned()))
    }

    fn set(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|id| (*id).to_owned()).collect()
    }

    #[test]
    fn ids_the_listing_leaves_out_are_flagged_and_cleared_when_listed_again() {
        let mut watched = models(&["gpt-oss-120b", "zai-glm-4.7"]);
        let changes = watched.listed(&set(&["gpt-oss-120b", "qwen-3.8-27b"]));
        assert_eq!(changes, Changes { flagged: vec!["zai-glm-4.7".into()], cleared: vec![] });
        assert_eq!(watched.stale(), ["zai-glm-4.7"]);
        assert_eq!(watched.listing(), &Listing::Listed { models: 2 });
        // The same listing again flags nothing new: a warning is logged once.
        assert_eq!(watched.listed(&set(&["gpt-oss-120b"])), Changes::default());
        let changes = watched.listed(&set(&["gpt-oss-120b", "zai-glm-4.7"]));
        assert_eq!(changes, Changes { flagged: vec![], cleared: vec!["zai-glm-4.7".into()] });
        assert!(watched.stale().is_empty());
    }

    #[test]
    fn a_404_flags_an_id_until_a_listing_names_it() {
        let mut watched = models(&["glm-5.2", "glm-4.7"]);
        assert!(watched.not_found("glm-4.7"));
        assert!(!watched.not_found("glm-4.7"), "flagged once");
        assert_eq!(watched.stale(), ["glm-4.7"]);
        let flags: Vec<_> = watched.ids().collect();
        assert_eq!(flags, [("glm-4.7", Some(Staleness::NotFound)), ("glm-5.2", None)]);
        // Unlisted as well: the 404 stays the reason.
        watched.listed(&set(&["glm-5.2"]));
        assert_eq!(watched.ids().next(), Some(("glm-4.7", Some(Staleness::NotFound))));
        watched.listed(&set(&["glm-5.2", "glm-4.7"]));
        assert!(watched.stale().is_empty());
    }

    #[test]
    fn a_clients_own_model_is_not_judged() {
        let mut watched = models(&["glm-5.2"]);
        assert!(!watched.not_found("whatever-the-client-sent"));
        assert!(watched.stale().is_empty());
    }

    #[test]
    fn no_listing_keeps_the_flags_and_says_why() {
        let mut watched = models(&["glm-5.2", "glm-4.7"]);
        watched.listed(&set(&["glm-5.2"]));
        watched.unavailable("answered 404".into());
        assert_eq!(watched.stale(), ["glm-4.7"]);
        assert_eq!(watched.listing(), &Listing::Unavailable { problem: "answered 404".into() });
        watched.forget();
        assert!(watched.stale().is_empty());
        assert_eq!(watched.listing(), &Listing::Unchecked);
    }

    #[test]
    fn a_listing_is_openai_shaped_or_none() {
        let body =
            br#"{"object":"list","data":[{"id":"gpt-oss-120b","object":"model"},{"id":7},{"id":"qwen-3.8-27b"}]}"#;
        assert_eq!(listed_ids(body), Some(set(&["gpt-oss-120b", "qwen-3.8-27b"])));
        for body in [
            &b"<html>not found</html>"[..],
            br#"{"error":{"message":"no"}}"#,
            br#"{"data":{}}"#,
            br#"{"data":[]}"#,
            b"",
        ] {
            assert_eq!(listed_ids(body), None, "{}", String::from_utf8_lossy(body));
        }
    }
}
