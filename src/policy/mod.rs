//! The proxy's rules, as pure functions of data: no I/O, no clock of their own (every call that
//! needs the time is given `now`), so each is unit-tested in its own file.
//!
//! - [`fault`]: whose fault one attempt's outcome is; "why did this key rest?" is answered there.
//! - [`routing`]: which providers a request goes to, in order; "why did this go to Z.ai?" is
//!   answered there together with `fault`'s failover rows.
//! - [`rate_limit`]: how long an upstream asks a key to stay away.
//! - [`second_opinion`]: what the attempts at one provider mean together (a 402/403/500
//!   is the key's or the request's once a second key has answered).
//! - [`key_pool`]: one provider's keys' state and cooldown arithmetic.
//! - [`circuit`]: a provider's health: closed, open until a deadline, half-open.
//! - [`encoding`]: what a compressed response says, for the fault rules.
//! - [`limits`]: a client key's `rpm`/`tpm` windows and token budgets by UTC day and month.
//! - [`fair_queue`]: the order requests waiting for a key are woken in, client by client.
//! - [`stale_models`]: which ids the proxy sends a provider that it no longer serves.

use std::time::{Duration, Instant};

pub mod circuit;
pub mod encoding;
pub mod fair_queue;
pub mod fault;
pub mod key_pool;
pub mod limits;
pub mod rate_limit;
pub mod routing;
pub mod second_opinion;
pub mod stale_models;

/// `now + wait`, or the latest instant the clock can hold: deadline arithmetic never panics,
/// whatever an upstream asks for.
pub fn deadline(now: Instant, wait: Duration) -> Instant {
    let mut wait = wait;
    loop {
        if let Some(instant) = now.checked_add(wait) {
            return instant;
        }
        wait /= 2;
    }
}

/// A header map from name/value pairs, for the policies' tests.
#[cfg(test)]
pub(crate) fn header_map(pairs: &[(&'static str, &str)]) -> actix_web::http::header::HeaderMap {
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(HeaderName::from_static(name), HeaderValue::from_str(value).unwrap());
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_never_overflows() {
        let now = Instant::now();
        assert_eq!(deadline(now, Duration::from_secs(5)), now + Duration::from_secs(5));
        assert!(deadline(now, Duration::MAX) > now);
    }
}
