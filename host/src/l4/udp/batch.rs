//! Batched receive on a shard's socket: up to [`BATCH`] datagrams per
//! `recvmmsg(2)` system call, into buffers the shard owns.
//!
//! Under load a shard's socket holds several datagrams whenever the shard
//! wakes; reading them one `recvfrom` each costs a system call per
//! datagram, and one `recvmmsg` reads them all. Nothing is allocated per
//! call: the datagrams land in one buffer of [`BATCH`] slots allocated
//! with the shard, and the kernel's message headers are kept per thread
//! (nix's `MultiHeaders` holds raw pointers, so it may not live in the
//! shard's task, which moves between threads). `nix` wraps the call
//! safely; rustix has `sendmmsg` but no `recvmmsg`.

use std::cell::RefCell;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use super::MAX_DATAGRAM;

/// Datagrams one receive reads at most. Thirty-two is what quinn-udp
/// reads per `recvmmsg`; more only delays the shard's other work.
pub(super) const BATCH: usize = 32;

thread_local! {
    /// The kernel's headers for one `recvmmsg`, filled per call.
    static HEADERS: RefCell<MultiHeaders<SockaddrStorage>> =
        RefCell::new(MultiHeaders::preallocate(BATCH, None));
}

/// What one receive read: up to [`BATCH`] datagrams and their senders.
pub(super) struct Received {
    /// [`BATCH`] slots of [`MAX_DATAGRAM`] bytes. Allocated zeroed (so
    /// lazily by the kernel): small datagrams touch a page per slot.
    slots: Vec<u8>,
    /// Sender and length of each slot's datagram; no sender when it was
    /// not an IP address (none is, on a UDP socket).
    datagrams: [(Option<SocketAddr>, usize); BATCH],
    count: usize,
}

// === impl Received ===

impl Received {
    pub(super) fn new() -> Self {
        Received {
            slots: vec![0; BATCH * MAX_DATAGRAM],
            datagrams: [(None, 0); BATCH],
            count: 0,
        }
    }

    /// Reads what `socket` holds, up to [`BATCH`] datagrams, without
    /// waiting: `WouldBlock` when it holds none (readiness is cleared, so
    /// the caller waits on `readable()` again).
    pub(super) fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        let fd = socket.as_raw_fd();
        let count = socket.try_io(Interest::READABLE, || {
            read_batch(fd, &mut self.slots, &mut self.datagrams)
        })?;
        self.count = count;
        Ok(count)
    }

    /// The datagrams the last receive read: sender and payload.
    pub(super) fn datagrams(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        self.datagrams
            .iter()
            .take(self.count)
            .zip(self.slots.chunks_exact(MAX_DATAGRAM))
            .filter_map(|(&(sender, length), slot)| Some((sender?, slot.get(..length)?)))
    }
}

/// One `recvmmsg` into `slots`; the sender and length of slot `i`'s
/// datagram go to `datagrams[i]`.
fn read_batch(
    fd: std::os::fd::RawFd,
    slots: &mut [u8],
    datagrams: &mut [(Option<SocketAddr>, usize); BATCH],
) -> io::Result<usize> {
    HEADERS.with_borrow_mut(|headers| {
        let mut chunks = slots.chunks_exact_mut(MAX_DATAGRAM);
        let mut buffers: [[IoSliceMut<'_>; 1]; BATCH] =
            std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or_default())]);
        let read = recvmmsg(
            fd,
            headers,
            buffers.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )
        .map_err(io::Error::from)?;
        let mut count = 0;
        for (message, entry) in read.zip(datagrams.iter_mut()) {
            *entry = (
                message.address.as_ref().and_then(socket_address),
                message.bytes,
            );
            count += 1;
        }
        Ok(count)
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
            match received.receive(&socket) {
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
            received.receive(&socket),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock
        ));
    }
}
