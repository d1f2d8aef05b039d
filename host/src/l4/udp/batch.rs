//! Batched datagram I/O: up to [`BATCH`] datagrams per `recvmmsg(2)` or
//! `sendmmsg(2)` system call.
//!
//! Under load a socket holds several datagrams whenever its reader wakes;
//! reading them one `recvfrom` each costs a system call per datagram. A
//! shard reads its listener socket this way ([`Received`]), and a flow
//! reads its backend's answers and sends them on to the client in one
//! call each way ([`relay_answers`]).
//!
//! Nothing is allocated per call. A shard's datagrams land in slots it
//! owns; a flow's answers pass through the worker thread's slots, read and
//! sent without an await in between, so one set serves every flow on the
//! thread. The kernel's message headers are kept per thread too: nix's
//! `MultiHeaders` holds raw pointers, so it may not live in a task, which
//! moves between threads. `nix` wraps the calls safely (rustix has
//! `sendmmsg` but no `recvmmsg`).

use std::cell::RefCell;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};

use nix::sys::socket::{
    ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg,
};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use super::MAX_DATAGRAM;

/// Datagrams one call reads or sends at most. Thirty-two is what
/// quinn-udp reads per `recvmmsg`; more only delays the other work of the
/// thread.
pub(super) const BATCH: usize = 32;

/// What a flow's socket waits for: answers, or an ICMP error (readiness of
/// its own: EPOLLERR without EPOLLIN).
pub(super) const ANSWERS: Interest = Interest::READABLE.add(Interest::ERROR);

thread_local! {
    /// Headers for `recvmmsg`, one set per address family: the kernel
    /// shortens each header's address length to the sender's, and nix does
    /// not restore it, so a set must only see senders of one family.
    static RECEIVE_HEADERS: RefCell<[MultiHeaders<SockaddrStorage>; 2]> = RefCell::new([
        MultiHeaders::preallocate(BATCH, None),
        MultiHeaders::preallocate(BATCH, None),
    ]);
    /// Headers for `sendmmsg`, never used to receive: a send points them at
    /// addresses that live only for the call.
    static SEND_HEADERS: RefCell<MultiHeaders<SockaddrStorage>> =
        RefCell::new(MultiHeaders::preallocate(BATCH, None));
    /// The thread's slots for flows' answers ([`relay_answers`]).
    static ANSWER_SLOTS: RefCell<Slots> = RefCell::new(Slots::new());
}

/// [`BATCH`] slots of [`MAX_DATAGRAM`] bytes, allocated zeroed (so lazily
/// by the kernel: small datagrams touch a page per slot).
struct Slots(Vec<u8>);

/// What one receive read: up to [`BATCH`] datagrams and their senders.
pub(super) struct Received {
    slots: Slots,
    /// Sender and length of each slot's datagram; no sender when it was
    /// not an IP address (none is, on a UDP socket).
    datagrams: [(Option<SocketAddr>, usize); BATCH],
    count: usize,
}

/// What [`relay_answers`] did with a flow's answers.
pub(super) struct Relayed {
    /// The length of each answer read, in order.
    pub lengths: [usize; BATCH],
    /// Answers read.
    pub read: usize,
    /// Answers sent to the client; those past it were not (the listener's
    /// send buffer was full, or a send failed).
    pub sent: usize,
    /// Why the rest was not sent, when a send failed.
    pub send_error: Option<io::Error>,
}

// === impl Slots ===

impl Slots {
    fn new() -> Self {
        Slots(vec![0; BATCH * MAX_DATAGRAM])
    }

    fn chunks(&self) -> std::slice::ChunksExact<'_, u8> {
        self.0.chunks_exact(MAX_DATAGRAM)
    }
}

// === impl Received ===

impl Received {
    pub(super) fn new() -> Self {
        Received {
            slots: Slots::new(),
            datagrams: [(None, 0); BATCH],
            count: 0,
        }
    }

    /// Reads what `socket` holds, up to [`BATCH`] datagrams, without
    /// waiting: `WouldBlock` when it holds none (readiness is cleared, so
    /// the caller waits on `readable()` again).
    /// `family` is [`family`] of the socket's address.
    pub(super) fn receive(&mut self, socket: &UdpSocket, family: usize) -> io::Result<usize> {
        let fd = socket.as_raw_fd();
        let slots = &mut self.slots;
        let datagrams = &mut self.datagrams;
        let count = socket.try_io(Interest::READABLE, || {
            read_batch(fd, family, slots, BATCH, |index, sender, length| {
                if let Some(entry) = datagrams.get_mut(index) {
                    *entry = (sender, length);
                }
            })
        })?;
        self.count = count;
        Ok(count)
    }

