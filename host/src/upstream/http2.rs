//! HTTP/2 to backends: a few shared connections per endpoint, each
//! carrying many requests at once as streams.
//!
//! Unlike an HTTP/1.1 connection, which one request holds from head to
//! last body byte, an HTTP/2 connection is shared: [`Http2Connections`]
//! keeps the open ones of each endpoint and hands out a stream on the first
//! with room, opening another only when every one carries
//! [`MAX_STREAMS_PER_CONNECTION`] requests. Each request is still balanced
//! on its own, so a gRPC client's calls over one connection to the proxy
//! spread over the backends (an L4 balancer would pin them all to one).
//!
//! hyper's client runs each connection in a task of its own, and owns flow
//! control and the backend's `SETTINGS_MAX_CONCURRENT_STREAMS` (streams
//! past it wait in hyper, never exceed it). The task ends when its
//! connection closes or its last [`SendRequest`] here is dropped (evicted,
//! reaped idle), so nothing outlives its use.
//!
//! A backend's GOAWAY closes its connection to new streams: requests that
//! were queued for it and never sent come back from hyper
//! (`try_send_request`) and are sent on a new connection, and those in
//! flight finish. The connection leaves the set once hyper reports it
//! closed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Uri, Version};
use hyper::client::conn::http2::{Builder, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::time::Instant;

use super::connection_pool::PoolKey;
use super::http1::Transport;
use super::request_body::RequestBody;

/// Requests one connection carries at once before another is opened:
/// RFC 9113 §6.5.2 asks servers to allow at least 100, so no conforming
/// backend queues them, and a busy endpoint gets a few connections (and so
/// a few backend threads) rather than one.
pub const MAX_STREAMS_PER_CONNECTION: usize = 100;

/// Pings an HTTP/2 connection that has been silent this long, so a backend
/// that vanished without a FIN is noticed before a request waits on it.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// How long a ping may go unanswered before the connection is closed.
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// The open HTTP/2 connections, by endpoint and kind.
pub struct Http2Connections {
    endpoints: ArcSwap<HashMap<PoolKey, Arc<EndpointConnections>>>,
    builder: Builder<TokioExecutor>,
}

/// The connections of one endpoint and kind.
#[derive(Default)]
pub struct EndpointConnections {
    open: Mutex<Vec<SharedConnection>>,
    /// Held while a connection is being opened, so that a burst of
    /// requests to a cold endpoint opens one connection, not one each.
    opening: tokio::sync::Mutex<()>,
}

/// One connection and how many requests it carries now.
#[derive(Clone)]
struct SharedConnection {
    send: SendRequest<RequestBody>,
    streams: Arc<StreamCount>,
}

/// Requests in flight on a connection, and since when it has had none.
struct StreamCount {
    in_flight: AtomicUsize,
    idle_since: Mutex<Instant>,
}

/// A stream to be opened on a shared connection: sends one request.
pub struct Http2Stream {
    send: SendRequest<RequestBody>,
    stream: StreamGuard,
    scheme: Scheme,
}

/// One request's claim on its connection's stream count, given back when
/// dropped: when the response body ended, failed or was abandoned.
pub struct StreamGuard(Arc<StreamCount>);

/// What [`to_h2`] changed in a head, to undo it when the request goes
/// elsewhere unsent.
pub struct H2Head {
    host: Option<HeaderValue>,
    connection: Option<HeaderValue>,
}

// === impl Http2Connections ===

impl Default for Http2Connections {
    fn default() -> Self {
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .keep_alive_interval(KEEP_ALIVE_INTERVAL)
            .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
            // Window sizes follow the bandwidth-delay product, as the
            // backend's own hyper or Go server would.
            .adaptive_window(true);
        Http2Connections {
            endpoints: ArcSwap::default(),
            builder,
        }
    }
}

impl Http2Connections {
    /// The connections of `key`, created on first use.
    pub fn endpoint(&self, key: PoolKey) -> Arc<EndpointConnections> {
        super::snapshot_map::get_or_insert(&self.endpoints, key)
    }

    /// A stream on an open connection of `key` with room, if there is one.
    pub fn stream(&self, key: PoolKey, scheme: &Scheme) -> Option<Http2Stream> {
        self.endpoints.load().get(&key)?.stream(scheme)
    }

    /// Runs the HTTP/2 handshake over `io` and adds the connection to
    /// `endpoint`'s; returns a stream on it.
    pub async fn handshake(
        &self,
        connections: &EndpointConnections,
        io: impl Transport,
        scheme: Scheme,
    ) -> Result<Http2Stream, hyper::Error> {
        let (send, connection) = self.builder.handshake(TokioIo::new(io)).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "HTTP/2 connection to a backend ended with an error");
            }
        });
        let shared = SharedConnection {
            send,
            streams: Arc::new(StreamCount {
                in_flight: AtomicUsize::new(0),
                idle_since: Mutex::new(Instant::now()),
            }),
        };
        let stream = shared.claim(scheme);
        connections.lock().push(shared);
        Ok(stream)
    }

    /// Closes connections that the backend closed or that have been idle
    /// longer than `idle_timeout`.
    pub fn reap(&self, idle_timeout: Duration) {
        for connections in self.endpoints.load().values() {
            connections.lock().retain(|shared| {
                !shared.send.is_closed() && !shared.streams.idle_longer_than(idle_timeout)
            });
        }
    }

    /// Forgets every endpoint `in_use` rejects. Its connections close once
    /// their requests in flight finish.
    pub fn retain(&self, in_use: impl Fn(SocketAddr) -> bool) {
        self.endpoints.rcu(|map| {
            map.iter()
                .filter(|(key, _)| in_use(key.endpoint))
                .map(|(key, connections)| (*key, Arc::clone(connections)))
                .collect::<HashMap<_, _>>()
        });
    }

    /// Open connections to `endpoint`, for the status page and tests.
    pub fn open_count(&self, endpoint: SocketAddr) -> usize {
        self.endpoints
            .load()
            .iter()
            .filter(|(key, _)| key.endpoint == endpoint)
            .map(|(_, connections)| connections.lock().len())
            .sum()
    }
}

