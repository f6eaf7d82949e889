//! Request logs: what a record holds, how the response body is captured as it flows, the
//! sink that hands records to the `LoggerActor` without ever waiting for it, what of a
//! request may be shown, and the answer as a record shows it.

pub mod completion;
pub mod json_line;
pub mod record;
pub mod redact;
pub mod sink;
pub mod tap;
