//! What of a request's headers and query a log record may show. Credentials are named in one
//! explicit list, so diagnostics that merely look alike (`x-ratelimit-remaining-tokens-minute`,
//! which explains a 429) are kept.

use std::borrow::Cow;
use std::ops::Range;

use actix_web::http::header::{HeaderMap, HeaderName};

use super::json_line::JsonObject;

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

/// Headers as a record keeps them: the names, and the values copied into one buffer. Copied,
/// because a value shared with the request would keep the connection's whole read buffer alive
/// while the record waits for the writer: about 26 KB a record, 116 MB at 45 k requests/s.
#[derive(Debug, Default)]
pub struct HeaderList {
    names: Vec<(HeaderName, Range<usize>)>,
    values: Vec<u8>,
}

impl HeaderList {
    pub fn of(headers: &HeaderMap) -> Self {
        let mut list = Self { names: Vec::with_capacity(headers.len()), values: Vec::new() };
        for (name, value) in headers {
            let start = list.values.len();
            list.values.extend_from_slice(value.as_bytes());
            list.names.push((name.clone(), start..list.values.len()));
        }
        list
    }

    /// The first value of `name`.
    pub fn get(&self, name: &HeaderName) -> Option<&[u8]> {
        self.names.iter().find(|(n, _)| n == name).map(|(_, range)| &self.values[range.clone()])
    }
}

/// Writes headers as a JSON object's fields; credentials as `[redacted]`, a repeated
/// header's values joined with `, `.
pub fn headers(object: &mut JsonObject, list: &HeaderList) {
    let pairs = &list.names;
    let mut at = 0;
    while let Some((name, _)) = pairs.get(at) {
        // A header's values come together in a map's iteration.
        let count = pairs[at..].iter().take_while(|(n, _)| n == name).count();
        let mut values =
            pairs[at..at + count].iter().map(|(_, range)| String::from_utf8_lossy(&list.values[range.clone()]));
        if is_secret_header(name.as_str()) {
            object.str(name.as_str(), REDACTED);
        } else if count == 1 {
            object.str(name.as_str(), &values.next().unwrap_or_default());
        } else {
            object.str(name.as_str(), &values.collect::<Vec<_>>().join(", "));
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
