//! A client's request head: parsed strictly with `httparse`, and how its
//! body is framed (RFC 9112 §6).
//!
//! The rules hyper's server enforced, kept: whitespace before a colon,
//! obs-fold, a NUL or other control byte, an invalid method or target are
//! 400; more than 100 fields 431; `Transfer-Encoding` in HTTP/1.0, one
//! whose last coding is not `chunked`, `Content-Length`s that disagree or
//! are not digits are 400. A request framed both ways is framed by its
//! chunks, loses the length and closes the connection after its response
//! (nothing can hide behind it).

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri, Version};

/// Header fields a request head may carry.
const MAX_HEADERS: usize = 100;

/// How a request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked.
    Chunked,
}

/// A parsed request head.
#[derive(Debug)]
pub struct RequestHead {
    /// Method, target, version and fields.
    pub head: http::request::Parts,
    /// How its body is delimited.
    pub framing: BodyFraming,
    /// Whether the connection may carry another request after this one.
    pub keep_alive: bool,
    /// Whether the client waits for `100 Continue` before its body.
    pub expects_continue: bool,
    /// Whether the client accepts trailers (`TE: trailers`).
    pub accepts_trailers: bool,
}

/// Why a head was refused, as the status the client gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {reason}")]
pub struct Refusal {
    /// 400 or 431.
    pub status: StatusCode,
    /// For the log.
    pub reason: &'static str,
}

/// Where a field's name and value sit in the head (see the response side).
#[derive(Clone, Copy, Default)]
struct FieldAt {
    name: (u16, u16),
    value: (u16, u16),
}

fn bad(reason: &'static str) -> Refusal {
    Refusal {
        status: StatusCode::BAD_REQUEST,
        reason,
    }
}

/// Parses a request head from the front of `buffer` and removes it;
/// `Ok(None)` while it is incomplete.
pub fn parse(buffer: &mut BytesMut) -> Result<Option<RequestHead>, Refusal> {
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    let parser = httparse::ParserConfig::default();
    let length = match parser.parse_request_with_uninit_headers(&mut parsed, buffer, &mut fields) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal {
                status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                reason: "too many header fields",
            });
        }
        Err(_) => return Err(bad("malformed request head")),
    };
    let method = Method::from_bytes(parsed.method.unwrap_or_default().as_bytes())
        .map_err(|_| bad("invalid method"))?;
    let version = match parsed.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let base = buffer.as_ptr() as usize;
    let offset = |bytes: &[u8]| -> Result<(u16, u16), Refusal> {
        let start = u16::try_from(bytes.as_ptr() as usize - base);
        let len = u16::try_from(bytes.len());
        start
            .and_then(|start| Ok((start, len?)))
            .map_err(|_| bad("request head too large"))
    };
    let target = offset(parsed.path.unwrap_or_default().as_bytes())?;
    let count = parsed.headers.len();
    let mut at = [FieldAt::default(); MAX_HEADERS];
    for (slot, field) in at.iter_mut().zip(parsed.headers.iter()) {
        *slot = FieldAt {
            name: offset(field.name.as_bytes())?,
            value: offset(field.value)?,
        };
    }
    let bytes = buffer.split_to(length).freeze();
    let uri = Uri::from_maybe_shared(slice(&bytes, target)).map_err(|_| bad("invalid target"))?;
    let mut headers = HeaderMap::with_capacity(count);
    for field in at.iter().take(count) {
        let name = HeaderName::from_bytes(&slice(&bytes, field.name))
            .map_err(|_| bad("invalid header name"))?;
        let value = HeaderValue::from_maybe_shared(slice(&bytes, field.value))
            .map_err(|_| bad("invalid header value"))?;
        headers.append(name, value);
    }
    let (framing, framed_both_ways) = framing(version, &mut headers)?;
    let keep_alive = !framed_both_ways && persistent(version, &headers);
    let expects_continue = framing != BodyFraming::Empty
        && version == Version::HTTP_11
        && headers
            .get(header::EXPECT)
            .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let accepts_trailers = headers.get_all(header::TE).iter().any(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .any(|item| item.trim_ascii().eq_ignore_ascii_case(b"trailers"))
    });
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    Ok(Some(RequestHead {
        head: request.into_parts().0,
        framing,
        keep_alive,
        expects_continue,
        accepts_trailers,
    }))
}

fn slice(bytes: &Bytes, (start, len): (u16, u16)) -> Bytes {
    let (start, len) = (usize::from(start), usize::from(len));
    if start + len <= bytes.len() {
        bytes.slice(start..start + len)
    } else {
        Bytes::new()
    }
}

