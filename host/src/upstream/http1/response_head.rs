//! A backend's response head: parsed strictly with `httparse`, and how its
//! body is framed (RFC 9112 §6.3).
//!
//! What a backend may not send, because a proxy that guessed would desync
//! from it (response splitting, a body read as the next response): a head
//! with whitespace before a colon, an obs-folded line, a NUL or other
//! control byte, a transfer coding other than one `chunked`, disagreeing
//! or malformed `Content-Length`s, a `Transfer-Encoding` in an HTTP/1.0
//! response, a `101` the proxy never asked for. Each is a [`HeadError`]
//! and the client gets 502.

use std::mem::MaybeUninit;

use bytes::BytesMut;
use http::header::{self, HeaderMap};
use http::{Response, StatusCode, Version};

use crate::http1::{
    BodyDecoder, Chunked, FieldTable, MAX_HEADERS, codings, content_length, has_token,
};

/// Why a response head was refused.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// Not valid HTTP/1 (a bare CR, whitespace before a colon, obs-fold,
    /// a control byte, too many fields...).
    #[error("malformed response head")]
    Malformed(#[source] httparse::Error),
    /// A field name or value `http` refuses (a NUL, a control byte).
    #[error("invalid header field in response head")]
    Field,
    /// A status code outside 100-999.
    #[error("invalid status code {0}")]
    Status(u16),
    /// The body's framing is ambiguous or unsupported.
    #[error("response framing: {0}")]
    Framing(&'static str),
    /// A protocol switch the proxy never requested.
    #[error("unexpected 101 Switching Protocols")]
    UnexpectedSwitch,
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (a response to HEAD; 1xx, 204, 304).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the backend closes the connection.
    Close,
}

// === impl Framing ===

impl Framing {
    /// The decoder that reads a body framed this way.
    pub fn decoder(self) -> BodyDecoder {
        match self {
            Framing::Empty | Framing::Length(0) => BodyDecoder::Done,
            Framing::Length(length) => BodyDecoder::Length(length),
            Framing::Chunked => BodyDecoder::Chunked(Chunked::Size),
            Framing::Close => BodyDecoder::Close,
        }
    }
}

/// A parsed response head.
#[derive(Debug)]
pub struct ResponseHead {
    /// Status and fields (version always HTTP/1.1: the client side
    /// writes its own).
    pub response: Response<()>,
    /// How its body is delimited.
    pub framing: Framing,
    /// Whether the connection may carry another request once the body
    /// has been read.
    pub keep_alive: bool,
}

/// Parses a response head from the front of `buffer` and removes it;
/// `Ok(None)` when the head is not complete yet. `head_request` says the
/// request was HEAD (a response to it has no body, whatever it says).
pub fn parse(
    buffer: &mut BytesMut,
    head_request: bool,
    upgrade: bool,
) -> Result<Option<ResponseHead>, HeadError> {
    // Uninitialised: zeroing 100 fields per response cost more than the
    // parse.
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let parser = httparse::ParserConfig::default();
    let length = match parser.parse_response_with_uninit_headers(&mut parsed, buffer, &mut fields) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => return Err(HeadError::Malformed(error)),
    };
    let code = parsed.code.unwrap_or(0);
    let version = parsed.version.unwrap_or(1);
    // Offsets, so that the values can share the head's bytes once they are
    // split off the buffer.
    let table = FieldTable::record(buffer, parsed.headers).map_err(|_| HeadError::Field)?;
    let head = buffer.split_to(length).freeze();
    let headers = table.into_map(&head, 0).map_err(|_| HeadError::Field)?;
    let status = StatusCode::from_u16(code).map_err(|_| HeadError::Status(code))?;
    let framing = framing(status, version, head_request, upgrade, &headers)?;
    let keep_alive = version == 1
        && status != StatusCode::SWITCHING_PROTOCOLS
        && framing != Framing::Close
        && !has_token(&headers, header::CONNECTION, b"close");
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = Version::HTTP_11;
    *response.headers_mut() = headers;
    Ok(Some(ResponseHead {
        response,
        framing,
        keep_alive,
    }))
}

