//! Client authentication: keys made by the CLI, checked on every request from memory, with
//! their limits, and the tokens each spends.

pub mod client_key;
pub mod clock;
pub mod gate;
pub mod ledger;
pub mod limit_link;
pub mod miss_cache;
pub mod pass;
