//! A lean HTTP/1.1 client for backend connections.
//!
//! hyper's client runs a full dispatcher per connection in a task of its
//! own, behind channels: per proxied request that is a second state
//! machine, a cross-task wakeup each way and ~12.7k instructions
//! (BENCHMARKS.md). A proxy's use of a backend connection is narrower: one
//! request at a time, written from a head already prepared, and a response
//! whose body is streamed straight to the client. [`Http1Connection`] does
//! exactly that inside the request's own task: the head is encoded into one
//! buffer (coalesced with a body that is already there), the response head
//! is parsed with `httparse` (what hyper uses) and its body is decoded from
//! the same read buffer, sliced without copies.
//!
//! The parsing rules are strict where a lenient reading could let the
//! proxy and a backend disagree about where a message ends (see
//! `response_head` and `chunked`); each is tested in those files and, as
//! the client sees it, by the VTest scripts in `tests/vtc/`.
//!
//! A backend that answers before it has read the whole request body (a 413
//! to an upload) is heard: the body stops being written as soon as response
//! bytes arrive, and the connection is not reused.

mod body;
mod request_head;
mod response_head;

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

use bytes::BytesMut;
use http::Method;
use http::request::Parts;
use http_body::Body;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::request_body::{RequestBody, RequestBodyError};
use crate::http1::{self, ChunkError};
use request_head::BodyFraming;

pub use body::ResponseBody;
pub use response_head::{HeadError, ResponseHead, parse as parse_response_head};

/// Largest response head: bounds what a backend can make the proxy hold,
/// as HAProxy's 16 KiB buffer does.
pub const MAX_RESPONSE_HEAD: usize = 16 * 1024;
/// Interim (1xx) responses skipped before the final one.
const MAX_INTERIM: usize = 8;
/// Request body bytes gathered before they are written.
const WRITE_COALESCE: usize = 16 * 1024;

/// What a backend connection runs over: TCP, and upstream TLS later.
pub trait Transport: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Transport for T {}

