//! Connections to backends: HTTP/1.1 keep-alive connections pooled per
//! endpoint and kind, and shared HTTP/2 connections (`http2.rs`).
//!
//! A connection is taken before the request is committed to it, so a
//! backend that refuses the connection costs nothing but a retry on the
//! next candidate. An HTTP/1.1 connection goes back to the pool when its
//! response body has been read to the end (`upstream_body.rs`); a body
//! dropped half-read takes its connection with it (it cannot be reused
//! safely).
//!
//! The HTTP/1.1 hot path takes no lock: the endpoint map is an immutable
//! snapshot (replaced only when an endpoint is first used or evicted) and
//! each endpoint's idle connections sit in a lock-free queue. The
//! supervisor calls [`ConnectionPool::reap`] on an interval (expired and
//! closed idle connections) and [`ConnectionPool::retain`] after every
//! reload (endpoints no backend uses any more), so idle sockets and map
//! keys never pile up.
//!
//! HTTP/1.1 connections run through [`Http1Connection`], driven in the
//! request's own task (no task or channel per connection): an idle one
//! costs its socket and a read buffer. HTTP/2 connections are hyper's, one
//! task each, as multiplexing needs.
//!
//! hyper-util's legacy `Client` does not fit here: it consumes the request
//! when a connect fails, and the request must survive to the next
//! candidate.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use crossbeam_queue::SegQueue;
use http::uri::Scheme;
use http_body::Body;
use tokio::time::Instant;

use super::ActiveRequest;
use super::backend::Backend;
use super::connector::{ConnectError, Connector, TcpConnector, connect_within};
use super::exchange_error::ExchangeError;
use super::http1::{Http1Connection, IdleProblem, ResponseBody};
use super::http2::{self, Http2Connections, Http2Stream};
use super::request_body::RequestBody;
use super::upgrade::{Upgraded, UpstreamTunnel};
use super::upstream_body::UpstreamBody;
use crate::config::UpstreamProtocol;
use crate::tls::TlsTarget;

/// An idle connection unused for this long is closed rather than reused:
/// backends commonly time out idle keep-alive connections after 60 s or more.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept per endpoint: enough for a few hundred concurrent
/// clients to find a warm connection after a burst.
pub const MAX_IDLE_PER_ENDPOINT: usize = 256;

/// What a pooled connection speaks; one endpoint may have connections of
/// several kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionKind {
    /// HTTP/1.1 over plain TCP.
    Http1,
    /// HTTP/1.1 over TLS, by [`TlsTarget::key`]: configuration and server
    /// name, so that a connection verified for one name never carries a
    /// request for another.
    Http1Tls(u64),
    /// HTTP/2 over plain TCP (prior knowledge).
    Http2,
    /// HTTP/2 over TLS, by [`TlsTarget::key`].
    Http2Tls(u64),
}

/// Where a pooled connection goes: endpoint and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolKey {
    /// The backend's resolved address.
    pub endpoint: SocketAddr,
    /// What the connection speaks.
    pub kind: ConnectionKind,
}

/// Idle keep-alive connections by endpoint and kind, and the connector
/// that opens new ones.
pub struct ConnectionPool<C = TcpConnector> {
    connector: C,
    idle: ArcSwap<HashMap<PoolKey, Arc<IdleQueue>>>,
    http2: Http2Connections,
    counters: DiscardCounters,
}

/// A connection ready to carry one request.
pub struct Connection {
    exchange: Exchange,
    reused: bool,
}

/// What the request will be sent on.
enum Exchange {
    /// An HTTP/1.1 connection, held alone, and the queue it returns to.
    Http1 {
        http: Http1Connection,
        home: Arc<IdleQueue>,
    },
    /// A stream on a shared HTTP/2 connection.
    Http2(Http2Stream),
}

/// What sending a request produced when it did not produce a response.
#[derive(Debug)]
pub struct SendError {
    /// The error.
    pub error: ExchangeError,
    /// The request, when it was never written and may be sent elsewhere.
    pub unsent: Option<http::Request<RequestBody>>,
}

/// Why idle connections were closed, for
/// `bascule_upstream_idle_closed_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Discard {
    /// The backend closed it while it sat idle.
    BackendClosed,
    /// Idle longer than [`IDLE_TIMEOUT`].
    Expired,
    /// The backend sent bytes nobody asked for while it sat idle.
    UnexpectedData,
    /// Its endpoint is no longer used by any backend.
    Evicted,
}

struct DiscardCounters([metrics::Counter; 4]);

/// One endpoint's idle HTTP/1.1 connections of one kind.
#[derive(Default)]
pub(super) struct IdleQueue {
    connections: SegQueue<IdleConnection>,
    len: AtomicUsize,
    /// Set once the endpoint left the pool: returned connections close.
    evicted: AtomicBool,
}

