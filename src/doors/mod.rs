//! The front doors: each speaks one API to its clients and the chat-completion pipeline
//! behind it. A door only translates: its request into a chat completion, and the pipeline's
//! reply back into its own dialect.
//!
//! - `blocks`: the order of a translated stream's blocks, one open at a time;
//! - `events`: a chat stream translated chunk by chunk into a door's events.

pub mod blocks;
pub mod events;

use actix_web::http::StatusCode;
use bytes::Bytes;

/// Why an answer could not be given, for each door to say in its own shape.
#[derive(Debug)]
pub enum Failure {
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
