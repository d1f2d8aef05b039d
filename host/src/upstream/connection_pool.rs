//! Keep-alive connections to backends, pooled per endpoint and kind.
//!
//! A connection is taken before the request is committed to it, so a
//! backend that refuses the connection costs nothing but a retry on the
//! next candidate. A connection goes back to the pool when its response
//! body has been read to the end; a body dropped half-read takes its
//! connection with it (it cannot be reused safely).
//!
//! The hot path takes no lock: the endpoint map is an immutable snapshot
//! (replaced only when an endpoint is first used or evicted) and each
//! endpoint's idle connections sit in a lock-free queue. The supervisor
//! calls [`ConnectionPool::reap`] on an interval (expired and closed idle
//! connections) and [`ConnectionPool::retain`] after every reload
//! (endpoints no backend uses any more), so idle sockets and map keys never
//! pile up.
//!
//! Connections speak HTTP/1.1 through [`Http1Connection`], driven in the
//! request's own task (no task or channel per connection): an idle one
//! costs its socket and a read buffer.
//!
//! hyper-util's legacy `Client` does not fit here: it consumes the request
//! when a connect fails, and the request must survive to the next
//! candidate.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use crossbeam_queue::SegQueue;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Instant;

use super::ActiveRequest;
use super::connector::{ConnectError, Connector, TcpConnector, connect_within};
use super::http1::{Http1Connection, Http1Error, IdleProblem, ResponseBody};
use super::request_body::RequestBody;
use crate::tls::TlsTarget;

/// An idle connection unused for this long is closed rather than reused:
/// backends commonly time out idle keep-alive connections after 60 s or more.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept per endpoint: enough for a few hundred concurrent
/// clients to find a warm connection after a burst.
pub const MAX_IDLE_PER_ENDPOINT: usize = 256;

/// What a pooled connection speaks. Upstream TLS and HTTP/2 add kinds; one
/// endpoint may have idle connections of several kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionKind {
    /// HTTP/1.1 over plain TCP.
    Http1,
    /// HTTP/1.1 over TLS, by [`TlsTarget::key`]: configuration and server
    /// name, so that a connection verified for one name never carries a
    /// request for another.
    Http1Tls(u64),
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
    counters: DiscardCounters,
}

/// A connection ready to carry one request.
pub struct Connection {
    http: Http1Connection,
    home: Arc<IdleQueue>,
    reused: bool,
}

/// What sending a request produced when it did not produce a response.
#[derive(Debug)]
pub struct SendError {
    /// The error.
    pub error: Http1Error,
    /// The request, when it was never written and may be sent elsewhere.
    pub unsent: Option<http::Request<RequestBody>>,
}

/// A response body that returns its connection to the pool once read to
/// the end, and keeps the backend's active-request count until then.
pub struct UpstreamBody {
    body: ResponseBody,
    release: Option<Release>,
    /// The pool's `drain-timeout`, armed only once the body waits on the
    /// backend: a body read from what already arrived costs nothing.
    drain: Drain,
}

/// The bound on a body in progress when its backend leaves.
enum Drain {
    /// Not waited on the backend yet.
    Unarmed(Duration),
    /// Completes when the backend has been leaving for the timeout.
    Armed(Pin<Box<dyn Future<Output = ()> + Send>>),
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

#[derive(Default)]
struct IdleQueue {
    connections: SegQueue<IdleConnection>,
    len: AtomicUsize,
    /// Set once the endpoint left the pool: returned connections close.
    evicted: AtomicBool,
}

struct IdleConnection {
    http: Http1Connection,
    since: Instant,
}

struct Release {
    home: Arc<IdleQueue>,
    active: ActiveRequest,
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
            counters: DiscardCounters::new(),
        }
    }

    /// A connection to `endpoint` (over `tls` when given): a ready idle
    /// one, or a new one.
    pub async fn get(
        &self,
        endpoint: SocketAddr,
        tls: Option<&TlsTarget>,
        connect_timeout: Duration,
    ) -> Result<Connection, ConnectError> {
        let key = PoolKey::http1(endpoint, tls);
        let home = self.queue(key);
        while let Some(mut idle) = home.pop() {
            if idle.since.elapsed() > IDLE_TIMEOUT {
                self.counters.count(Discard::Expired);
                continue;
            }
            match idle.check() {
                Ok(()) => {
                    return Ok(Connection {
                        http: idle.http,
                        home,
                        reused: true,
                    });
                }
                Err(discard) => self.counters.count(discard),
            }
        }
        self.connect(key, tls, home, connect_timeout).await
    }

    /// A new connection to `endpoint`, never an idle one: the retry after
    /// a reused connection turned out to be dead.
    pub async fn get_new(
        &self,
        endpoint: SocketAddr,
        tls: Option<&TlsTarget>,
        connect_timeout: Duration,
    ) -> Result<Connection, ConnectError> {
        let key = PoolKey::http1(endpoint, tls);
        let home = self.queue(key);
        self.connect(key, tls, home, connect_timeout).await
    }

    /// Connects, then runs the TLS handshake when there is one, each within
    /// `timeout`.
    async fn connect(
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
            http,
            home,
            reused: false,
        })
    }

    /// The idle queue of `key`, created on first use.
    fn queue(&self, key: PoolKey) -> Arc<IdleQueue> {
        if let Some(queue) = self.idle.load().get(&key) {
            return Arc::clone(queue);
        }
        let mut created = None;
        self.idle.rcu(|map| {
            let mut map = HashMap::clone(map);
            let queue = map.entry(key).or_default();
            created = Some(Arc::clone(queue));
            map
        });
        created.unwrap_or_default()
    }

    /// Closes idle connections that expired or that their backend closed.
    pub fn reap(&self) {
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

    /// Idle connections to `endpoint` of every kind, for the status page
    /// and tests.
    pub fn idle_count(&self, endpoint: SocketAddr) -> usize {
        self.idle
            .load()
            .iter()
            .filter(|(key, _)| key.endpoint == endpoint)
            .map(|(_, queue)| queue.len.load(Ordering::Relaxed))
            .sum()
    }
}

