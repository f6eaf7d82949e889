//! How long an upstream asks us to stay away, read from its rate-limit headers.

use std::time::{Duration, SystemTime};

use actix_web::http::header::{HeaderMap, RETRY_AFTER};

const RESET_PREFIX: &str = "x-ratelimit-reset-";
const REMAINING_PREFIX: &str = "x-ratelimit-remaining-";

/// The wait an upstream's 429 asks for: the longest of `Retry-After` (seconds or HTTP date)
/// and, from a provider that sends them (`windows`), the `x-ratelimit-reset-*` windows that
/// are exhausted. `None` when it names none.
pub fn requested_wait(headers: &HeaderMap, windows: bool, now: SystemTime) -> Option<Duration> {
    let retry_after = headers.get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| parse_retry_after(v, now));
    let window = if windows { exhausted_window_reset(headers) } else { None };
    retry_after.into_iter().chain(window).max()
}

/// `Retry-After: 40` or `Retry-After: Wed, 25 Nov 2026 11:00:00 GMT`.
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Cerebras sends `x-ratelimit-reset-{requests,tokens}-{minute,hour,day}` in seconds beside
/// `x-ratelimit-remaining-*`. The window that ran out is the one to wait for; when none
/// says it ran out, the soonest reset is the honest guess.
fn exhausted_window_reset(headers: &HeaderMap) -> Option<Duration> {
    let mut exhausted: Option<Duration> = None;
    let mut soonest: Option<Duration> = None;
    for (name, value) in headers {
        let Some(window) = name.as_str().strip_prefix(RESET_PREFIX) else {
            continue;
        };
        let Some(reset) = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        else {
            continue;
        };
        let remaining = headers
            .get(format!("{REMAINING_PREFIX}{window}"))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok());
        if remaining.is_some_and(|left| left <= 0.0) {
            exhausted = exhausted.max(Some(reset));
        }
        soonest = Some(soonest.map_or(reset, |s| s.min(reset)));
    }
    exhausted.or(soonest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::header_map as headers;

    #[test]
    fn retry_after_in_seconds() {
        let wait = requested_wait(&headers(&[("retry-after", "40")]), true, SystemTime::now());
        assert_eq!(wait, Some(Duration::from_secs(40)));
    }

    #[test]
    fn retry_after_as_an_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let date = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(requested_wait(&headers(&[("retry-after", &date)]), true, now), Some(Duration::from_secs(90)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(requested_wait(&headers(&[("retry-after", &past)]), true, now), Some(Duration::ZERO));
    }

    #[test]
    fn the_exhausted_cerebras_window_wins() {
        let headers = headers(&[
            ("x-ratelimit-reset-requests-day", "30000.5"),
            ("x-ratelimit-remaining-requests-day", "0"),
            ("x-ratelimit-reset-tokens-minute", "12"),
            ("x-ratelimit-remaining-tokens-minute", "5000"),
        ]);
        assert_eq!(requested_wait(&headers, true, SystemTime::now()), Some(Duration::from_secs_f64(30000.5)));
    }

    #[test]
    fn without_remaining_counts_the_soonest_reset_is_used_and_retry_after_can_exceed_it() {
        let soonest = headers(&[("x-ratelimit-reset-tokens-minute", "12"), ("x-ratelimit-reset-requests-day", "900")]);
        assert_eq!(requested_wait(&soonest, true, SystemTime::now()), Some(Duration::from_secs(12)));
        let both = headers(&[("x-ratelimit-reset-tokens-minute", "12"), ("retry-after", "30")]);
        assert_eq!(requested_wait(&both, true, SystemTime::now()), Some(Duration::from_secs(30)));
    }

    #[test]
    fn garbage_is_ignored() {
        let garbage = headers(&[("retry-after", "soon"), ("x-ratelimit-reset-tokens-minute", "-3")]);
        assert_eq!(requested_wait(&garbage, true, SystemTime::now()), None);
        assert_eq!(requested_wait(&HeaderMap::new(), true, SystemTime::now()), None);
    }

    mod any_headers {
        use super::*;
        use crate::config::NamedKey;
        use crate::policy::key_pool::{Cooldowns, KeyPool, KeyVerdict};
        use crate::secret::Secret;
        use actix_web::http::header::{HeaderName, HeaderValue};
        use proptest::prelude::*;
        use std::time::Instant;

        /// Header text as upstreams send it, and as they should not.
        fn text() -> impl Strategy<Value = String> {
            let alphabet: Vec<char> = "0123456789.-+eE inNaf,:GMTFriDec".chars().collect();
            prop_oneof![
                prop::collection::vec(prop::sample::select(alphabet), 0..40).prop_map(|c| c.into_iter().collect()),
                prop::sample::select(vec![
                    "Fri, 31 Dec 9999 23:59:59 GMT",
                    "Thu, 01 Jan 1970 00:00:00 GMT",
                    "1e400",
                    "inf",
                    "NaN",
                    "-0",
                    "18446744073709551616",
                    "10000000000000000000",
                ])
                .prop_map(str::to_owned),
            ]
        }

        fn window() -> impl Strategy<Value = &'static str> {
            prop::sample::select(vec!["requests-minute", "tokens-minute", "requests-day", "tokens-hour"])
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Whatever the headers say, reading them never panics, and the rest a key gets from
            /// them is never longer than MAX_COOLDOWN.
            #[test]
            fn any_rate_limit_headers_give_a_bounded_rest(
                retry_after in prop::option::of(text()),
                windows in prop::collection::vec((window(), text(), prop::option::of(text())), 0..4),
            ) {
                let mut headers = HeaderMap::new();
                let mut insert = |name: String, value: &str| {
                    if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::from_str(value)) {
                        headers.insert(name, value);
                    }
                };
                if let Some(value) = &retry_after {
                    insert("retry-after".to_owned(), value);
                }
                for (window, reset, remaining) in &windows {
                    insert(format!("x-ratelimit-reset-{window}"), reset);
                    if let Some(remaining) = remaining {
                        insert(format!("x-ratelimit-remaining-{window}"), remaining);
                    }
                }
                let requested = requested_wait(&headers, true, SystemTime::now());
                let max = Duration::from_secs(100);
                let cooldowns = Cooldowns { rate_limited: Duration::from_secs(1), rejected: Duration::from_secs(10), max };
                let mut pool = KeyPool::new(&[NamedKey { name: "k".into(), secret: Secret::new("sk") }], cooldowns);
                let now = Instant::now();
                let (until, _) = pool.report(0, &KeyVerdict::RateLimited { requested }, now).unwrap();
                prop_assert!(until > now && until <= now + max);
            }
        }
    }
}
