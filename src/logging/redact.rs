//! What of a request's headers and query a log record may show. Credentials are named in one
//! explicit list, so diagnostics that merely look alike (`x-ratelimit-remaining-tokens-minute`,
//! which explains a 429) are kept.

use std::borrow::Cow;

use super::json_line::JsonObject;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

/// Headers whose values are credentials.
const SECRET_HEADERS: [&str; 6] =
    ["authorization", "proxy-authorization", "x-api-key", "api-key", "cookie", "set-cookie"];

/// Words that make a query parameter's name look like a credential's.
const SECRET_PARAMETER_WORDS: [&str; 6] = ["key", "token", "secret", "password", "auth", "signature"];

pub const REDACTED: &str = "[redacted]";

/// Endings that name a credential in headers of the client's own making (`x-session-token`).
const SECRET_HEADER_ENDINGS: [&str; 4] = ["-token", "-secret", "-password", "-key"];

/// Headers named like a credential that are not one: rate-limit diagnostics (which explain a
/// 429) and the proxy's own `x-glm-proxy-key`, which holds a key's name.
const NOT_SECRET_PREFIXES: [&str; 2] = ["x-ratelimit-", "x-glm-proxy-"];

/// Whether a header carries a credential: its value is never written. The listed credential
/// headers, and headers named like one. `name` is lowercase, as header names are once parsed.
pub fn is_secret_header(name: &str) -> bool {
    SECRET_HEADERS.contains(&name)
        || (!NOT_SECRET_PREFIXES.iter().any(|prefix| name.starts_with(prefix))
            && SECRET_HEADER_ENDINGS.iter().any(|ending| name.ends_with(ending)))
}

fn is_secret_parameter(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PARAMETER_WORDS.iter().any(|word| name.contains(word))
}

/// The query string with the values of secret-looking parameters replaced.
pub fn query(query: &str) -> Cow<'_, str> {
    if query.is_empty() || !query.split('&').any(|pair| is_secret_parameter(pair.split('=').next().unwrap_or_default()))
    {
        return Cow::Borrowed(query);
    }
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret_parameter(name) => format!("{name}={REDACTED}"),
            _ => pair.to_owned(),
        })
        .collect();
    Cow::Owned(pairs.join("&"))
}

/// Headers as a record keeps them: each name and value, in order, shared with the request
/// (no copy of their bytes, no map to build on the request path).
#[derive(Debug, Default)]
pub struct HeaderList(pub Vec<(HeaderName, HeaderValue)>);

impl HeaderList {
    pub fn of(headers: &HeaderMap) -> Self {
        Self(headers.iter().map(|(name, value)| (name.clone(), value.clone())).collect())
    }

    pub fn get(&self, name: &HeaderName) -> Option<&HeaderValue> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, value)| value)
    }
}

/// Writes headers as a JSON object's fields; credentials as `[redacted]`, a repeated
/// header's values joined with `, `.
pub fn headers(object: &mut JsonObject, list: &HeaderList) {
    let pairs = &list.0;
    let mut at = 0;
    while let Some((name, _)) = pairs.get(at) {
        // A header's values come together in a map's iteration.
        let count = pairs[at..].iter().take_while(|(n, _)| n == name).count();
        let values = &pairs[at..at + count];
        if is_secret_header(name.as_str()) {
            object.str(name.as_str(), REDACTED);
        } else if let [(_, value)] = values {
            match value.to_str() {
                Ok(text) => object.str(name.as_str(), text),
                Err(_) => object.str(name.as_str(), &String::from_utf8_lossy(value.as_bytes())),
            }
        } else {
            let values: Vec<_> = values.iter().map(|(_, v)| String::from_utf8_lossy(v.as_bytes())).collect();
            object.str(name.as_str(), &values.join(", "));
        }
        at += count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listed_credential_headers_are_secret_and_rate_limit_diagnostics_are_not() {
        for name in SECRET_HEADERS.iter().copied().chain(["x-session-token", "x-client-secret"]) {
            assert!(is_secret_header(name), "{name}");
        }
        for name in [
            "content-type",
            "x-request-id",
            "x-ratelimit-remaining-tokens-minute",
            "x-ratelimit-reset-tokens-day",
            "x-ratelimit-limit-key",
        ] {
            assert!(!is_secret_header(name), "{name}");
        }
    }

    #[test]
    fn secret_looking_query_parameters_are_redacted_and_others_kept() {
        assert_eq!(query("api_key=sk-1&limit=5"), "api_key=[redacted]&limit=5");
        assert_eq!(query("access_token=abc&Signature=x&page=2"), "access_token=[redacted]&Signature=[redacted]&page=2");
        assert_eq!(query("limit=5&order=desc"), "limit=5&order=desc");
        assert_eq!(query(""), "");
    }
}
