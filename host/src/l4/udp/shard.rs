//! One shard of a UDP listener: its socket's datagrams, the flows they
//! belong to, and new flows balanced through the pool.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::batch::{self, Received};
use super::flow::{self, Flow, FlowHeader, FlowLimits, Relay};
use super::metrics::{DropReason, UdpMetrics};
use super::{MAX_DATAGRAM, UdpListenerPlan};
use crate::config::ProxyHeaderOn;
use crate::l4::ProxyProtocolVersion;
use crate::l4::proxy_protocol::{Origin, ProxyHeader};
use crate::plan::Plan;
use crate::upstream::{Protocol, RequestView};

/// How often ended flows leave the table even when their clients stay
/// silent.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// A PROXY v2 header over UDP: 16 bytes and an IPv6 address block.
const PROXY_HEADER_ROOM: usize = 16 + 36;

/// A shard's socket and what it serves with.
pub(super) struct Shard {
    pub socket: Arc<UdpSocket>,
    /// The socket's address: the destination PROXY headers name.
    pub local: Option<SocketAddr>,
    /// Whether this shard forgets the listener's lapsed client pins (one
    /// shard does, for all of them).
    pub sweeps_pins: bool,
    pub listener: Arc<str>,
    pub plan: Arc<ArcSwap<Plan>>,
    pub metrics: Arc<UdpMetrics>,
    pub stop: watch::Receiver<()>,
}

/// Reads the shard's socket until the listener stops.
pub(super) async fn run(mut shard: Shard) {
    let mut flows: HashMap<SocketAddr, Flow> = HashMap::new();
    let mut received = Received::new();
    let family = shard.local.map_or(0, batch::family);
    // Datagrams with a PROXY header are assembled here.
    let mut scratch = Vec::with_capacity(MAX_DATAGRAM + PROXY_HEADER_ROOM);
    let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
    // `per-datagram` sends go out unconnected, from one socket per family.
    let mut one_way: [Option<UdpSocket>; 2] = [None, None];
    loop {
        tokio::select! {
            _ = shard.stop.changed() => break,
            _ = sweep.tick() => {
                flows.retain(|_, flow| !flow.ended());
                if !shard.sweeps_pins {
                    continue;
                }
                if let Some(pins) = shard.plan.load().listener(&shard.listener)
                    .and_then(|listener| listener.routes.udp())
                    .and_then(|udp| udp.affinity.as_ref())
                {
                    pins.sweep();
                }
                continue;
            }
            ready = shard.socket.readable() => if let Err(error) = ready {
                tracing::debug!(%error, listener = %shard.listener, "udp socket failed");
                continue;
            },
        }
        match received.receive(&shard.socket, family) {
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(error) => {
                tracing::debug!(%error, listener = %shard.listener, "udp receive failed");
                continue;
            }
        }
        for (client, datagram) in received.datagrams() {
            serve(
                &shard,
                &mut flows,
                &mut one_way,
                &mut scratch,
                client,
                datagram,
            )
            .await;
        }
    }
}

/// Sends one client datagram on: into its flow, into a new flow, or on
/// its own (`per-datagram`).
async fn serve(
    shard: &Shard,
    flows: &mut HashMap<SocketAddr, Flow>,
    one_way: &mut [Option<UdpSocket>; 2],
    scratch: &mut Vec<u8>,
    client: SocketAddr,
    datagram: &[u8],
) {
    let length = datagram.len();
    if let Some(flow) = flows.get(&client).filter(|flow| !flow.ended()) {
        match flow.forward(datagram, scratch).await {
            Ok(true) => {
                shard.metrics.to_backend.count(length);
                return;
            }
            // Its `requests` are spent: the datagram opens a new flow.
            Ok(false) => {}
            Err(_) => {
                shard.metrics.dropped(DropReason::SendError);
                return;
            }
        }
    }
    // The plan current now decides new flows; open ones keep going.
    let Some(listener) = shard
        .plan
        .load()
        .listener(&shard.listener)
        .and_then(|listener| listener.routes.udp())
        .cloned()
    else {
        return;
    };
    if listener.per_datagram {
        send_one_way(shard, &listener, one_way, client, datagram, scratch).await;
        return;
    }
    if listener.open_flows.load(Ordering::Relaxed) >= listener.max_flows {
        shard.metrics.dropped(DropReason::MaxFlows);
        return;
    }
    match open_flow(shard, &listener, client, datagram, scratch) {
        Ok(flow) => {
            shard.metrics.to_backend.count(length);
            flows.insert(client, flow);
        }
        Err(reason) => shard.metrics.dropped(reason),
    }
}

/// The request view a balancer sees for `client`'s flow.
fn view(shard: &Shard, client: SocketAddr) -> RequestView {
    RequestView {
        protocol: Protocol::Udp,
        listener: Arc::clone(&shard.listener),
        client,
        sni: None,
        tls: None,
        http: None,
    }
}

