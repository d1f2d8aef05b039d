//! Per-listener TCP metrics, registered once per listener so that the
//! connection path only increments handles.

use std::sync::Arc;

use metrics::{Counter, Gauge};

use crate::metrics::histogram::Histogram;

use super::forward::ByteMeter;
use crate::metrics as names;

/// The metrics of one TCP listener.
pub struct TcpMetrics {
    opened: Counter,
    /// `bascule_tcp_connections_closed_total`, one per [`CloseReason`].
    closed: [Counter; CloseReason::ALL.len()],
    active: Gauge,
    client_to_backend: Counter,
    backend_to_client: Counter,
    duration: Arc<Histogram>,
}

/// Why a connection closed: the `reason` label of
/// `bascule_tcp_connections_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Both sides finished.
    Done,
    /// No byte moved for the idle timeout.
    Idle,
    /// Its backend left and the drain timeout passed.
    Drained,
    /// A socket error mid-stream.
    Error,
    /// The client sent nothing usable before the preamble timeout.
    PreambleTimeout,
    /// A malformed PROXY header from a trusted source.
    BadProxyHeader,
    /// A PROXY header from an untrusted source.
    UntrustedProxyHeader,
    /// No route matched (no SNI, or an unknown one, and no default route).
    NoRoute,
    /// The pool offered no backend.
    NoBackend,
    /// Every candidate refused or timed out.
    ConnectFailed,
    /// The TLS handshake of a terminating route failed or timed out.
    TlsHandshake,
}

// === impl TcpMetrics ===

impl TcpMetrics {
    /// Registers the metrics of `listener`.
    pub fn new(listener: &str) -> Self {
        let name = || listener.to_owned();
        let bytes = |direction: &'static str| metrics::counter!(names::TCP_BYTES, "listener" => name(), "direction" => direction);
        TcpMetrics {
            closed: CloseReason::ALL.map(|reason| {
                metrics::counter!(
                    names::TCP_CONNECTIONS_CLOSED,
                    "listener" => name(),
                    "reason" => reason.label(),
                )
            }),
            opened: metrics::counter!(names::TCP_CONNECTIONS_OPENED, "listener" => name()),
            active: metrics::gauge!(names::TCP_CONNECTIONS_ACTIVE, "listener" => name()),
            client_to_backend: bytes("client-to-backend"),
            backend_to_client: bytes("backend-to-client"),
            duration: names::TCP_LIFETIMES.series(&[("listener", listener)]),
        }
    }

    /// A connection was accepted.
    pub fn opened(&self) {
        self.opened.increment(1);
        self.active.increment(1.0);
    }

    /// A connection closed after `seconds`.
    pub fn closed(&self, reason: CloseReason, seconds: f64) {
        self.active.decrement(1.0);
        self.duration
            .record(std::time::Duration::try_from_secs_f64(seconds).unwrap_or_default());
        if let Some(counter) = self.closed.get(reason as usize) {
            counter.increment(1);
        }
        match reason {
            CloseReason::Idle => crate::metrics::timed_out("tcp-idle"),
            CloseReason::PreambleTimeout => crate::metrics::timed_out("preamble"),
            _ => {}
        }
    }
}

impl ByteMeter for TcpMetrics {
    fn client_to_backend(&self, count: u64) {
        self.client_to_backend.increment(count);
    }

    fn backend_to_client(&self, count: u64) {
        self.backend_to_client.increment(count);
    }
}

// === impl CloseReason ===

impl CloseReason {
    /// Every reason, in declaration order (`reason as usize` indexes it).
    const ALL: [CloseReason; 11] = [
        CloseReason::Done,
        CloseReason::Idle,
        CloseReason::Drained,
        CloseReason::Error,
        CloseReason::PreambleTimeout,
        CloseReason::BadProxyHeader,
        CloseReason::UntrustedProxyHeader,
        CloseReason::NoRoute,
        CloseReason::NoBackend,
        CloseReason::ConnectFailed,
        CloseReason::TlsHandshake,
    ];

    pub fn label(self) -> &'static str {
        match self {
            CloseReason::Done => "done",
            CloseReason::Idle => "idle-timeout",
            CloseReason::Drained => "drained",
            CloseReason::Error => "error",
            CloseReason::PreambleTimeout => "preamble-timeout",
            CloseReason::BadProxyHeader => "bad-proxy-header",
            CloseReason::UntrustedProxyHeader => "untrusted-proxy-header",
            CloseReason::NoRoute => "no-route",
            CloseReason::NoBackend => "no-backend",
            CloseReason::ConnectFailed => "connect-failed",
            CloseReason::TlsHandshake => "tls-handshake",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_indexes_its_own_counter() {
        for (index, reason) in CloseReason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, index, "{reason:?}");
        }
    }
}
