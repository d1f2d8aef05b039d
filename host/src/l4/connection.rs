//! One TCP connection from accept to close.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::client_hello::{ClientHelloReader, HelloProgress};
use super::connection_log::ConnectionLog;
use super::forward::ByteMeter as _;
use super::forward::{self, BridgeEnd, BridgeOptions};
use super::listener::TcpListenerPlan;
use super::metrics::{CloseReason, TcpMetrics};
use super::proxy_protocol::ProxyProtocolVersion;
use super::proxy_protocol::{self, Origin, ProxyHeader, TLV_AUTHORITY, Tlv};
use crate::tls::TlsSession;
use crate::upstream::{
    ActiveRequest, Backend, BackendPool, Choice, ConnectError, Protocol, RequestView, TcpConnector,
    TrafficEvent, connect_within,
};

/// How long a client may take to send what must be read before a backend
/// is chosen (PROXY header, ClientHello); a real client sends both in its
/// first packet. A PROXY header still missing then closes the connection;
/// a ClientHello still missing routes it as one without SNI (HAProxy's
/// `inspect-delay`), so server-speaks-first protocols reach the default.
const PREAMBLE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a connection needs from its listener.
pub struct Context {
    /// The listener's name.
    pub listener: Arc<str>,
    /// The listener's metrics.
    pub metrics: Arc<TcpMetrics>,
}

/// What was learnt before choosing a backend.
struct Preamble {
    /// The original connection, for the PROXY header sent to the backend,
    /// when a trusted PROXY header said so; `None`: this connection's own
    /// endpoints (looked up only if a header is sent).
    origin: Option<Origin>,
    /// The client as balancers see it: the PROXY header's source when a
    /// trusted balancer sent one.
    client: SocketAddr,
    /// The ClientHello's server name, lowercase.
    sni: Option<String>,
    /// Bytes read from the client that belong to the backend.
    payload: Vec<u8>,
}

/// Serves one accepted connection with the listener's routes as they were
/// at accept time (`None`: a reload just removed the listener), and records
/// how it ended.
pub async fn serve_connection(
    mut client: TcpStream,
    peer: SocketAddr,
    listener: Option<Arc<TcpListenerPlan>>,
    context: Context,
) {
    let started = Instant::now();
    context.metrics.opened();
    let _ = client.set_nodelay(true);
    let mut log = ConnectionLog::new(
        Arc::clone(&context.listener),
        Arc::clone(&context.metrics),
        listener.as_ref().and_then(|l| l.access_log.clone()),
        canonical(peer),
    );
    let reason = match listener {
        Some(listener) => serve(&mut client, peer, listener, &context, &mut log).await,
        None => CloseReason::NoRoute,
    };
    tracing::debug!(%peer, ?reason, "tcp connection closed");
    let lasted = started.elapsed();
    context.metrics.closed(reason, lasted.as_secs_f64());
    log.finish(reason, lasted);
}

async fn serve(
    client: &mut TcpStream,
    peer: SocketAddr,
    listener: Arc<TcpListenerPlan>,
    context: &Context,
    log: &mut ConnectionLog,
) -> CloseReason {
    let peer = canonical(peer);
    let local = client.local_addr().map_or(peer, canonical);
    let deadline = Instant::now() + PREAMBLE_TIMEOUT;
    let mut preamble = match read_preamble(client, peer, &listener, context, deadline).await {
        Ok(preamble) => preamble,
        Err(reason) => return reason,
    };
    let Some(route) = listener.route(preamble.sni.as_deref()) else {
        return CloseReason::NoRoute;
    };
    let pool = Arc::clone(&route.pool);
    log.client = preamble.client;
    if log.is_logged() {
        log.pool = Some(Arc::clone(pool.name()));
    }
    let terminate = route.terminate_tls.then(|| listener.tls.clone()).flatten();
    let options = BridgeOptions {
        idle_timeout: listener.idle_timeout,
        zero_copy: listener.zero_copy,
        reject_proxy_header: listener.accepts_proxy_protocol()
            && !listener.trusts(peer.ip())
            && !listener.routes_by_sni()
            && terminate.is_none(),
    };
    // A connection may outlive many reloads: it keeps its backend, not the
    // routes and pools (with their plugin instances) it was chosen from.
    drop(listener);
    // Terminated: the ClientHello read to route is the handshake's start.
    let handshake = match terminate {
        None => None,
        Some(tls) => {
            let hello = Bytes::from(std::mem::take(&mut preamble.payload));
            let io = crate::rewind::Rewind::new(hello, &mut *client);
            let remaining = deadline.saturating_duration_since(Instant::now());
            match tls
                .handshake(io, Some(peer), remaining, &context.listener)
                .await
            {
                Some(handshake) => Some(handshake),
                None => return CloseReason::TlsHandshake,
            }
        }
    };
    let (tls, session) = handshake.unzip();
    // The setup's futures (choice, connect) are several KiB; boxed, they
    // are freed once the bridge starts, and an idle connection holds only
    // the bridge's state.
    let bridged = match Box::pin(set_up(preamble, session, pool, local, context, log)).await {
        Ok(bridged) => bridged,
        Err(reason) => return reason,
    };
    let drained = crate::upstream::drained(bridged.leaving, bridged.drain_timeout);
    let meter = &*log;
    let mut upstream = bridged.upstream;
    let idle = options.idle_timeout;
    let end = match tls {
        Some(tls) => forward::bridge_io(tls, &mut upstream, idle, meter, drained).await,
        None => forward::bridge(client, &upstream, options, meter, drained).await,
    };
    close_reason(end)
}

