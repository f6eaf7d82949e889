//! `KeysFile`: reads `CEREBRAS_API_KEYS_FILE` again when asked (SIGHUP, the admin API, or
//! another replica's announcement) and hands the new list to the Cerebras rotator, which keeps
//! the state of every key whose name and value are unchanged.
//!
//! A file that does not read or parse, or holds no key, changes nothing: the old list stays,
//! and the error (its position, never a value) is logged, counted in
//! `glm_proxy_key_reloads_total{outcome="failed"}` and returned to the caller.

use std::path::PathBuf;

use actix::prelude::*;
use prometheus::IntCounterVec;

use super::key_rotator::{KeyRotator, Rekey};
use super::key_sync::Share;
use super::supervision::Named;
use crate::config::keys_file;
use crate::policy::key_pool::Replaced;
use crate::shared::changes::KeyChange;

/// Reads the file again. With `announce`, the other replicas are told to read theirs (not when
/// the reload is the answer to their announcement).
#[derive(Message, Clone, Copy)]
#[rtype(result = "Result<Replaced, ReloadError>")]
pub struct Reload {
    pub announce: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file's problem, as the operator is told it: where, never what.
    #[error("{0}")]
    Broken(String),
    /// The rotator is gone (restarting): nothing changed.
    #[error("the key rotator is not answering")]
    Gone,
}

pub struct KeysFile {
    path: PathBuf,
    rotator: Addr<KeyRotator>,
    shared: Option<Recipient<Share>>,
    reloads: IntCounterVec,
}

impl KeysFile {
    pub fn new(
        path: PathBuf,
        rotator: Addr<KeyRotator>,
        shared: Option<Recipient<Share>>,
        reloads: IntCounterVec,
    ) -> Self {
        Self { path, rotator, shared, reloads }
    }

    fn failed(&self, error: ReloadError) -> ReloadError {
        self.reloads.with_label_values(&["failed"]).inc();
        log::warn!("event=key_reload_failed action=kept_old_keys problem={:?}", error.to_string());
        error
    }
}

impl Named for KeysFile {
    const NAME: &'static str = "keys file";
}

impl Actor for KeysFile {
    type Context = Context<Self>;
}

impl Supervised for KeysFile {}

impl Handler<Reload> for KeysFile {
    type Result = ResponseActFuture<Self, Result<Replaced, ReloadError>>;

    fn handle(&mut self, msg: Reload, _: &mut Context<Self>) -> Self::Result {
        let keys = match keys_file(&self.path) {
            Ok(keys) => keys,
            Err(error) => {
                let error = self.failed(ReloadError::Broken(error.to_string()));
                return Box::pin(fut::ready(Err(error)));
            }
        };
        let replacing = self.rotator.send(Rekey(keys));
        Box::pin(replacing.into_actor(self).map(move |answer, this, _| {
            let replaced = match answer {
                Ok(Ok(replaced)) => replaced,
                Ok(Err(_)) | Err(_) => return Err(this.failed(ReloadError::Gone)),
            };
            this.reloads.with_label_values(&["reloaded"]).inc();
            log::info!(
                "event=keys_reloaded provider=cerebras added={:?} removed={:?} unchanged={}",
                replaced.added.join(","),
                replaced.removed.join(","),
                replaced.unchanged.len()
            );
            if let (true, Some(shared)) = (msg.announce, &this.shared) {
                shared.do_send(Share::Change(KeyChange::Reload));
            }
            Ok(replaced)
        }))
    }
}
