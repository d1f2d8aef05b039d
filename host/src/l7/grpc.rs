//! gRPC calls through the proxy.
//!
//! gRPC is HTTP/2 with a `content-type` of `application/grpc[+codec]`, a
//! status carried in `grpc-status`/`grpc-message` (in trailers, or in the
//! headers of a trailers-only response), and a deadline in `grpc-timeout`.
//! Calls are proxied like any request, trailers included; what this file
//! adds is what a gRPC client needs from the proxy itself:
//!
//! - the proxy's own errors (no route, no backend, backend unreachable or
//!   too slow) as gRPC statuses a client library understands, not bare
//!   HTTP 502/504 it reports as a protocol error; the mapping is gRPC's
//!   own HTTP-to-gRPC table, except that a timeout is `DEADLINE_EXCEEDED`;
//! - `grpc-timeout` as the call's deadline: it bounds the wait for the
//!   response head (as a shorter `response-timeout`) and cuts a response
//!   still streaming when it passes, ending it with `DEADLINE_EXCEEDED`.

use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use tokio::time::Instant;

use super::response::ProxyBody;

/// The gRPC status codes the proxy answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Code {
    /// 2: anything the table has no better code for.
    Unknown = 2,
    /// 4: the deadline or the proxy's response timeout passed.
    DeadlineExceeded = 4,
    /// 7: a filter refused the call (403).
    PermissionDenied = 7,
    /// 8: a limit was hit (413, 429, 431).
    ResourceExhausted = 8,
    /// 12: no route for the method (404), or a method the proxy refuses.
    Unimplemented = 12,
    /// 13: a malformed request or a failing filter (400, 500).
    Internal = 13,
    /// 14: no backend, or none reachable (502, 503).
    Unavailable = 14,
    /// 16: a filter asked for credentials (401).
    Unauthenticated = 16,
}

/// What the proxy knows of a request that is a gRPC call.
#[derive(Debug, Clone, Copy)]
pub struct Call {
    /// When the client stops waiting (`grpc-timeout`), if it said.
    pub deadline: Option<Instant>,
}

// === impl Call ===

impl Call {
    /// The call `headers` describe, or `None` when they are not gRPC.
    pub fn of(headers: &HeaderMap) -> Option<Call> {
        let grpc = headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"));
        if !grpc {
            return None;
        }
        let deadline = headers
            .get("grpc-timeout")
            .and_then(|value| parse_timeout(value.as_bytes()))
            .map(|timeout| Instant::now() + timeout);
        Some(Call { deadline })
    }

    /// The proxy's own answer to this call, as a gRPC status: a
    /// trailers-only response (HTTP 200, status in the headers, no body).
    /// Answers that are not errors go out as they are.
    pub fn answer(&self, response: Response<ProxyBody>) -> Response<ProxyBody> {
        let status = response.status();
        if status.is_success() || status.is_informational() {
            return response;
        }
        let code = code_for(status);
        let mut answer = super::response::empty(StatusCode::OK);
        let headers = answer.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert("grpc-status", HeaderValue::from(code as u16));
        if let Some(reason) = status.canonical_reason() {
            headers.insert("grpc-message", HeaderValue::from_static(reason));
        }
        answer
    }
}

/// The trailers a response cut at its deadline ends with.
pub fn deadline_trailers() -> HeaderMap {
    let mut trailers = HeaderMap::with_capacity(2);
    trailers.insert(
        "grpc-status",
        HeaderValue::from(Code::DeadlineExceeded as u16),
    );
    trailers.insert(
        "grpc-message",
        HeaderValue::from_static("deadline exceeded at the proxy"),
    );
    trailers
}

/// gRPC's HTTP-to-gRPC mapping (its `http-grpc-status-mapping.md`), with
/// timeouts as `DEADLINE_EXCEEDED` and limits as `RESOURCE_EXHAUSTED`.
fn code_for(status: StatusCode) -> Code {
    match status.as_u16() {
        400 | 500 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 | 405 | 501 => Code::Unimplemented,
        408 | 504 => Code::DeadlineExceeded,
        413 | 429 | 431 => Code::ResourceExhausted,
        502 | 503 => Code::Unavailable,
        _ => Code::Unknown,
    }
}

/// `grpc-timeout`: at most 8 digits and a unit (`H`, `M`, `S`, `m`, `u`,
/// `n`), per the gRPC over HTTP/2 spec; anything else is ignored, as
/// gRPC servers do.
pub fn parse_timeout(value: &[u8]) -> Option<Duration> {
    let (unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let amount: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(amount * 3600),
        b'M' => Duration::from_secs(amount * 60),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_per_the_spec() {
        assert_eq!(parse_timeout(b"1S"), Some(Duration::from_secs(1)));
        assert_eq!(parse_timeout(b"250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_timeout(b"2H"), Some(Duration::from_secs(7200)));
        assert_eq!(
            parse_timeout(b"99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in [
            &b""[..],
            b"S",
            b"10",
            b"1s",
            b"123456789S",
            b"-1S",
            b"1.5S",
            b" 1S",
        ] {
            assert_eq!(
                parse_timeout(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn only_grpc_content_types_are_calls() {
        let mut headers = HeaderMap::new();
        assert!(Call::of(&headers).is_none());
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        assert!(Call::of(&headers).is_none());
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc+proto"),
        );
        let call = Call::of(&headers).unwrap();
        assert!(call.deadline.is_none());
        headers.insert("grpc-timeout", HeaderValue::from_static("5S"));
        let call = Call::of(&headers).unwrap();
        assert!(call.deadline.is_some_and(|at| at > Instant::now()));
    }

    #[test]
    fn proxy_errors_become_grpc_statuses() {
        let call = Call { deadline: None };
        for (status, code) in [
            (StatusCode::SERVICE_UNAVAILABLE, "14"),
            (StatusCode::BAD_GATEWAY, "14"),
            (StatusCode::GATEWAY_TIMEOUT, "4"),
            (StatusCode::NOT_FOUND, "12"),
            (StatusCode::FORBIDDEN, "7"),
            (StatusCode::IM_A_TEAPOT, "2"),
        ] {
            let answer = call.answer(super::super::response::local(status, "no"));
            assert_eq!(answer.status(), StatusCode::OK);
            assert_eq!(answer.headers()["grpc-status"], code, "{status}");
            assert_eq!(answer.headers()[header::CONTENT_TYPE], "application/grpc");
        }
        let ok = call.answer(super::super::response::empty(StatusCode::OK));
        assert!(ok.headers().get("grpc-status").is_none());
    }
}