struct IdleConnection {
    http: Http1Connection,
    since: Instant,
}

// === impl PoolKey ===

impl PoolKey {
    /// The key of HTTP/1.1 connections to `endpoint`, plain or over `tls`.
    pub fn http1(endpoint: SocketAddr, tls: Option<&TlsTarget>) -> Self {
        PoolKey {
            endpoint,
            kind: tls.map_or(ConnectionKind::Http1, |tls| {
                ConnectionKind::Http1Tls(tls.key())
            }),
        }
    }

    /// The key of HTTP/2 connections to `endpoint`, plain or over `tls`.
    pub fn http2(endpoint: SocketAddr, tls: Option<&TlsTarget>) -> Self {
        PoolKey {
            endpoint,
            kind: tls.map_or(ConnectionKind::Http2, |tls| {
                ConnectionKind::Http2Tls(tls.key())
            }),
        }
    }
}

// === impl ConnectionPool ===

impl Default for ConnectionPool<TcpConnector> {
    fn default() -> Self {
        ConnectionPool::new(TcpConnector)
    }
}

impl<C: Connector> ConnectionPool<C> {
    /// An empty pool opening connections with `connector`.
    pub fn new(connector: C) -> Self {
        ConnectionPool {
            connector,
            idle: ArcSwap::default(),
            http2: Http2Connections::default(),
            counters: DiscardCounters::new(),
        }
    }

    /// A connection to `backend` at `endpoint`, in the backend's protocol
    /// and over its TLS: a ready idle (HTTP/1.1) or shared (HTTP/2) one,
    /// or a new one when there is none or `fresh` asks for it (the retry
    /// after a reused connection turned out to be dead).
    pub async fn get(
        &self,
        backend: &Backend,
        endpoint: SocketAddr,
        fresh: bool,
        connect_timeout: Duration,
    ) -> Result<Connection, ConnectError> {
        let tls = backend.tls.as_deref();
        if backend.protocol == UpstreamProtocol::Http1 {
            let key = PoolKey::http1(endpoint, tls);
            let home = self.queue(key);
            if !fresh && let Some(connection) = self.idle_http1(&home) {
                return Ok(connection);
            }
            return self.connect_http1(key, tls, home, connect_timeout).await;
        }
        // Waiting for another request's connect counts against the
        // budget too.
        tokio::time::timeout(
            connect_timeout,
            self.get_http2(backend.protocol, endpoint, tls, fresh, connect_timeout),
        )
        .await
        .unwrap_or(Err(ConnectError::Timeout {
            endpoint,
            timeout: connect_timeout,
        }))
    }

    /// A ready idle HTTP/1.1 connection from `home`, if any.
    fn idle_http1(&self, home: &Arc<IdleQueue>) -> Option<Connection> {
        while let Some(mut idle) = home.pop() {
            if idle.since.elapsed() > IDLE_TIMEOUT {
                self.counters.count(Discard::Expired);
                continue;
            }
            match idle.check() {
                Ok(()) => {
                    return Some(Connection {
                        exchange: Exchange::Http1 {
                            http: idle.http,
                            home: Arc::clone(home),
                        },
                        reused: true,
                    });
                }
                Err(discard) => self.counters.count(discard),
            }
        }
        None
    }

    /// Connects, then runs the TLS handshake when there is one, each within
    /// `timeout`.
    async fn connect_http1(
        &self,
        key: PoolKey,
        tls: Option<&TlsTarget>,
        home: Arc<IdleQueue>,
        timeout: Duration,
    ) -> Result<Connection, ConnectError> {
        let stream = connect_within(&self.connector, key.endpoint, timeout).await?;
        let http = match tls {
            None => Http1Connection::new(stream),
            Some(tls) => {
                let endpoint = key.endpoint;
                let handshake = tokio::time::timeout(timeout, tls.connect(stream)).await;
                match handshake {
                    Ok(Ok(stream)) => Http1Connection::new(stream),
                    Ok(Err(source)) => return Err(ConnectError::Tls { endpoint, source }),
                    Err(_) => return Err(ConnectError::Timeout { endpoint, timeout }),
                }
            }
        };
        Ok(Connection {
            exchange: Exchange::Http1 { http, home },
            reused: false,
        })
    }

