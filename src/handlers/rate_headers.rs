//! The rate-limit headers of a client key with limits, on every answer it gets, so that SDKs
//! and agents back off by themselves: OpenAI's `x-ratelimit-*` on the OpenAI and Responses
//! doors, Anthropic's `anthropic-ratelimit-*` on the Messages door. The key's own limits take
//! the place of the provider's headers, which describe the proxy's pool, not the client.

use std::time::Duration;

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use chrono::Utc;

use crate::policy::limits::limiter::{Gauge, RateView};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    OpenAi,
    Anthropic,
}

/// Adds the headers of the request's client key, when it has limits (the exchange left them in
/// the request's extensions).
pub fn add(request: &HttpRequest, mut response: HttpResponse, style: Style) -> HttpResponse {
    let Some(rate) = request.extensions().get::<RateView>().copied() else {
        return response;
    };
    let headers = response.headers_mut();
    let stale: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("x-ratelimit-") || name.as_str().starts_with("anthropic-ratelimit-"))
        .cloned()
        .collect();
    for name in stale {
        headers.remove(name);
    }
    for (what, gauge) in [("requests", rate.requests), ("tokens", rate.tokens)] {
        let Some(gauge) = gauge else { continue };
        for (name, value) in named(style, what, gauge) {
            if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
                headers.insert(name, value);
            }
        }
    }
    response
}

/// The three headers of one gauge: limit, remaining, reset.
fn named(style: Style, what: &str, gauge: Gauge) -> [(String, String); 3] {
    match style {
        Style::OpenAi => [
            (format!("x-ratelimit-limit-{what}"), gauge.limit.to_string()),
            (format!("x-ratelimit-remaining-{what}"), gauge.remaining.to_string()),
            (format!("x-ratelimit-reset-{what}"), openai_duration(gauge.reset)),
        ],
        Style::Anthropic => {
            let reset = Utc::now() + chrono::Duration::from_std(gauge.reset).unwrap_or_default();
            [
                (format!("anthropic-ratelimit-{what}-limit"), gauge.limit.to_string()),
                (format!("anthropic-ratelimit-{what}-remaining"), gauge.remaining.to_string()),
                (format!("anthropic-ratelimit-{what}-reset"), reset.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            ]
        }
    }
}

/// OpenAI's way of writing a reset: `120ms`, `17s`, `6m0s`, `2h3m0s`.
fn openai_duration(reset: Duration) -> String {
    if reset < Duration::from_secs(1) {
        return format!("{}ms", reset.as_millis());
    }
    let secs = reset.as_secs() + u64::from(reset.subsec_nanos() > 0);
    match (secs / 3600, secs % 3600 / 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
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
    fn each_style_names_limit_remaining_and_reset() {
        let gauge = Gauge { limit: 30, remaining: 29, reset: Duration::from_secs(60) };
        let openai = named(Style::OpenAi, "requests", gauge);
        assert_eq!(openai[0], ("x-ratelimit-limit-requests".to_owned(), "30".to_owned()));
        assert_eq!(openai[2], ("x-ratelimit-reset-requests".to_owned(), "1m0s".to_owned()));
        let anthropic = named(Style::Anthropic, "tokens", gauge);
        assert_eq!(anthropic[1], ("anthropic-ratelimit-tokens-remaining".to_owned(), "29".to_owned()));
        assert!(anthropic[2].1.ends_with('Z'));
    }
}
