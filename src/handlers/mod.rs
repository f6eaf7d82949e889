//! HTTP handlers, one file per route family.

pub mod answer_body;
pub mod proxy;
pub mod status;
