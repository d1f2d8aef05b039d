//! Header rewriting between client and backend: hop-by-hop removal and
//! the `X-Forwarded-*` family.

use std::net::IpAddr;

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
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok()),
    );
    for name in doomed {
        headers.remove(name);
    }
}

/// Appends the client to `X-Forwarded-For` (keeping what earlier proxies
/// wrote, as NGINX's `$proxy_add_x_forwarded_for` does) and sets
/// `X-Forwarded-Proto` and, when known, `X-Forwarded-Host`.
pub fn add_forwarded(
    headers: &mut HeaderMap,
    client: IpAddr,
    proto: &'static str,
    host: Option<&str>,
) {
    let client = client.to_string();
    let forwarded_for = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(earlier) if !earlier.trim().is_empty() => format!("{earlier}, {client}"),
        _ => client,
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
        headers.insert(X_FORWARDED_FOR, value);
    }
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
        add_forwarded(
            &mut headers,
            "10.1.1.1".parse().unwrap(),
            "http",
            Some("a.test"),
        );
        assert_eq!(headers["x-forwarded-for"], "10.1.1.1");
        add_forwarded(&mut headers, "::1".parse().unwrap(), "http", None);
        assert_eq!(headers["x-forwarded-for"], "10.1.1.1, ::1");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert!(headers.get("x-forwarded-host").is_none());
    }
}
