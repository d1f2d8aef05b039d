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

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode, Version};

/// Header fields a response head may carry; more is an error, as in hyper.
const MAX_HEADERS: usize = 100;

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

/// Where a field's name and value sit in the head's bytes (start, length;
/// a head is at most 16 KiB plus one read, so `u16` holds them and the
/// table stays small enough to zero cheaply).
#[derive(Clone, Copy, Default)]
struct FieldAt {
    name: (u16, u16),
    value: (u16, u16),
}

/// Parses a response head from the front of `buffer` and removes it;
/// `Ok(None)` when the head is not complete yet. `head_request` says the
/// request was HEAD (a response to it has no body, whatever it says).
pub fn parse(buffer: &mut BytesMut, head_request: bool) -> Result<Option<ResponseHead>, HeadError> {
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
    // split off the buffer (no copy per field).
    let base = buffer.as_ptr() as usize;
    let offset = |bytes: &[u8]| -> Result<(u16, u16), HeadError> {
        let start = u16::try_from(bytes.as_ptr() as usize - base);
        let len = u16::try_from(bytes.len());
        start
            .and_then(|start| Ok((start, len?)))
            .map_err(|_| HeadError::Field)
    };
    let count = parsed.headers.len();
    let mut at = [FieldAt::default(); MAX_HEADERS];
    for (slot, field) in at.iter_mut().zip(parsed.headers.iter()) {
        *slot = FieldAt {
            name: offset(field.name.as_bytes())?,
            value: offset(field.value)?,
        };
    }
    let head = buffer.split_to(length).freeze();
    let mut headers = HeaderMap::with_capacity(count);
    for field in at.iter().take(count) {
        let (start, len) = (usize::from(field.name.0), usize::from(field.name.1));
        let name = head.get(start..start + len).ok_or(HeadError::Field)?;
        let name = HeaderName::from_bytes(name).map_err(|_| HeadError::Field)?;
        let value = slice(&head, field.value);
        let value = HeaderValue::from_maybe_shared(value).map_err(|_| HeadError::Field)?;
        headers.append(name, value);
    }
    let status = StatusCode::from_u16(code).map_err(|_| HeadError::Status(code))?;
    let framing = framing(status, version, head_request, &headers)?;
    let keep_alive = version == 1 && framing != Framing::Close && !asks_close(&headers);
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

fn slice(head: &Bytes, (start, len): (u16, u16)) -> Bytes {
    let (start, len) = (usize::from(start), usize::from(len));
    if start + len <= head.len() {
        head.slice(start..start + len)
    } else {
        Bytes::new()
    }
}

/// RFC 9112 §6.3, strictly.
fn framing(
    status: StatusCode,
    version: u8,
    head_request: bool,
    headers: &HeaderMap,
) -> Result<Framing, HeadError> {
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(HeadError::UnexpectedSwitch);
    }
    let length = content_length(headers)?;
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

/// The body length, when the fields give one: every `Content-Length`
/// (repeated or listed) must be the same run of digits.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, HeadError> {
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for item in value.as_bytes().split(|&b| b == b',') {
            let item = item.trim_ascii();
            if item.is_empty() || !item.iter().all(u8::is_ascii_digit) {
                return Err(HeadError::Framing("content-length is not a number"));
            }
            let parsed = std::str::from_utf8(item)
                .ok()
                .and_then(|text| text.parse::<u64>().ok())
                .ok_or(HeadError::Framing("content-length overflows"))?;
            if length.is_some_and(|seen| seen != parsed) {
                return Err(HeadError::Framing("content-lengths disagree"));
            }
            length = Some(parsed);
        }
    }
    Ok(length)
}

/// Whether the body is chunked: the codings, all fields together, must be
/// exactly one `chunked` (any other coding would reach the client without
/// its name, or need decoding the proxy does not do).
fn transfer_chunked(headers: &HeaderMap) -> Result<bool, HeadError> {
    let mut chunked = false;
    for value in headers.get_all(header::TRANSFER_ENCODING) {
        for coding in value.as_bytes().split(|&b| b == b',') {
            let coding = coding.trim_ascii();
            if coding.is_empty() {
                continue;
            }
            if !coding.eq_ignore_ascii_case(b"chunked") {
                return Err(HeadError::Framing("transfer coding other than chunked"));
            }
            if chunked {
                return Err(HeadError::Framing("chunked applied twice"));
            }
            chunked = true;
        }
    }
    Ok(chunked)
}

/// Whether `Connection` lists `close`.
fn asks_close(headers: &HeaderMap) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str, head_request: bool) -> Result<Option<ResponseHead>, HeadError> {
        parse(&mut BytesMut::from(text.as_bytes()), head_request)
    }

    fn framing_of(text: &str) -> Result<Framing, HeadError> {
        parse_text(text, false).map(|head| head.expect("complete").framing)
    }

    #[test]
    fn a_head_is_split_off_and_its_values_share_its_bytes() {
        let mut buffer =
            BytesMut::from(&b"HTTP/1.1 201 Created\r\nX-A: 1\r\nContent-Length: 3\r\n\r\nabc"[..]);
        let head = parse(&mut buffer, false).unwrap().unwrap();
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