    /// The datagrams the last receive read: sender and payload.
    pub(super) fn datagrams(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        self.datagrams
            .iter()
            .take(self.count)
            .zip(self.slots.chunks())
            .filter_map(|(&(sender, length), slot)| Some((sender?, slot.get(..length)?)))
    }
}

/// Reads up to `at_most` of the answers waiting on `upstream` (a flow's
/// socket, connected to its backend) and sends them to `client` from
/// `listener`, one system call each way. `family` is [`family`] of the
/// backend's address; `ready`, what `upstream.ready(ANSWERS)` reported.
/// `WouldBlock` when no answer waits; a read error (ICMP port unreachable
/// reads as `ConnectionRefused`) is returned as is.
pub(super) fn relay_answers(
    upstream: &UdpSocket,
    family: usize,
    ready: tokio::io::Ready,
    listener: &UdpSocket,
    client: SocketAddr,
    at_most: usize,
) -> io::Result<Relayed> {
    let mut relayed = Relayed {
        lengths: [0; BATCH],
        read: 0,
        sent: 0,
        send_error: None,
    };
    ANSWER_SLOTS.with_borrow_mut(|slots| {
        let fd = upstream.as_raw_fd();
        let lengths = &mut relayed.lengths;
        // `try_io` takes one interest at a time; `recvmmsg` reports the
        // error either way.
        let interest = if ready.is_error() && !ready.is_readable() {
            Interest::ERROR
        } else {
            Interest::READABLE
        };
        relayed.read = upstream.try_io(interest, || {
            read_batch(fd, family, slots, at_most, |index, _, length| {
                if let Some(entry) = lengths.get_mut(index) {
                    *entry = length;
                }
            })
        })?;
        let to = SockaddrStorage::from(client);
        let fd = listener.as_raw_fd();
        while relayed.sent < relayed.read {
            let (from, count) = (relayed.sent, relayed.read - relayed.sent);
            let sent = listener.try_io(Interest::WRITABLE, || {
                send_batch(fd, slots, &relayed.lengths, from, count, &to)
            });
            match sent {
                Ok(0) => break,
                Ok(sent) => relayed.sent += sent,
                Err(error) => {
                    relayed.send_error = Some(error);
                    break;
                }
            }
        }
        Ok(relayed)
    })
}

/// The index of the receive headers for a socket bound or connected to
/// `address`: 0 for IPv4, 1 for IPv6.
pub(super) fn family(address: SocketAddr) -> usize {
    usize::from(address.is_ipv6())
}

/// One `recvmmsg` of up to `at_most` datagrams into `slots`; `landed`
/// learns each one's slot index, sender and length.
fn read_batch(
    fd: RawFd,
    family: usize,
    slots: &mut Slots,
    at_most: usize,
    mut landed: impl FnMut(usize, Option<SocketAddr>, usize),
) -> io::Result<usize> {
    RECEIVE_HEADERS.with_borrow_mut(|headers| {
        let Some(headers) = headers.get_mut(family) else {
            return Err(io::ErrorKind::Unsupported.into());
        };
        let mut chunks = slots.0.chunks_exact_mut(MAX_DATAGRAM);
        let mut buffers: [[IoSliceMut<'_>; 1]; BATCH] =
            std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or_default())]);
        let wanted = buffers.iter_mut().take(at_most.clamp(1, BATCH));
        let read =
            recvmmsg(fd, headers, wanted, MsgFlags::MSG_DONTWAIT, None).map_err(io::Error::from)?;
        let mut count = 0;
        for message in read {
            let sender = message.address.as_ref().and_then(socket_address);
            landed(count, sender, message.bytes);
            count += 1;
        }
        Ok(count)
    })
}

