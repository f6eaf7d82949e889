//! The actors that own the proxy's state and decisions. Handlers talk to them by message.

pub mod auth;
pub mod key_rotator;
pub mod key_sync;
pub mod keys_file;
pub mod limit_sync;
pub mod logger;
pub mod model_watch;
pub mod supervision;
pub mod upstream_router;
