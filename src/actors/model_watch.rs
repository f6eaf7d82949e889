//! `ModelWatch`: learns which model ids a provider has retired before clients do. At start and
//! every `MODEL_CHECK_INTERVAL` it reads each provider's `GET /models` with one of its keys,
//! and flags the ids the proxy sends there (`policy::stale_models`) that the listing leaves
//! out; a provider's `404 model_not_found` for one flags it too. Flags are logged once, shown
//! by `/_status`, `/admin/models` and the dashboard, and counted in `glm_proxy_stale_models`.
//!
//! Off the request path: attempts only tell it of a 404, by `do_send`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_web::http::header;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::key_rotator::CurrentKey;
use super::supervision::{guarded, ActorFault, Named};
use crate::metrics::Metrics;
use crate::policy::stale_models::{listed_ids, Listing, ProviderModels, Staleness};
use crate::providers::ProviderId;
use crate::secret::Secret;

/// The longest one read of a listing may take, connection included.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);
/// Listings are a few kilobytes; past this, one is not read.
const MAX_LISTING_BYTES: usize = 4 * 1024 * 1024;

/// A provider answered `404 model_not_found` for `model`. Sent with `do_send`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct NotFound {
    pub provider: ProviderId,
    pub model: Arc<str>,
}

/// Each provider's ids and flags, for `/_status` and `/admin/models`.
#[derive(Message)]
#[rtype(result = "Result<Vec<ProviderModelsView>, ActorFault>")]
pub struct GetModels;

#[derive(Debug, Clone, Serialize)]
pub struct ProviderModelsView {
    pub provider: &'static str,
    /// What the last read of `GET /models` found.
    pub listing: Listing,
    /// When it was read (UTC); `null` before the first read.
    pub checked_at: Option<DateTime<Utc>>,
    /// Every id the proxy sends this provider, with the public models it serves.
    pub models: Vec<ModelView>,
    /// The flagged ids, as `/_status` shows them.
    pub stale_models: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelView {
    pub id: String,
    /// The catalogue's public names served by this id; empty for a configured model.
    pub public: Vec<String>,
    /// Why the id is flagged; `null` when it is not.
    pub stale: Option<Staleness>,
}

/// One provider as watched: where its listing is, which key reads it, what it found.
pub struct Watched {
    pub provider: ProviderId,
    /// `{base_url}/models`.
    pub url: String,
    /// The rotator's published key; the first configured key while every key rests.
    pub current: CurrentKey,
    pub first_key: Secret,
    /// Each id the proxy sends, with the catalogue's public names it serves.
    pub ids: Vec<(String, Vec<String>)>,
}

struct Entry {
    watched: Watched,
    models: ProviderModels,
    checked_at: Option<DateTime<Utc>>,
    /// A read is out: the next tick does not send another.
    checking: bool,
}

pub struct ModelWatch {
    entries: Vec<Entry>,
    client: awc::Client,
    /// Zero: no listing is read; 404s still flag.
    interval: Duration,
    metrics: Arc<Metrics>,
}

impl ModelWatch {
    pub fn new(watched: Vec<Watched>, client: awc::Client, interval: Duration, metrics: Arc<Metrics>) -> Self {
        let entries = watched
            .into_iter()
            .map(|watched| {
                let models = ProviderModels::new(watched.ids.iter().map(|(id, _)| id.clone()));
                Entry { watched, models, checked_at: None, checking: false }
            })
            .collect();
        Self { entries, client, interval, metrics }
    }

    /// Sends a read to every provider that has ids to judge and no read out.
    fn check_all(&mut self, ctx: &mut Context<Self>) {
        for index in 0..self.entries.len() {
            let entry = &mut self.entries[index];
            if entry.checking || !entry.models.any() {
                continue;
            }
            entry.checking = true;
            let key = match &*entry.watched.current.load() {
                Some(grant) => grant.secret.clone(),
                None => entry.watched.first_key.clone(),
            };
            let read = read_listing(self.client.clone(), entry.watched.url.clone(), key);
            ctx.spawn(read.into_actor(self).map(move |listing, this, _| this.checked(index, listing)));
        }
    }