/// One `sendmmsg` of the `count` datagrams from slot `from` on, all to
/// `to`; how many went.
fn send_batch(
    fd: RawFd,
    slots: &Slots,
    lengths: &[usize; BATCH],
    from: usize,
    count: usize,
    to: &SockaddrStorage,
) -> io::Result<usize> {
    SEND_HEADERS.with_borrow_mut(|headers| {
        let mut chunks = slots.chunks().zip(lengths);
        let payloads: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|_| {
            let payload = chunks
                .next()
                .and_then(|(slot, &length)| slot.get(..length))
                .unwrap_or_default();
            [IoSlice::new(payload)]
        });
        let addresses = [Some(*to); BATCH];
        let batch = payloads.iter().skip(from).take(count);
        let no_control: [ControlMessage<'_>; 0] = [];
        let sent = sendmmsg(
            fd,
            headers,
            batch,
            addresses,
            no_control,
            MsgFlags::MSG_DONTWAIT,
        )
        .map_err(io::Error::from)?;
        Ok(sent.count())
    })
}

/// An IPv4 or IPv6 sender as a std address.
fn socket_address(storage: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = storage.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    storage
        .as_sockaddr_in6()
        .map(|v6| SocketAddr::V6((*v6).into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_receive_reads_a_batch_with_each_sender_and_payload() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = socket.local_addr().unwrap();
        let clients = [
            UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        ];
        let mut sent = Vec::new();
        for n in 0..BATCH + 8 {
            let client = &clients[n % 2];
            let payload = format!("datagram {n}").repeat(n + 1);
            client.send_to(payload.as_bytes(), to).await.unwrap();
            sent.push((client.local_addr().unwrap(), payload.into_bytes()));
        }
        let mut received = Received::new();
        let mut read = Vec::new();
        while read.len() < sent.len() {
            socket.readable().await.unwrap();
            match received.receive(&socket, 0) {
                Ok(count) => {
                    assert!(count <= BATCH);
                    read.extend(
                        received
                            .datagrams()
                            .map(|(sender, payload)| (sender, payload.to_vec())),
                    );
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => panic!("{error}"),
            }
        }
        assert_eq!(read, sent);
        assert!(matches!(
            received.receive(&socket, 0),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock
        ));
    }

    /// A flow's socket connected to `backend`'s, and the listener and
    /// client sockets the answers go through.
    async fn flow_sockets() -> (UdpSocket, UdpSocket, UdpSocket, UdpSocket) {
        let backend = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let upstream = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        upstream
            .connect(backend.local_addr().unwrap())
            .await
            .unwrap();
        let listener = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        (backend, upstream, listener, client)
    }

    #[tokio::test]
    async fn answers_are_relayed_in_order_from_the_listener_up_to_the_limit() {
        let (backend, upstream, listener, client) = flow_sockets().await;
        let to = upstream.local_addr().unwrap();
        for n in 0..5 {
            backend
                .send_to(format!("answer {n}").as_bytes(), to)
                .await
                .unwrap();
        }
        let client_address = client.local_addr().unwrap();
        let mut relayed = Vec::new();
        while relayed.len() < 5 {
            let ready = upstream.ready(ANSWERS).await.unwrap();
            // Three at most per call: the first call stops there.
            match relay_answers(&upstream, 0, ready, &listener, client_address, 3) {
                Ok(batch) => {
                    assert!(batch.read <= 3 && batch.sent == batch.read);
                    assert!(batch.send_error.is_none());
                    relayed.extend(batch.lengths.into_iter().take(batch.read));
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => panic!("{error}"),
            }
        }
        assert_eq!(relayed, [8; 5]);
        let mut buffer = [0u8; 64];
        for n in 0..5 {
            let (length, from) = client.recv_from(&mut buffer).await.unwrap();
            assert_eq!(from, listener.local_addr().unwrap());
            assert_eq!(&buffer[..length], format!("answer {n}").as_bytes());
        }
    }

    #[tokio::test]
    async fn nothing_listening_at_the_backend_reads_as_connection_refused() {
        let (backend, upstream, listener, client) = flow_sockets().await;
        drop(backend);
        upstream.send(b"anyone?").await.unwrap();
        let client_address = client.local_addr().unwrap();
        let error = loop {
            let ready = upstream.ready(ANSWERS).await.unwrap();
            match relay_answers(&upstream, 0, ready, &listener, client_address, BATCH) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => break error,
                Ok(batch) => panic!("{} answers from nowhere", batch.read),
            }
        };
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
    }
}
