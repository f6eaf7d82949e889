//! Talking to upstream providers: the HTTP client, header rules and the relay of answer bodies.

pub mod client;
pub mod headers;
pub mod relay;
