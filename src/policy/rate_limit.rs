//! How long an upstream asks us to stay away, read from its rate-limit headers.

use std::time::{Duration, SystemTime};

use actix_web::http::header::{HeaderMap, RETRY_AFTER};

const RESET_PREFIX: &str = "x-ratelimit-reset-";
const REMAINING_PREFIX: &str = "x-ratelimit-remaining-";

/// The wait an upstream's 429 asks for: the longest of `Retry-After` (seconds or HTTP date)
/// and the `x-ratelimit-reset-*` windows that are exhausted. `None` when it names none.
pub fn requested_wait(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let retry_after = headers.get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| parse_retry_after(v, now));
    retry_after.into_iter().chain(exhausted_window_reset(headers)).max()
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
        let wait = requested_wait(&headers(&[("retry-after", "40")]), SystemTime::now());
        assert_eq!(wait, Some(Duration::from_secs(40)));
    }

    #[test]
    fn retry_after_as_an_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let date = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(requested_wait(&headers(&[("retry-after", &date)]), now), Some(Duration::from_secs(90)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(requested_wait(&headers(&[("retry-after", &past)]), now), Some(Duration::ZERO));
    }

    #[test]
    fn the_exhausted_cerebras_window_wins() {
        let headers = headers(&[
            ("x-ratelimit-reset-requests-day", "30000.5"),
            ("x-ratelimit-remaining-requests-day", "0"),
            ("x-ratelimit-reset-tokens-minute", "12"),
            ("x-ratelimit-remaining-tokens-minute", "5000"),
        ]);
        assert_eq!(requested_wait(&headers, SystemTime::now()), Some(Duration::from_secs_f64(30000.5)));
    }

    #[test]
    fn without_remaining_counts_the_soonest_reset_is_used_and_retry_after_can_exceed_it() {
        let soonest = headers(&[("x-ratelimit-reset-tokens-minute", "12"), ("x-ratelimit-reset-requests-day", "900")]);
        assert_eq!(requested_wait(&soonest, SystemTime::now()), Some(Duration::from_secs(12)));
        let both = headers(&[("x-ratelimit-reset-tokens-minute", "12"), ("retry-after", "30")]);
        assert_eq!(requested_wait(&both, SystemTime::now()), Some(Duration::from_secs(30)));
    }

    #[test]
    fn garbage_is_ignored() {
        let garbage = headers(&[("retry-after", "soon"), ("x-ratelimit-reset-tokens-minute", "-3")]);
        assert_eq!(requested_wait(&garbage, SystemTime::now()), None);
        assert_eq!(requested_wait(&HeaderMap::new(), SystemTime::now()), None);
    }
}
