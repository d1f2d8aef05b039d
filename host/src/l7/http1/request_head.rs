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

use bytes::BytesMut;
use http::header::{self, HeaderMap};
use http::{Method, Request, StatusCode, Uri, Version};

use crate::http1::{FieldError, FieldTable, MAX_HEADERS, codings, content_length, has_token};

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
    // Offsets, so that the target and values can share the head's bytes
    // once they are split off the buffer.
    let target = FieldTable::offset(buffer, parsed.path.unwrap_or_default().as_bytes())
        .map_err(field_refusal)?;
    let table = FieldTable::record(buffer, parsed.headers).map_err(field_refusal)?;
    let bytes = buffer.split_to(length).freeze();
    let uri = Uri::from_maybe_shared(FieldTable::slice(&bytes, target))
        .map_err(|_| bad("invalid target"))?;
    // Room for the forwarded fields the proxy adds.
    let mut headers = table.into_map(&bytes, 3).map_err(field_refusal)?;
    let (framing, framed_both_ways) = framing(version, &mut headers)?;
    let keep_alive = !framed_both_ways && persistent(version, &headers);
    let expects_continue = framing != BodyFraming::Empty
        && version == Version::HTTP_11
        && headers
            .get(header::EXPECT)
            .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let accepts_trailers = has_token(&headers, header::TE, b"trailers");
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

fn field_refusal(error: FieldError) -> Refusal {
    bad(match error {
        FieldError::TooFar => "request head too large",
        FieldError::Name => "invalid header name",
        FieldError::Value => "invalid header value",
    })
}

/// The body's framing; `true` when the request had both a length and
/// chunks (the length is removed).
fn framing(version: Version, headers: &mut HeaderMap) -> Result<(BodyFraming, bool), Refusal> {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        if version == Version::HTTP_10 {
            return Err(bad("transfer-encoding in an HTTP/1.0 request"));
        }
        let last = codings(headers).last();
        if !last.is_some_and(|coding| coding.eq_ignore_ascii_case(b"chunked")) {
            return Err(bad("transfer-encoding does not end in chunked"));
        }
        let both = headers.remove(header::CONTENT_LENGTH).is_some();
        return Ok((BodyFraming::Chunked, both));
    }
    let length = content_length(headers).map_err(bad)?;
    Ok(match length {
        None | Some(0) => (BodyFraming::Empty, false),
        Some(length) => (BodyFraming::Length(length), false),
    })
}

/// Whether the client keeps the connection: HTTP/1.1 unless `close`,
/// HTTP/1.0 only with `keep-alive`.
fn persistent(version: Version, headers: &HeaderMap) -> bool {
    let has = |token: &[u8]| has_token(headers, header::CONNECTION, token);
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
