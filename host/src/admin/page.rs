//! The status page at `/`: one self-contained HTML document (no external
//! assets) that renders `/status` every few seconds and drains or
//! undrains backends through the API.

use http::StatusCode;

use super::reply::{self, Reply};

/// The page, compiled in.
const PAGE: &str = include_str!("page.html");

/// The page; it holds no data of its own, so it is served without the
/// token, which the page asks for when `/status` wants one.
pub fn render() -> Reply {
    let mut reply = reply::with(StatusCode::OK, "text/html; charset=utf-8", PAGE);
    reply.headers_mut().insert(
        http::header::CONTENT_SECURITY_POLICY,
        http::HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
        ),
    );
    reply
}
