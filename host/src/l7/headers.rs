//! What the proxy tells backends about the client: the `X-Forwarded-*`
//! family or RFC 7239 `Forwarded` (a listener's `forwarded-header`), an
//! optional `Via`, and a request id. Hop-by-hop rules live in
//! [`crate::header_rules`].

use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::tls::TlsSession;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Longest client-sent request id kept.
const MAX_REQUEST_ID: usize = 200;

/// Which headers tell backends about the client (a listener's
/// `forwarded-header`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For` (appended), `-Proto`, `-Host` (the default).
    #[default]
    XForwarded,
    /// RFC 7239 `Forwarded: for=...;proto=...;host=...` (appended).
    Forwarded,
    /// Neither: what the client sent passes through untouched.
    None,
}

/// A listener's forwarding headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Forwarding {
    /// `X-Forwarded-*`, `Forwarded` or none.
    pub header: ForwardedHeader,
    /// Append `Via: 1.1 bascule` (or `2 bascule`).
    pub via: bool,
    /// Keep a valid `X-Request-Id` from the client, else set a new one.
    pub request_id: bool,
}

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

/// Tells the backend about the client as `forwarding` says: `host` is
/// the request's authority as the client sent it (with its port), and
/// `http2` whether the client spoke HTTP/2 (for `Via`).
pub fn add_forwarded(
    headers: &mut HeaderMap,
    client: &ClientAddress,
    host: Option<&str>,
    http2: bool,
    forwarding: &Forwarding,
) {
    match forwarding.header {
        ForwardedHeader::XForwarded => add_x_forwarded(headers, client, host),
        ForwardedHeader::Forwarded => add_rfc7239(headers, client, host),
        ForwardedHeader::None => {}
    }
    if forwarding.via {
        let via = HeaderValue::from_static(if http2 { "2 bascule" } else { "1.1 bascule" });
        headers.append(http::header::VIA, via);
    }
    if forwarding.request_id {
        let valid = headers.get(&X_REQUEST_ID).is_some_and(|id| {
            !id.is_empty()
                && id.len() <= MAX_REQUEST_ID
                && id
                    .as_bytes()
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
        });
        if !valid {
            headers.insert(X_REQUEST_ID, new_request_id());
        }
    }
}

/// Appends the client to `X-Forwarded-For` (keeping what earlier proxies
/// wrote, as NGINX's `$proxy_add_x_forwarded_for` does) and sets
/// `X-Forwarded-Proto` and, when known, `X-Forwarded-Host` (with the port
/// the client sent, as NGINX's `$http_host`).
fn add_x_forwarded(headers: &mut HeaderMap, client: &ClientAddress, host: Option<&str>) {
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

/// Appends this hop to `Forwarded` (RFC 7239 §4): `for` (an IPv6 address
/// quoted and bracketed), `proto` and `host` (quoted when it has a port).
fn add_rfc7239(headers: &mut HeaderMap, client: &ClientAddress, host: Option<&str>) {
    let ip = client.socket.ip().to_canonical();
    let mut element = match ip {
        std::net::IpAddr::V4(ip) => format!("for={ip}"),
        std::net::IpAddr::V6(ip) => format!("for=\"[{ip}]\""),
    };
    element.push_str(";proto=");
    element.push_str(client.scheme());
    if let Some(host) = host {
        if host.contains(':') {
            element.push_str(&format!(";host=\"{host}\""));
        } else {
            element.push_str(";host=");
            element.push_str(host);
        }
    }
    let value = match headers
        .get(http::header::FORWARDED)
        .map(HeaderValue::as_bytes)
    {
        Some(earlier) if !earlier.trim_ascii().is_empty() => {
            [earlier, b", ", element.as_bytes()].concat()
        }
        _ => element.into_bytes(),
    };
    if let Ok(value) = HeaderValue::from_bytes(&value) {
        headers.insert(http::header::FORWARDED, value);
    }
}

/// A request id unique in this process and across processes: 32 hex
/// digits of [`unique_u128`].
fn new_request_id() -> HeaderValue {
    let id = unique_u128();
    HeaderValue::try_from(format!("{id:032x}")).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// A value no other call in this process or another returns: the XXH3-128
/// of the process id, a counter and the time. For ids and nonces, not
/// secrets.
pub(super) fn unique_u128() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut seed = Vec::with_capacity(32);
    seed.extend_from_slice(&std::process::id().to_le_bytes());
    seed.extend_from_slice(&n.to_le_bytes());
    seed.extend_from_slice(&nanos.to_le_bytes());
    xxhash_rust::xxh3::xxh3_128(&seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const X: Forwarding = Forwarding {
        header: ForwardedHeader::XForwarded,
        via: false,
        request_id: false,
    };

    #[test]
    fn forwarded_for_appends_client() {
        let mut headers = HeaderMap::new();
        let first = ClientAddress::new("10.1.1.1:4000".parse().unwrap(), None);
        add_forwarded(&mut headers, &first, Some("a.test:8080"), false, &X);
        assert_eq!(headers["x-forwarded-host"], "a.test:8080");
        assert_eq!(headers["x-forwarded-for"], "10.1.1.1");
        let session = TlsSession {
            version: "1.3",
            alpn: None,
            sni: None,
        };
        let second = ClientAddress::new("[::1]:4000".parse().unwrap(), Some(session));
        add_forwarded(&mut headers, &second, None, false, &X);
        assert_eq!(headers["x-forwarded-for"], "10.1.1.1, ::1");
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert!(headers.get("x-forwarded-host").is_none());
    }

    #[test]
    fn rfc_7239_elements_are_appended_via_and_ids_set() {
        let forwarded = Forwarding {
            header: ForwardedHeader::Forwarded,
            via: true,
            request_id: true,
        };
        let mut headers = HeaderMap::new();
        headers.insert("forwarded", HeaderValue::from_static("for=192.0.2.43"));
        let v4 = ClientAddress::new("10.1.1.1:4000".parse().unwrap(), None);
        add_forwarded(&mut headers, &v4, Some("a.test"), false, &forwarded);
        assert_eq!(
            headers["forwarded"],
            "for=192.0.2.43, for=10.1.1.1;proto=http;host=a.test"
        );
        let v6 = ClientAddress::new("[2001:db8::1]:4000".parse().unwrap(), None);
        let mut headers = HeaderMap::new();
        add_forwarded(&mut headers, &v6, Some("a.test:8443"), true, &forwarded);
        assert_eq!(
            headers["forwarded"],
            "for=\"[2001:db8::1]\";proto=http;host=\"a.test:8443\""
        );
        assert!(headers.get("x-forwarded-for").is_none());
        assert_eq!(headers["via"], "2 bascule");
        let id = headers["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(id.len(), 32);
        // A valid id from the client is kept; a bad one replaced.
        add_forwarded(&mut headers, &v6, None, true, &forwarded);
        assert_eq!(headers["x-request-id"], id.as_str());
        headers.insert("x-request-id", HeaderValue::from_static("bad id!"));
        add_forwarded(&mut headers, &v6, None, true, &forwarded);
        assert_ne!(headers["x-request-id"], "bad id!");
    }
}
