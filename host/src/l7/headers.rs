//! The `X-Forwarded-*` family the proxy adds for backends. Hop-by-hop
//! rules live in [`crate::header_rules`].

use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::tls::TlsSession;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// A client connection's address, with its `X-Forwarded-For` entry
/// rendered once per connection instead of once per request.
#[derive(Debug)]
pub struct ClientAddress {
    /// The peer address of the connection.
    pub socket: SocketAddr,
    /// What the TLS handshake negotiated, on a TLS listener.
    pub tls: Option<Arc<TlsSession>>,
    forwarded_for: HeaderValue,
}

impl ClientAddress {
    /// The address of a newly accepted client connection, and its TLS
    /// session when the listener terminated TLS.
    pub fn new(socket: SocketAddr, tls: Option<TlsSession>) -> Self {
        let forwarded_for = HeaderValue::try_from(socket.ip().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        ClientAddress {
            socket,
            tls: tls.map(Arc::new),
            forwarded_for,
        }
    }

    /// `https` on a TLS listener, else `http`: `X-Forwarded-Proto`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
}

/// Appends the client to `X-Forwarded-For` (keeping what earlier proxies
/// wrote, as NGINX's `$proxy_add_x_forwarded_for` does) and sets
/// `X-Forwarded-Proto` and, when known, `X-Forwarded-Host`.
pub fn add_forwarded(headers: &mut HeaderMap, client: &ClientAddress, host: Option<&str>) {
    let earlier = headers
        .get(&X_FORWARDED_FOR)
        .map(HeaderValue::as_bytes)
        .filter(|earlier| !earlier.trim_ascii().is_empty());
    let forwarded_for = match earlier {
        Some(earlier) => {
            HeaderValue::from_bytes(&[earlier, b", ", client.forwarded_for.as_bytes()].concat())
                .unwrap_or_else(|_| client.forwarded_for.clone())
        }
        None => client.forwarded_for.clone(),
    };
    headers.insert(X_FORWARDED_FOR, forwarded_for);
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(client.scheme()));
    match host.and_then(|h| HeaderValue::from_str(h).ok()) {
        Some(host) => headers.insert(X_FORWARDED_HOST, host),
        None => headers.remove(X_FORWARDED_HOST),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_appends_client() {
        let mut headers = HeaderMap::new();
        let first = ClientAddress::new("10.1.1.1:4000".parse().unwrap(), None);
        add_forwarded(&mut headers, &first, Some("a.test"));
        assert_eq!(headers["x-forwarded-for"], "10.1.1.1");
        let session = TlsSession {
            version: "1.3",
            alpn: None,
            sni: None,
        };
        let second = ClientAddress::new("[::1]:4000".parse().unwrap(), Some(session));
        add_forwarded(&mut headers, &second, None);
        assert_eq!(headers["x-forwarded-for"], "10.1.1.1, ::1");
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert!(headers.get("x-forwarded-host").is_none());
    }
}
