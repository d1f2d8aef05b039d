//! Opening transport connections to backend endpoints.
//!
//! A [`Connector`] turns a resolved endpoint into a byte stream. Plain TCP
//! is [`TcpConnector`]; upstream TLS wraps it as another connector, so the
//! connection pool and the request path do not change when it arrives.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Opens connections to endpoints.
pub trait Connector: Send + Sync + 'static {
    /// The stream a connection carries.
    type Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static;

    /// Connects to `endpoint`. The caller bounds it with a timeout.
    fn connect(
        &self,
        endpoint: SocketAddr,
    ) -> impl Future<Output = std::io::Result<Self::Stream>> + Send;
}

/// Plain TCP with `TCP_NODELAY`: requests and responses are written whole,
/// so Nagle's algorithm would only add delay.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpConnector;

/// Why no connection to a backend could be had.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The backend's name has not resolved to any address yet.
    #[error("backend {backend} has no resolved address")]
    Unresolved {
        /// The backend's configured address.
        backend: String,
    },
    /// The connect failed.
    #[error("connecting to backend {endpoint} failed")]
    Io {
        /// The endpoint.
        endpoint: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed (an unknown issuer, a name the
    /// certificate does not carry, a refused client certificate, ...).
    #[error("TLS handshake with backend {endpoint} failed")]
    Tls {
        /// The endpoint.
        endpoint: SocketAddr,
        /// rustls's reason.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP/2 handshake failed (the backend does not speak HTTP/2 by
    /// prior knowledge, or closed the connection).
    #[error("HTTP/2 handshake with backend {endpoint} failed")]
    Http2 {
        /// The endpoint.
        endpoint: SocketAddr,
        /// hyper's reason.
        #[source]
        source: hyper::Error,
    },
    /// The pool asks for HTTP/2 (`protocol = "h2"`) and the backend did
    /// not choose `h2` by ALPN.
    #[error("backend {endpoint} did not agree to HTTP/2 (ALPN `h2`) in the TLS handshake")]
    NoH2 {
        /// The endpoint.
        endpoint: SocketAddr,
    },
    /// The connect did not finish in time.
    #[error("connecting to backend {endpoint} timed out after {timeout:?}")]
    Timeout {
        /// The endpoint.
        endpoint: SocketAddr,
        /// The budget.
        timeout: Duration,
    },
}

impl ConnectError {
    /// Whether it ran out of `connect-timeout`.
    pub fn is_timeout(&self) -> bool {
        matches!(self, ConnectError::Timeout { .. })
    }
}

// === impl TcpConnector ===

impl Connector for TcpConnector {
    type Stream = TcpStream;

    async fn connect(&self, endpoint: SocketAddr) -> std::io::Result<TcpStream> {
        let stream = TcpStream::connect(endpoint).await?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}

/// Connects with `connector` within `timeout`.
pub async fn connect_within<C: Connector>(
    connector: &C,
    endpoint: SocketAddr,
    timeout: Duration,
) -> Result<C::Stream, ConnectError> {
    match tokio::time::timeout(timeout, connector.connect(endpoint)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(source)) => Err(ConnectError::Io { endpoint, source }),
        Err(_) => Err(ConnectError::Timeout { endpoint, timeout }),
    }
}
