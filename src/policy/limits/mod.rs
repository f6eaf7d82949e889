//! Per-client limits, pure: the arithmetic of `rpm`/`tpm` windows and token budgets, and the
//! models a key may use; the clock is always passed in.

pub mod budget;
pub mod models;
pub mod window;
