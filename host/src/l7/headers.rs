//! Header rewriting between client and backend: hop-by-hop removal and
//! the `X-Forwarded-*` family.

use std::net::SocketAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1);
/// a proxy must not forward them.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Whether `name` frames the message or belongs to one connection, so that
/// only the proxy may set it: plugins may read these headers, not change
/// them.
pub fn is_proxy_owned(name: &HeaderName) -> bool {
    name == header::CONTENT_LENGTH || HOP_BY_HOP.contains(name)
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names finds what to remove; most messages carry
    // none or only `Connection`, so this beats eight hashed removals.
    let mut doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| HOP_BY_HOP.contains(name))
        .cloned()
        .collect();
    if doomed.is_empty() {
        return;
    }
    doomed.extend(
        headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            // The usual values name no header of their own (and
            // `keep-alive` is already listed): skip parsing them.
            .filter(|name| {
                !name.eq_ignore_ascii_case("keep-alive") && !name.eq_ignore_ascii_case("close")
            })
            .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok()),
    );
    for name in doomed {
        headers.remove(name);
    }
}

/// A client connection's address, with its `X-Forwarded-For` entry
/// rendered once per connection instead of once per request.
#[derive(Debug)]
pub struct ClientAddress {
    /// The peer address of the connection.
    pub socket: SocketAddr,
    forwarded_for: HeaderValue,
}

impl ClientAddress {
    /// The address of a newly accepted client connection.
    pub fn new(socket: SocketAddr) -> Self {
        let forwarded_for = HeaderValue::try_from(socket.ip().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        ClientAddress {
            socket,
            forwarded_for,
        }
    }
}

/// Appends the client to `X-Forwarded-For` (keeping what earlier proxies
/// wrote, as NGINX's `$proxy_add_x_forwarded_for` does) and sets
/// `X-Forwarded-Proto` and, when known, `X-Forwarded-Host`.
pub fn add_forwarded(
    headers: &mut HeaderMap,
    client: &ClientAddress,
    proto: &'static str,
    host: Option<&str>,
) {
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
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    match host.and_then(|h| HeaderValue::from_str(h).ok()) {
        Some(host) => headers.insert(X_FORWARDED_HOST, host),
        None => headers.remove(X_FORWARDED_HOST),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_standard_and_connection_named_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("connection", HeaderValue::from_static("close, x-secret"));
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("upgrade", HeaderValue::from_static("websocket"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut headers);
        let left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["x-kept"]);
    }

    #[test]
    fn forwarded_for_appends_client() {
        let mut headers = HeaderMap::new();
        let first = ClientAddress::new("10.1.1.1:4000".parse().unwrap());
        add_forwarded(&mut headers, &first, "http", Some("a.test"));
        assert_eq!(headers["x-forwarded-for"], "10.1.1.1");
        let second = ClientAddress::new("[::1]:4000".parse().unwrap());
        add_forwarded(&mut headers, &second, "http", None);
        assert_eq!(headers["x-forwarded-for"], "10.1.1.1, ::1");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert!(headers.get("x-forwarded-host").is_none());
    }
}
