//! The pipeline's stages that every front door shares (`receive`: the client's key and body;
//! `chat`: a chat completion read, routed and repaired; `exchange`: metered and logged from
//! arrival to the answer's end; `rate_headers`: a limited client key's headers), and the proxy's own routes (`models`, `status`).

pub mod chat;
pub mod exchange;
pub mod models;
pub mod rate_headers;
pub mod receive;
pub mod status;