/// The body's framing; `true` when the request had both a length and
/// chunks (the length is removed).
fn framing(version: Version, headers: &mut HeaderMap) -> Result<(BodyFraming, bool), Refusal> {
    let mut last_coding: Option<Vec<u8>> = None;
    for value in headers.get_all(header::TRANSFER_ENCODING) {
        for coding in value.as_bytes().split(|&b| b == b',') {
            let coding = coding.trim_ascii();
            if !coding.is_empty() {
                last_coding = Some(coding.to_ascii_lowercase());
            }
        }
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        if version == Version::HTTP_10 {
            return Err(bad("transfer-encoding in an HTTP/1.0 request"));
        }
        if last_coding.as_deref() != Some(b"chunked") {
            return Err(bad("transfer-encoding does not end in chunked"));
        }
        let both = headers.remove(header::CONTENT_LENGTH).is_some();
        return Ok((BodyFraming::Chunked, both));
    }
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for item in value.as_bytes().split(|&b| b == b',') {
            let item = item.trim_ascii();
            if item.is_empty() || !item.iter().all(u8::is_ascii_digit) {
                return Err(bad("content-length is not a number"));
            }
            let parsed = std::str::from_utf8(item)
                .ok()
                .and_then(|text| text.parse::<u64>().ok())
                .ok_or(bad("content-length overflows"))?;
            if length.is_some_and(|seen| seen != parsed) {
                return Err(bad("content-lengths disagree"));
            }
            length = Some(parsed);
        }
    }
    Ok(match length {
        None | Some(0) => (BodyFraming::Empty, false),
        Some(length) => (BodyFraming::Length(length), false),
    })
}

/// Whether the client keeps the connection: HTTP/1.1 unless `close`,
/// HTTP/1.0 only with `keep-alive`.
fn persistent(version: Version, headers: &HeaderMap) -> bool {
    let has = |token: &[u8]| {
        headers.get_all(header::CONNECTION).iter().any(|value| {
            value
                .as_bytes()
                .split(|&b| b == b',')
                .any(|item| item.trim_ascii().eq_ignore_ascii_case(token))
        })
    };
    match version {
        Version::HTTP_10 => has(b"keep-alive"),
        _ => !has(b"close"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<Option<RequestHead>, Refusal> {
        parse(&mut BytesMut::from(text.as_bytes()))
    }

    fn status(text: &str) -> StatusCode {
        parse_text(text).expect_err(text).status
    }

    #[test]
    fn a_head_is_split_off_and_framed() {
        let mut buffer = BytesMut::from(
            &b"POST /a?b=c HTTP/1.1\r\nHost: p\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabcGET"[..],
        );
        let head = parse(&mut buffer).unwrap().unwrap();
        assert_eq!(head.head.method, Method::POST);
        assert_eq!(head.head.uri, "/a?b=c");
        assert_eq!(head.head.headers["host"], "p");
        assert_eq!(head.framing, BodyFraming::Length(3));
        assert!(head.keep_alive && head.expects_continue);
        assert_eq!(&buffer[..], b"abcGET");
        assert!(
            parse_text("GET / HTTP/1.1\r\nHost: p\r\n")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn framing_and_persistence_follow_rfc_9112() {
        let head = parse_text("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.framing, BodyFraming::Chunked);
        let both = parse_text(
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(both.framing, BodyFraming::Chunked);
        assert!(!both.keep_alive, "a request framed both ways closes");
        assert!(!both.head.headers.contains_key("content-length"));
        let old = parse_text("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!old.keep_alive);
        let old = parse_text("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(old.keep_alive);
        let close = parse_text("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!close.keep_alive);
    }

    #[test]
    fn malformed_or_ambiguous_heads_are_refused() {
        for text in [
            "GET / HTTP/1.1\r\nHost : p\r\n\r\n",
            "GET / HTTP/1.1\r\nX-A: a\r\n  folded\r\n\r\n",
            "GET / HTTP/1.1\r\nX-A: a\0b\r\n\r\n",
            "GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "GET / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "G\0T / HTTP/1.1\r\n\r\n",
            "GET / HTTP/2.0\r\n\r\n",
        ] {
            assert_eq!(status(text), StatusCode::BAD_REQUEST, "{text:?}");
        }
        let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(
            status(&format!("GET / HTTP/1.1\r\n{many}\r\n")),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
    }
}