/// One HTTP/1.1 connection to a backend, carrying one request at a time.
pub struct Http1Connection {
    io: Box<dyn Transport>,
    /// Bytes read and not consumed yet; allocated when a response comes.
    read: BytesMut,
    /// The request head and body bytes being written.
    write: Vec<u8>,
    /// Whether any byte came back since the current request was written.
    answered: bool,
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum Http1Error {
    /// Writing the request failed.
    #[error("writing the request to the backend failed")]
    Write(#[source] io::Error),
    /// Reading the response failed.
    #[error("reading the response from the backend failed")]
    Read(#[source] io::Error),
    /// The backend closed the connection before a whole response head.
    #[error("the backend closed the connection before a complete response head")]
    ClosedBeforeHead,
    /// The response head exceeded [`MAX_RESPONSE_HEAD`].
    #[error("response head larger than {MAX_RESPONSE_HEAD} bytes")]
    HeadTooLarge,
    /// The response head was refused.
    #[error(transparent)]
    Head(#[from] HeadError),
    /// Too many interim responses.
    #[error("more than {MAX_INTERIM} interim (1xx) responses")]
    TooManyInterim,
    /// The chunked response body is malformed.
    #[error("malformed chunked response body")]
    Chunk(#[source] ChunkError),
    /// The backend closed the connection before the end of the body.
    #[error("the backend closed the connection before the end of the response body")]
    BodyCut,
    /// The request body does not match its `Content-Length`.
    #[error("request body length differs from its content-length")]
    RequestLength,
    /// The client's request body failed.
    #[error("the client's request body failed")]
    RequestBody(#[source] RequestBodyError),
}

/// Why an idle connection cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleProblem {
    /// The backend closed it (or it failed).
    Closed,
    /// The backend sent bytes nobody asked for.
    UnexpectedData,
}

/// An exchange that failed, and how far it got.
#[derive(Debug)]
pub struct SendFailure {
    /// What failed.
    pub error: Http1Error,
    /// Whether bytes of the request reached the connection: if not, the
    /// request may be sent elsewhere.
    pub written: bool,
    /// Whether the connection ended (closed or reset) with not one byte
    /// of response: on a reused connection, the backend closed it as the
    /// request went out, and never processed it (RFC 9112 §9.3.1).
    pub closed_unanswered: bool,
}

/// Where writing the request stands.
struct Writer {
    framing: BodyFraming,
    /// Bytes of `write` already written.
    offset: usize,
    /// Body bytes taken from the client.
    body_bytes: u64,
    body_done: bool,
    written_any: bool,
}

// === impl Http1Error ===

impl Http1Error {
    /// Whether the client's request body is at fault, not the backend.
    pub fn is_client_body(&self) -> bool {
        matches!(self, Http1Error::RequestBody(_) | Http1Error::RequestLength)
    }
}

// === impl Http1Connection ===

impl Http1Connection {
    /// A connection over `io`.
    pub fn new(io: impl Transport) -> Self {
        Http1Connection {
            io: Box::new(io),
            read: BytesMut::new(),
            write: Vec::new(),
            answered: false,
        }
    }

    /// The connection after its `101`: the socket, and what the backend
    /// already sent in the new protocol.
    pub fn into_io(self) -> (Box<dyn Transport>, BytesMut) {
        (self.io, self.read)
    }

    /// Whether an idle connection can carry a request: the backend has
    /// not closed it or sent anything unasked. Costs no system call while
    /// the socket has had no event since it was last drained.
    pub fn check_idle(&mut self) -> Result<(), IdleProblem> {
        if !self.read.is_empty() {
            return Err(IdleProblem::UnexpectedData);
        }
        let mut cx = Context::from_waker(Waker::noop());
        let mut probe = [0u8; 1];
        let mut probe = ReadBuf::new(&mut probe);
        match Pin::new(&mut self.io).poll_read(&mut cx, &mut probe) {
            Poll::Pending => Ok(()),
            Poll::Ready(Ok(())) if !probe.filled().is_empty() => Err(IdleProblem::UnexpectedData),
            Poll::Ready(_) => Err(IdleProblem::Closed),
        }
    }

    /// Writes the request (`head` gains the body framing it needs) and
    /// reads the final response head.
    pub async fn send(
        &mut self,
        head: &mut Parts,
        body: &mut RequestBody,
    ) -> Result<ResponseHead, SendFailure> {
        let framing = request_head::framing(head, body.is_end_stream(), body.size_hint().exact());
        self.write.clear();
        self.answered = false;
        request_head::encode(head, &mut self.write);
        let mut writer = Writer {
            framing,
            offset: 0,
            body_bytes: 0,
            body_done: framing == BodyFraming::Empty,
            written_any: false,
        };
        let answered_early = poll_fn(|cx| self.poll_write_request(cx, &mut writer, body))
            .await
            .map_err(|error| SendFailure {
                error,
                written: writer.written_any,
                closed_unanswered: false,
            })?;
        let head_request = head.method == Method::HEAD;
        // The proxy asks for an upgrade only where the route allows one.
        let upgrade = head.headers.contains_key(http::header::UPGRADE);
        let mut response = match self.read_head(head_request, upgrade).await {
            Ok(response) => response,
            Err(error) => {
                let closed = matches!(error, Http1Error::ClosedBeforeHead | Http1Error::Read(_));
                return Err(SendFailure {
                    error,
                    written: true,
                    closed_unanswered: closed && !self.answered,
                });
            }
        };
        if answered_early {
            // The rest of the body was never written: the backend is out
            // of step with this connection.
            response.keep_alive = false;
        }
        Ok(response)
    }

    /// Writes head and body; `Ok(true)` when the backend began to answer
    /// before the body was all written.
    fn poll_write_request(
        &mut self,
        cx: &mut Context<'_>,
        writer: &mut Writer,
        body: &mut RequestBody,
    ) -> Poll<Result<bool, Http1Error>> {
        loop {
            // Gather what the client has ready, so that a head and a short
            // body go out in one write.
            if !writer.body_done
                && self.write.len() - writer.offset < WRITE_COALESCE
                && let Poll::Ready(frame) = Pin::new(&mut *body).poll_frame(cx)
            {
                self.take_frame(writer, frame)?;
                continue;
            }
            if writer.offset < self.write.len() {
                let unwritten = self.write.get(writer.offset..).unwrap_or_default();
                match Pin::new(&mut self.io).poll_write(cx, unwritten) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(Http1Error::Write(
                            io::ErrorKind::WriteZero.into(),
                        )));
                    }
                    Poll::Ready(Ok(written)) => {
                        writer.offset += written;
                        writer.written_any = true;
                        if writer.offset == self.write.len() {
                            self.write.clear();
                            writer.offset = 0;
                        }
                        continue;
                    }
                    Poll::Ready(Err(error)) => return Poll::Ready(Err(Http1Error::Write(error))),
                    Poll::Pending => {}
                }
            } else if writer.body_done {
                return Poll::Ready(Ok(false));
            }
            // Blocked on the backend or on the client: listen for an early
            // answer meanwhile.
            if writer.written_any {
                match self.poll_fill(cx, MAX_RESPONSE_HEAD) {
                    Poll::Ready(Ok(_)) => return Poll::Ready(Ok(true)),
                    Poll::Ready(Err(error)) => return Poll::Ready(Err(Http1Error::Read(error))),
                    Poll::Pending => {}
                }
            }
            return Poll::Pending;
        }
    }

    /// Adds one frame of the client's body to the write buffer.
    fn take_frame(
        &mut self,
        writer: &mut Writer,
        frame: Option<Result<http_body::Frame<bytes::Bytes>, RequestBodyError>>,
    ) -> Result<(), Http1Error> {
        let frame = match frame {
            None => {
                writer.body_done = true;
                return match writer.framing {
                    BodyFraming::Chunked => {
                        http1::last_chunk(std::iter::empty(), &mut self.write);
                        Ok(())
                    }
                    BodyFraming::Length(length) if length != writer.body_bytes => {
                        Err(Http1Error::RequestLength)
                    }
                    _ => Ok(()),
                };
            }
            Some(Err(error)) => return Err(Http1Error::RequestBody(error)),
            Some(Ok(frame)) => frame,
        };
        match frame.into_data() {
            Ok(data) if data.is_empty() => {}
            Ok(data) => {
                writer.body_bytes += data.len() as u64;
                match writer.framing {
                    BodyFraming::Chunked => {
                        http1::chunk_header(data.len(), &mut self.write);
                        self.write.extend_from_slice(&data);
                        self.write.extend_from_slice(b"\r\n");
                    }
                    BodyFraming::Length(length) if writer.body_bytes > length => {
                        return Err(Http1Error::RequestLength);
                    }
                    BodyFraming::Length(_) => self.write.extend_from_slice(&data),
                    BodyFraming::Empty => return Err(Http1Error::RequestLength),
                }
            }
            Err(frame) => {
                // Trailers: only a chunked body can carry them.
                if let (Ok(trailers), BodyFraming::Chunked) =
                    (frame.into_trailers(), writer.framing)
                {
                    http1::last_chunk(&trailers, &mut self.write);
                    writer.body_done = true;
                }
            }
        }
        Ok(())
    }

    /// Reads up to the final response head, skipping interim ones; with
    /// `upgrade`, a `101` is final.
    async fn read_head(
        &mut self,
        head_request: bool,
        upgrade: bool,
    ) -> Result<ResponseHead, Http1Error> {
        let mut interim = 0;
        loop {
            if !self.read.is_empty() {
                if let Some(head) = response_head::parse(&mut self.read, head_request, upgrade)? {
                    let status = head.response.status();
                    if !status.is_informational() || status == http::StatusCode::SWITCHING_PROTOCOLS
                    {
                        return Ok(head);
                    }
                    interim += 1;
                    if interim > MAX_INTERIM {
                        return Err(Http1Error::TooManyInterim);
                    }
                    continue;
                }
                if self.read.len() >= MAX_RESPONSE_HEAD {
                    return Err(Http1Error::HeadTooLarge);
                }
            }
            let read = poll_fn(|cx| self.poll_fill(cx, MAX_RESPONSE_HEAD))
                .await
                .map_err(Http1Error::Read)?;
            if read == 0 {
                return Err(Http1Error::ClosedBeforeHead);
            }
        }
    }

    /// Reads what arrives into the buffer, which holds at most `limit`
    /// bytes; 0 at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>, limit: usize) -> Poll<io::Result<usize>> {
        let read = ready!(http1::poll_fill(&mut self.io, &mut self.read, limit, cx))?;
        self.answered |= read > 0;
        Poll::Ready(Ok(read))
    }
}
