//! One flow: a client address bound to a backend through a socket of its
//! own, connected to the backend.
//!
//! The shard forwards the client's datagrams on the socket
//! ([`Flow::forward`]); the flow's task ([`relay`]) reads the backend's
//! answers and sends them to the client from the listener's socket, and
//! ends the flow. The shard sees that a flow ended through its shared
//! state and drops it from its table.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::Instant;

use super::batch;
use super::metrics::{FlowEnd, UdpMetrics};
use crate::upstream::{ActiveRequest, BackendPool, BackendStats, TrafficEvent};

/// The shard's handle on a flow.
pub(super) struct Flow {
    shared: Arc<FlowState>,
    limits: FlowLimits,
    /// The backend's `sent` bytes.
    sent: Option<metrics::Counter>,
    /// The PROXY v2 header the flow's datagrams carry, if any.
    header: Option<FlowHeader>,
}

/// A flow's PROXY v2 header and which datagrams carry it.
pub(super) struct FlowHeader {
    /// The encoded header: the client and the listener's address.
    pub bytes: Vec<u8>,
    /// Every datagram, or only the first.
    pub every: bool,
    /// Whether the first went out.
    pub sent: AtomicBool,
}

/// What the shard and the flow's task share.
struct FlowState {
    /// Connected to the backend.
    upstream: UdpSocket,
    /// When a datagram last went either way, in ms since `started`.
    active_ms: AtomicU64,
    started: Instant,
    /// Client datagrams forwarded.
    requests: AtomicU32,
    /// The flow ended; the shard drops it on sight.
    ended: AtomicBool,
}

/// The limits a flow ends by.
#[derive(Debug, Clone, Copy)]
pub(super) struct FlowLimits {
    pub idle_timeout: Duration,
    pub responses: Option<u32>,
    pub requests: Option<u32>,
}

/// Everything the flow's task needs.
pub(super) struct Relay {
    pub client: SocketAddr,
    /// The listener's socket the client's datagrams came in on.
    pub listener: Arc<UdpSocket>,
    /// [`batch::family`] of the backend's address.
    pub backend_family: usize,
    /// The backend's live counters.
    pub stats: Arc<BackendStats>,
    /// Its pool and id, for passive health (outlier detection).
    pub pool: Arc<BackendPool>,
    pub backend_id: String,
    pub limits: FlowLimits,
    pub metrics: Arc<UdpMetrics>,
    /// The listener's open flows, counted down when this one ends.
    pub open_flows: Arc<AtomicUsize>,
    /// The listener's client pins, told when this flow ends.
    pub affinity: Option<Arc<super::ClientAffinity>>,
    /// Counts the flow as the backend's work while it lasts.
    pub active: ActiveRequest,
    /// Fires when the listener stops.
    pub stop: watch::Receiver<()>,
    /// Whether the backend is leaving (removed, unhealthy, drained).
    pub leaving: watch::Receiver<bool>,
    /// How long the flow may go on once its backend left.
    pub drain_timeout: Duration,
}

// === impl Flow ===

impl Flow {
    /// A socket connected to `address` (the backend's) that has sent the
    /// flow's first datagram, and the flow around it; the handle goes to
    /// the flow's task.
    ///
    /// The first datagram goes out before the socket joins the reactor: a
    /// new socket is not known writable until the reactor's next turn, and
    /// waiting for it cost every flow a wake-up of its own. The socket is
    /// created non-blocking and connected without a `bind` (connecting
    /// binds an ephemeral port): three system calls before the send, as
    /// NGINX makes.
    pub(super) fn open(
        address: SocketAddr,
        limits: FlowLimits,
        sent: Option<metrics::Counter>,
        header: Option<FlowHeader>,
        first: &[u8],
        scratch: &mut Vec<u8>,
    ) -> std::io::Result<(Flow, FlowTask)> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(address),
            socket2::Type::DGRAM.nonblocking(),
            Some(socket2::Protocol::UDP),
        )?;
        socket.connect(&address.into())?;
        socket.send(frame(header.as_ref(), first, scratch))?;
        let upstream = UdpSocket::from_std(socket.into())?;
        let shared = Arc::new(FlowState {
            upstream,
            active_ms: AtomicU64::new(0),
            started: Instant::now(),
            requests: AtomicU32::new(1),
            ended: AtomicBool::new(false),
        });
        let task = FlowTask(Arc::clone(&shared));
        let flow = Flow {
            shared,
            limits,
            sent,
            header,
        };
        flow.count_sent(first);
        Ok((flow, task))
    }

    /// Whether the flow ended (its task returned).
    pub(super) fn ended(&self) -> bool {
        self.shared.ended.load(Ordering::Relaxed)
    }

    /// Sends a later client datagram to the backend; `Err` when the
    /// socket refused it. `Ok(false)` when the flow had carried `requests`
    /// datagrams already: the caller starts a new flow.
    pub(super) async fn forward(
        &self,
        datagram: &[u8],
        scratch: &mut Vec<u8>,
    ) -> std::io::Result<bool> {
        let forwarded = self.shared.requests.fetch_add(1, Ordering::Relaxed);
        if self.limits.requests.is_some_and(|max| forwarded >= max) {
            return Ok(false);
        }
        self.shared.touch();
        // Awaited: a full send buffer is rare and brief.
        self.shared
            .upstream
            .send(frame(self.header.as_ref(), datagram, scratch))
            .await?;
        self.count_sent(datagram);
        Ok(true)
    }

    fn count_sent(&self, datagram: &[u8]) {
        if let Some(sent) = &self.sent {
            sent.increment(datagram.len() as u64);
        }
    }
}

