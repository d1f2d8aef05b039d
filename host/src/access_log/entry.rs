//! One access-log line's facts, gathered by the request path or the TCP
//! proxy and formatted by the writer thread.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What the line is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An HTTP request (a WebSocket's handshake included).
    Http,
    /// A TCP connection of a `mode = "tcp"` listener.
    Tcp,
}

/// One request or connection.
#[derive(Debug, Clone)]
pub struct Entry {
    /// When it started.
    pub at: SystemTime,
    /// Request or connection.
    pub kind: Kind,
    /// The listener's name.
    pub listener: Arc<str>,
    /// The route's name, when one matched.
    pub route: Option<Arc<str>>,
    /// The pool chosen, when one was.
    pub pool: Option<Arc<str>>,
    /// The backend that answered (or was connected to).
    pub backend: Option<String>,
    /// The client (the PROXY header's source where one is trusted).
    pub client: SocketAddr,
    /// The request method (HTTP).
    pub method: Option<http::Method>,
    /// The path and query as the client sent them (HTTP).
    pub path: Option<String>,
    /// The status answered (HTTP).
    pub status: Option<u16>,
    /// Why the connection ended (TCP).
    pub close_reason: Option<&'static str>,
    /// From the request's head (or the accept) to its last byte out.
    pub duration: Duration,
    /// From sending to the backend to its response head (HTTP).
    pub upstream_duration: Option<Duration>,
    /// Body bytes from the client (HTTP: request body; TCP: client to
    /// backend).
    pub bytes_in: u64,
    /// Body bytes to the client.
    pub bytes_out: u64,
    /// The `X-Request-Id` sent to the backend.
    pub request_id: Option<String>,
    /// Attempts after the first.
    pub retries: u32,
    /// The filter that answered or failed instead of forwarding, and how:
    /// `NAME:respond` or `NAME:failed`.
    pub verdict: Option<String>,
}