/// RFC 9112 §6.3, strictly.
fn framing(
    status: StatusCode,
    version: u8,
    head_request: bool,
    upgrade: bool,
    headers: &HeaderMap,
) -> Result<Framing, HeadError> {
    if status == StatusCode::SWITCHING_PROTOCOLS {
        // The connection is the new protocol's from here: no body.
        return if upgrade {
            Ok(Framing::Empty)
        } else {
            Err(HeadError::UnexpectedSwitch)
        };
    }
    let length = content_length(headers).map_err(HeadError::Framing)?;
    let chunked = transfer_chunked(headers)?;
    if chunked && version == 0 {
        return Err(HeadError::Framing(
            "transfer-encoding in an HTTP/1.0 response",
        ));
    }
    if head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Empty);
    }
    // Chunked wins over a length (the proxy drops the stale length).
    Ok(match (chunked, length) {
        (true, _) => Framing::Chunked,
        (false, Some(0)) => Framing::Empty,
        (false, Some(length)) => Framing::Length(length),
        (false, None) => Framing::Close,
    })
}

/// Whether the body is chunked: the codings, all fields together, must be
/// exactly one `chunked` (any other coding would reach the client without
/// its name, or need decoding the proxy does not do).
fn transfer_chunked(headers: &HeaderMap) -> Result<bool, HeadError> {
    let mut chunked = false;
    for coding in codings(headers) {
        if !coding.eq_ignore_ascii_case(b"chunked") {
            return Err(HeadError::Framing("transfer coding other than chunked"));
        }
        if chunked {
            return Err(HeadError::Framing("chunked applied twice"));
        }
        chunked = true;
    }
    Ok(chunked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str, head_request: bool) -> Result<Option<ResponseHead>, HeadError> {
        parse(&mut BytesMut::from(text.as_bytes()), head_request, false)
    }

    fn framing_of(text: &str) -> Result<Framing, HeadError> {
        parse_text(text, false).map(|head| head.expect("complete").framing)
    }

    #[test]
    fn a_head_is_split_off_and_its_values_share_its_bytes() {
        let mut buffer =
            BytesMut::from(&b"HTTP/1.1 201 Created\r\nX-A: 1\r\nContent-Length: 3\r\n\r\nabc"[..]);
        let head = parse(&mut buffer, false, false).unwrap().unwrap();
        assert_eq!(head.response.status(), StatusCode::CREATED);
        assert_eq!(head.response.headers()["x-a"], "1");
        assert_eq!(head.framing, Framing::Length(3));
        assert!(head.keep_alive);
        assert_eq!(&buffer[..], b"abc");
    }

    #[test]
    fn an_incomplete_head_waits_for_more() {
        assert!(
            parse_text("HTTP/1.1 200 OK\r\nX-A: 1\r\n", false)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let cases = [
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                Framing::Length(5),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
                Framing::Length(5),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                Framing::Empty,
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                Framing::Chunked,
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\nContent-Length: 4\r\n\r\n",
                Framing::Chunked,
            ),
            ("HTTP/1.1 200 OK\r\n\r\n", Framing::Close),
            (
                "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
                Framing::Empty,
            ),
            (
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
                Framing::Empty,
            ),
            ("HTTP/1.1 100 Continue\r\n\r\n", Framing::Empty),
        ];
        for (text, expected) in cases {
            assert_eq!(framing_of(text).unwrap(), expected, "{text:?}");
        }
        let head = parse_text("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true)
            .unwrap()
            .unwrap();
        assert_eq!(head.framing, Framing::Empty);
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        for text in [
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 0x5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
            "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        ] {
            assert!(framing_of(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn malformed_heads_are_refused() {
        for text in [
            "HTTP/1.1 200 OK\r\nX-A : 1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX-A: a\0b\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX-\0A: 1\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/2 200 OK\r\n\r\n",
            "HTTP/1.1 200 OK\rX-A: 1\r\n\r\n",
        ] {
            assert!(parse_text(text, false).is_err(), "{text:?}");
        }
    }

    #[test]
    fn only_persistent_http11_framed_responses_keep_the_connection() {
        let keep = |text: &str| parse_text(text, false).unwrap().unwrap().keep_alive;
        assert!(keep("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n"));
        assert!(!keep(
            "HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 1\r\n\r\n"
        ));
        assert!(!keep("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n"));
        assert!(!keep("HTTP/1.1 200 OK\r\n\r\n"));
    }
}
