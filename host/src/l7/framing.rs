//! Message framing, re-emitted rather than copied.
//!
//! The proxy forwards what it parsed, not the bytes it was sent: a
//! `Content-Length` is written back from its parsed value (`010` → `10`), a
//! chunked body stays chunked whatever the method (a GET body is forwarded,
//! never silently dropped), a transfer coding the proxy would have to drop
//! is refused, a backend response framed both ways keeps only its chunked
//! framing (RFC 9112 §6.3), and an HTTP/2 request becomes the HTTP/1.1
//! request RFC 9113 §8.2 says it is.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Fields HTTP/2 forbids (RFC 9113 §8.2.2): a request carrying one is
/// malformed. (`te` is allowed with the value `trailers` only.)
const CONNECTION_SPECIFIC: [HeaderName; 5] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Whether the request body is chunked; `Err(coding)` for a transfer
/// coding other than `chunked` (`gzip, chunked`): forwarding it without the
/// coding would change the body, forwarding it with one the proxy did not
/// apply is not this proxy's job, so it is refused (501).
pub fn request_is_chunked(headers: &HeaderMap) -> Result<bool, String> {
    let mut chunked = false;
    for value in headers.get_all(header::TRANSFER_ENCODING) {
        let text = value.to_str().map_err(|_| "(not text)".to_owned())?;
        for coding in text.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            if coding.eq_ignore_ascii_case("chunked") {
                chunked = true;
            } else {
                return Err(coding.to_ascii_lowercase());
            }
        }
    }
    Ok(chunked)
}

/// Writes the framing of the forwarded request: `Content-Length` from its
/// parsed value, `Transfer-Encoding: chunked` when the body was chunked
/// (the hop-by-hop step removed the client's header). The HTTP/1 parser
/// has already refused a message framed both ways, or with lengths that
/// disagree.
pub fn reemit(headers: &mut HeaderMap, chunked: bool) {
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok());
    if let Some(length) = length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    if chunked {
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    }
}

/// The `Content-Length` a request head declares (after [`reemit`], one
/// plain number), if any.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<u64>().ok())
}

/// RFC 9112 §6.3: a response with both `Transfer-Encoding` and
/// `Content-Length` is framed by the former; the length is stale and would
/// truncate the body the client gets.
pub fn drop_length_of_chunked(headers: &mut HeaderMap) {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        headers.remove(header::CONTENT_LENGTH);
    }
}

/// An HTTP/2 request's fields as HTTP/1.1 fields (RFC 9113 §8.2): repeated
/// `cookie` fields joined with `; `; a connection-specific field, a `te`
/// other than `trailers`, or a value with surrounding whitespace makes the
/// request malformed.
pub fn downgrade_h2_fields(headers: &mut HeaderMap) -> Result<(), &'static str> {
    if CONNECTION_SPECIFIC
        .iter()
        .any(|name| headers.contains_key(name))
    {
        return Err("connection-specific header field in an HTTP/2 request");
    }
    if headers
        .get_all(header::TE)
        .iter()
        .any(|value| !value.as_bytes().eq_ignore_ascii_case(b"trailers"))
    {
        return Err("HTTP/2 allows `te: trailers` only");
    }
    let padded = headers.values().any(|value| {
        let bytes = value.as_bytes();
        let space = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
        space(bytes.first()) || space(bytes.last())
    });
    if padded {
        return Err("header field value with leading or trailing whitespace");
    }
    let mut cookies = headers.get_all(header::COOKIE).iter();
    if let (Some(first), Some(_)) = (cookies.next(), cookies.next()) {
        let mut joined = first.as_bytes().to_vec();
        for cookie in headers.get_all(header::COOKIE).iter().skip(1) {
            joined.extend_from_slice(b"; ");
            joined.extend_from_slice(cookie.as_bytes());
        }
        // Joined from valid values with `; `: still a valid value.
        if let Ok(value) = HeaderValue::from_bytes(&joined) {
            headers.insert(header::COOKIE, value);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::http1::field_map as map;

    #[test]
    fn only_chunked_is_a_transfer_coding_the_proxy_forwards() {
        assert_eq!(request_is_chunked(&map(&[])), Ok(false));
        assert_eq!(
            request_is_chunked(&map(&[("transfer-encoding", "Chunked")])),
            Ok(true)
        );
        assert_eq!(
            request_is_chunked(&map(&[("transfer-encoding", "gzip, chunked")])),
            Err("gzip".to_owned())
        );
        assert_eq!(
            request_is_chunked(&map(&[
                ("transfer-encoding", "gzip"),
                ("transfer-encoding", "chunked")
            ])),
            Err("gzip".to_owned())
        );
    }

    #[test]
    fn lengths_are_rewritten_and_chunked_is_restored() {
        let mut headers = map(&[("content-length", "010")]);
        reemit(&mut headers, false);
        assert_eq!(headers[header::CONTENT_LENGTH], "10");
        let mut headers = map(&[]);
        reemit(&mut headers, true);
        assert_eq!(headers[header::TRANSFER_ENCODING], "chunked");

        let mut response = map(&[("content-length", "5"), ("transfer-encoding", "chunked")]);
        drop_length_of_chunked(&mut response);
        assert!(!response.contains_key(header::CONTENT_LENGTH));
    }

    #[test]
    fn h2_cookies_are_joined_and_malformed_fields_refused() {
        let mut headers = map(&[("cookie", "a=1"), ("cookie", "b=2"), ("x", "y")]);
        assert_eq!(downgrade_h2_fields(&mut headers), Ok(()));
        assert_eq!(headers.get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(headers[header::COOKIE], "a=1; b=2");

        for bad in [
            map(&[("x", " padded")]),
            map(&[("x", "padded\t")]),
            map(&[("connection", "close")]),
            map(&[("upgrade", "websocket")]),
            map(&[("te", "gzip")]),
        ] {
            let mut bad = bad;
            assert!(downgrade_h2_fields(&mut bad).is_err(), "{bad:?}");
        }
        assert_eq!(downgrade_h2_fields(&mut map(&[("te", "trailers")])), Ok(()));
    }
}
