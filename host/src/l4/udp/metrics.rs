//! Per-listener UDP metrics, registered once per listener so that the
//! datagram path only increments handles.

use metrics::{Counter, Gauge};

use crate::metrics as names;

/// The metrics of one UDP listener.
pub struct UdpMetrics {
    /// Datagrams and bytes from clients to backends.
    pub to_backend: Traffic,
    /// Datagrams and bytes from backends to clients.
    pub to_client: Traffic,
    opened: Counter,
    active: Gauge,
    /// `bascule_udp_flows_closed_total`, one per [`FlowEnd`].
    closed: [Counter; FlowEnd::ALL.len()],
    /// `bascule_udp_datagrams_dropped_total`, one per [`DropReason`].
    dropped: [Counter; DropReason::ALL.len()],
}

/// The datagram and byte counters of one direction.
pub struct Traffic {
    datagrams: Counter,
    bytes: Counter,
}

/// Why a flow ended: the `reason` label of `bascule_udp_flows_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowEnd {
    /// No datagram either way for the idle timeout.
    Idle,
    /// The backend sent the answers `responses` asked for.
    Responses,
    /// The backend's host answered with ICMP port unreachable.
    Unreachable,
    /// Its backend left and the drain timeout passed.
    Drained,
    /// A socket error.
    Error,
    /// The listener stopped (a reload removed it, or shutdown).
    Stopped,
}

/// Why a datagram was dropped: the `reason` label of
/// `bascule_udp_datagrams_dropped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// A new flow past the listener's `max-flows`.
    MaxFlows,
    /// The pool offered no backend.
    NoBackend,
    /// Sending it failed (a full socket buffer, an unreachable backend).
    SendError,
}

// === impl UdpMetrics ===

impl UdpMetrics {
    /// Registers the metrics of `listener`.
    pub fn new(listener: &str) -> Self {
        let name = || listener.to_owned();
        let traffic = |direction: &'static str| Traffic {
            datagrams: metrics::counter!(names::UDP_DATAGRAMS, "listener" => name(), "direction" => direction),
            bytes: metrics::counter!(names::UDP_BYTES, "listener" => name(), "direction" => direction),
        };
        UdpMetrics {
            to_backend: traffic("client-to-backend"),
            to_client: traffic("backend-to-client"),
            opened: metrics::counter!(names::UDP_FLOWS_OPENED, "listener" => name()),
            active: metrics::gauge!(names::UDP_FLOWS_ACTIVE, "listener" => name()),
            closed: FlowEnd::ALL.map(|end| {
                metrics::counter!(names::UDP_FLOWS_CLOSED, "listener" => name(), "reason" => end.label())
            }),
            dropped: DropReason::ALL.map(|reason| {
                metrics::counter!(names::UDP_DROPPED, "listener" => name(), "reason" => reason.label())
            }),
        }
    }

    /// Counts a flow that opened.
    pub fn flow_opened(&self) {
        self.opened.increment(1);
        self.active.increment(1.0);
    }

    /// Counts a flow that ended, and why.
    pub fn flow_ended(&self, end: FlowEnd) {
        self.active.decrement(1.0);
        if let Some(counter) = self.closed.get(end as usize) {
            counter.increment(1);
        }
    }

    /// Counts a dropped datagram.
    pub fn dropped(&self, reason: DropReason) {
        if let Some(counter) = self.dropped.get(reason as usize) {
            counter.increment(1);
        }
    }
}

// === impl Traffic ===

impl Traffic {
    /// Counts one datagram of `bytes` payload bytes.
    pub fn count(&self, bytes: usize) {
        self.datagrams.increment(1);
        self.bytes.increment(bytes as u64);
    }
}

// === impl FlowEnd ===

impl FlowEnd {
    /// Every reason, in the order of `UdpMetrics::closed`.
    const ALL: [FlowEnd; 6] = [
        FlowEnd::Idle,
        FlowEnd::Responses,
        FlowEnd::Unreachable,
        FlowEnd::Drained,
        FlowEnd::Error,
        FlowEnd::Stopped,
    ];

    fn label(self) -> &'static str {
        match self {
            FlowEnd::Idle => "idle-timeout",
            FlowEnd::Responses => "responses",
            FlowEnd::Unreachable => "backend-unreachable",
            FlowEnd::Drained => "drained",
            FlowEnd::Error => "error",
            FlowEnd::Stopped => "stopped",
        }
    }
}

// === impl DropReason ===

impl DropReason {
    /// Every reason, in the order of `UdpMetrics::dropped`.
    const ALL: [DropReason; 3] = [
        DropReason::MaxFlows,
        DropReason::NoBackend,
        DropReason::SendError,
    ];

    fn label(self) -> &'static str {
        match self {
            DropReason::MaxFlows => "max-flows",
            DropReason::NoBackend => "no-backend",
            DropReason::SendError => "send-error",
        }
    }
}
