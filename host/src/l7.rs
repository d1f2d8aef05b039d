//! The HTTP reverse proxy: HTTP/1.1 and HTTP/2 (prior knowledge, or ALPN
//! over TLS) from clients; HTTP/1.1 or HTTP/2 to backends through
//! [`crate::upstream`]; gRPC calls answered as gRPC when the proxy itself
//! answers (`grpc.rs`).
//!
//! [`Proxy`] runs the request path in named steps (route, prepare head,
//! request filters, choose, attempts, response filters; see `proxy.rs`).
//! Header filters are anything implementing [`HeaderFilter`].

mod activity;
mod attempt;
mod authority;
mod conditions;
mod exchange;
mod extended_connect;
mod filter;
mod framing;
mod grpc;
mod headers;
mod http1;
mod limits;
mod local;
mod path;
mod proxy;
mod rate_limit;
mod response;
mod route;
mod route_action;
mod send_timeout;
mod split;
mod target;
mod tunnel;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::tls::ClientStream;
use crate::upstream::ClientBody;
use activity::{Activity, InFlightBody};

pub use attempt::{Attempt, AttemptCause, FailedAttempt};
pub use authority::{Authority, AuthorityError};
pub use filter::{FilterError, FilterVerdict, HeaderFilter, KeptRequest, LocalResponse};
pub use headers::{ClientAddress, ForwardedHeader, Forwarding};
pub use limits::{
    ConnectionLimits, DEFAULT_FIRST_BYTE_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT,
    DEFAULT_KEEP_ALIVE_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HEADER_SIZE,
    DEFAULT_MAX_HEADERS, DEFAULT_REQUEST_BODY_TIMEOUT, DEFAULT_SEND_TIMEOUT,
    DEFAULT_TUNNEL_IDLE_TIMEOUT,
};
pub use local::{next_connection, serve_local};
pub use path::{EncodedSlashes, PathError, PathPolicy};
pub use proxy::{Proxy, prepare_for_routing};

/// The proxy's HTTP/1 request-head parser alone, as its server runs it on
/// the bytes a client sends (what the fuzz target drives): the head, with
/// its framing fields as they will be forwarded, `None` while incomplete,
/// or the status it is refused with.
pub fn parse_request_head(raw: &[u8]) -> Result<Option<http::request::Parts>, http::StatusCode> {
    let mut buffer = bytes::BytesMut::from(raw);
    http1::parse_request_head(&mut buffer)
        .map(|head| head.map(|head| head.head))
        .map_err(|refusal| refusal.status)
}
pub use conditions::Conditions;
pub use rate_limit::{RateLimiter, RateLimits};
pub use response::ProxyBody;
pub use route::{Route, RouteTable, RouteTarget};
pub use split::Split;