/// Balances a new flow for `client`, sends its `first` datagram and
/// starts its task: the first candidate with an address and a socket that
/// takes the datagram wins. A client IP pinned by `affinity = "client-ip"`
/// goes to its backend without a balancer call while that backend takes
/// new work. The error says why the datagram was dropped.
fn open_flow(
    shard: &Shard,
    listener: &UdpListenerPlan,
    client: SocketAddr,
    first: &[u8],
    scratch: &mut Vec<u8>,
) -> Result<Flow, DropReason> {
    let pinned = listener
        .affinity
        .as_ref()
        .and_then(|pins| pins.pinned(client.ip()))
        .and_then(|backend| listener.pool.choose_pinned(&backend));
    let choice = match pinned.map_or_else(|| listener.pool.choose(&view(shard, client)), Ok) {
        Ok(choice) => choice,
        Err(error) => {
            tracing::debug!(error = %crate::error_chain(&error), "no backend for udp flow");
            return Err(DropReason::NoBackend);
        }
    };
    let mut dropped = DropReason::NoBackend;
    let limits = FlowLimits {
        idle_timeout: listener.idle_timeout,
        responses: listener.responses,
        requests: listener.requests,
    };
    for backend in choice.backends() {
        let Some(address) = backend.endpoints.pick() else {
            continue;
        };
        let sent = backend.stats.bytes().map(|bytes| bytes.sent.clone());
        let header = proxy_header(shard, listener, client).map(|bytes| FlowHeader {
            bytes,
            every: listener.proxy_header == ProxyHeaderOn::EveryDatagram,
            sent: AtomicBool::new(false),
        });
        let (flow, state) = match Flow::open(address, limits, sent, header, first, scratch) {
            Ok(opened) => opened,
            Err(error) => {
                tracing::debug!(%error, backend = %backend.id, "udp flow socket failed");
                backend.stats.record_failure();
                dropped = DropReason::SendError;
                continue;
            }
        };
        listener.open_flows.fetch_add(1, Ordering::Relaxed);
        if let Some(pins) = &listener.affinity {
            pins.opened(client.ip(), &backend.id);
        }
        shard.metrics.flow_opened();
        tokio::spawn(flow::relay(
            state,
            Relay {
                client,
                listener: Arc::clone(&shard.socket),
                backend_family: batch::family(address),
                stats: Arc::clone(&backend.stats),
                pool: Arc::clone(&listener.pool),
                backend_id: backend.id.clone(),
                limits,
                metrics: Arc::clone(&shard.metrics),
                open_flows: Arc::clone(&listener.open_flows),
                affinity: listener.affinity.clone(),
                active: backend.stats.start(),
                stop: shard.stop.clone(),
                leaving: backend.stats.leaving(),
                drain_timeout: listener.pool.settings().drain_timeout,
            },
        ));
        return Ok(flow);
    }
    Err(dropped)
}

/// The PROXY v2 header of `client`'s datagrams, when the pool sends one:
/// the client, and the listener's address as the destination.
fn proxy_header(shard: &Shard, listener: &UdpListenerPlan, client: SocketAddr) -> Option<Vec<u8>> {
    if listener.pool.settings().proxy_protocol != Some(ProxyProtocolVersion::V2) {
        return None;
    }
    let destination = shard.local?;
    let origin = Origin::Known {
        source: client,
        destination,
    };
    Some(ProxyHeader::new(origin).encode_v2_datagram())
}

/// `per-datagram`: balances `datagram` on its own and sends it from the
/// shard's unconnected socket (with the PROXY header, when the pool sends
/// one); answers are not relayed.
async fn send_one_way(
    shard: &Shard,
    listener: &UdpListenerPlan,
    sockets: &mut [Option<UdpSocket>; 2],
    client: SocketAddr,
    datagram: &[u8],
    scratch: &mut Vec<u8>,
) {
    let backend = listener
        .pool
        .choose(&view(shard, client))
        .ok()
        .and_then(|choice| {
            choice.backends().find_map(|backend| {
                Some((
                    backend.endpoints.pick()?,
                    backend.stats.bytes().map(|b| b.sent.clone()),
                ))
            })
        });
    let Some((address, sent)) = backend else {
        shard.metrics.dropped(DropReason::NoBackend);
        return;
    };
    let family = usize::from(address.is_ipv6());
    let Some(slot) = sockets.get_mut(family) else {
        return;
    };
    if slot.is_none() {
        let local = super::any_port_for(address);
        *slot = UdpSocket::bind(local).await.ok();
    }
    let Some(socket) = slot.as_ref() else {
        shard.metrics.dropped(DropReason::SendError);
        return;
    };
    let framed = match proxy_header(shard, listener, client) {
        Some(header) => flow::behind(&header, datagram, scratch),
        None => datagram,
    };
    match socket.send_to(framed, address).await {
        Ok(_) => {
            shard.metrics.to_backend.count(datagram.len());
            if let Some(sent) = sent {
                sent.increment(datagram.len() as u64);
            }
        }
        Err(_) => shard.metrics.dropped(DropReason::SendError),
    }
}
