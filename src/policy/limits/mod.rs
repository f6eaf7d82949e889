//! Per-client limits, pure: the arithmetic of `rpm`/`tpm` windows and token budgets, the
//! models a key may use, and the limiter that combines them for one key; the clock is always
//! passed in.

pub mod budget;
pub mod limiter;
pub mod models;
pub mod shared;
pub mod window;

use chrono::{DateTime, Utc};

use self::models::ModelList;

/// What a client key may do; `None` is unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub max_parallel: Option<u64>,
    pub daily_tokens: Option<u64>,
    pub monthly_tokens: Option<u64>,
    pub expires_at: Option<DateTime<Utc>>,
    pub models: Option<ModelList>,
}

impl Limits {
    /// Whether any limit is set: a key without is admitted as before, with no limiter.
    pub fn any(&self) -> bool {
        *self != Self::default()
    }
}
