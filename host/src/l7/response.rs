//! Responses the proxy writes itself, and the body type it answers with.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{Either, Full};

use super::filter::LocalResponse;
use crate::upstream::UpstreamBody;

/// A backend's body streamed through, or a short local one.
pub type ProxyBody = Either<UpstreamBody, Full<Bytes>>;

/// A plain-text response written by the proxy itself.
pub fn local(status: StatusCode, message: &str) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(format!(
        "{message}\n"
    )))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A route's fixed answer (`respond`).
pub fn fixed(status: StatusCode, body: Bytes, content_type: HeaderValue) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    response
}

/// A route's redirect to `location` (a value that cannot be a header
/// value, from a request's own path, gets 500 rather than a bad header).
pub fn redirect(status: StatusCode, location: &str) -> Response<ProxyBody> {
    match HeaderValue::from_str(location) {
        Ok(location) => {
            let mut response = local(status, "redirected");
            response.headers_mut().insert(header::LOCATION, location);
            response
        }
        Err(_) => local(
            StatusCode::INTERNAL_SERVER_ERROR,
            "redirect target is not a valid URL",
        ),
    }
}

/// A rate limit's answer: `429` with `Retry-After` in whole seconds (at
/// least 1).
pub fn rate_limited(wait: std::time::Duration) -> Response<ProxyBody> {
    let mut response = local(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded");
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    response
}

/// An answer with no body (`OPTIONS *`).
pub fn empty(status: StatusCode) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::new())));
    *response.status_mut() = status;
    response
}

/// The answer a header filter asked for, `text/plain` unless it said
/// otherwise.
pub fn from_filter(answer: LocalResponse) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(answer.body))));
    *response.status_mut() = answer.status;
    *response.headers_mut() = answer.headers;
    if !response.headers().contains_key(header::CONTENT_TYPE) {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    response
}
