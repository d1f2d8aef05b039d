//! Why an exchange with a backend failed, whatever HTTP version it spoke.

use super::http1::Http1Error;

/// A request or response that failed between the proxy and a backend.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// On an HTTP/1.1 connection.
    #[error(transparent)]
    Http1(#[from] Http1Error),
    /// On an HTTP/2 connection (a reset stream, a connection error, the
    /// client's body failing as hyper wrote it).
    #[error("the HTTP/2 exchange with the backend failed")]
    Http2(#[source] hyper::Error),
    /// The backend left (reload, ejection, failed checks, drained by hand)
    /// and its pool's `drain-timeout` passed before the body ended.
    #[error("the backend left and its drain timeout passed before the response body ended")]
    Drained,
    /// The request's deadline (the route's `timeout`) passed before the
    /// response body ended.
    #[error("the request's deadline passed before the response body ended")]
    Deadline,
}

// === impl ExchangeError ===

impl ExchangeError {
    /// Whether an HTTP/2 backend turned the request away unprocessed
    /// (see [`super::http2::is_refused`]).
    pub fn is_refused(&self) -> bool {
        matches!(self, ExchangeError::Http2(error) if super::http2::is_refused(error))
    }

    /// Whether the client's request body is at fault, not the backend.
    pub fn is_client_body(&self) -> bool {
        match self {
            ExchangeError::Http1(error) => error.is_client_body(),
            ExchangeError::Http2(error) => super::is_body_timeout(error) || error.is_user(),
            ExchangeError::Drained | ExchangeError::Deadline => false,
        }
    }
}
