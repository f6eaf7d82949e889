//! HTTP handlers, one file per route family.

pub mod proxy;
pub mod status;
