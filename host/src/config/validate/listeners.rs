//! `[[listeners]]`: names, addresses and modes, TCP-only, UDP-only and
//! HTTP-only keys (routes are in `routes.rs`).

use std::collections::HashSet;
use std::time::Duration;

use toml::Spanned;

use super::raw::{RawConfig, RawListener, RawPathPolicy};
use super::{Known, Validator};
use crate::config::*;
use crate::l4::ProxyProtocolVersion;
use crate::l7::{
    DEFAULT_FIRST_BYTE_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_KEEP_ALIVE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HEADER_SIZE, DEFAULT_MAX_HEADERS,
    DEFAULT_REQUEST_BODY_TIMEOUT, DEFAULT_SEND_TIMEOUT, DEFAULT_TUNNEL_IDLE_TIMEOUT,
};

// === impl Validator ===

impl Validator<'_> {
    pub(super) fn listeners(
        &mut self,
        raw: &[RawListener],
        known: &Known<'_>,
    ) -> Vec<ListenerConfig> {
        if raw.is_empty() {
            let location = FieldLocation::unspanned("listeners");
            self.errors.push(
                self.source
                    .error(&location, "at least one listener is required"),
            );
        }
        let mut names = HashSet::new();
        let mut addresses = HashSet::new();
        let mut listeners = Vec::new();
        for (i, listener) in raw.iter().enumerate() {
            let field = |name: &str| format!("listeners[{i}].{name}");
            let name = self.name(field("name"), &listener.name);
            if let Some(name) = &name
                && !names.insert(name.clone())
            {
                self.fail::<()>(
                    field("name"),
                    listener.name.span(),
                    format!("duplicate listener name `{name}`"),
                );
            }
            let address = self.socket_addr(field("address"), &listener.address);
            // TCP and UDP ports are apart: DNS serves both on port 53.
            let udp = declared_mode(listener) == Some("udp");
            if let Some(address) = address
                && address.port() != 0
                && !addresses.insert((address, udp))
            {
                self.fail::<()>(
                    field("address"),
                    listener.address.span(),
                    format!("another listener already binds {address}"),
                );
            }
            let mode = self.listener_mode(i, listener);
            let tls = match &listener.tls {
                None => Some(None),
                Some(raw) => self.tls(i, raw).map(|mut tls| {
                    // A TCP listener forwards whatever protocol the client
                    // speaks: it offers none unless told to.
                    if declares_tcp(listener) == Some(true) && raw.get_ref().alpn.is_none() {
                        tls.alpn.clear();
                    }
                    Some(tls)
                }),
            };
            if listener.routes.is_empty() {
                self.fail::<()>(
                    field("name"),
                    listener.name.span(),
                    "a listener needs at least one route",
                );
            }
            // From the raw key: a TCP listener with a bad setting still has
            // its routes checked as TCP routes; an unknown mode, as neither.
            let tcp = declares_tcp(listener);
            let routes: Vec<RouteConfig> = listener
                .routes
                .iter()
                .enumerate()
                .filter_map(|(j, route)| {
                    let field = format!("listeners[{i}].routes[{j}]");
                    self.route(field, j, route, known, tcp, listener.tls.is_some())
                })
                .collect();
            self.unique_route_names(i, listener);
            if let (Some(name), Some(address), Some(mode), Some(tls)) = (name, address, mode, tls) {
                listeners.push(ListenerConfig {
                    name,
                    address,
                    mode,
                    routes,
                    tls,
                });
            }
        }
        listeners
    }

    /// `mode` and, for TCP, the listener's TCP settings; HTTP listeners
    /// reject TCP-only keys.
    pub(super) fn listener_mode(&mut self, i: usize, raw: &RawListener) -> Option<ListenerMode> {
        let field = |name: &str| format!("listeners[{i}].{name}");
        if declared_mode(raw) == Some("udp") {
            return self.udp_listener(i, raw);
        }
        let tcp = match (declares_tcp(raw), &raw.mode) {
            (Some(tcp), _) => tcp,
            (None, mode) => {
                let (other, span) = mode.as_ref().map(|m| (m.get_ref().as_str(), m.span()))?;
                return self.fail(
                    field("mode"),
                    span,
                    format!("unknown mode `{other}`, expected `http`, `tcp` or `udp`"),
                );
            }
        };
        let mut ok = self.refuse_keys(
            i,
            &udp_only_keys(raw),
            "only `mode = \"udp\"` listeners take this key",
        );
        if !tcp {
            let tcp_only = [
                ("zero-copy", raw.zero_copy.as_ref().map(Spanned::span)),
                (
                    "accept-proxy-protocol-from",
                    raw.accept_proxy_protocol_from.as_ref().map(Spanned::span),
                ),
            ];
            for (key, span) in tcp_only {
                if let Some(span) = span {
                    ok = false;
                    self.fail::<()>(
                        field(key),
                        span,
                        "only `mode = \"tcp\"` listeners take this key",
                    );
                }
            }
            let paths = self.path_policy(i, raw.path.as_ref());
            let limits = self.connection_limits(i, raw);
            let header = match &raw.forwarded_header {
                None => Some(ForwardedHeader::XForwarded),
                Some(header) => self.keyword(
                    field("forwarded-header"),
                    header,
                    "forwarding header",
                    &[
                        ("x-forwarded", ForwardedHeader::XForwarded),
                        ("forwarded", ForwardedHeader::Forwarded),
                        ("none", ForwardedHeader::None),
                    ],
                ),
            };
            return match (ok, paths, limits, header) {
                (true, Some(paths), Some(limits), Some(header)) => {
                    let forwarding = Forwarding {
                        header,
                        via: raw.via.as_ref().is_some_and(|via| *via.get_ref()),
                        request_id: raw.request_id.as_ref().is_some_and(|id| *id.get_ref()),
                    };
                    Some(ListenerMode::Http(HttpListenerConfig {
                        paths,
                        limits,
                        forwarding,
                    }))
                }
                _ => None,
            };
        }
        if !self.refuse_keys(
            i,
            &http_only_keys(raw),
            "only HTTP listeners take this key (tcp listeners use `idle-timeout`)",
        ) {
            return None;
        }
        let idle_timeout = self.duration_or(
            field("idle-timeout"),
            raw.idle_timeout.as_ref(),
            DEFAULT_IDLE_TIMEOUT,
            Duration::from_millis(10)..=Duration::from_secs(7 * 24 * 3600),
        );
        let mut networks = Some(Vec::new());
        for (j, network) in raw
            .accept_proxy_protocol_from
            .iter()
            .flat_map(|list| list.get_ref())
            .enumerate()
        {
            let parsed = self.network(field(&format!("accept-proxy-protocol-from[{j}]")), network);
            match (&mut networks, parsed) {
                (Some(list), Some(net)) => list.push(net),
                _ => networks = None,
            }
        }
        if !ok {
            return None;
        }
        Some(ListenerMode::Tcp(TcpListenerConfig {
            idle_timeout: idle_timeout?,
            zero_copy: raw.zero_copy.as_ref().is_none_or(|z| *z.get_ref()),
            accept_proxy_protocol_from: networks?,
        }))
    }

    /// Fails each key of `keys` that is present, with `why`; whether none
    /// was.
    fn refuse_keys(
        &mut self,
        i: usize,
        keys: &[(&'static str, Option<std::ops::Range<usize>>)],
        why: &str,
    ) -> bool {
        let mut ok = true;
        for (key, span) in keys {
            if let Some(span) = span {
                ok = false;
                self.fail::<()>(format!("listeners[{i}].{key}"), span.clone(), why);
            }
        }
        ok
    }

    /// A `mode = "udp"` listener's flow settings; HTTP, TCP and TLS keys
    /// are refused.
    fn udp_listener(&mut self, i: usize, raw: &RawListener) -> Option<ListenerMode> {
        let field = |name: &str| format!("listeners[{i}].{name}");
        let mut refused = http_only_keys(raw);
        refused.push(("zero-copy", raw.zero_copy.as_ref().map(Spanned::span)));
        refused.push((
            "accept-proxy-protocol-from",
            raw.accept_proxy_protocol_from.as_ref().map(Spanned::span),
        ));
        refused.push(("tls", raw.tls.as_ref().map(Spanned::span)));
        let keys_ok = self.refuse_keys(
            i,
            &refused,
            "udp listeners take `idle-timeout`, `responses`, `requests`, `per-datagram`, `max-flows` and `proxy-header`",
        );
        let mut routes_ok = true;
        for (j, route) in raw.routes.iter().enumerate() {
            let route_keys = [
                ("sni", route.sni.as_ref().map(Spanned::span)),
                ("tls", route.tls.as_ref().map(Spanned::span)),
            ];
            for (key, span) in route_keys {
                if let Some(span) = span {
                    routes_ok = false;
                    self.fail::<()>(
                        format!("listeners[{i}].routes[{j}].{key}"),
                        span,
                        "udp routes send every flow to one `pool`: datagrams carry no TLS server name",
                    );
                }
            }
        }
        if raw.routes.len() > 1 {
            routes_ok = false;
            self.fail::<()>(
                field("routes"),
                raw.name.span(),
                "a udp listener has one route (its pool); datagrams carry nothing to route on",
            );
        }
        let idle_timeout = self.duration_or(
            field("idle-timeout"),
            raw.idle_timeout.as_ref(),
            crate::l4::udp::DEFAULT_IDLE_TIMEOUT,
            Duration::from_millis(10)..=Duration::from_secs(24 * 3600),
        );
        let count = |this: &mut Self, key: &str, raw: &Option<Spanned<i64>>| match raw {
            None => Some(None),
            Some(n) => this.bounded(field(key), n, 1, 1_000_000).map(Some),
        };
        let responses = count(self, "responses", &raw.responses);
        let requests = count(self, "requests", &raw.requests);
        let max_flows = match &raw.max_flows {
            None => Some(crate::l4::udp::DEFAULT_MAX_FLOWS),
            Some(n) => self
                .bounded(field("max-flows"), n, 1, 1_000_000)
                .map(|n| n as usize),
        };
        let proxy_header = match &raw.proxy_header {
            None => Some(ProxyHeaderOn::default()),
            Some(on) => self.keyword(
                field("proxy-header"),
                on,
                "datagrams",
                &[
                    ("every-datagram", ProxyHeaderOn::EveryDatagram),
                    ("first-datagram", ProxyHeaderOn::FirstDatagram),
                ],
            ),
        };
        let per_datagram = raw.per_datagram.as_ref().is_some_and(|p| *p.get_ref());
        let affinity = match &raw.affinity {
            None => Some(UdpAffinity::default()),
            Some(on) if per_datagram => self.fail(
                field("affinity"),
                on.span(),
                "`per-datagram = true` balances every datagram on its own: there is no flow \
                 to keep a client's backend in",
            ),
            Some(on) => self.keyword(
                field("affinity"),
                on,
                "affinity keys",
                &[
                    ("client-ip-port", UdpAffinity::ClientIpPort),
                    ("client-ip", UdpAffinity::ClientIp),
                ],
            ),
        };
        if !(keys_ok && routes_ok) {
            return None;
        }
        Some(ListenerMode::Udp(UdpListenerConfig {
            affinity: affinity?,
            proxy_header: proxy_header?,
            idle_timeout: idle_timeout?,
            responses: responses?,
            requests: requests?,
            per_datagram,
            max_flows: max_flows?,
        }))
    }

    /// An HTTP listener's timeouts and connection cap.
    fn connection_limits(&mut self, i: usize, raw: &RawListener) -> Option<ConnectionLimits> {
        let field = |name: &str| format!("listeners[{i}].{name}");
        let timeout = Duration::from_millis(10)..=Duration::from_secs(24 * 3600);
        let first_byte_timeout = self.duration_or(
            field("first-byte-timeout"),
            raw.first_byte_timeout.as_ref(),
            DEFAULT_FIRST_BYTE_TIMEOUT,
            timeout.clone(),
        );
        let keep_alive_timeout = self.duration_or(
            field("keep-alive-timeout"),
            raw.keep_alive_timeout.as_ref(),
            DEFAULT_KEEP_ALIVE_TIMEOUT,
            timeout.clone(),
        );
        let request_body_timeout = self.duration_or(
            field("request-body-timeout"),
            raw.request_body_timeout.as_ref(),
            DEFAULT_REQUEST_BODY_TIMEOUT,
            timeout.clone(),
        );
        let send_timeout = self.duration_or(
            field("send-timeout"),
            raw.send_timeout.as_ref(),
            DEFAULT_SEND_TIMEOUT,
            timeout,
        );
        let max_connections = match &raw.max_connections {
            None => Some(DEFAULT_MAX_CONNECTIONS),
            Some(n) => self.bounded(field("max-connections"), n, 1, 1_000_000),
        };
        let header_read_timeout = self.duration_or(
            field("header-read-timeout"),
            raw.header_read_timeout.as_ref(),
            DEFAULT_HEADER_READ_TIMEOUT,
            Duration::from_millis(10)..=Duration::from_secs(3600),
        );
        let max_header_size = match &raw.max_header_size {
            None => Some(DEFAULT_MAX_HEADER_SIZE),
            Some(n) => self
                .bounded(field("max-header-size"), n, 1024, 64 * 1024)
                .map(|n| n as usize),
        };
        let max_headers = match &raw.max_headers {
            None => Some(DEFAULT_MAX_HEADERS),
            Some(n) => self
                .bounded(field("max-headers"), n, 1, 100)
                .map(|n| n as usize),
        };
        let tunnel_idle_timeout = self.duration_or(
            field("idle-timeout"),
            raw.idle_timeout.as_ref(),
            DEFAULT_TUNNEL_IDLE_TIMEOUT,
            Duration::from_millis(10)..=Duration::from_secs(7 * 24 * 3600),
        );
        Some(ConnectionLimits {
            first_byte_timeout: first_byte_timeout?,
            keep_alive_timeout: keep_alive_timeout?,
            request_body_timeout: request_body_timeout?,
            send_timeout: send_timeout?,
            max_connections: max_connections?,
            tunnel_idle_timeout: tunnel_idle_timeout?,
            header_read_timeout: header_read_timeout?,
            max_header_size: max_header_size?,
            max_headers: max_headers?,
        })
    }

    /// `[listeners.path]`: every step on unless switched off.
    fn path_policy(
        &mut self,
        i: usize,
        raw: Option<&Spanned<RawPathPolicy>>,
    ) -> Option<PathPolicy> {
        let mut policy = PathPolicy::default();
        let Some(raw) = raw.map(Spanned::get_ref) else {
            return Some(policy);
        };
        policy.decode_unreserved = raw.decode_unreserved.unwrap_or(true);
        policy.remove_dot_segments = raw.remove_dot_segments.unwrap_or(true);
        policy.merge_slashes = raw.merge_slashes.unwrap_or(true);
        if let Some(slashes) = &raw.encoded_slashes {
            policy.encoded_slashes = self.keyword(
                format!("listeners[{i}].path.encoded-slashes"),
                slashes,
                "encoded-slash policy",
                &[
                    ("keep", EncodedSlashes::Keep),
                    ("reject", EncodedSlashes::Reject),
                ],
            )?;
        }
        Some(policy)
    }

    /// The PROXY header is written once per TCP connection (or on UDP
    /// datagrams, in v2 only: v1 is a text line for TCP); the HTTP proxy
    /// shares backend connections between clients, so it cannot send one.
    pub(super) fn proxy_protocol_only_for_tcp(
        &mut self,
        raw: &RawConfig,
        pools: &[PoolConfig],
        listeners: &[ListenerConfig],
    ) {
        for pool in pools.iter().filter(|p| p.proxy_protocol.is_some()) {
            let http_user = listeners
                .iter()
                .find(|l| matches!(l.mode, ListenerMode::Http(_)) && l.routes_to(&pool.name));
            let span = raw
                .pools
                .get(&pool.name)
                .and_then(|p| p.proxy_protocol.as_ref())
                .map(Spanned::span);
            if let (Some(listener), Some(span)) = (http_user, span.clone()) {
                self.fail::<()>(
                    format!("pools.{}.proxy-protocol", pool.name),
                    span,
                    format!(
                        "PROXY protocol is sent on TCP connections only, but HTTP listener `{}` routes to this pool",
                        listener.name
                    ),
                );
                continue;
            }
            let udp_user = listeners
                .iter()
                .find(|l| matches!(l.mode, ListenerMode::Udp(_)) && l.routes_to(&pool.name));
            if let (Some(listener), Some(span), Some(ProxyProtocolVersion::V1)) =
                (udp_user, span, pool.proxy_protocol)
            {
                self.fail::<()>(
                    format!("pools.{}.proxy-protocol", pool.name),
                    span,
                    format!(
                        "UDP listener `{}` routes to this pool: datagrams carry PROXY protocol v2 only",
                        listener.name
                    ),
                );
            }
        }
    }

    /// Checks that `raw` names a declared pool or filter (`kind`).
    pub(super) fn known(
        &mut self,
        field: String,
        raw: &Spanned<String>,
        kind: &str,
        declared: &HashSet<&str>,
    ) -> Option<()> {
        if declared.contains(raw.get_ref().as_str()) {
            return Some(());
        }
        let mut names: Vec<&str> = declared.iter().copied().collect();
        names.sort_unstable();
        let names = if names.is_empty() {
            "none declared".to_owned()
        } else {
            names.join(", ")
        };
        self.fail(
            field,
            raw.span(),
            format!("no {kind} named `{}` ({kind}s: {names})", raw.get_ref()),
        )
    }
}

/// `mode` as written: `Some(true)` for `tcp`, `Some(false)` for `http` or
/// no key, `None` for anything else.
/// Whether the listener's routes are L4 routes (one pool each, no HTTP
/// keys): `mode = "tcp"` or `"udp"`; `None` for an unknown mode.
fn declares_tcp(raw: &RawListener) -> Option<bool> {
    match declared_mode(raw) {
        None | Some("http") => Some(false),
        Some("tcp" | "udp") => Some(true),
        Some(_) => None,
    }
}

/// The `mode` key as written.
fn declared_mode(raw: &RawListener) -> Option<&str> {
    raw.mode.as_ref().map(|m| m.get_ref().as_str())
}

/// The keys only `mode = "udp"` listeners take, with where they are.
fn udp_only_keys(raw: &RawListener) -> Vec<(&'static str, Option<std::ops::Range<usize>>)> {
    vec![
        ("responses", raw.responses.as_ref().map(Spanned::span)),
        ("requests", raw.requests.as_ref().map(Spanned::span)),
        ("per-datagram", raw.per_datagram.as_ref().map(Spanned::span)),
        ("max-flows", raw.max_flows.as_ref().map(Spanned::span)),
        ("proxy-header", raw.proxy_header.as_ref().map(Spanned::span)),
        ("affinity", raw.affinity.as_ref().map(Spanned::span)),
    ]
}

/// The keys only HTTP listeners take, with where they are.
fn http_only_keys(raw: &RawListener) -> Vec<(&'static str, Option<std::ops::Range<usize>>)> {
    vec![
        ("path", raw.path.as_ref().map(Spanned::span)),
        (
            "first-byte-timeout",
            raw.first_byte_timeout.as_ref().map(Spanned::span),
        ),
        (
            "keep-alive-timeout",
            raw.keep_alive_timeout.as_ref().map(Spanned::span),
        ),
        (
            "request-body-timeout",
            raw.request_body_timeout.as_ref().map(Spanned::span),
        ),
        ("send-timeout", raw.send_timeout.as_ref().map(Spanned::span)),
        (
            "max-connections",
            raw.max_connections.as_ref().map(Spanned::span),
        ),
        (
            "forwarded-header",
            raw.forwarded_header.as_ref().map(Spanned::span),
        ),
        ("via", raw.via.as_ref().map(Spanned::span)),
        (
            "max-header-size",
            raw.max_header_size.as_ref().map(Spanned::span),
        ),
        (
            "header-read-timeout",
            raw.header_read_timeout.as_ref().map(Spanned::span),
        ),
        ("max-headers", raw.max_headers.as_ref().map(Spanned::span)),
        ("request-id", raw.request_id.as_ref().map(Spanned::span)),
    ]
}