/// How the bridge's end is counted.
fn close_reason(end: BridgeEnd) -> CloseReason {
    match end {
        BridgeEnd::Closed => CloseReason::Done,
        BridgeEnd::Idle => CloseReason::Idle,
        BridgeEnd::Stopped => CloseReason::Drained,
        BridgeEnd::ProxyHeader => CloseReason::UntrustedProxyHeader,
        BridgeEnd::Failed(error) => {
            tracing::debug!(%error, "tcp connection failed");
            CloseReason::Error
        }
    }
}

/// A connection ready to bridge: its backend connected and sent the
/// opening bytes.
struct Bridged {
    upstream: TcpStream,
    /// Counts the connection as active on its backend until dropped.
    _active: ActiveRequest,
    /// Fires when the backend starts draining.
    leaving: watch::Receiver<bool>,
    drain_timeout: Duration,
}

/// Everything between the route and the bridge: the balancer's choice
/// (seeing the TLS session when the route terminates), the connect and the
/// opening bytes (PROXY header, early payload). `local` is the listener's
/// address the client reached, for the PROXY header.
async fn set_up(
    preamble: Preamble,
    session: Option<TlsSession>,
    pool: Arc<BackendPool>,
    local: SocketAddr,
    context: &Context,
    log: &mut ConnectionLog,
) -> Result<Bridged, CloseReason> {
    let sni = session
        .as_ref()
        .and_then(|session| session.sni.as_deref())
        .or(preamble.sni.as_deref())
        .map(Arc::from);
    let request = RequestView {
        protocol: Protocol::Tcp,
        listener: Arc::clone(&context.listener),
        client: preamble.client,
        sni,
        tls: session.map(Arc::new),
        http: None,
    };
    let choice = match pool.choose(&request) {
        Ok(choice) => choice,
        Err(error) => {
            tracing::warn!(error = %crate::error_chain(&error), "no backend for connection");
            return Err(CloseReason::NoBackend);
        }
    };
    let Some((upstream, backend)) = connect(&pool, &choice).await else {
        return Err(CloseReason::ConnectFailed);
    };
    if log.is_logged() {
        log.backend = Some(backend.id.clone());
    }
    log.backend_bytes = backend.stats.bytes().cloned();
    let active = backend.stats.start();
    let leaving = backend.stats.leaving();
    let settings = *pool.settings();
    drop((choice, pool));
    let early_payload = preamble.payload.len() as u64;
    let peer = preamble.client;
    let opening = opening_bytes(settings.proxy_protocol, preamble, || Origin::Known {
        source: peer,
        destination: local,
    });
    if let Err(error) = forward::write_all(&upstream, &opening).await {
        tracing::debug!(%error, "backend closed before the first bytes");
        return Err(CloseReason::Error);
    }
    log.client_to_backend(early_payload);
    Ok(Bridged {
        upstream,
        _active: active,
        leaving,
        drain_timeout: settings.drain_timeout,
    })
}

