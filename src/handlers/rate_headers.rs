//! The rate-limit headers of a client key with limits, on every answer it gets, so that SDKs
//! and agents back off by themselves: OpenAI's `x-ratelimit-*` on the OpenAI and Responses
//! doors, Anthropic's `anthropic-ratelimit-*` on the Messages door. The key's own limits take
//! the place of the provider's headers, which describe the proxy's pool, not the client.

use std::cell::RefCell;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use chrono::{DateTime, Datelike, Timelike, Utc};

use crate::policy::limits::limiter::{Gauge, RateView};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    OpenAi,
    Anthropic,
}

/// The names of one gauge's three headers: limit, remaining, reset.
type Names = [HeaderName; 3];

/// Requests, then tokens, in each style: static, so that an answer costs no name made.
static OPENAI: [Names; 2] = [
    [
        HeaderName::from_static("x-ratelimit-limit-requests"),
        HeaderName::from_static("x-ratelimit-remaining-requests"),
        HeaderName::from_static("x-ratelimit-reset-requests"),
    ],
    [
        HeaderName::from_static("x-ratelimit-limit-tokens"),
        HeaderName::from_static("x-ratelimit-remaining-tokens"),
        HeaderName::from_static("x-ratelimit-reset-tokens"),
    ],
];
static ANTHROPIC: [Names; 2] = [
    [
        HeaderName::from_static("anthropic-ratelimit-requests-limit"),
        HeaderName::from_static("anthropic-ratelimit-requests-remaining"),
        HeaderName::from_static("anthropic-ratelimit-requests-reset"),
    ],
    [
        HeaderName::from_static("anthropic-ratelimit-tokens-limit"),
        HeaderName::from_static("anthropic-ratelimit-tokens-remaining"),
        HeaderName::from_static("anthropic-ratelimit-tokens-reset"),
    ],
];

/// Adds the headers of the request's client key to the proxy's own error, when the key has
/// limits (the exchange left them in the request's extensions: a reply gets them from the
/// exchange itself, with `put`).
pub fn add(request: &HttpRequest, mut response: HttpResponse, style: Style) -> HttpResponse {
    if let Some(rate) = request.extensions().get::<RateView>().copied() {
        put(response.headers_mut(), rate, style);
    }
    response
}

/// Puts a client key's headers in `headers`, in place of any the provider sent.
pub fn put(headers: &mut HeaderMap, rate: RateView, style: Style) {
    let stale = |name: &HeaderName| {
        let name = name.as_str();
        name.starts_with("x-ratelimit-") || name.starts_with("anthropic-ratelimit-")
    };
    if headers.keys().any(stale) {
        let names: Vec<HeaderName> = headers.keys().filter(|name| stale(name)).cloned().collect();
        for name in names {
            headers.remove(name);
        }
    }
    let styled = match style {
        Style::OpenAi => &OPENAI,
        Style::Anthropic => &ANTHROPIC,
    };
    for (names, gauge) in styled.iter().zip([rate.requests, rate.tokens]) {
        let Some(gauge) = gauge else { continue };
        for (name, value) in names.iter().zip(values(style, gauge)) {
            headers.insert(name.clone(), value);
        }
    }
}

/// One gauge's three values: limit, remaining, reset.
fn values(style: Style, gauge: Gauge) -> [HeaderValue; 3] {
    let reset = match style {
        Style::OpenAi => openai_reset(gauge.reset),
        Style::Anthropic => anthropic_reset(gauge.reset),
    };
    [number(gauge.limit), number(gauge.remaining), reset]
}

/// The moment `reset` from now, as Anthropic writes it (RFC 3339, to the second). Answers in
/// the same second share it: each worker keeps the last two it wrote (a key's requests and
/// tokens), so that most answers write none.
fn anthropic_reset(reset: Duration) -> HeaderValue {
    thread_local! {
        static WRITTEN: RefCell<[(u64, HeaderValue); 2]> =
            const { RefCell::new([(0, HeaderValue::from_static("")), (0, HeaderValue::from_static(""))]) };
    }
    let at = (SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + reset).as_secs();
    WRITTEN.with_borrow_mut(|written| {
        if let Some((_, value)) = written.iter().find(|(secs, _)| *secs == at) {
            return value.clone();
        }
        let value = text(&rfc3339(DateTime::from_timestamp(at as i64, 0).unwrap_or_default()));
        written.rotate_right(1);
        written[0] = (at, value.clone());
        value
    })
}

