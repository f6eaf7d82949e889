//! Talking to upstream providers: the HTTP client, header rules, rate-limit headers and
//! the relay of answer bodies.

pub mod client;
pub mod headers;
pub mod rate_limit;
pub mod relay;
pub mod verdict;
