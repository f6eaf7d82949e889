//! What of a request's headers and query a log record may show. Credentials are named in one
//! explicit list, so diagnostics that merely look alike (`x-ratelimit-remaining-tokens-minute`,
//! which explains a 429) are kept.

use actix_web::http::header::HeaderMap;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

/// Headers whose values are credentials.
const SECRET_HEADERS: [&str; 6] =
    ["authorization", "proxy-authorization", "x-api-key", "api-key", "cookie", "set-cookie"];

/// Words that make a query parameter's name look like a credential's.
const SECRET_PARAMETER_WORDS: [&str; 6] = ["key", "token", "secret", "password", "auth", "signature"];

pub const REDACTED: &str = "[redacted]";

/// Endings that name a credential in headers of the client's own making (`x-session-token`).
const SECRET_HEADER_ENDINGS: [&str; 4] = ["-token", "-secret", "-password", "-key"];

/// Whether a header carries a credential: its value is never written. The listed credential
/// headers, and headers named like one, except the rate-limit diagnostics.
pub fn is_secret_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_HEADERS.contains(&name.as_str())
        || (!name.starts_with("x-ratelimit-") && SECRET_HEADER_ENDINGS.iter().any(|ending| name.ends_with(ending)))
}

fn is_secret_parameter(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PARAMETER_WORDS.iter().any(|word| name.contains(word))
}

/// The query string with the values of secret-looking parameters replaced.
pub fn query(query: &str) -> String {
    if !query.split('&').any(|pair| is_secret_parameter(pair.split('=').next().unwrap_or_default())) {
        return query.to_owned();
    }
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret_parameter(name) => format!("{name}={REDACTED}"),
            _ => pair.to_owned(),
        })
        .collect();
    pairs.join("&")
}

/// Headers as a JSON object; credentials as `[redacted]`, repeated headers joined with `, `.
pub struct Headers<'a>(pub &'a HeaderMap);

impl Serialize for Headers<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for name in self.0.keys() {
            if is_secret_header(name.as_str()) {
                map.serialize_entry(name.as_str(), REDACTED)?;
                continue;
            }
            let mut values = self.0.get_all(name).map(|v| String::from_utf8_lossy(v.as_bytes()));
            let first = values.next().unwrap_or_default();
            match values.next() {
                None => map.serialize_entry(name.as_str(), &first)?,
                Some(second) => {
                    let joined = [first, second].into_iter().chain(values).collect::<Vec<_>>().join(", ");
                    map.serialize_entry(name.as_str(), &joined)?;
                }
            }
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listed_credential_headers_are_secret_and_rate_limit_diagnostics_are_not() {
        for name in
            SECRET_HEADERS.iter().copied().chain(["Authorization", "X-Api-Key", "x-session-token", "x-client-secret"])
        {
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
