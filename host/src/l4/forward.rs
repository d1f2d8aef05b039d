//! Moving bytes both ways between a client and a backend until both are
//! done: half-close aware, with an idle timeout and an outside stop (drain).
//!
//! Each direction starts by copying through a small userspace buffer. When a
//! read fills that buffer, the stream is a bulk transfer, and on Linux (with
//! zero copy enabled) the direction switches to `splice(2)` through a pipe,
//! so the payload never enters userspace. Short request/response exchanges
//! never pay for the pipe's setup; bulk ones stop paying for copies.

use std::future::Future;
use std::io;
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::BufMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::runtime::RuntimeFlavor;
use tokio::time::Instant;

use super::proxy_protocol::{self, Signature};

/// Bytes per userspace copy: HAProxy's default buffer size.
const COPY_BUFFER: usize = 16 * 1024;
/// What a userspace copy starts with, until a read fills it.
const IDLE_COPY_BUFFER: usize = 1024;

/// How a connection ended.
#[derive(Debug)]
pub enum BridgeEnd {
    /// Both sides finished sending.
    Closed,
    /// Nothing moved either way for the idle timeout.
    Idle,
    /// The stop future fired (the backend drained).
    Stopped,
    /// The client opened with a PROXY header it was not trusted to send.
    ProxyHeader,
    /// A socket failed (reset, broken pipe).
    Failed(io::Error),
}

/// Options of one bridge.
#[derive(Debug, Clone, Copy)]
pub struct BridgeOptions {
    /// Close after this long without a byte either way.
    pub idle_timeout: Duration,
    /// Switch bulk transfers to `splice(2)` (Linux only; elsewhere ignored).
    pub zero_copy: bool,
    /// End the connection if the client's first bytes are a PROXY header
    /// (the listener accepts them, but not from this client).
    pub reject_proxy_header: bool,
}

/// Counts bytes per direction as they move.
pub trait ByteMeter: Sync {
    /// `count` bytes went from client to backend.
    fn client_to_backend(&self, count: u64);
    /// `count` bytes went from backend to client.
    fn backend_to_client(&self, count: u64);
}

/// What both directions share: when a byte last moved, and whether one
/// direction has already ended.
struct Activity {
    start: Instant,
    last_millis: AtomicU64,
    one_direction_ended: AtomicBool,
}

/// Forwards between `client` and `backend` until both directions have seen
/// end-of-stream (each end-of-stream is passed on as a write shutdown, so a
/// client that half-closes still receives the whole response), a socket
/// fails, the connection idles out, or `stop` completes.
pub async fn bridge(
    client: &TcpStream,
    backend: &TcpStream,
    options: BridgeOptions,
    meter: &dyn ByteMeter,
    stop: impl Future<Output = ()>,
) -> BridgeEnd {
    let activity = Activity::new();
    let upstream = pump(
        client,
        backend,
        options.zero_copy,
        options.reject_proxy_header,
        &activity,
        |n| meter.client_to_backend(n),
    );
    let downstream = pump(backend, client, options.zero_copy, false, &activity, |n| {
        meter.backend_to_client(n)
    });
    tokio::select! {
        done = async { tokio::try_join!(upstream, downstream) } => match done {
            Ok(_) => BridgeEnd::Closed,
            Err(PumpError::Io(error)) => BridgeEnd::Failed(error),
            Err(PumpError::ProxyHeader) => BridgeEnd::ProxyHeader,
        },
        () = activity.idle_for(options.idle_timeout) => BridgeEnd::Idle,
        () = stop => BridgeEnd::Stopped,
    }
}

/// [`bridge`] for streams that are not plain sockets on both sides: a TLS
/// connection terminated here, a WebSocket tunnelled after its `101`.
/// Both directions copy through userspace (no splice, no PROXY header
/// check); each end of stream is passed on as a shutdown (TLS
/// `close_notify` and FIN).
pub async fn bridge_io<C, B>(
    client: C,
    backend: B,
    idle_timeout: Duration,
    meter: &dyn ByteMeter,
    stop: impl Future<Output = ()>,
) -> BridgeEnd
where
    C: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let activity = Activity::new();
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut backend_read, mut backend_write) = tokio::io::split(backend);
    let upstream = copy_io(&mut client_read, &mut backend_write, &activity, |n| {
        meter.client_to_backend(n)
    });
    let downstream = copy_io(&mut backend_read, &mut client_write, &activity, |n| {
        meter.backend_to_client(n)
    });
    tokio::select! {
        done = async { tokio::try_join!(upstream, downstream) } => match done {
            Ok(_) => BridgeEnd::Closed,
            Err(error) => BridgeEnd::Failed(error),
        },
        () = activity.idle_for(idle_timeout) => BridgeEnd::Idle,
        () = stop => BridgeEnd::Stopped,
    }
}

