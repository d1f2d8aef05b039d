//! One client connection served over HTTP/1.x: read a head, answer it
//! through the [`Proxy`], write the response, and again while the
//! connection is persistent.
//!
//! The connection's socket and read buffer are shared ([`SharedIo`]) with
//! the request body being forwarded, which reads from them inside the
//! request's own task; the two never run at the same time (the backend
//! client has finished with the body when the response comes back), so
//! the lock is never contended.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::Body;
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;

use super::body::ClientBodyReader;
use super::request_head::{self, RequestHead};
use super::response_head::{self, Exchange, Framing};
use crate::http1::{self, READ_CHUNK};
use crate::l7::headers::ClientAddress;
use crate::l7::limits::ConnectionLimits;
use crate::l7::proxy::Proxy;
use crate::l7::response::ProxyBody;
use crate::l7::send_timeout::SendTimeoutIo;
use crate::tls::ClientStream;
use crate::upstream::{ClientBody, Upgraded};

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// What an idle connection reads into before it has a buffer: a typical
/// request head.
const FIRST_READ: usize = 1024;
/// Response bytes gathered before they are written.
const WRITE_COALESCE: usize = 16 * 1024;
/// How long a closing connection keeps reading what the client still
/// sends, so that the close does not reset the answer away.
const LINGER: Duration = Duration::from_secs(1);

/// The socket and read buffer of a client connection.
pub struct ClientIo {
    io: SendTimeoutIo<ClientStream>,
    /// Bytes read and not consumed yet.
    pub read: BytesMut,
    /// Whether the current request's body has not been read to its end.
    pub body_pending: bool,
}

/// A [`ClientIo`] shared by the connection and the body being forwarded.
pub type SharedIo = Arc<Mutex<ClientIo>>;

/// How serving ended.
pub enum Served {
    /// The connection is done.
    Closed,
    /// It opened with the HTTP/2 preface: hyper serves it from here.
    Http2(Handoff),
}

/// A connection handed to the HTTP/2 server, with what was already read.
pub struct Handoff {
    /// The socket.
    pub io: SendTimeoutIo<ClientStream>,
    /// Bytes read from it already.
    pub read: Bytes,
}

/// What waiting for the next request produced.
enum Next {
    Request(Box<RequestHead>),
    Http2,
    Refused(request_head::Refusal),
    Closed,
}

// === impl ClientIo ===

