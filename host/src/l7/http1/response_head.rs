//! A response head as written to the client, and how its body goes out.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use http::StatusCode;
use http::header::{self, HeaderMap};
use http_body::SizeHint;

use crate::http1;

/// How the response body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body bytes (HEAD; 1xx, 204, 304).
    Empty,
    /// As many bytes as the `Content-Length` says.
    Length(u64),
    /// Chunked.
    Chunked,
    /// Until the connection closes (an HTTP/1.0 client and no length).
    Close,
}

/// What the head writer needs to know of the exchange.
#[derive(Debug, Clone, Copy)]
pub struct Exchange {
    /// The request was HEAD.
    pub head_request: bool,
    /// The client spoke HTTP/1.0.
    pub http10: bool,
    /// The connection stays open after this response.
    pub keep_alive: bool,
}

/// Appends the head of a response with `status`, `headers` and a body of
/// `size` to `out`; returns the body's framing. A `Content-Length` that
/// disagrees with a body of known size is corrected.
pub fn encode(
    status: StatusCode,
    headers: &mut HeaderMap,
    size: &SizeHint,
    exchange: Exchange,
    out: &mut Vec<u8>,
) -> Framing {
    let bodiless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let stated = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<u64>().ok());
    let framing = if bodiless {
        Framing::Empty
    } else {
        match (size.exact(), stated) {
            // A HEAD response's length describes the body a GET would
            // get, which its empty body cannot contradict.
            (Some(exact), Some(stated)) if exact != stated && !exchange.head_request => {
                headers.insert(header::CONTENT_LENGTH, exact.into());
                Framing::Length(exact)
            }
            (_, Some(stated)) => Framing::Length(stated),
            (Some(exact), None) => {
                headers.insert(header::CONTENT_LENGTH, exact.into());
                Framing::Length(exact)
            }
            (None, None) if exchange.http10 => Framing::Close,
            (None, None) => Framing::Chunked,
        }
    };
    let version = if exchange.http10 {
        "HTTP/1.0 "
    } else {
        "HTTP/1.1 "
    };
    out.extend_from_slice(version.as_bytes());
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    http1::write_fields(headers.iter(), out);
    if framing == Framing::Chunked && !exchange.head_request {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if !headers.contains_key(header::DATE) {
        out.extend_from_slice(b"date: ");
        with_date(|date| out.extend_from_slice(date));
        out.extend_from_slice(b"\r\n");
    }
    let keep_alive = exchange.keep_alive && framing != Framing::Close;
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    } else if exchange.http10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if exchange.head_request {
        Framing::Empty
    } else {
        framing
    }
}

thread_local! {
    /// The `Date` value of the current second, formatted once per second
    /// per thread.
    static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [b' '; 29])) };
}

/// Calls `f` with the current date as an HTTP-date.
fn with_date(f: impl FnOnce(&[u8])) {
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second {
            let text = httpdate::fmt_http_date(now);
            let bytes = text.as_bytes();
            if bytes.len() == 29 {
                cached.1.copy_from_slice(bytes);
                cached.0 = second;
            }
        }
        f(&cached.1);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn exchange() -> Exchange {
        Exchange {
            head_request: false,
            http10: false,
            keep_alive: true,
        }
    }

    fn head(
        status: StatusCode,
        headers: &mut HeaderMap,
        size: SizeHint,
        exchange: Exchange,
    ) -> (String, Framing) {
        let mut out = Vec::new();
        let framing = encode(status, headers, &size, exchange, &mut out);
        (String::from_utf8(out).unwrap(), framing)
    }

    #[test]
    fn framing_is_chosen_from_length_size_and_client() {
        let mut headers = HeaderMap::new();
        let (text, framing) = head(
            StatusCode::OK,
            &mut headers,
            SizeHint::with_exact(3),
            exchange(),
        );
        assert!(
            text.starts_with("HTTP/1.1 200 OK\r\ncontent-length: 3\r\ndate: "),
            "{text}"
        );
        assert!(text.ends_with("GMT\r\n\r\n"), "{text}");
        assert_eq!(framing, Framing::Length(3));

        let (text, framing) = head(
            StatusCode::OK,
            &mut HeaderMap::new(),
            SizeHint::default(),
            exchange(),
        );
        assert!(text.contains("transfer-encoding: chunked\r\n"), "{text}");
        assert_eq!(framing, Framing::Chunked);

        let old = Exchange {
            http10: true,
            keep_alive: true,
            ..exchange()
        };
        let (text, framing) = head(
            StatusCode::OK,
            &mut HeaderMap::new(),
            SizeHint::default(),
            old,
        );
        assert!(
            text.starts_with("HTTP/1.0 200 OK\r\n") && text.contains("connection: close"),
            "{text}"
        );
        assert_eq!(framing, Framing::Close);

        let mut headers = HeaderMap::new();
        headers.insert("content-length", HeaderValue::from_static("10"));
        let head_request = Exchange {
            head_request: true,
            ..exchange()
        };
        let (text, framing) = head(
            StatusCode::OK,
            &mut headers,
            SizeHint::with_exact(0),
            head_request,
        );
        assert!(text.contains("content-length: 10\r\n"), "{text}");
        assert_eq!(framing, Framing::Empty);

        let mut headers = HeaderMap::new();
        headers.insert("content-length", HeaderValue::from_static("10"));
        let (text, framing) = head(
            StatusCode::OK,
            &mut headers,
            SizeHint::with_exact(4),
            exchange(),
        );
        assert!(text.contains("content-length: 4\r\n"), "{text}");
        assert_eq!(framing, Framing::Length(4));

        let (_, framing) = head(
            StatusCode::NO_CONTENT,
            &mut HeaderMap::new(),
            SizeHint::default(),
            exchange(),
        );
        assert_eq!(framing, Framing::Empty);
        let closing = Exchange {
            keep_alive: false,
            ..exchange()
        };
        let (text, _) = head(
            StatusCode::OK,
            &mut HeaderMap::new(),
            SizeHint::with_exact(0),
            closing,
        );
        assert!(text.contains("connection: close\r\n"), "{text}");
    }
}
