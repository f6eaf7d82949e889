//! Client authentication: keys made by the CLI, checked on every request from memory.

pub mod client_key;
pub mod gate;
pub mod miss_cache;
