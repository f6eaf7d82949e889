//! Pure functions over chat-completion bodies: what they hold, and repairs they need.

pub mod chat_view;
pub mod token_estimate;
pub mod tool_repair;
