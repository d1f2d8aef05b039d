//! How long an HTTP client connection may take at each stage, and how many
//! a listener serves at once.
//!
//! Each limit closes a way to hold a connection (and its memory, and
//! perhaps a backend connection) without using it: a client that connects
//! and says nothing, one idle between requests, one that stops sending its
//! body half-way, one that stops reading its response. Defaults are close
//! to NGINX's and HAProxy's; every one is a listener setting.

use std::time::Duration;

/// A new connection must send its first byte within this long (the HTTP/2
/// preface or a request line): HAProxy's `timeout http-request` covers
/// this, NGINX's `client_header_timeout` is 60 s. Browsers that preconnect
/// speak within seconds.
pub const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(30);
/// A keep-alive connection with no request in flight is closed (HTTP/2:
/// GOAWAY) after this long; NGINX's `keepalive_timeout` is 75 s.
pub const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(60);
/// A request body that sends nothing for this long is cut off (408), which
/// frees the backend connection it holds; NGINX's `client_body_timeout`
/// is 60 s.
pub const DEFAULT_REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// A client that has not finished sending request headers this long
/// after it began is holding a connection open on purpose (slowloris),
/// not on a slow network; NGINX's `client_header_timeout` is 60 s,
/// HAProxy's `timeout http-request` commonly 10-30 s.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest request head (request line and fields; HTTP/2: the decoded
/// header list), as HAProxy's `tune.bufsize` (16 KiB) bounds it; NGINX
/// refuses a field line over 8 KiB. Larger heads get 431.
pub const DEFAULT_MAX_HEADER_SIZE: usize = 16 * 1024;
/// Most request header fields (HAProxy's `tune.http.maxhdr` is 101).
/// More get 431.
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// An upgraded connection (WebSocket) with no byte moving either way for
/// this long is closed: HAProxy's `timeout tunnel` is commonly set to an
/// hour, NGINX's `proxy_read_timeout` (60 s) is usually raised for
/// WebSockets; 10 minutes is the TCP listeners' default.
pub const DEFAULT_TUNNEL_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// A client that accepts no response bytes for this long is disconnected;
/// NGINX's `send_timeout` is 60 s.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections one listener serves at once; past it new ones get a 503 and
/// are closed. Each proxied connection may hold a backend connection too,
/// so this stays well under a typical open-file limit.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10_000;

/// The limits of one HTTP listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// See [`DEFAULT_FIRST_BYTE_TIMEOUT`].
    pub first_byte_timeout: Duration,
    /// See [`DEFAULT_KEEP_ALIVE_TIMEOUT`].
    pub keep_alive_timeout: Duration,
    /// See [`DEFAULT_REQUEST_BODY_TIMEOUT`].
    pub request_body_timeout: Duration,
    /// See [`DEFAULT_SEND_TIMEOUT`].
    pub send_timeout: Duration,
    /// See [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: u32,
    /// See [`DEFAULT_TUNNEL_IDLE_TIMEOUT`] (the listener's `idle-timeout`).
    pub tunnel_idle_timeout: Duration,
    /// See [`DEFAULT_HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// See [`DEFAULT_MAX_HEADER_SIZE`].
    pub max_header_size: usize,
    /// See [`DEFAULT_MAX_HEADERS`].
    pub max_headers: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            first_byte_timeout: DEFAULT_FIRST_BYTE_TIMEOUT,
            keep_alive_timeout: DEFAULT_KEEP_ALIVE_TIMEOUT,
            request_body_timeout: DEFAULT_REQUEST_BODY_TIMEOUT,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            tunnel_idle_timeout: DEFAULT_TUNNEL_IDLE_TIMEOUT,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_header_size: DEFAULT_MAX_HEADER_SIZE,
            max_headers: DEFAULT_MAX_HEADERS,
        }
    }
}
