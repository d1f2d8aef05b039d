//! Lazy access to the request or connection being balanced.
//!
//! Every accessor is one call into the host, so read only what the
//! algorithm needs: round robin reads nothing, an IP hash reads one field.

use crate::bindings::bascule::plugin::{request_context as host, types};

/// Whether the plugin is balancing an HTTP request or a TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// An HTTP request on an L7 listener.
    Http,
    /// A TCP connection on an L4 listener: HTTP accessors return nothing.
    Tcp,
}

/// The request or connection the current `select` call is about.
///
/// A handle with no data of its own: it is only valid inside
/// [`Balancer::select`](crate::Balancer::select).
#[derive(Debug)]
pub struct Request {
    _private: (),
}

// === impl Request ===

impl Request {
    #[doc(hidden)]
    pub fn current() -> Self {
        Request { _private: () }
    }

    /// HTTP or TCP.
    pub fn protocol(&self) -> Protocol {
        match host::request_protocol() {
            types::Protocol::Http => Protocol::Http,
            types::Protocol::Tcp => Protocol::Tcp,
        }
    }

    /// Name of the listener that accepted the request.
    pub fn listener(&self) -> String {
        host::listener()
    }

    /// The client's IP address, as text.
    pub fn client_ip(&self) -> String {
        host::client_ip()
    }

    /// The client's source port.
    pub fn client_port(&self) -> u16 {
        host::client_port()
    }

    /// The TLS server name, when the listener saw one.
    pub fn sni(&self) -> Option<String> {
        host::sni()
    }

    /// The HTTP method; empty for TCP.
    pub fn method(&self) -> String {
        host::method()
    }

    /// The request host without port.
    pub fn host(&self) -> Option<String> {
        host::host()
    }

    /// The path without the query string.
    pub fn path(&self) -> String {
        host::path()
    }

    /// The query string without `?`.
    pub fn query(&self) -> Option<String> {
        host::query()
    }

    /// First value of a header (name is case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        host::header(name)
    }

    /// Value of a cookie.
    pub fn cookie(&self, name: &str) -> Option<String> {
        host::cookie(name)
    }
}