    fn checked(&mut self, index: usize, listing: Result<BTreeSet<String>, String>) {
        let Some(entry) = self.entries.get_mut(index) else { return };
        entry.checking = false;
        entry.checked_at = Some(Utc::now());
        let provider = entry.watched.provider.name();
        match listing {
            Ok(listed) => {
                self.metrics.model_checks.with_label_values(&[provider, "listed"]).inc();
                let changes = entry.models.listed(&listed);
                for model in &changes.flagged {
                    log::warn!(
                        "event=model_stale provider={provider} model={model:?} reason=not_listed problem=\"GET /models does not list it: requests for it fail over or fail\""
                    );
                }
                for model in &changes.cleared {
                    log::info!("event=model_listed provider={provider} model={model:?}");
                }
            }
            Err(problem) => {
                self.metrics.model_checks.with_label_values(&[provider, "unavailable"]).inc();
                log::info!(
                    "event=model_check_unavailable provider={provider} problem={problem:?} action=nothing_flagged"
                );
                entry.models.unavailable(problem);
            }
        }
        self.count(index);
    }

    fn count(&self, index: usize) {
        let entry = &self.entries[index];
        let stale = i64::try_from(entry.models.stale().len()).unwrap_or(i64::MAX);
        self.metrics.stale_models.with_label_values(&[entry.watched.provider.name()]).set(stale);
    }

    fn view(entry: &Entry) -> ProviderModelsView {
        let public = |id: &str| {
            let known = entry.watched.ids.iter().find(|(known, _)| known == id);
            known.map(|(_, public)| public.clone()).unwrap_or_default()
        };
        ProviderModelsView {
            provider: entry.watched.provider.name(),
            listing: entry.models.listing().clone(),
            checked_at: entry.checked_at,
            models: entry
                .models
                .ids()
                .map(|(id, stale)| ModelView { id: id.to_owned(), public: public(id), stale })
                .collect(),
            stale_models: entry.models.stale(),
        }
    }
}

/// Reads one listing: its ids, or what kept it from being read (never the key).
async fn read_listing(client: awc::Client, url: String, key: Secret) -> Result<BTreeSet<String>, String> {
    let read = async {
        let mut response = client
            .get(&url)
            .insert_header((header::AUTHORIZATION, format!("Bearer {}", key.expose())))
            .insert_header((header::ACCEPT, "application/json"))
            .send()
            .await
            .map_err(|error| format!("unreachable: {error}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("answered {}", status.as_u16()));
        }
        let body = response.body().limit(MAX_LISTING_BYTES).await.map_err(|error| format!("unreadable: {error}"))?;
        listed_ids(&body).ok_or_else(|| "answered no model listing".to_owned())
    };
    tokio::time::timeout(CHECK_TIMEOUT, read).await.unwrap_or_else(|_| Err(format!("no answer in {CHECK_TIMEOUT:?}")))
}

impl Named for ModelWatch {
    const NAME: &'static str = "model watch";
}

impl Actor for ModelWatch {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.interval.is_zero() {
            return;
        }
        self.check_all(ctx);
        ctx.run_interval(self.interval, Self::check_all);
    }
}

/// A restart forgets what was learned and reads every listing again at once.
impl Supervised for ModelWatch {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        for index in 0..self.entries.len() {
            let entry = &mut self.entries[index];
            entry.models.forget();
            entry.checked_at = None;
            entry.checking = false;
            self.count(index);
        }
    }
}

impl Handler<NotFound> for ModelWatch {
    type Result = ();

    /// The provider says the id is gone, whatever its listing says.
    fn handle(&mut self, message: NotFound, ctx: &mut Context<Self>) {
        let _ = guarded(self, ctx, |this, _| {
            let Some(index) = this.entries.iter().position(|entry| entry.watched.provider == message.provider) else {
                return;
            };
            if this.entries[index].models.not_found(&message.model) {
                log::warn!(
                    "event=model_stale provider={} model={:?} reason=not_found problem=\"the provider answered 404 model_not_found\"",
                    message.provider.name(),
                    message.model
                );
                this.count(index);
            }
        });
    }
}

impl Handler<GetModels> for ModelWatch {
    type Result = Result<Vec<ProviderModelsView>, ActorFault>;

    fn handle(&mut self, _: GetModels, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, |this, _| this.entries.iter().map(Self::view).collect())
    }
}
