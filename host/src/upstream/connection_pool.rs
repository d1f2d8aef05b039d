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
use hyper::body::Incoming;

use super::request_body::RequestBody;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use super::ActiveRequest;
use super::connector::{ConnectError, Connector, TcpConnector, connect_within};

/// An idle connection unused for this long is closed rather than reused:
/// backends commonly time out idle keep-alive connections after 60 s or more.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept per endpoint: enough for a few hundred concurrent
/// clients to find a warm connection after a burst.
pub const MAX_IDLE_PER_ENDPOINT: usize = 256;
/// A returned connection normally becomes ready at once; one that does not
/// within this time is discarded.
const READY_TIMEOUT: Duration = Duration::from_millis(100);
/// Largest response head and read-ahead per backend connection: bounds
/// what a response pins while its client reads slowly (hyper's default is
/// about 400 KiB; HAProxy's buffer is 16 KiB).
const BACKEND_BUFFER: usize = 16 * 1024;

/// What a pooled connection speaks. Upstream TLS and HTTP/2 add kinds; one
/// endpoint may have idle connections of several kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionKind {
    /// HTTP/1.1 over plain TCP.
    Http1,
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
#[derive(Debug)]
pub struct Connection {
    sender: SendRequest<RequestBody>,
    home: Arc<IdleQueue>,
    reused: bool,
}

/// What sending a request produced when it did not produce a response.
#[derive(Debug)]
pub struct SendError {
    /// The error.
    pub error: hyper::Error,
    /// The request, when it was never written and may be sent elsewhere.
    pub unsent: Option<http::Request<RequestBody>>,
}

/// A response body that returns its connection to the pool once read to
/// the end, and keeps the backend's active-request count until then.
#[derive(Debug)]
pub struct UpstreamBody {
    inner: Incoming,
    release: Option<Release>,
}

/// Why idle connections were closed, for
/// `bascule_upstream_idle_closed_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Discard {
    /// The backend closed it while it sat idle.
    BackendClosed,
    /// Idle longer than [`IDLE_TIMEOUT`].
    Expired,
    /// Did not become ready in time after being taken.
    NotReady,
    /// Its endpoint is no longer used by any backend.
    Evicted,
}

struct DiscardCounters([metrics::Counter; 4]);

#[derive(Debug, Default)]
struct IdleQueue {
    connections: SegQueue<IdleConnection>,
    len: AtomicUsize,
    /// Set once the endpoint left the pool: returned connections close.
    evicted: AtomicBool,
}

#[derive(Debug)]
struct IdleConnection {
    sender: SendRequest<RequestBody>,
    since: Instant,
}

#[derive(Debug)]
struct Release {
    sender: SendRequest<RequestBody>,
    home: Arc<IdleQueue>,
    _active: ActiveRequest,
}

// === impl PoolKey ===

impl PoolKey {
    /// The key of plain HTTP/1.1 connections to `endpoint`.
    pub fn http1(endpoint: SocketAddr) -> Self {
        PoolKey {
            endpoint,
            kind: ConnectionKind::Http1,
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

    /// A connection to `endpoint`: a ready idle one, or a new one.
    pub async fn get(
        &self,
        endpoint: SocketAddr,
        connect_timeout: Duration,
    ) -> Result<Connection, ConnectError> {
        let key = PoolKey::http1(endpoint);
        let home = self.queue(key);
        while let Some(mut idle) = home.pop() {
            if idle.sender.is_closed() {
                self.counters.count(Discard::BackendClosed);
                continue;
            }
            if idle.since.elapsed() > IDLE_TIMEOUT {
                self.counters.count(Discard::Expired);
                continue;
            }
            // Usually ready at once: skip arming a timer for it.
            if idle.sender.is_ready()
                || matches!(
                    tokio::time::timeout(READY_TIMEOUT, idle.sender.ready()).await,
                    Ok(Ok(()))
                )
            {
                return Ok(Connection {
                    sender: idle.sender,
                    home,
                    reused: true,
                });
            }
            self.counters.count(Discard::NotReady);
        }
        self.connect(key, home, connect_timeout).await
    }

    /// A new connection to `endpoint`, never an idle one: the retry after
    /// a reused connection turned out to be dead.
    pub async fn get_new(
        &self,
        endpoint: SocketAddr,
        connect_timeout: Duration,
    ) -> Result<Connection, ConnectError> {
        let key = PoolKey::http1(endpoint);
        let home = self.queue(key);
        self.connect(key, home, connect_timeout).await
    }

    async fn connect(
        &self,
        key: PoolKey,
        home: Arc<IdleQueue>,
        timeout: Duration,
    ) -> Result<Connection, ConnectError> {
        let endpoint = key.endpoint;
        let stream = connect_within(&self.connector, endpoint, timeout).await?;
        let (sender, connection) = http1::Builder::new()
            .max_buf_size(BACKEND_BUFFER)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|source| ConnectError::Handshake { endpoint, source })?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(backend = %endpoint, %error, "backend connection ended with an error");
            }
        });
        Ok(Connection {
            sender,
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
                let Some(idle) = queue.pop() else { break };
                if idle.sender.is_closed() {
                    self.counters.count(Discard::BackendClosed);
                } else if idle.since.elapsed() > IDLE_TIMEOUT {
                    self.counters.count(Discard::Expired);
                } else {
                    queue.push(idle);
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

    /// Idle connections to `endpoint`, for the status page and tests.
    pub fn idle_count(&self, endpoint: SocketAddr) -> usize {
        let key = PoolKey::http1(endpoint);
        self.idle
            .load()
            .get(&key)
            .map_or(0, |queue| queue.len.load(Ordering::Relaxed))
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
    pub async fn send(
        mut self,
        request: http::Request<RequestBody>,
        active: ActiveRequest,
    ) -> Result<http::Response<UpstreamBody>, SendError> {
        match self.sender.try_send_request(request).await {
            Ok(response) => Ok(response.map(|inner| UpstreamBody {
                inner,
                release: Some(Release {
                    sender: self.sender,
                    home: self.home,
                    _active: active,
                }),
            })),
            Err(mut error) => {
                let unsent = error.take_message();
                Err(SendError {
                    error: error.into_error(),
                    unsent,
                })
            }
        }
    }
}

// === impl UpstreamBody ===

impl UpstreamBody {
    fn release(&mut self) {
        if let Some(release) = self.release.take()
            && !release.sender.is_closed()
        {
            release.home.push(IdleConnection {
                sender: release.sender,
                since: Instant::now(),
            });
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.release(),
            // A broken body means a broken connection: never reuse it.
            Poll::Ready(Some(Err(_))) => self.release = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // Bodiless responses (HEAD, 204, 304) may never be polled.
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}

// === impl DiscardCounters ===

impl DiscardCounters {
    fn new() -> Self {
        DiscardCounters(["backend-closed", "expired", "not-ready", "evicted"].map(
            |reason| metrics::counter!(crate::metrics::UPSTREAM_IDLE_CLOSED, "reason" => reason),
        ))
    }

    fn count(&self, discard: Discard) {
        let index = match discard {
            Discard::BackendClosed => 0,
            Discard::Expired => 1,
            Discard::NotReady => 2,
            Discard::Evicted => 3,
        };
        if let Some(counter) = self.0.get(index) {
            counter.increment(1);
        }
    }
}
