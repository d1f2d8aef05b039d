//! The header rules every module shares: which headers belong to one
//! connection rather than the message (hop-by-hop, RFC 9110 §7.6.1), and
//! which only the proxy may set. `l7` applies them to what it forwards;
//! `plugin` refuses filter edits that break them. Neither owns them.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one connection, not the message; a proxy must
/// not forward them as they are.
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

/// What a request's hop-by-hop headers asked of this hop, read before
/// they are removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HopRequest {
    /// The protocols of an `Upgrade` the client asked for (with
    /// `Connection: upgrade`), lowercase, in its order of preference.
    pub upgrade: Vec<String>,
    /// Whether the client accepts trailers (`TE: trailers`): a message
    /// property gRPC needs end to end, so it is forwarded.
    pub accepts_trailers: bool,
}

/// Whether `name` frames the message or belongs to one connection, so that
/// only the proxy may set it: plugins may read these headers, not change
/// them.
pub fn is_proxy_owned(name: &HeaderName) -> bool {
    name == header::CONTENT_LENGTH || HOP_BY_HOP.contains(name)
}

/// Removes hop-by-hop headers, including those the `Connection` header
/// names, and returns what they asked of this hop.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) -> HopRequest {
    // One pass over the names finds what to remove; most messages carry
    // none or only `Connection`, so this beats eight hashed removals.
    let mut doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| HOP_BY_HOP.contains(name))
        .cloned()
        .collect();
    let mut hop = HopRequest::default();
    if doomed.is_empty() {
        return hop;
    }
    let mut connection_upgrade = false;
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
            .inspect(|name| connection_upgrade |= name.eq_ignore_ascii_case("upgrade"))
            .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
            // `Connection: host, content-length` must not strip what the
            // request was routed on or is framed by.
            .filter(|name| name != header::HOST && name != header::CONTENT_LENGTH),
    );
    if connection_upgrade {
        hop.upgrade = tokens(headers, &header::UPGRADE);
    }
    hop.accepts_trailers = tokens(headers, &header::TE)
        .iter()
        .any(|token| token.split(';').next().map(str::trim) == Some("trailers"));
    for name in doomed {
        headers.remove(name);
    }
    hop
}

/// Re-adds `TE: trailers` for the next hop when the client accepts
/// trailers: the one `TE` value that is about the message (RFC 9110
/// §10.1.4), announced in `Connection` as a hop-by-hop header must be.
pub fn forward_trailers(headers: &mut HeaderMap, hop: &HopRequest) {
    if hop.accepts_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("te"));
    }
}

/// The comma-separated tokens of every `name` field, trimmed, lowercase.
fn tokens(headers: &HeaderMap, name: &HeaderName) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|token| token.trim().to_ascii_lowercase())
        .filter(|token| !token.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(n, v)| (HeaderName::from_static(n), HeaderValue::from_static(v)))
            .collect()
    }

    #[test]
    fn strips_standard_and_connection_named_headers() {
        let mut map = headers(&[
            ("connection", "close, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("upgrade", "websocket"),
            ("x-kept", "1"),
        ]);
        let hop = remove_hop_by_hop(&mut map);
        let left: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["x-kept"]);
        assert!(hop.upgrade.is_empty(), "no `Connection: upgrade`: {hop:?}");
    }

    #[test]
    fn connection_cannot_name_the_host_or_the_length() {
        let mut map = headers(&[
            ("connection", "host, content-length, x-gone"),
            ("host", "a.example"),
            ("content-length", "3"),
            ("x-gone", "1"),
        ]);
        remove_hop_by_hop(&mut map);
        let mut left: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-length", "host"]);
    }

    #[test]
    fn reads_upgrade_and_trailers_before_removing_them() {
        let mut map = headers(&[
            ("connection", "Upgrade, TE"),
            ("upgrade", "WebSocket, foo/2"),
            ("te", "trailers;q=1, gzip"),
        ]);
        let hop = remove_hop_by_hop(&mut map);
        assert_eq!(hop.upgrade, ["websocket", "foo/2"]);
        assert!(hop.accepts_trailers);
        assert!(map.is_empty());
        forward_trailers(&mut map, &hop);
        assert_eq!(map["te"], "trailers");
        assert_eq!(map["connection"], "te");
        let mut plain = headers(&[("te", "gzip")]);
        assert!(!remove_hop_by_hop(&mut plain).accepts_trailers);
    }

    #[test]
    fn proxy_owns_framing_and_hop_by_hop_headers() {
        assert!(is_proxy_owned(&header::CONTENT_LENGTH));
        assert!(is_proxy_owned(&header::UPGRADE));
        assert!(!is_proxy_owned(&header::COOKIE));
    }
}