/// A window's reset is at most a minute and a second away: those are written once.
fn openai_reset(reset: Duration) -> HeaderValue {
    static WRITTEN: LazyLock<Vec<HeaderValue>> =
        LazyLock::new(|| (0..=61).map(|secs| text(&openai_duration(Duration::from_secs(secs)))).collect());
    let secs = reset.as_secs() + u64::from(reset.subsec_nanos() > 0);
    match WRITTEN.get(secs as usize) {
        Some(value) if reset >= Duration::from_secs(1) => value.clone(),
        _ => text(&openai_duration(reset)),
    }
}

/// A count as a header value: `HeaderValue::from(u64)` formats through `fmt`, at three times
/// the cost.
fn number(value: u64) -> HeaderValue {
    text(itoa::Buffer::new().format(value))
}

/// Digits, letters and punctuation only: always a valid value.
fn text(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// OpenAI's way of writing a reset: `120ms`, `17s`, `6m0s`, `2h3m0s`.
fn openai_duration(reset: Duration) -> String {
    let mut text = String::with_capacity(16);
    let mut put = |number: u64, unit: &str| {
        text.push_str(itoa::Buffer::new().format(number));
        text.push_str(unit);
    };
    if reset < Duration::from_secs(1) {
        put(reset.as_millis() as u64, "ms");
        return text;
    }
    let secs = reset.as_secs() + u64::from(reset.subsec_nanos() > 0);
    let (hours, minutes) = (secs / 3600, secs % 3600 / 60);
    if hours > 0 {
        put(hours, "h");
    }
    if hours > 0 || minutes > 0 {
        put(minutes, "m");
    }
    put(secs % 60, "s");
    text
}

/// `2026-12-07T23:59:00Z`, written by hand: chrono's formatter costs more than the rest of
/// these headers together.
fn rfc3339(at: DateTime<Utc>) -> String {
    let mut text = String::with_capacity(20);
    let mut put = |number: u32, width: usize, after: char| {
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(number);
        (digits.len()..width).for_each(|_| text.push('0'));
        text.push_str(digits);
        text.push(after);
    };
    put(at.year().max(0) as u32, 4, '-');
    put(at.month(), 2, '-');
    put(at.day(), 2, 'T');
    put(at.hour(), 2, ':');
    put(at.minute(), 2, ':');
    put(at.second(), 2, 'Z');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resets_are_written_as_openai_writes_them() {
        assert_eq!(openai_duration(Duration::from_millis(120)), "120ms");
        assert_eq!(openai_duration(Duration::from_millis(16_200)), "17s");
        assert_eq!(openai_duration(Duration::from_secs(360)), "6m0s");
        assert_eq!(openai_duration(Duration::from_secs(7380)), "2h3m0s");
    }

    #[test]
    fn a_reset_moment_is_written_as_rfc3339_in_utc() {
        use chrono::TimeZone;
        let at = Utc.with_ymd_and_hms(2026, 1, 7, 3, 4, 5).unwrap();
        assert_eq!(rfc3339(at), at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        assert_eq!(rfc3339(at), "2026-01-07T03:04:05Z");
    }

    #[test]
    fn an_anthropic_reset_is_the_moment_it_comes_written_once_a_second() {
        let moment = |value: HeaderValue| DateTime::parse_from_rfc3339(value.to_str().unwrap()).unwrap();
        let (minute, day) = (Duration::from_secs(60), Duration::from_secs(86_400));
        for _ in 0..3 {
            let soon = moment(anthropic_reset(minute)).timestamp() - Utc::now().timestamp();
            assert!((59..=61).contains(&soon), "{soon}");
            let later = moment(anthropic_reset(day)).timestamp() - Utc::now().timestamp();
            assert!((86_399..=86_401).contains(&later), "{later}: the two kept apart");
        }
    }

    #[test]
    fn each_gauge_gives_its_limit_remaining_and_reset() {
        let gauge = Gauge { limit: 30, remaining: 29, reset: Duration::from_secs(60) };
        let [limit, remaining, reset] = values(Style::OpenAi, gauge);
        assert_eq!(
            (limit, remaining, reset),
            (HeaderValue::from(30u64), HeaderValue::from(29u64), "1m0s".parse().unwrap())
        );
        for (reset, written) in [(16_200, "17s"), (61_000, "1m1s"), (90_000, "1m30s"), (300, "300ms")] {
            assert_eq!(openai_reset(Duration::from_millis(reset)), written);
        }
        let [_, _, reset] = values(Style::Anthropic, gauge);
        assert!(reset.to_str().unwrap().ends_with('Z'));
    }
}
