//! The Anthropic Messages API, translated at the edge: requests into OpenAI chat completions,
//! answers and streams back, errors into Anthropic's shape. Pure: no I/O here; the front door
//! (`handlers::messages`) feeds it and the one pipeline does the rest.

pub mod error;
pub mod events;
pub mod message;
pub mod request;
