//! What an answer's body says, when the upstream compressed it although the proxy asked for
//! `identity`. Such a body is always relayed as it came; only the fault rules read it, and
//! an error answer is small, so a gzip or deflate error is decoded for them (within a limit).
//! A compressed success is never decoded: its stream goes to the client untouched.

use std::borrow::Cow;
use std::io::Read;

use actix_web::http::header::{HeaderMap, CONTENT_ENCODING};

/// Most bytes decoded from one compressed answer: an error's message and code are near its
/// start, and a small body cannot inflate a worker's memory past this.
pub const DECODED_LIMIT: u64 = 256 * 1024;

/// Whether an answer's body is compressed.
pub fn is_encoded(headers: &HeaderMap) -> bool {
    content_coding(headers).is_some()
}

/// `body` as plain bytes for the fault rules: as it is when not compressed, decoded (up to
/// [`DECODED_LIMIT`]) when gzip or deflate, and `None` for another coding or a corrupt body.
pub fn plain<'a>(headers: &HeaderMap, body: &'a [u8]) -> Option<Cow<'a, [u8]>> {
    let Some(coding) = content_coding(headers) else { return Some(Cow::Borrowed(body)) };
    let decoded = if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
        decode(flate2::read::MultiGzDecoder::new(body))
    } else if coding.eq_ignore_ascii_case("deflate") {
        // RFC 9110's deflate is zlib-wrapped; some servers send the raw stream instead.
        decode(flate2::read::ZlibDecoder::new(body)).or_else(|| decode(flate2::read::DeflateDecoder::new(body)))
    } else {
        None
    };
    decoded.map(Cow::Owned)
}

fn decode(decoder: impl Read) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    decoder.take(DECODED_LIMIT).read_to_end(&mut out).ok()?;
    Some(out)
}

/// The answer's content coding, unless it is none or `identity`.
fn content_coding(headers: &HeaderMap) -> Option<&str> {
    let coding = headers.get(CONTENT_ENCODING)?.to_str().ok()?.trim();
    (!coding.is_empty() && !coding.eq_ignore_ascii_case("identity")).then_some(coding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::header_map as headers;
    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
    use flate2::Compression;
    use std::io::Write;

    /// `text` compressed in `format`: gzip, zlib (HTTP's deflate) or raw deflate.
    fn compress(format: &str, text: &[u8]) -> Vec<u8> {
        let level = Compression::best();
        match format {
            "gzip" => GzEncoder::new(Vec::new(), level).and_write(text).finish(),
            "zlib" => ZlibEncoder::new(Vec::new(), level).and_write(text).finish(),
            _ => DeflateEncoder::new(Vec::new(), level).and_write(text).finish(),
        }
        .unwrap()
    }

    trait AndWrite: Write + Sized {
        fn and_write(mut self, text: &[u8]) -> Self {
            self.write_all(text).unwrap();
            self
        }
    }
    impl<W: Write> AndWrite for W {}

    #[test]
    fn plain_bodies_are_borrowed_as_they_are() {
        let identity =
            [HeaderMap::new(), headers(&[("content-encoding", "identity")]), headers(&[("content-encoding", " ")])];
        for map in identity {
            assert!(matches!(plain(&map, b"{}"), Some(Cow::Borrowed(b"{}"))), "{map:?}");
            assert!(!is_encoded(&map));
        }
    }

    #[test]
    fn gzip_and_deflate_errors_are_decoded() {
        let text = br#"{"error":{"code":"context_length_exceeded"}}"#;
        let cases = [("gzip", "gzip"), ("x-gzip", "gzip"), ("GZIP", "gzip"), ("deflate", "zlib"), ("deflate", "raw")];
        for (coding, format) in cases {
            let map = headers(&[("content-encoding", coding)]);
            assert!(is_encoded(&map));
            assert_eq!(plain(&map, &compress(format, text)).as_deref(), Some(&text[..]), "{coding} {format}");
        }
    }

    #[test]
    fn other_codings_and_corrupt_bodies_are_not_read() {
        assert_eq!(plain(&headers(&[("content-encoding", "br")]), b"\x0b\x02\x80"), None);
        assert_eq!(plain(&headers(&[("content-encoding", "gzip")]), b"not gzip"), None);
    }

    #[test]
    fn a_bomb_decodes_no_further_than_the_limit() {
        let bomb = compress("gzip", &vec![b'x'; 64 * 1024 * 1024]);
        assert!(bomb.len() < 256 * 1024, "a body small enough to be held whole");
        let decoded = plain(&headers(&[("content-encoding", "gzip")]), &bomb).unwrap();
        assert_eq!(decoded.len() as u64, DECODED_LIMIT);
    }
}