/// Accepts connections on `listener` and serves them with `proxy` until
/// `stop` fires (or its sender is dropped). Then it stops accepting, asks
/// every open connection to finish its in-flight requests and close, and
/// returns once all have. Past the listener's connection cap, a new
/// connection gets a 503 and is closed. Connection errors are logged,
/// never fatal.
pub async fn serve(listener: Arc<TcpListener>, proxy: Arc<Proxy>, mut stop: watch::Receiver<()>) {
    let builder = Arc::new(client_connection_builder());
    let open = Arc::new(AtomicUsize::new(0));
    let mut connections = JoinSet::new();
    while let Some((stream, peer)) = next_connection(&listener, &mut stop).await {
        while connections.try_join_next().is_some() {}
        // Read per connection: a reload may change them.
        let limits = proxy.limits();
        let Some(slot) = OpenSlot::take(&open, limits.max_connections) else {
            crate::metrics::http_connection_refused(proxy.listener());
            connections.spawn(refuse(stream));
            continue;
        };
        let client = ClientConnection {
            builder: Arc::clone(&builder),
            proxy: Arc::clone(&proxy),
            limits,
            _slot: slot,
        };
        connections.spawn(client.serve(stream, peer, stop.clone()));
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// What serving one client connection needs.
struct ClientConnection {
    builder: Arc<http2::Builder<TokioExecutor>>,
    proxy: Arc<Proxy>,
    limits: ConnectionLimits,
    _slot: OpenSlot,
}

/// One of a listener's open connections, counted until dropped.
struct OpenSlot(Arc<AtomicUsize>);

// === impl ClientConnection ===

impl ClientConnection {
    /// Serves `stream` until the client or a limit ends it, or `stop`
    /// fires (then in-flight requests finish first): HTTP/1.x by the
    /// proxy's own server, HTTP/2 (prior knowledge) by hyper's.
    async fn serve(self, stream: TcpStream, peer: SocketAddr, mut stop: watch::Receiver<()>) {
        let _ = stream.set_nodelay(true);
        let limits = self.limits;
        let (stream, tls) = match self.proxy.tls() {
            // The handshake is the client's first bytes: it gets the
            // first-byte budget.
            Some(tls) => tokio::select! {
                accepted = tls.accept(stream, limits.first_byte_timeout, self.proxy.listener()) => match accepted {
                    Some((stream, session)) => (stream, Some(session)),
                    None => return,
                },
                _ = stop.changed() => return,
            },
            None => {
                // hyper-util's protocol detection has no timer: a client
                // that never speaks would hold the connection forever.
                let mut first = [0u8; 1];
                tokio::select! {
                    peeked = tokio::time::timeout(limits.first_byte_timeout, stream.peek(&mut first)) => {
                        match peeked {
                            Ok(Ok(n)) if n > 0 => {}
                            // Closed or failed before a byte: nothing to count.
                            Ok(_) => return,
                            Err(_) => {
                                crate::metrics::http_connection_closed(self.proxy.listener(), "first-byte-timeout");
                                return;
                            }
                        }
                    }
                    _ = stop.changed() => return,
                }
                (ClientStream::Plain(stream), None)
            }
        };
        let client = ClientAddress::new(peer, tls);
        let handoff = match http1::serve(stream, &client, &self.proxy, limits, &mut stop).await {
            http1::Served::Closed => return,
            http1::Served::Http2(handoff) => handoff,
        };
        // Boxed: hyper's HTTP/2 connection is large, and a task serving
        // HTTP/1 should not be sized for it.
        Box::pin(self.serve_http2(handoff, client, peer, stop)).await;
    }

    /// Serves a connection that opened with the HTTP/2 preface, with
    /// hyper's server.
    async fn serve_http2(
        self,
        handoff: http1::Handoff,
        client: ClientAddress,
        peer: SocketAddr,
        mut stop: watch::Receiver<()>,
    ) {
        let limits = self.limits;
        let activity = Activity::new();
        let client = Arc::new(client);
        let proxy = Arc::clone(&self.proxy);
        let counted = Arc::clone(&activity);
        let service = service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
            let proxy = Arc::clone(&proxy);
            let client = Arc::clone(&client);
            let in_flight = counted.start();
            // An extended CONNECT's tunnel counts as a request in flight
            // of its own, for as long as it lasts.
            let extended_connect =
                extended_connect::into_get(&mut request).map(|stream| (stream, counted.start()));
            // Boxed: hyper keeps a slot for the service's future for the
            // life of the connection, and this one is 3.4 KiB; an idle
            // keep-alive connection should not hold that.
            Box::pin(async move {
                let mut response = proxy.handle(request.map(ClientBody::Hyper), &client).await;
                if let Some((stream, tunnel_in_flight)) = extended_connect {
                    response = stream.answer(
                        response,
                        limits.tunnel_idle_timeout,
                        proxy.listener(),
                        tunnel_in_flight,
                    );
                }
                Ok::<_, Infallible>(response.map(|body| InFlightBody::new(body, in_flight)))
            })
        });
        let io = TokioIo::new(crate::rewind::Rewind::new(handoff.read, handoff.io));
        // The listener's header bound, as it is now (a reload may change
        // it): a copy of the shared settings per connection.
        let mut builder = http2::Builder::clone(&self.builder);
        builder.max_header_list_size(u32::try_from(limits.max_header_size).unwrap_or(u32::MAX));
        let connection = builder.serve_connection(io, service);
        tokio::pin!(connection);
        let mut closing = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(client = %peer, %error, "client connection ended with an error");
                    }
                    return;
                }
                _ = stop.changed(), if !closing => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
                _ = activity.idle_for(limits.keep_alive_timeout), if !closing => {
                    crate::metrics::http_connection_closed(self.proxy.listener(), "keep-alive-timeout");
                    // GOAWAY: streams in flight finish.
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}

// === impl OpenSlot ===

impl OpenSlot {
    /// A slot if fewer than `cap` connections are open.
    fn take(open: &Arc<AtomicUsize>, cap: u32) -> Option<OpenSlot> {
        let cap = usize::try_from(cap).unwrap_or(usize::MAX);
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < cap).then_some(n + 1)
        })
        .ok()
        .map(|_| OpenSlot(Arc::clone(open)))
    }
}

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Past the connection cap: a short 503 and close, rather than a reset
/// the client cannot tell from a crash. The close lingers (as NGINX's
/// `lingering_close`): what the client sent meanwhile is read and dropped
/// for up to a second, because closing with unread input sends a reset
/// that can destroy the 503 before the client reads it.
async fn refuse(mut stream: TcpStream) {
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 31\r\nconnection: close\r\n\r\ntoo many connections, try again\n";
    const LINGER: Duration = Duration::from_secs(1);
    let _ = tokio::time::timeout(LINGER, async {
        stream.write_all(BUSY).await?;
        stream.shutdown().await?;
        let mut discard = [0u8; 4096];
        while stream.read(&mut discard).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// HTTP/2 (prior knowledge) server settings for clients; HTTP/1.x is
/// served by [`http1`].
fn client_connection_builder() -> http2::Builder<TokioExecutor> {
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder.timer(TokioTimer::new());
    // WebSockets over HTTP/2 (RFC 8441): see `extended_connect.rs`.
    builder.enable_connect_protocol();
    builder
}
