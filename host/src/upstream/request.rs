//! What balancers and filters may know about the request or connection
//! being placed: a read-only view.
//!
//! The view shares the HTTP head (an `Arc`) instead of owning it: a
//! sandboxed balancer can keep it for the length of one call without a
//! copy, and nothing a balancer does can change or lose it. Only `l7`
//! turns the head back into the request it forwards.

use std::net::SocketAddr;
use std::sync::Arc;

/// HTTP request or TCP connection. (The contract also has `udp`, which
/// no listener produces yet.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// An HTTP request on an L7 listener.
    Http,
    /// A TCP connection on an L4 listener.
    Tcp,
    /// A UDP flow (or, with `per-datagram`, one datagram) on an L4
    /// listener.
    Udp,
}

/// The request or connection being balanced or filtered.
#[derive(Debug, Clone)]
pub struct RequestView {
    /// HTTP or TCP.
    pub protocol: Protocol,
    /// Name of the accepting listener.
    pub listener: Arc<str>,
    /// The client's address.
    pub client: SocketAddr,
    /// TLS server name, when the listener saw a ClientHello.
    pub sni: Option<Arc<str>>,
    /// What the client's TLS handshake negotiated, when the listener
    /// terminated TLS.
    pub tls: Option<Arc<crate::tls::TlsSession>>,
    /// The HTTP request head, shared; `None` for TCP. A header filter
    /// edits it through `Arc::make_mut`, which copies only if someone else
    /// still holds it.
    pub http: Option<Arc<http::request::Parts>>,
}

// === impl RequestView ===

impl RequestView {
    /// The request's host without port, lowercased: the URI authority
    /// (HTTP/2, absolute-form) or else the `Host` header.
    pub fn host(&self) -> Option<String> {
        request_host(self.http.as_deref()?)
    }

    /// The value of the cookie `name` the client sent, when present.
    pub fn cookie(&self, name: &str) -> Option<String> {
        cookie_value(&self.http.as_deref()?.headers, name).map(str::to_owned)
    }
}

/// The value of the cookie `name` in `headers`' `Cookie` fields, when
/// present.
pub fn cookie_value<'h>(headers: &'h http::HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A request head's host without port, lowercased: the URI authority
/// (HTTP/2, absolute-form) or else the `Host` header.
fn request_host(head: &http::request::Parts) -> Option<String> {
    let raw = match head.uri.authority() {
        Some(authority) => authority.host(),
        None => head.headers.get(http::header::HOST)?.to_str().ok()?,
    };
    Some(strip_port(raw).to_ascii_lowercase())
}

/// `example.com:80` → `example.com`, `[::1]:80` → `[::1]`.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .find(']')
            .and_then(|end| host.get(..=end))
            .unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(uri: &str, host: Option<&str>) -> RequestView {
        let mut builder = http::Request::builder().uri(uri);
        if let Some(host) = host {
            builder = builder.header("host", host);
        }
        let (parts, ()) = builder.body(()).unwrap().into_parts();
        RequestView {
            protocol: Protocol::Http,
            listener: "l".into(),
            client: "127.0.0.1:1".parse().unwrap(),
            sni: None,
            tls: None,
            http: Some(Arc::new(parts)),
        }
    }

    #[test]
    fn host_prefers_authority_and_drops_port() {
        assert_eq!(
            info("/x", Some("API.example.com:8080")).host().as_deref(),
            Some("api.example.com")
        );
        assert_eq!(
            info("http://a.test/x", Some("b.test")).host().as_deref(),
            Some("a.test")
        );
        assert_eq!(
            info("/x", Some("[::1]:80")).host().as_deref(),
            Some("[::1]")
        );
        assert_eq!(info("/x", None).host(), None);
    }
}
