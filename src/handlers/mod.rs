//! HTTP handlers, one file per route family.

pub mod answer_body;
pub mod chat;
pub mod exchange;
pub mod messages;
pub mod models;
pub mod proxy;
pub mod receive;
pub mod status;
