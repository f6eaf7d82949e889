//! The front doors, side by side: each speaks one API to its clients and the one
//! chat-completion pipeline behind it. A door only translates: its request into chat bytes and
//! what its answer will need, and the pipeline's typed reply (a stream with its head, a whole
//! answer, or a `ProxyError`) back into its own dialect.
//!
//! - `openai`: the providers' own API, relayed as it is;
//! - `anthropic`: Anthropic's Messages API;
//! - `responses`: OpenAI's Responses API (Codex CLI);
//! - `serve`: what a translated door does from arrival to its answer's end;
//! - `blocks`: the order of a translated stream's blocks, one open at a time;
//! - `events`: a chat stream translated chunk by chunk into a door's events.

pub mod anthropic;
pub mod blocks;
pub mod events;
pub mod openai;
pub mod responses;
pub mod serve;

use actix_web::http::StatusCode;
use bytes::Bytes;
use serde_json::Value;

use self::events::{Dialect, EventStream};
use crate::error::ProxyError;
use crate::handlers::rate_headers::Style;
use crate::wire::chat::Completion;

/// A door that translates: the contract between its API and the pipeline.
pub trait Door: 'static {
    /// What the answer's translation needs to know of the request.
    type Asked: Send + 'static;
    /// Its event stream.
    type Dialect: Dialect + 'static;
    /// How it names a client key's rate-limit headers.
    const RATE_HEADERS: Style;

    /// The chat completion for a client's body, and what its answer needs. Pure; a long body
    /// is translated off the worker.
    fn to_chat(body: &[u8]) -> Result<(Vec<u8>, Self::Asked), ProxyError>;
    /// Whether the client asked for a stream.
    fn streams(asked: &Self::Asked) -> bool;
    /// A whole completion as this door's answer (JSON), `id` naming it.
    fn whole(completion: Completion, id: &str, asked: Self::Asked) -> Vec<u8>;
    /// The event stream of the answer `id`; `keep` is the most of the answer it may hold
    /// (`MAX_BODY_BYTES`), for a dialect whose last events repeat the answer.
    fn events(id: String, asked: Self::Asked, keep: usize) -> EventStream<Self::Dialect>;
    /// A failure before the answer began, as this door's status and error body.
    fn error(failure: &Failure) -> (StatusCode, Value);
}

/// Why an answer could not be given, for each door to say in its own shape.
#[derive(Debug)]
pub enum Failure {
    /// The proxy's own error.
    Proxy(ProxyError),
    /// An upstream's error answer, as it came.
    Upstream { status: StatusCode, body: Bytes },
    /// The answer broke off, or is not what was asked for: why.
    Broken(String),
}

impl Failure {
    pub fn broken(why: &str) -> Self {
        Self::Broken(why.to_owned())
    }
}
