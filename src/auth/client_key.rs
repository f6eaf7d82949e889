//! Client keys: how they are made, stored (hashed) and presented by clients.

use actix_web::http::header::{HeaderMap, AUTHORIZATION};
use base64::Engine;
use sha2::{Digest, Sha256};

/// `sk-` + 43 URL-safe characters: 32 bytes from the OS random generator.
pub fn generate() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("sk-{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
}

/// What is stored instead of the key: its SHA-256, in hex.
pub fn hash(key: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(key.as_bytes());
    let mut hex = String::with_capacity(2 * digest.len());
    for byte in digest {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    hex
}

/// The start of a key, enough for an operator to tell keys apart.
pub fn prefix(key: &str) -> String {
    key.chars().take(10).collect()
}

/// Why a request's credentials were refused; each has its own OpenAI-style error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    Malformed,
    Unknown,
}

impl Refusal {
    pub fn code(self) -> &'static str {
        match self {
            Self::Missing => "missing_authorization",
            Self::Malformed => "invalid_authorization",
            Self::Unknown => "invalid_api_key",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::Missing => "missing API key: send Authorization: Bearer <key> (or x-api-key: <key>)",
            Self::Malformed => "malformed Authorization header: expected Bearer <key>",
            Self::Unknown => "invalid API key: unknown or revoked",
        }
    }
}

/// The key a client presents: `Authorization: Bearer <key>`, or `x-api-key: <key>`.
pub fn presented(headers: &HeaderMap) -> Result<&str, Refusal> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let value = value.to_str().map_err(|_| Refusal::Malformed)?.trim();
        let (scheme, key) = value.split_once(' ').ok_or(Refusal::Malformed)?;
        let key = key.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || key.is_empty() || key.contains(' ') {
            return Err(Refusal::Malformed);
        }
        return Ok(key);
    }
    match headers.get("x-api-key").map(|v| v.to_str().map(str::trim)) {
        Some(Ok(key)) if !key.is_empty() => Ok(key),
        Some(_) => Err(Refusal::Malformed),
        None => Err(Refusal::Missing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(name: &'static str, value: &'static str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
        map
    }

    #[test]
    fn generated_keys_have_the_seed_format_and_differ() {
        let key = generate().unwrap();
        assert_eq!(key.len(), 46);
        assert!(key.starts_with("sk-"));
        assert!(key[3..].chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(generate().unwrap(), key);
    }

    #[test]
    fn hashes_are_sha256_hex_and_prefixes_are_short() {
        assert_eq!(hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(prefix("sk-abcdefghijkl"), "sk-abcdefg");
    }

    #[test]
    fn presented_keys_come_from_bearer_or_x_api_key() {
        assert_eq!(presented(&headers("authorization", "Bearer sk-1")), Ok("sk-1"));
        assert_eq!(presented(&headers("authorization", "bearer  sk-1 ")), Ok("sk-1"));
        assert_eq!(presented(&headers("x-api-key", "sk-2")), Ok("sk-2"));
        assert_eq!(presented(&HeaderMap::new()), Err(Refusal::Missing));
        assert_eq!(presented(&headers("authorization", "Basic dXNlcg==")), Err(Refusal::Malformed));
        assert_eq!(presented(&headers("authorization", "Bearer")), Err(Refusal::Malformed));
        assert_eq!(presented(&headers("x-api-key", "")), Err(Refusal::Malformed));
    }
}
