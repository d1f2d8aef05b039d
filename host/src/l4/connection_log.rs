//! What one TCP connection moved and where it went: its bytes counted
//! into the listener's and the backend's metrics as they pass, and, when
//! the plan has an access log, one line at the end.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use super::forward::ByteMeter;
use super::metrics::{CloseReason, TcpMetrics};
use crate::access_log::{AccessLog, Entry, Kind};
use crate::metrics::ByteCounters;

/// One connection's facts.
pub(super) struct ConnectionLog {
    listener: Arc<str>,
    metrics: Arc<TcpMetrics>,
    log: Option<AccessLog>,
    at: SystemTime,
    /// The client as balancers saw it (a trusted PROXY header's source).
    pub client: SocketAddr,
    /// The pool routed to.
    pub pool: Option<Arc<str>>,
    /// The backend connected to.
    pub backend: Option<String>,
    /// The backend's byte counters, once connected.
    pub backend_bytes: Option<ByteCounters>,
    client_to_backend: AtomicU64,
    backend_to_client: AtomicU64,
}

// === impl ConnectionLog ===

impl ConnectionLog {
    pub(super) fn new(
        listener: Arc<str>,
        metrics: Arc<TcpMetrics>,
        log: Option<AccessLog>,
        client: SocketAddr,
    ) -> Self {
        ConnectionLog {
            listener,
            metrics,
            log,
            at: SystemTime::now(),
            client,
            pool: None,
            backend: None,
            backend_bytes: None,
            client_to_backend: AtomicU64::new(0),
            backend_to_client: AtomicU64::new(0),
        }
    }

    /// Whether a line will be written (what only the line needs is
    /// gathered only then).
    pub(super) fn is_logged(&self) -> bool {
        self.log.is_some()
    }

    /// Writes the line, when there is a log.
    pub(super) fn finish(self, reason: CloseReason, duration: Duration) {
        let Some(log) = self.log else {
            return;
        };
        log.log(Entry {
            at: self.at,
            kind: Kind::Tcp,
            listener: self.listener,
            route: None,
            pool: self.pool,
            backend: self.backend,
            client: self.client,
            method: None,
            path: None,
            status: None,
            close_reason: Some(reason.label()),
            duration,
            upstream_duration: None,
            bytes_in: self.client_to_backend.into_inner(),
            bytes_out: self.backend_to_client.into_inner(),
            request_id: None,
            retries: 0,
            verdict: None,
        });
    }
}

impl ByteMeter for ConnectionLog {
    fn client_to_backend(&self, count: u64) {
        self.metrics.client_to_backend(count);
        if let Some(bytes) = &self.backend_bytes {
            bytes.sent.increment(count);
        }
        self.client_to_backend.fetch_add(count, Ordering::Relaxed);
    }

    fn backend_to_client(&self, count: u64) {
        self.metrics.backend_to_client(count);
        if let Some(bytes) = &self.backend_bytes {
            bytes.received.increment(count);
        }
        self.backend_to_client.fetch_add(count, Ordering::Relaxed);
    }
}