/// `datagram` as it goes to the backend: behind the flow's PROXY header
/// when this datagram carries one (assembled in `scratch`, the shard's,
/// so that no datagram allocates).
fn frame<'a>(
    header: Option<&FlowHeader>,
    datagram: &'a [u8],
    scratch: &'a mut Vec<u8>,
) -> &'a [u8] {
    match header {
        Some(header) if header.every || !header.sent.swap(true, Ordering::Relaxed) => {
            behind(&header.bytes, datagram, scratch)
        }
        _ => datagram,
    }
}

/// `datagram` behind the PROXY `header`, assembled in `scratch`.
pub(super) fn behind<'a>(header: &[u8], datagram: &[u8], scratch: &'a mut Vec<u8>) -> &'a [u8] {
    scratch.clear();
    scratch.extend_from_slice(header);
    scratch.extend_from_slice(datagram);
    scratch.as_slice()
}

/// The flow task's side of the shared state, for [`relay`].
pub(super) struct FlowTask(Arc<FlowState>);

// === impl FlowState ===

impl FlowState {
    fn touch(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.active_ms.store(now, Ordering::Relaxed);
    }

    /// When the flow idles out, from its last datagram either way.
    fn idle_deadline(&self, idle: Duration) -> Instant {
        self.started + Duration::from_millis(self.active_ms.load(Ordering::Relaxed)) + idle
    }
}

// === impl Relay ===

impl Relay {
    /// Counts a batch of answers: bytes from the backend, and each answer
    /// sent to the client or dropped. A full send buffer drops the rest of
    /// a batch (UDP may lose datagrams anywhere on the way; holding them
    /// would hold the thread's answer slots across an await).
    fn count(&self, relayed: &batch::Relayed) {
        if let Some(error) = &relayed.send_error {
            tracing::debug!(%error, client = %self.client, "udp answer not sent");
        }
        let bytes = self.stats.bytes();
        for (index, &length) in relayed.lengths.iter().take(relayed.read).enumerate() {
            if let Some(bytes) = bytes {
                bytes.received.increment(length as u64);
            }
            if index < relayed.sent {
                self.metrics.to_client.count(length);
            } else {
                self.metrics.dropped(super::metrics::DropReason::SendError);
            }
        }
    }

    /// Passive health: what the flow learnt of its backend, counted
    /// towards the pool's outlier detection (when it has one).
    fn observe(&self, event: TrafficEvent) {
        let backends = self.pool.backends();
        if let Some(backend) = backends.by_id(&self.backend_id) {
            crate::health::observe(&self.pool, backend, event);
        }
    }
}

/// Relays the backend's answers to the client until the flow ends; marks
/// it ended and counts why. Answers are read and sent on in batches
/// ([`batch::relay_answers`]).
pub(super) async fn relay(task: FlowTask, mut relay: Relay) {
    let state = &task.0;
    let mut answers: u64 = 0;
    let drained = crate::upstream::drained(relay.leaving.clone(), relay.drain_timeout);
    tokio::pin!(drained);
    let end = loop {
        let deadline = state.idle_deadline(relay.limits.idle_timeout);
        let ready = tokio::select! {
            _ = relay.stop.changed() => break FlowEnd::Stopped,
            () = &mut drained => break FlowEnd::Drained,
            _ = tokio::time::sleep_until(deadline) => {
                // Datagrams from the client may have moved the deadline.
                if state.idle_deadline(relay.limits.idle_timeout) <= Instant::now() {
                    break FlowEnd::Idle;
                }
                continue;
            }
            ready = state.upstream.ready(batch::ANSWERS) => match ready {
                Ok(ready) => ready,
                Err(error) => {
                    tracing::debug!(%error, client = %relay.client, "udp flow failed");
                    break FlowEnd::Error;
                }
            },
        };
        // With `responses`, no answer past the last one due is relayed.
        let due = relay.limits.responses.map(|per_request| {
            let asked = u64::from(state.requests.load(Ordering::Relaxed).max(1));
            u64::from(per_request) * asked
        });
        let at_most = due.map_or(batch::BATCH, |due| {
            usize::try_from(due.saturating_sub(answers)).unwrap_or(batch::BATCH)
        });
        let relayed = match batch::relay_answers(
            &state.upstream,
            relay.backend_family,
            ready,
            &relay.listener,
            relay.client,
            at_most,
        ) {
            Ok(relayed) => relayed,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
            // ICMP port unreachable on the connected socket: nothing
            // listens there.
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
                relay.stats.record_failure();
                relay.observe(TrafficEvent::ConnectFailure);
                break FlowEnd::Unreachable;
            }
            Err(error) => {
                tracing::debug!(%error, client = %relay.client, "udp flow failed");
                break FlowEnd::Error;
            }
        };
        state.touch();
        if answers == 0 && relayed.read > 0 {
            // The first answer's wait feeds the latency that
            // least-response-time balancers read; an answer is UDP's
            // "connected" for outlier detection.
            relay.stats.record_success(state.started.elapsed());
            relay.observe(TrafficEvent::Connected);
        }
        relay.count(&relayed);
        answers += relayed.read as u64;
        if due.is_some_and(|due| answers >= due) {
            break FlowEnd::Responses;
        }
    };
    state.ended.store(true, Ordering::Relaxed);
    relay.open_flows.fetch_sub(1, Ordering::Relaxed);
    if let Some(pins) = &relay.affinity {
        pins.closed(relay.client.ip(), relay.limits.idle_timeout);
    }
    relay.metrics.flow_ended(end);
    drop(relay.active);
}
