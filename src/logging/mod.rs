//! Request logs: what a request record holds, how the response body is captured as it flows,
//! and the sink that hands records to the `LoggerActor` without ever waiting for it.

pub mod record;
pub mod sink;
pub mod tap;