/// Copies `from` to `to` until `from` ends, then shuts `to` down.
async fn copy_io<R, W>(
    from: &mut R,
    to: &mut W,
    activity: &Activity,
    count: impl Fn(u64),
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Small while the stream is quiet (an idle WebSocket holds this for
    // hours); grown to the full buffer once a read fills it.
    let mut buffer = vec![0u8; IDLE_COPY_BUFFER];
    loop {
        let read = from.read(&mut buffer).await?;
        let Some(bytes) = buffer.get(..read).filter(|bytes| !bytes.is_empty()) else {
            return to.shutdown().await;
        };
        to.write_all(bytes).await?;
        to.flush().await?;
        activity.touch();
        count(read as u64);
        if read == buffer.len() && buffer.len() < COPY_BUFFER {
            buffer.resize(COPY_BUFFER, 0);
        }
    }
}

/// Why one direction stopped early.
enum PumpError {
    Io(io::Error),
    ProxyHeader,
}

/// One direction, until end-of-stream (passed on) or an error. With
/// `refuse_proxy_header`, the first bytes are held until they show whether
/// a PROXY header opens them, and one ends the connection.
async fn pump(
    from: &TcpStream,
    to: &TcpStream,
    zero_copy: bool,
    refuse_proxy_header: bool,
    activity: &Activity,
    count: impl Fn(u64),
) -> Result<(), PumpError> {
    // Allocated when bytes arrive ([`read_some`]) and released after a
    // short message, so an idle connection holds no buffer; filled through
    // spare capacity, never zeroed, so a short connection costs no 16 KiB
    // memset per direction.
    let mut buffer = Vec::new();
    let drained = DrainHint::for_this_runtime();
    if refuse_proxy_header {
        read_past_signature(from, &mut buffer, drained).await?;
    }
    loop {
        if buffer.is_empty() && read_some(from, &mut buffer, drained).await? == 0 {
            return Ok(activity.end_direction(to)?);
        }
        write_all(to, &buffer).await?;
        activity.touch();
        count(buffer.len() as u64);
        let bulk = buffer.len() == COPY_BUFFER;
        if zero_copy && bulk && splice::AVAILABLE {
            drop(buffer);
            return Ok(splice::pump(from, to, activity, count).await?);
        }
        if bulk {
            buffer.clear();
        } else {
            // The sender paused: the connection may now idle for long.
            buffer = Vec::new();
        }
    }
}

/// Reads until the bytes show whether they open with a PROXY header; an
/// opening header is refused. What was read stays in `buffer`.
async fn read_past_signature(
    from: &TcpStream,
    buffer: &mut Vec<u8>,
    drained: DrainHint,
) -> Result<(), PumpError> {
    loop {
        let read = read_some(from, buffer, drained).await?;
        match proxy_protocol::signature(buffer) {
            Signature::Present => return Err(PumpError::ProxyHeader),
            Signature::Undecided if read > 0 => {}
            Signature::Absent | Signature::Undecided => return Ok(()),
        }
    }
}

/// Appends what arrives next to `buffer`, up to its capacity (a buffer
/// without one gets [`COPY_BUFFER`] once bytes are ready); 0 at end of
/// stream.
async fn read_some(
    from: &TcpStream,
    buffer: &mut Vec<u8>,
    drained: DrainHint,
) -> io::Result<usize> {
    loop {
        from.readable().await?;
        if buffer.capacity() == 0 {
            buffer.reserve_exact(COPY_BUFFER);
        }
        let spare = buffer.capacity() - buffer.len();
        match from.try_read_buf(&mut (&mut *buffer).limit(spare)) {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
            Ok(read) if read > 0 && read < spare && drained == DrainHint::ClearReadiness => {
                // A short read drained the socket: mark it not readable now,
                // so the next read waits for the next epoll edge instead of
                // finding out with a read that fails (EAGAIN), one system
                // call per message saved. tokio clears the readiness only
                // if no new event arrived meanwhile, and never clears a
                // read-closed state, so an end of stream is not missed.
                // (Only where no other thread can turn the reactor between
                // the read and the clear: see [`DrainHint`].)
                let _ = from.try_io(Interest::READABLE, || {
                    Err::<(), _>(io::ErrorKind::WouldBlock.into())
                });
                return Ok(read);
            }
            result => return result,
        }
    }
}

/// What a short read may do with the socket's read readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DrainHint {
    /// Clear it: on a current-thread runtime the reactor only runs between
    /// task polls, so no event can land between the read and the clear.
    ClearReadiness,
    /// Keep it: on a multi-thread runtime another worker may turn the
    /// reactor between the read and the clear, and clearing would then
    /// drop a fresh edge (a stalled connection); the next read pays an
    /// EAGAIN instead.
    Keep,
}