/// Reads the PROXY header (trusted sources) and the ClientHello (SNI
/// routing), whichever the listener needs; reads nothing otherwise.
async fn read_preamble(
    client: &TcpStream,
    peer: SocketAddr,
    listener: &TcpListenerPlan,
    context: &Context,
    deadline: Instant,
) -> Result<Preamble, CloseReason> {
    let mut preamble = Preamble {
        origin: None,
        client: peer,
        sni: None,
        payload: Vec::new(),
    };
    let mut buffer = Vec::new();
    let mut header_length = 0;
    let trusted = listener.trusts(peer.ip());
    if trusted {
        let (header, length) = loop {
            match proxy_protocol::parse(&buffer) {
                Ok(Some(parsed)) => break parsed,
                Ok(None) => {
                    let read = tokio::time::timeout_at(deadline, read_more(client, &mut buffer));
                    match read.await {
                        Err(_) => return Err(CloseReason::PreambleTimeout),
                        Ok(read) if read? == 0 => return Err(CloseReason::BadProxyHeader),
                        Ok(_) => {}
                    }
                }
                Err(error) => {
                    metrics::counter!(
                        crate::metrics::PROXY_PROTOCOL_ERRORS,
                        "listener" => context.listener.to_string(),
                        "kind" => error.kind(),
                    )
                    .increment(1);
                    tracing::info!(%peer, %error, "bad PROXY header from a trusted source");
                    return Err(CloseReason::BadProxyHeader);
                }
            }
        };
        header_length = length;
        match header.origin {
            Origin::Known { source, .. } => {
                preamble.origin = Some(header.origin);
                preamble.client = canonical(source);
            }
            Origin::Unknown => preamble.origin = Some(Origin::Unknown),
            // A downstream balancer's own connection: the real endpoints.
            Origin::Local => {}
        }
    }
    if listener.routes_by_sni() {
        let mut hello = ClientHelloReader::new();
        loop {
            let received = buffer.get(header_length..).unwrap_or_default();
            if !trusted
                && listener.accepts_proxy_protocol()
                && proxy_protocol::signature(received) == proxy_protocol::Signature::Present
            {
                return Err(CloseReason::UntrustedProxyHeader);
            }
            match hello.advance(received) {
                HelloProgress::Complete(name) => {
                    preamble.sni = name.map(|n| n.to_ascii_lowercase());
                    break;
                }
                HelloProgress::NotTls => break,
                HelloProgress::NeedMore => {
                    let read = tokio::time::timeout_at(deadline, read_more(client, &mut buffer));
                    match read.await {
                        Ok(read) if read? > 0 => {}
                        _ => break,
                    }
                }
            }
        }
    }
    buffer.drain(..header_length.min(buffer.len()));
    preamble.payload = buffer;
    Ok(preamble)
}

/// Appends what the client sent next; 0 at end of stream.
async fn read_more(client: &TcpStream, buffer: &mut Vec<u8>) -> Result<usize, CloseReason> {
    buffer.reserve(4096);
    loop {
        client.readable().await.map_err(|_| CloseReason::Error)?;
        match client.try_read_buf(buffer) {
            Ok(read) => return Ok(read),
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return Err(CloseReason::Error),
        }
    }
}

/// Tries the candidates in order within the pool's connect timeout each.
async fn connect<'c>(pool: &BackendPool, choice: &'c Choice) -> Option<(TcpStream, &'c Backend)> {
    for backend in choice.backends() {
        let started = Instant::now();
        let connected = match backend.endpoints.pick() {
            Some(endpoint) => {
                connect_within(&TcpConnector, endpoint, pool.settings().connect_timeout).await
            }
            None => Err(ConnectError::Unresolved {
                backend: backend.address.clone(),
            }),
        };
        let error = match connected {
            Ok(stream) => {
                // For a TCP backend, connecting is the exchange whose
                // latency balancers compare.
                backend.stats.record_success(started.elapsed());
                crate::health::observe(pool, backend, TrafficEvent::Connected);
                return Some((stream, backend));
            }
            Err(error) => error,
        };
        backend.stats.record_failure();
        crate::metrics::connect_failed(pool.name(), &backend.id, error.is_timeout());
        crate::health::observe(pool, backend, TrafficEvent::ConnectFailure);
        tracing::warn!(pool = %pool.name(), backend = %backend.id, error = %crate::error_chain(&error), "connect failed, trying next backend");
    }
    None
}

/// The PROXY header the pool sends, if any, then what the client already
/// sent: one write, so a backend sees both in its first segment.
fn opening_bytes(
    version: Option<ProxyProtocolVersion>,
    preamble: Preamble,
    own_endpoints: impl FnOnce() -> Origin,
) -> Vec<u8> {
    let Some(version) = version else {
        return preamble.payload;
    };
    let mut header = ProxyHeader::new(preamble.origin.unwrap_or_else(own_endpoints));
    let mut bytes = match version {
        ProxyProtocolVersion::V1 => header.encode_v1(),
        ProxyProtocolVersion::V2 => {
            if let Some(sni) = &preamble.sni {
                header.tlvs.push(Tlv {
                    kind: TLV_AUTHORITY,
                    value: sni.as_bytes().to_vec(),
                });
            }
            header.encode_v2()
        }
    };
    bytes.extend_from_slice(&preamble.payload);
    bytes
}

/// An IPv4 client on a dual-stack socket shows up as `::ffff:a.b.c.d`;
/// balancers, trust checks and PROXY headers want `a.b.c.d`.
fn canonical(address: SocketAddr) -> SocketAddr {
    SocketAddr::new(address.ip().to_canonical(), address.port())
}