// === impl EndpointConnections ===

impl EndpointConnections {
    /// A stream on the first open connection with room; closed
    /// connections are dropped on the way.
    pub fn stream(&self, scheme: &Scheme) -> Option<Http2Stream> {
        let mut open = self.lock();
        open.retain(|shared| !shared.send.is_closed());
        open.iter()
            .find(|shared| {
                shared.streams.in_flight.load(Ordering::Relaxed) < MAX_STREAMS_PER_CONNECTION
            })
            .map(|shared| shared.claim(scheme.clone()))
    }

    /// Waits for the right to open a connection (see `opening`).
    pub async fn opening(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.opening.lock().await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<SharedConnection>> {
        // The list stays consistent whatever panicked while holding it.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

// === impl SharedConnection ===

impl SharedConnection {
    fn claim(&self, scheme: Scheme) -> Http2Stream {
        self.streams.in_flight.fetch_add(1, Ordering::Relaxed);
        Http2Stream {
            send: self.send.clone(),
            stream: StreamGuard(Arc::clone(&self.streams)),
            scheme,
        }
    }
}

// === impl StreamCount ===

impl StreamCount {
    fn idle_longer_than(&self, timeout: Duration) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0
            && self
                .idle_since
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .elapsed()
                > timeout
    }
}

// === impl StreamGuard ===

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            *self
                .0
                .idle_since
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Instant::now();
        }
    }
}

// === impl Http2Stream ===

impl Http2Stream {
    /// Sends `request`; a request hyper never put on the connection (it
    /// closed, or the backend's GOAWAY came first) comes back in the error.
    pub async fn send(
        mut self,
        request: http::Request<RequestBody>,
    ) -> Result<(http::Response<hyper::body::Incoming>, StreamGuard), Http2SendError> {
        match self.send.try_send_request(request).await {
            Ok(response) => Ok((response, self.stream)),
            Err(mut failed) => Err(Http2SendError {
                unsent: failed.take_message(),
                error: failed.into_error(),
            }),
        }
    }

    /// `http` or `https`: what the request's `:scheme` says.
    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }
}

/// A request that produced no response on an HTTP/2 connection.
#[derive(Debug)]
pub struct Http2SendError {
    /// hyper's error.
    pub error: hyper::Error,
    /// The request, when it never left.
    pub unsent: Option<http::Request<RequestBody>>,
}

/// Whether the backend turned the stream away before processing it
/// (RFC 9113 §8.7): a `REFUSED_STREAM` reset, or a graceful `GOAWAY`
/// (`NO_ERROR`) whose last stream id is below this one: h2 fails only
/// those streams with the `GOAWAY`, and a graceful backend finishes the
/// others. hyper does not hand the request back in either case, so the
/// caller sends a kept copy. The h2 crate fails streams a backend took,
/// then cut by closing the connection after its graceful `GOAWAY`, with
/// that same error: they count as refused too, which only a backend
/// breaking its own graceful shutdown can cause.
pub fn is_refused(error: &hyper::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = cause {
        if let Some(h2) = error.downcast_ref::<h2::Error>() {
            return h2.is_remote()
                && match h2.reason() {
                    Some(h2::Reason::REFUSED_STREAM) => h2.is_reset(),
                    Some(h2::Reason::NO_ERROR) => h2.is_go_away(),
                    _ => false,
                };
        }
        cause = error.source();
    }
    false
}