impl ClientIo {
    /// Locks `shared` (a poisoned lock is still consistent: every holder
    /// only moves bytes).
    pub fn lock(shared: &SharedIo) -> MutexGuard<'_, ClientIo> {
        shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads what arrives into the buffer, which holds at most `limit`
    /// bytes; 0 at the end of the stream.
    pub fn poll_fill(&mut self, cx: &mut Context<'_>, limit: usize) -> Poll<io::Result<usize>> {
        if self.read.capacity() == 0 {
            // An idle connection holds no buffer: the first bytes of the
            // next request land on the stack, and a buffer is allocated
            // once they are there.
            let mut first = [0u8; FIRST_READ];
            let mut first = ReadBuf::new(&mut first);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut first))?;
            let read = first.filled().len();
            if read > 0 {
                self.read.reserve(READ_CHUNK);
                self.read.extend_from_slice(first.filled());
            }
            return Poll::Ready(Ok(read));
        }
        http1::poll_fill(&mut self.io, &mut self.read, limit, cx)
    }

    /// Writes `out` from `offset` on.
    fn poll_write_from(
        &mut self,
        cx: &mut Context<'_>,
        out: &[u8],
        offset: &mut usize,
    ) -> Poll<io::Result<()>> {
        while let Some(unwritten) = out.get(*offset..).filter(|rest| !rest.is_empty()) {
            match ready!(Pin::new(&mut self.io).poll_write(cx, unwritten))? {
                0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                written => *offset += written,
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// Serves `stream` until the client, a limit or `stop` ends it.
pub async fn serve(
    stream: ClientStream,
    client: &ClientAddress,
    proxy: &Proxy,
    limits: ConnectionLimits,
    stop: &mut watch::Receiver<()>,
) -> Served {
    let shared: SharedIo = Arc::new(Mutex::new(ClientIo {
        io: SendTimeoutIo::new(stream, limits.send_timeout),
        read: BytesMut::new(),
        body_pending: false,
    }));
    let mut first = true;
    loop {
        let head = match next_request(&shared, proxy, limits, first, stop).await {
            Next::Request(head) => head,
            Next::Http2 => return handoff(shared),
            Next::Refused(refusal) => {
                tracing::debug!(client = %client.socket, %refusal, "request head refused");
                refuse(&shared, refusal.status).await;
                return Served::Closed;
            }
            Next::Closed => return Served::Closed,
        };
        first = false;
        let RequestHead {
            head,
            framing,
            keep_alive,
            expects_continue,
            accepts_trailers,
        } = *head;
        if expects_continue {
            let continue_ = b"HTTP/1.1 100 Continue\r\n\r\n";
            if write_all(&shared, continue_).await.is_err() {
                return Served::Closed;
            }
        }
        let exchange = Exchange {
            head_request: head.method == Method::HEAD,
            http10: head.version == Version::HTTP_10,
            keep_alive,
        };
        let body = match ClientBodyReader::new(&shared, framing) {
            Some(reader) => ClientBody::Stream(Box::pin(reader.map_err(Into::into))),
            None => ClientBody::Empty,
        };
        // Boxed: the request's future is several KiB, and an idle
        // connection's task should not keep room for it.
        let response = Box::pin(proxy.handle(Request::from_parts(head, body), client)).await;
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            return upgrade(shared, response, exchange, limits, proxy.listener()).await;
        }
        let unread_body = ClientIo::lock(&shared).body_pending;
        let stopping = !matches!(stop.has_changed(), Ok(false));
        let exchange = Exchange {
            keep_alive: keep_alive && !unread_body && !stopping,
            ..exchange
        };
        let persistent = write_response(&shared, response, exchange, accepts_trailers).await;
        match persistent {
            Ok(true) if exchange.keep_alive => {}
            Ok(_) if unread_body => {
                linger(&shared).await;
                return Served::Closed;
            }
            Ok(_) => {
                let _ =
                    poll_fn(|cx| Pin::new(&mut ClientIo::lock(&shared).io).poll_shutdown(cx)).await;
                return Served::Closed;
            }
            Err(error) => {
                tracing::debug!(client = %client.socket, %error, "response not delivered");
                return Served::Closed;
            }
        }
    }
}

/// Waits for the next request head. The first waits from the client's
/// first byte, a later one for up to the keep-alive timeout; once a head
/// has begun it must be complete within the header timeout.
async fn next_request(
    shared: &SharedIo,
    proxy: &Proxy,
    limits: ConnectionLimits,
    first: bool,
    stop: &mut watch::Receiver<()>,
) -> Next {
    let mut started: Option<Instant> = first.then(Instant::now);
    {
        // Between requests the connection holds no read buffer.
        let mut io = ClientIo::lock(shared);
        if io.read.is_empty() {
            io.read = BytesMut::new();
        }
    }
    let idle_deadline = Instant::now() + limits.keep_alive_timeout;
    loop {
        {
            let mut io = ClientIo::lock(shared);
            if !io.read.is_empty() {
                started.get_or_insert_with(Instant::now);
                let opening = io
                    .read
                    .get(..io.read.len().min(PREFACE.len()))
                    .unwrap_or_default();
                if first && PREFACE.starts_with(opening) {
                    if io.read.len() >= PREFACE.len() {
                        return Next::Http2;
                    }
                } else {
                    match request_head::parse(&mut io.read) {
                        Ok(Some(head)) if head.head.headers.len() > limits.max_headers => {
                            return Next::Refused(request_head::Refusal {
                                status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                                reason: "too many header fields",
                            });
                        }
                        Ok(Some(head)) => return Next::Request(Box::new(head)),
                        Ok(None) if io.read.len() >= limits.max_header_size => {
                            return Next::Refused(request_head::Refusal {
                                status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                                reason: "request head too large",
                            });
                        }
                        Ok(None) => {}
                        Err(refusal) => return Next::Refused(refusal),
                    }
                }
            }
        }
        let deadline = match started {
            Some(started) => started + limits.header_read_timeout,
            None => idle_deadline,
        };
        let idle = started.is_none();
        tokio::select! {
            read = poll_fn(|cx| ClientIo::lock(shared).poll_fill(cx, limits.max_header_size)) => {
                match read {
                    Ok(0) | Err(_) => return Next::Closed,
                    Ok(_) => {}
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                if idle {
                    crate::metrics::timed_out("keep-alive");
                    crate::metrics::http_connection_closed(proxy.listener(), "keep-alive-timeout");
                } else {
                    crate::metrics::timed_out("header-read");
                }
                return Next::Closed;
            }
            _ = stop.changed(), if idle => return Next::Closed,
        }
    }
}

/// Writes `response`; `Ok(true)` when it ended cleanly and the
/// connection may carry another request.
async fn write_response(
    shared: &SharedIo,
    response: Response<ProxyBody>,
    exchange: Exchange,
    accepts_trailers: bool,
) -> io::Result<bool> {
    // Per response, so that an idle connection holds no write buffer.
    let mut out = Vec::with_capacity(1024);
    let out = &mut out;
    let (mut parts, mut body) = response.into_parts();
    // Trailers go out only to a client that accepts them and only those
    // the response declared in `Trailer` (as hyper's server did).
    let declared: Vec<http::HeaderName> = if accepts_trailers {
        parts
            .headers
            .get_all(http::header::TRAILER)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|names| names.split(','))
            .filter_map(|name| http::HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect()
    } else {
        Vec::new()
    };
    let framing = response_head::encode(
        parts.status,
        &mut parts.headers,
        &body.size_hint(),
        exchange,
        out,
    );
    let mut offset = 0;
    let mut sent: u64 = 0;
    let mut done = framing == Framing::Empty;
    poll_fn(|cx| {
        let mut io = ClientIo::lock(shared);
        loop {
            // Gather what the body has ready, so that a head and a small
            // body go out in one write.
            if !done
                && out.len() - offset < WRITE_COALESCE
                && let Poll::Ready(frame) = Pin::new(&mut body).poll_frame(cx)
            {
                done = add_frame(frame, framing, &declared, &mut sent, out)?;
                continue;
            }
            if offset < out.len() {
                ready!(io.poll_write_from(cx, out, &mut offset))?;
                out.clear();
                offset = 0;
                continue;
            }
            if done {
                return Poll::Ready(Ok::<(), io::Error>(()));
            }
            return Poll::Pending;
        }
    })
    .await?;
    Ok(framing != Framing::Close)
}

/// Adds one frame of the response body to `out`; `Ok(true)` at its end.
fn add_frame(
    frame: Option<Result<http_body::Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>>>,
    framing: Framing,
    declared_trailers: &[http::HeaderName],
    sent: &mut u64,
    out: &mut Vec<u8>,
) -> io::Result<bool> {
    let frame = match frame {
        None => {
            if let Framing::Length(length) = framing
                && *sent != length
            {
                return Err(io::Error::other("response body shorter than its length"));
            }
            if framing == Framing::Chunked {
                http1::last_chunk(std::iter::empty(), out);
            }
            return Ok(true);
        }
        // The backend's body broke: the client must not see an end.
        Some(Err(error)) => return Err(io::Error::other(error)),
        Some(Ok(frame)) => frame,
    };
    match frame.into_data() {
        Ok(data) if data.is_empty() => {}
        Ok(data) => {
            *sent += data.len() as u64;
            match framing {
                Framing::Chunked => {
                    http1::chunk_header(data.len(), out);
                    out.extend_from_slice(&data);
                    out.extend_from_slice(b"\r\n");
                }
                Framing::Length(length) if *sent > length => {
                    return Err(io::Error::other("response body longer than its length"));
                }
                _ => out.extend_from_slice(&data),
            }
        }
        Err(frame) => {
            if let (Ok(trailers), Framing::Chunked) = (frame.into_trailers(), framing) {
                let declared = trailers
                    .iter()
                    .filter(|(name, _)| declared_trailers.contains(name));
                http1::last_chunk(declared, out);
                return Ok(true);
            }
        }
    }
    Ok(false)
}

async fn write_all(shared: &SharedIo, bytes: &[u8]) -> io::Result<()> {
    let mut offset = 0;
    poll_fn(|cx| ClientIo::lock(shared).poll_write_from(cx, bytes, &mut offset)).await
}

/// Answers a refused head with its status and closes.
async fn refuse(shared: &SharedIo, status: StatusCode) {
    let answer = format!(
        "HTTP/1.1 {} {}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or("")
    );
    if write_all(shared, answer.as_bytes()).await.is_ok() {
        linger(shared).await;
    }
}

/// Closes the sending side, then reads and drops what the client still
/// sends for up to [`LINGER`]: closing with unread input would send a
/// reset that can destroy the answer before the client reads it.
async fn linger(shared: &SharedIo) {
    let _ = tokio::time::timeout(LINGER, async {
        poll_fn(|cx| Pin::new(&mut ClientIo::lock(shared).io).poll_shutdown(cx)).await?;
        loop {
            let read = poll_fn(|cx| {
                let mut io = ClientIo::lock(shared);
                io.read.clear();
                io.poll_fill(cx, READ_CHUNK)
            })
            .await?;
            if read == 0 {
                return Ok::<_, io::Error>(());
            }
        }
    })
    .await;
}

/// Writes the backend's `101` and tunnels the connection to it
/// (`tunnel.rs`) until the tunnel ends.
async fn upgrade(
    shared: SharedIo,
    response: Response<ProxyBody>,
    exchange: Exchange,
    limits: ConnectionLimits,
    listener: &str,
) -> Served {
    let Some(tunnel) = response
        .extensions()
        .get::<Upgraded>()
        .and_then(Upgraded::take)
    else {
        return Served::Closed;
    };
    // The `Connection: upgrade` the response carries is this exchange's.
    let exchange = Exchange {
        keep_alive: true,
        ..exchange
    };
    if write_response(&shared, response, exchange, false)
        .await
        .is_err()
    {
        return Served::Closed;
    }
    // Nothing else holds the connection once the (bodiless) request is
    // done: an upgrade request with a body has no reader left either.
    let Ok(io) = Arc::try_unwrap(shared) else {
        return Served::Closed;
    };
    let io = io.into_inner().unwrap_or_else(PoisonError::into_inner);
    // What the client sent past its head, copied out: the read buffer's
    // allocation is not kept for the life of the tunnel.
    crate::l7::tunnel::run(
        io.io,
        Bytes::copy_from_slice(&io.read),
        tunnel,
        limits.tunnel_idle_timeout,
        listener,
    )
    .await;
    Served::Closed
}

/// The connection handed to the HTTP/2 server.
fn handoff(shared: SharedIo) -> Served {
    match Arc::try_unwrap(shared) {
        Ok(io) => {
            let io = io.into_inner().unwrap_or_else(PoisonError::into_inner);
            Served::Http2(Handoff {
                io: io.io,
                read: io.read.freeze(),
            })
        }
        // Nothing else holds it before a request: unreachable in practice.
        Err(_) => Served::Closed,
    }
}
