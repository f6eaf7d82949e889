//! Pure functions over chat-completion bodies: what they hold, repairs they need, and the model
//! an alternative provider is asked for.

pub mod body_tail;
pub mod chat_view;
pub mod history_splice;
pub mod json_strict;
pub mod model;
pub mod stream_usage;
pub mod token_estimate;
pub mod tool_repair;
