//! The admin API's answers: plain text or JSON, always complete.

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;

/// An admin answer.
pub type Reply = Response<Full<Bytes>>;

/// `body` as `content_type`.
pub fn with(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}

/// A line of plain text.
pub fn text(status: StatusCode, line: impl std::fmt::Display) -> Reply {
    with(status, "text/plain; charset=utf-8", format!("{line}\n"))
}

/// A JSON document, pretty-printed.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Reply {
    with(status, "application/json", format!("{value:#}\n"))
}

/// 404.
pub fn not_found() -> Reply {
    text(StatusCode::NOT_FOUND, "not found")
}

/// 405, naming the method to use.
pub fn use_method(method: &http::Method) -> Reply {
    let mut reply = text(StatusCode::METHOD_NOT_ALLOWED, format!("use {method}"));
    if let Ok(allow) = http::HeaderValue::from_str(method.as_str()) {
        reply.headers_mut().insert(header::ALLOW, allow);
    }
    reply
}