impl DrainHint {
    fn for_this_runtime() -> Self {
        let single = tokio::runtime::Handle::try_current()
            .is_ok_and(|handle| handle.runtime_flavor() == RuntimeFlavor::CurrentThread);
        if single {
            DrainHint::ClearReadiness
        } else {
            DrainHint::Keep
        }
    }
}

/// Writes all of `bytes` to `to`.
pub async fn write_all(to: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        to.writable().await?;
        match to.try_write(bytes) {
            Ok(written) => bytes = bytes.get(written..).unwrap_or_default(),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Passes end-of-stream on. A peer that already went away is not an error:
/// the other direction reports it.
fn shutdown_write(to: &TcpStream) -> io::Result<()> {
    match socket2::SockRef::from(to).shutdown(Shutdown::Write) {
        Err(error) if error.kind() == io::ErrorKind::NotConnected => Ok(()),
        result => result,
    }
}

impl From<io::Error> for PumpError {
    fn from(error: io::Error) -> Self {
        PumpError::Io(error)
    }
}

// === impl Activity ===

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last_millis: AtomicU64::new(0),
            one_direction_ended: AtomicBool::new(false),
        }
    }

    /// Passes a direction's end-of-stream on to `to`. When the other
    /// direction has already ended, both sockets are about to be closed,
    /// which sends the FIN anyway: one syscall saved per connection.
    fn end_direction(&self, to: &TcpStream) -> io::Result<()> {
        if self.one_direction_ended.swap(true, Ordering::Relaxed) {
            return Ok(());
        }
        shutdown_write(to)
    }

    fn touch(&self) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_millis.store(now, Ordering::Relaxed);
    }

    /// Completes once nothing moved for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let last = self.last_millis.load(Ordering::Relaxed);
            let deadline = self.start + Duration::from_millis(last) + timeout;
            tokio::time::sleep_until(deadline).await;
            if self.last_millis.load(Ordering::Relaxed) == last {
                return;
            }
        }
    }
}

#[cfg(target_os = "linux")]
mod splice {
    //! `splice(2)`: socket → pipe → socket, all in the kernel.

    use std::io;

    use rustix::pipe::{PipeFlags, SpliceFlags, pipe_with, splice};
    use tokio::io::Interest;
    use tokio::net::TcpStream;

    use super::Activity;

    pub const AVAILABLE: bool = true;

    /// A pipe's default capacity; asking for more moves nothing extra.
    const CHUNK: usize = 64 * 1024;

    pub async fn pump(
        from: &TcpStream,
        to: &TcpStream,
        activity: &Activity,
        count: impl Fn(u64),
    ) -> io::Result<()> {
        let (pipe_out, pipe_in) = pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?;
        let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
        loop {
            // The pipe is empty here, so "would block" can only mean the
            // socket has nothing to read.
            let filled = loop {
                from.readable().await?;
                match from.try_io(Interest::READABLE, || {
                    Ok(splice(from, None, &pipe_in, None, CHUNK, flags)?)
                }) {
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                    result => break result?,
                }
            };
            if filled == 0 {
                return activity.end_direction(to);
            }
            let mut left = filled;
            while left > 0 {
                to.writable().await?;
                match to.try_io(Interest::WRITABLE, || {
                    Ok(splice(&pipe_out, None, to, None, left, flags)?)
                }) {
                    Ok(moved) => left = left.saturating_sub(moved),
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(error) => return Err(error),
                }
            }
            activity.touch();
            count(filled as u64);
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod splice {
    use std::io;

    use tokio::net::TcpStream;

    use super::Activity;

    pub const AVAILABLE: bool = false;

    pub async fn pump(
        _: &TcpStream,
        _: &TcpStream,
        _: &Activity,
        _: impl Fn(u64),
    ) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }
}
