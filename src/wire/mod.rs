//! The OpenAI wire, written once for every front door and the logs: the chat completion's
//! answer types (`chat`), server-sent events read and written (`sse`), and JSON text scanned
//! without a parse (`json_scan`).

pub mod chat;
pub mod json_scan;
pub mod sse;
