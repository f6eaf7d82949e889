//! glm-proxy: an OpenAI-compatible proxy in front of Cerebras that rotates a pool of keys,
//! streams answers as they arrive, and never shows a key.

pub mod actors;
pub mod admin;
pub mod auth;
pub mod body_budget;
pub mod catalogue;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod db;
pub mod dispatch;
pub mod doors;
pub mod error;
pub mod handlers;
pub mod log_format;
pub mod logging;
pub mod metrics;
pub mod policy;
pub mod preflight;
pub mod providers;
pub mod request_id;
pub mod secret;
pub mod server;
pub mod shared;
pub mod state;
pub mod transform;
pub mod upstream;
pub mod wire;
