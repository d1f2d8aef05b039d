//! A request head as written to a backend, and how its body is framed.
//!
//! The head comes from the request path already prepared (hop-by-hop
//! fields gone, `Content-Length` or `Transfer-Encoding: chunked`
//! re-emitted from what was parsed); this writes it out and, for a body
//! with neither (an HTTP/2 request without `content-length`), adds the
//! framing the body needs.

use bytes::BufMut;
use http::header::{self, HeaderValue};
use http::request::Parts;

use crate::http1;

/// How the request body goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    Empty,
    /// Exactly this many bytes, as sent.
    Length(u64),
    /// Chunked, each data frame one chunk.
    Chunked,
}

/// Decides the body's framing from `head` and, when the head carries
/// none, from what the body says of itself; writes the framing field the
/// backend needs into `head`.
pub fn framing(head: &mut Parts, body_ended: bool, exact_length: Option<u64>) -> BodyFraming {
    let chunked = head
        .headers
        .get(header::TRANSFER_ENCODING)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"chunked"));
    if chunked {
        return BodyFraming::Chunked;
    }
    let length = head
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<u64>().ok());
    match (length, body_ended, exact_length) {
        (Some(0), _, _) => BodyFraming::Empty,
        (Some(length), _, _) => BodyFraming::Length(length),
        (None, true, _) => BodyFraming::Empty,
        (None, false, Some(length)) => {
            head.headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
            BodyFraming::Length(length)
        }
        (None, false, None) => {
            head.headers.insert(
                header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            );
            BodyFraming::Chunked
        }
    }
}

/// Appends `head` as HTTP/1.1 to `out`.
pub fn encode(head: &Parts, out: &mut Vec<u8>) {
    let target = head
        .uri
        .path_and_query()
        .map_or("/", |path_and_query| path_and_query.as_str());
    let fields: usize = head
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    out.reserve(head.method.as_str().len() + target.len() + fields + 16);
    out.put_slice(head.method.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(target.as_bytes());
    out.put_slice(b" HTTP/1.1\r\n");
    http1::write_fields(&head.headers, out);
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn parts(builder: http::request::Builder) -> Parts {
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn a_head_is_written_as_http11() {
        let head = parts(
            Request::post("http://ignored.example/a/b?c=d")
                .header("host", "app.example")
                .header("x-two", "1")
                .header("x-two", "2"),
        );
        let mut out = Vec::new();
        encode(&head, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /a/b?c=d HTTP/1.1\r\nhost: app.example\r\nx-two: 1\r\nx-two: 2\r\n\r\n"
        );
        let mut out = Vec::new();
        encode(&parts(Request::options("*")), &mut out);
        assert!(out.starts_with(b"OPTIONS * HTTP/1.1\r\n"), "{out:?}");
    }

    #[test]
    fn framing_comes_from_the_head_or_from_the_body() {
        let mut head = parts(Request::post("/").header("content-length", "5"));
        assert_eq!(framing(&mut head, false, Some(5)), BodyFraming::Length(5));
        let mut head = parts(Request::post("/").header("transfer-encoding", "chunked"));
        assert_eq!(framing(&mut head, false, None), BodyFraming::Chunked);
        let mut head = parts(Request::get("/"));
        assert_eq!(framing(&mut head, true, Some(0)), BodyFraming::Empty);
        assert!(head.headers.is_empty());
        let mut head = parts(Request::post("/"));
        assert_eq!(framing(&mut head, false, Some(7)), BodyFraming::Length(7));
        assert_eq!(head.headers["content-length"], "7");
        let mut head = parts(Request::post("/"));
        assert_eq!(framing(&mut head, false, None), BodyFraming::Chunked);
        assert_eq!(head.headers["transfer-encoding"], "chunked");
    }
}