    /// A stream on a shared HTTP/2 connection, or (`auto`, when the
    /// backend chose HTTP/1.1 by ALPN) an HTTP/1.1 connection.
    async fn get_http2(
        &self,
        protocol: UpstreamProtocol,
        endpoint: SocketAddr,
        tls: Option<&TlsTarget>,
        fresh: bool,
        timeout: Duration,
    ) -> Result<Connection, ConnectError> {
        let key = PoolKey::http2(endpoint, tls);
        let scheme = if tls.is_some() {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        };
        let http1_home =
            (protocol == UpstreamProtocol::Auto).then(|| self.queue(PoolKey::http1(endpoint, tls)));
        let reuse = |connections: Option<Http2Stream>| {
            connections.map(|stream| Connection {
                exchange: Exchange::Http2(stream),
                reused: true,
            })
        };
        if !fresh {
            if let Some(connection) = reuse(self.http2.stream(key, &scheme)) {
                return Ok(connection);
            }
            if let Some(home) = &http1_home
                && let Some(connection) = self.idle_http1(home)
            {
                return Ok(connection);
            }
        }
        let connections = self.http2.endpoint(key);
        let _opening = connections.opening().await;
        if !fresh && let Some(connection) = reuse(connections.stream(&scheme)) {
            return Ok(connection);
        }
        let stream = connect_within(&self.connector, endpoint, timeout).await?;
        let handshake = |error| ConnectError::Http2 {
            endpoint,
            source: error,
        };
        let stream = match tls {
            None => self
                .http2
                .handshake(&connections, stream, scheme)
                .await
                .map_err(handshake)?,
            Some(tls) => {
                let stream = tls
                    .connect(stream)
                    .await
                    .map_err(|source| ConnectError::Tls { endpoint, source })?;
                let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                match (h2, http1_home) {
                    (true, _) => self
                        .http2
                        .handshake(&connections, stream, scheme)
                        .await
                        .map_err(handshake)?,
                    (false, Some(home)) => {
                        return Ok(Connection {
                            exchange: Exchange::Http1 {
                                http: Http1Connection::new(stream),
                                home,
                            },
                            reused: false,
                        });
                    }
                    (false, None) => return Err(ConnectError::NoH2 { endpoint }),
                }
            }
        };
        Ok(Connection {
            exchange: Exchange::Http2(stream),
            reused: false,
        })
    }

    /// The idle queue of `key`, created on first use.
    fn queue(&self, key: PoolKey) -> Arc<IdleQueue> {
        super::snapshot_map::get_or_insert(&self.idle, key)
    }

    /// Closes idle connections that expired or that their backend closed.
    pub fn reap(&self) {
        self.http2.reap(IDLE_TIMEOUT);
        for queue in self.idle.load().values() {
            // Each connection is looked at once; those still good go back.
            for _ in 0..queue.len.load(Ordering::Relaxed) {
                let Some(mut idle) = queue.pop() else { break };
                let verdict = if idle.since.elapsed() > IDLE_TIMEOUT {
                    Err(Discard::Expired)
                } else {
                    idle.check()
                };
                match verdict {
                    Ok(()) => queue.push(idle),
                    Err(discard) => self.counters.count(discard),
                }
            }
        }
    }

    /// Forgets every endpoint `in_use` rejects and closes its idle
    /// connections; connections in flight to it close when they finish.
    pub fn retain(&self, in_use: impl Fn(SocketAddr) -> bool) {
        self.http2.retain(&in_use);
        let mut evicted = Vec::new();
        self.idle.rcu(|map| {
            evicted.clear();
            let mut kept = HashMap::with_capacity(map.len());
            for (key, queue) in map.iter() {
                if in_use(key.endpoint) {
                    kept.insert(*key, Arc::clone(queue));
                } else {
                    evicted.push(Arc::clone(queue));
                }
            }
            kept
        });
        for queue in evicted {
            queue.evicted.store(true, Ordering::Relaxed);
            while queue.pop().is_some() {
                self.counters.count(Discard::Evicted);
            }
        }
    }

    /// Idle HTTP/1.1 connections to `endpoint` of every kind, for the
    /// status page and tests.
    pub fn idle_count(&self, endpoint: SocketAddr) -> usize {
        self.idle
            .load()
            .iter()
            .filter(|(key, _)| key.endpoint == endpoint)
            .map(|(_, queue)| queue.len.load(Ordering::Relaxed))
            .sum()
    }

    /// Open HTTP/2 connections to `endpoint`, for the status page and
    /// tests.
    pub fn http2_count(&self, endpoint: SocketAddr) -> usize {
        self.http2.open_count(endpoint)
    }
}

// === impl IdleQueue ===

impl IdleQueue {
    fn pop(&self) -> Option<IdleConnection> {
        let idle = self.connections.pop()?;
        self.len.fetch_sub(1, Ordering::Relaxed);
        Some(idle)
    }

    /// Takes `http` back after a response, unless the queue is full or
    /// evicted (then it closes).
    pub(super) fn push_idle(&self, http: Http1Connection) {
        self.push(IdleConnection {
            http,
            since: Instant::now(),
        });
    }

