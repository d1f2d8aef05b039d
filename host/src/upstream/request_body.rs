//! A client's request body on its way to a backend, cut off when the
//! client stops sending it.
//!
//! A slow body would otherwise hold the backend connection it is written
//! to until the response timeout; with this, a body that sends nothing for
//! the request-body timeout fails, the attempt ends as the client's fault
//! and the backend connection is closed instead of waiting.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::Sleep;

/// An error reading a client's body, whatever read it.
pub type ClientBodyError = Box<dyn std::error::Error + Send + Sync>;

/// A client's request body as the server side read it.
pub enum ClientBody {
    /// None (most requests): nothing to read, nothing allocated.
    Empty,
    /// From hyper's server (HTTP/2).
    Hyper(Incoming),
    /// From the proxy's own HTTP/1 server.
    Stream(Pin<Box<dyn Body<Data = Bytes, Error = ClientBodyError> + Send>>),
}

/// The body of a request being proxied.
pub struct RequestBody {
    inner: ClientBody,
    timeout: Duration,
    /// Armed when the client has nothing ready; cleared by each frame.
    waiting: Option<Pin<Box<Sleep>>>,
}

/// Why a request body could not be forwarded: the client's doing, never
/// the backend's.
#[derive(Debug, thiserror::Error)]
pub enum RequestBodyError {
    /// Reading it failed (malformed chunked encoding, the client gone).
    #[error("reading the client's request body failed")]
    Client(#[source] ClientBodyError),
    /// The client sent nothing for this long.
    #[error("the client sent no request body bytes for {0:?}")]
    Idle(Duration),
}

// === impl RequestBody ===

impl RequestBody {
    /// `inner`, failing once it stalls for `timeout`.
    pub fn new(inner: ClientBody, timeout: Duration) -> Self {
        RequestBody {
            inner,
            timeout,
            waiting: None,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RequestBodyError>>> {
        let this = self.get_mut();
        let polled = match &mut this.inner {
            ClientBody::Empty => Poll::Ready(None),
            ClientBody::Hyper(body) => Pin::new(body).poll_frame(cx).map(|frame| {
                frame.map(|frame| frame.map_err(|error| RequestBodyError::Client(error.into())))
            }),
            ClientBody::Stream(body) => body
                .as_mut()
                .poll_frame(cx)
                .map(|frame| frame.map(|frame| frame.map_err(RequestBodyError::Client))),
        };
        if let Poll::Ready(frame) = polled {
            this.waiting = None;
            return Poll::Ready(frame);
        }
        let timeout = this.timeout;
        let waiting = this
            .waiting
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match waiting.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(RequestBodyError::Idle(timeout)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            ClientBody::Empty => true,
            ClientBody::Hyper(body) => body.is_end_stream(),
            ClientBody::Stream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            ClientBody::Empty => SizeHint::with_exact(0),
            ClientBody::Hyper(body) => body.size_hint(),
            ClientBody::Stream(body) => body.size_hint(),
        }
    }
}

impl std::fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBody")
            .field("ended", &self.is_end_stream())
            .finish_non_exhaustive()
    }
}

/// Whether `error` (from sending a request) was the request body timing
/// out, somewhere in its causes.
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if matches!(
            error.downcast_ref::<RequestBodyError>(),
            Some(RequestBodyError::Idle(_))
        ) {
            return true;
        }
        cause = error.source();
    }
    false
}