// === impl IdleQueue ===

impl IdleQueue {
    fn pop(&self) -> Option<IdleConnection> {
        let idle = self.connections.pop()?;
        self.len.fetch_sub(1, Ordering::Relaxed);
        Some(idle)
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

    /// Sends `request`. A request that was never written comes back in the
    /// error so that the caller can try again elsewhere.
    /// `drain_timeout` bounds the response body once the backend leaves.
    pub async fn send(
        mut self,
        request: http::Request<RequestBody>,
        active: ActiveRequest,
        drain_timeout: Duration,
    ) -> Result<http::Response<UpstreamBody>, SendError> {
        let (mut head, mut body) = request.into_parts();
        // Before sending: a body read to its end looks the same.
        let bodiless = body.is_end_stream();
        match self.http.send(&mut head, &mut body).await {
            Ok(response) => {
                let body = ResponseBody::new(self.http, &response);
                Ok(response.response.map(|()| UpstreamBody {
                    body,
                    release: Some(Release {
                        home: self.home,
                        active,
                    }),
                    drain: Drain::Unarmed(drain_timeout),
                }))
            }
            Err(failure) => {
                // Sent again elsewhere: what the backend never saw, and an
                // idempotent request without a body that a reused
                // connection dropped unanswered (the backend closed it as
                // the request went out, as NGINX retries it). Never a
                // request whose body failed.
                let dropped = self.reused
                    && failure.closed_unanswered
                    && bodiless
                    && head.method.is_idempotent();
                let resendable = (!failure.written || dropped) && !failure.error.is_client_body();
                Err(SendError {
                    error: failure.error,
                    unsent: resendable.then(|| http::Request::from_parts(head, body)),
                })
            }
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

// === impl UpstreamBody ===

impl UpstreamBody {
    fn release(&mut self) {
        if let Some(release) = self.release.take()
            && let Some(http) = self.body.take_reusable()
        {
            release.home.push(IdleConnection {
                http,
                since: Instant::now(),
            });
        }
    }
}

impl UpstreamBody {
    /// Whether the backend has been leaving for the drain timeout; arms
    /// the wait the first time the body waits on the backend.
    fn poll_drained(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Drain::Unarmed(timeout) = self.drain {
            let Some(release) = &self.release else {
                return Poll::Pending;
            };
            let leaving = release.active.stats().leaving();
            self.drain = Drain::Armed(Box::pin(super::drained(leaving, timeout)));
        }
        match &mut self.drain {
            Drain::Armed(drained) => drained.as_mut().poll(cx),
            Drain::Unarmed(_) => Poll::Pending,
        }
    }
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody")
            .field("ended", &self.body.is_end_stream())
            .finish_non_exhaustive()
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = Http1Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Http1Error>>> {
        let polled = self.body.poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.release(),
            // A broken body means a broken connection: never reuse it.
            Poll::Ready(Some(Err(_))) => self.release = None,
            Poll::Pending => {
                if self.poll_drained(cx).is_ready() {
                    self.release = None;
                    return Poll::Ready(Some(Err(Http1Error::Drained)));
                }
            }
            Poll::Ready(Some(Ok(_))) => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // Bodiless responses (HEAD, 204, 304) may never be polled.
        if self.body.is_end_stream() {
            self.release();
        }
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