    /// Keeps `idle` unless the queue is full or evicted (then it closes).
    fn push(&self, idle: IdleConnection) {
        if self.evicted.load(Ordering::Relaxed) {
            return;
        }
        // A racing push may overshoot the bound by one: harmless.
        if self.len.load(Ordering::Relaxed) < MAX_IDLE_PER_ENDPOINT {
            self.len.fetch_add(1, Ordering::Relaxed);
            self.connections.push(idle);
        }
    }
}

// === impl Connection ===

impl Connection {
    /// Whether this connection carried a request before: a reused
    /// connection may have been closed by the backend a moment ago.
    pub fn is_reused(&self) -> bool {
        self.reused
    }

    /// Sends `request` (`address` is the backend's, the HTTP/2 authority of
    /// a request without `Host`). A request that was never written comes
    /// back in the error so that the caller can try again elsewhere.
    /// `drain_timeout` bounds the response body once the backend leaves.
    pub async fn send(
        self,
        request: http::Request<RequestBody>,
        address: &str,
        active: ActiveRequest,
        drain_timeout: Duration,
    ) -> Result<http::Response<UpstreamBody>, SendError> {
        match self.exchange {
            Exchange::Http1 { http, home } => {
                send_http1(http, home, self.reused, request, active, drain_timeout).await
            }
            Exchange::Http2(stream) => {
                let (mut head, body) = request.into_parts();
                let h2 = http2::to_h2(&mut head, stream.scheme().clone(), address);
                match stream.send(http::Request::from_parts(head, body)).await {
                    Ok((response, stream)) => Ok(response
                        .map(|body| UpstreamBody::http2(body, stream, active, drain_timeout))),
                    Err(failed) => Err(SendError {
                        error: ExchangeError::Http2(failed.error),
                        unsent: failed.unsent.map(|request| {
                            let (mut head, body) = request.into_parts();
                            http2::to_http1(&mut head, h2);
                            http::Request::from_parts(head, body)
                        }),
                    }),
                }
            }
        }
    }
}

/// Sends `request` on an HTTP/1.1 connection.
async fn send_http1(
    mut http: Http1Connection,
    home: Arc<IdleQueue>,
    reused: bool,
    request: http::Request<RequestBody>,
    active: ActiveRequest,
    drain_timeout: Duration,
) -> Result<http::Response<UpstreamBody>, SendError> {
    let (mut head, mut body) = request.into_parts();
    // Before sending: a body read to its end looks the same.
    let bodiless = body.is_end_stream();
    match http.send(&mut head, &mut body).await {
        Ok(response) if response.response.status() == http::StatusCode::SWITCHING_PROTOCOLS => {
            // The connection leaves the pool for the tunnel.
            let (io, read) = http.into_io();
            let mut response = response.response.map(|()| UpstreamBody::ended());
            response
                .extensions_mut()
                .insert(Upgraded::new(UpstreamTunnel {
                    io,
                    // Copied out: the read buffer's allocation is not kept
                    // for the life of the tunnel.
                    read: bytes::Bytes::copy_from_slice(&read),
                    active,
                    drain_timeout,
                }));
            Ok(response)
        }
        Ok(response) => {
            let body = ResponseBody::new(http, &response);
            Ok(response
                .response
                .map(|()| UpstreamBody::http1(body, home, active, drain_timeout)))
        }
        Err(failure) => {
            // Sent again elsewhere: what the backend never saw, and an
            // idempotent request without a body that a reused connection
            // dropped unanswered (the backend closed it as the request
            // went out, as NGINX retries it). Never a request whose body
            // failed.
            let dropped =
                reused && failure.closed_unanswered && bodiless && head.method.is_idempotent();
            let resendable = (!failure.written || dropped) && !failure.error.is_client_body();
            Err(SendError {
                error: ExchangeError::Http1(failure.error),
                unsent: resendable.then(|| http::Request::from_parts(head, body)),
            })
        }
    }
}

// === impl IdleConnection ===

impl IdleConnection {
    /// Whether it can carry a request, or why it is discarded.
    fn check(&mut self) -> Result<(), Discard> {
        self.http.check_idle().map_err(|problem| match problem {
            IdleProblem::Closed => Discard::BackendClosed,
            IdleProblem::UnexpectedData => Discard::UnexpectedData,
        })
    }
}

// === impl DiscardCounters ===

impl DiscardCounters {
    fn new() -> Self {
        DiscardCounters(["backend-closed", "expired", "unexpected-data", "evicted"].map(
            |reason| metrics::counter!(crate::metrics::UPSTREAM_IDLE_CLOSED, "reason" => reason),
        ))
    }

    fn count(&self, discard: Discard) {
        let index = match discard {
            Discard::BackendClosed => 0,
            Discard::Expired => 1,
            Discard::UnexpectedData => 2,
            Discard::Evicted => 3,
        };
        if let Some(counter) = self.0.get(index) {
            counter.increment(1);
        }
    }
}
