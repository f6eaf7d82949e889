//! Which headers cross the proxy, in each direction.

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection and never cross a proxy.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Headers named in `Connection:` are hop-by-hop too.
fn named_by_connection(headers: &HeaderMap, name: &HeaderName) -> bool {
    headers
        .get_all(header::CONNECTION)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case(name.as_str()))
}

fn is_hop_by_hop(headers: &HeaderMap, name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name) || name == header::UPGRADE || named_by_connection(headers, name)
}

/// The client's headers to send upstream: no hop-by-hop ones, no `Host` or `Content-Length`
/// (the client sets its own), and none of the client's credentials, which never go upstream.
///
/// `Expect` is answered by the proxy itself (`100 Continue`), which then sends the body whole.
/// The client's `Accept-Encoding` is replaced by `identity`: the proxy reads error answers and
/// the first chunk of streams to decide on failover, so it asks for plain bytes.
pub fn upstream_request_headers(client: &HeaderMap) -> HeaderMap {
    let mut forwarded = HeaderMap::with_capacity(client.len() + 1);
    for (name, value) in client {
        let dropped = name == header::AUTHORIZATION
            || name == header::HOST
            || name == header::CONTENT_LENGTH
            || name == header::EXPECT
            || name == header::ACCEPT_ENCODING
            || name.as_str() == "x-api-key"
            || is_hop_by_hop(client, name);
        if !dropped {
            forwarded.append(name.clone(), value.clone());
        }
    }
    forwarded.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    forwarded
}

/// Whether an upstream response header is relayed to the client. `Content-Length` is left to
/// the body type, which knows the size it sends.
pub fn relays_response_header(upstream: &HeaderMap, name: &HeaderName) -> bool {
    name != header::CONTENT_LENGTH && !is_hop_by_hop(upstream, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_host_length_expect_and_hop_by_hop_headers_are_dropped() {
        let mut client = HeaderMap::new();
        for (name, value) in [
            ("authorization", "Bearer sk-client"),
            ("x-api-key", "sk-client"),
            ("host", "proxy:18080"),
            ("content-length", "12"),
            ("connection", "keep-alive, x-private"),
            ("x-private", "1"),
            ("transfer-encoding", "chunked"),
            ("content-type", "application/json"),
            ("openai-organization", "org-1"),
            ("expect", "100-continue"),
            ("accept-encoding", "gzip, deflate"),
        ] {
            client.append(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        let forwarded = upstream_request_headers(&client);
        let mut names: Vec<_> = forwarded.keys().map(|n| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["accept-encoding", "content-type", "openai-organization"]);
        assert_eq!(forwarded.get(header::ACCEPT_ENCODING).unwrap(), "identity", "plain bytes, to be read");
    }

    #[test]
    fn response_framing_headers_are_not_relayed() {
        let upstream = HeaderMap::new();
        assert!(!relays_response_header(&upstream, &header::TRANSFER_ENCODING));
        assert!(!relays_response_header(&upstream, &header::CONTENT_LENGTH));
        assert!(relays_response_header(&upstream, &header::CONTENT_TYPE));
    }
}