/// Turns a head prepared for HTTP/1.1 into one for HTTP/2 (RFC 9113
/// §8.3.1): `Host` becomes `:authority` (or, without one, the backend's
/// address), the URI absolute with `scheme`, and `Transfer-Encoding` and
/// `Connection` go (HTTP/2 frames bodies itself and has no
/// connection-specific fields; `TE: trailers` stays).
pub fn to_h2(head: &mut Parts, scheme: Scheme, backend_address: &str) -> H2Head {
    let host = head.headers.remove(header::HOST);
    let authority = host
        .as_ref()
        .and_then(|host| Authority::try_from(host.as_bytes()).ok())
        .or_else(|| Authority::try_from(backend_address).ok());
    let path = head
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(scheme);
    parts.authority = authority;
    parts.path_and_query = Some(path);
    if let Ok(uri) = Uri::from_parts(parts) {
        head.uri = uri;
    }
    head.headers.remove(header::TRANSFER_ENCODING);
    // `Connection: te` announced `TE: trailers` to an HTTP/1.1 hop; HTTP/2
    // has no connection-specific fields (hyper would drop it, warning).
    let connection = head.headers.remove(header::CONNECTION);
    head.version = Version::HTTP_2;
    H2Head { host, connection }
}

/// Undoes [`to_h2`]: the head as HTTP/1.1 sends it.
pub fn to_http1(head: &mut Parts, h2: H2Head) {
    if let Some(path) = head.uri.path_and_query().cloned() {
        head.uri = Uri::from(path);
    }
    if let Some(host) = h2.host {
        head.headers.insert(header::HOST, host);
    }
    if let Some(connection) = h2.connection {
        head.headers.insert(header::CONNECTION, connection);
    }
    head.version = Version::HTTP_11;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(uri: &str, host: Option<&'static str>) -> Parts {
        let mut builder = http::Request::builder().uri(uri).version(Version::HTTP_11);
        if let Some(host) = host {
            builder = builder.header(header::HOST, host);
        }
        let (mut parts, ()) = builder
            .header(header::TRANSFER_ENCODING, "chunked")
            .header(header::TE, "trailers")
            .header(header::CONNECTION, "te")
            .body(())
            .unwrap()
            .into_parts();
        parts.version = Version::HTTP_11;
        parts
    }

    #[test]
    fn host_becomes_the_authority_and_comes_back() {
        let mut parts = head("/a/b?c=1", Some("api.example.com"));
        let h2 = to_h2(&mut parts, Scheme::HTTP, "10.0.0.1:80");
        assert_eq!(parts.uri.to_string(), "http://api.example.com/a/b?c=1");
        assert_eq!(parts.version, Version::HTTP_2);
        assert!(parts.headers.get(header::HOST).is_none());
        assert!(parts.headers.get(header::TRANSFER_ENCODING).is_none());
        assert_eq!(
            parts.headers.get(header::TE).map(|v| v.as_bytes()),
            Some(&b"trailers"[..])
        );
        assert!(parts.headers.get(header::CONNECTION).is_none());
        to_http1(&mut parts, h2);
        assert_eq!(parts.uri.to_string(), "/a/b?c=1");
        assert_eq!(
            parts.headers.get(header::CONNECTION).map(|v| v.as_bytes()),
            Some(&b"te"[..]),
            "back as it was for an HTTP/1.1 hop"
        );
        assert_eq!(
            parts.headers.get(header::HOST).map(|v| v.as_bytes()),
            Some(&b"api.example.com"[..])
        );
        assert_eq!(parts.version, Version::HTTP_11);
    }

    #[test]
    fn without_host_the_backend_address_is_the_authority() {
        let mut parts = head("/x", None);
        let h2 = to_h2(&mut parts, Scheme::HTTPS, "backend.internal:8443");
        assert_eq!(parts.uri.to_string(), "https://backend.internal:8443/x");
        to_http1(&mut parts, h2);
        assert!(parts.headers.get(header::HOST).is_none());
        assert_eq!(parts.uri.to_string(), "/x");
    }
}
