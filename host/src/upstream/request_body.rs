//! A client's request body on its way to a backend, cut off when the
//! client stops sending it, and kept (up to a bound) when the route may
//! send it again.
//!
//! A slow body would otherwise hold the backend connection it is written
//! to until the response timeout; with this, a body that sends nothing for
//! the request-body timeout fails, the attempt ends as the client's fault
//! and the backend connection is closed instead of waiting.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
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
    /// A body kept whole by an earlier attempt, sent again.
    Kept(VecDeque<Bytes>),
}

/// The body of a request being proxied.
pub struct RequestBody {
    inner: ClientBody,
    timeout: Duration,
    /// Armed when the client has nothing ready; cleared by each frame.
    waiting: Option<Pin<Box<Sleep>>>,
    /// Where what is read is kept for a retry.
    kept: Option<KeptBody>,
    /// The route's `max-body-size`, and the bytes read so far.
    limit: Option<(u64, u64)>,
    /// Where the bytes read from the client are added up (for the access
    /// log), when anyone asked.
    counted: Option<Arc<std::sync::atomic::AtomicU64>>,
    /// The listener's `received` bytes, for a body read from a client.
    client_meter: Option<metrics::Counter>,
    /// The backend's `sent` bytes, for the attempt the body goes out on.
    backend_meter: Option<metrics::Counter>,
}

/// A request body as far as it was read, kept for a retry while within
/// its bound; shared by the proxy and the body an attempt consumes (which
/// may be lost inside an HTTP/2 connection when the attempt fails).
#[derive(Clone, Debug)]
pub struct KeptBody(Arc<Mutex<Kept>>);

#[derive(Debug)]
struct Kept {
    frames: Vec<Bytes>,
    size: usize,
    limit: usize,
    /// The whole body was read.
    ended: bool,
    /// Something was not kept (past the bound, or trailers).
    lost: bool,
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
    /// The body grew past the route's `max-body-size`.
    #[error("the request body is larger than {0} bytes")]
    TooLarge(u64),
}

// === impl RequestBody ===

impl RequestBody {
    /// `inner`, failing once it stalls for `timeout`.
    pub fn new(inner: ClientBody, timeout: Duration) -> Self {
        RequestBody {
            inner,
            timeout,
            waiting: None,
            kept: None,
            limit: None,
            counted: None,
            client_meter: None,
            backend_meter: None,
        }
    }

    /// Fails the body once it grows past `max` bytes (413).
    #[must_use]
    pub fn limited_to(mut self, max: Option<u64>) -> Self {
        self.limit = max.map(|max| (max, 0));
        self
    }

    /// Counts the bytes read into `received` (a listener's). A body with
    /// nothing to read (most requests) takes no handle.
    #[must_use]
    pub fn metered(mut self, received: &metrics::Counter) -> Self {
        if !Body::is_end_stream(&self) {
            self.client_meter = Some(received.clone());
        }
        self
    }

    /// Counts the bytes passed on into `sent` (the backend's this attempt
    /// goes to); nothing for a body with nothing to send.
    pub fn meter_backend(&mut self, sent: Option<&metrics::Counter>) {
        if !Body::is_end_stream(self) {
            self.backend_meter = sent.cloned();
        }
    }

    /// Adds the bytes read from the client to `counter`.
    #[must_use]
    pub fn counted_into(mut self, counter: Option<Arc<std::sync::atomic::AtomicU64>>) -> Self {
        self.counted = counter;
        self
    }

    /// Keeps what is read from now on, up to `limit` bytes, so that the
    /// body can be sent again.
    pub fn keep(&mut self, limit: usize) -> KeptBody {
        let kept = KeptBody(Arc::new(Mutex::new(Kept {
            frames: Vec::new(),
            size: 0,
            limit,
            ended: self.is_end_stream(),
            lost: false,
        })));
        self.kept = Some(kept.clone());
        kept
    }
}

// === impl KeptBody ===

impl KeptBody {
    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        // Only byte lists are behind it: consistent whatever panicked.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the whole body was read and kept.
    pub fn is_whole(&self) -> bool {
        let kept = self.lock();
        kept.ended && !kept.lost
    }

    /// The body again, when it was kept whole.
    pub fn replay(&self, timeout: Duration) -> Option<RequestBody> {
        let kept = self.lock();
        (kept.ended && !kept.lost).then(|| {
            RequestBody::new(
                ClientBody::Kept(kept.frames.iter().cloned().collect()),
                timeout,
            )
        })
    }

    fn record(&self, frame: &Option<Result<Frame<Bytes>, RequestBodyError>>) {
        let mut kept = self.lock();
        match frame {
            None => kept.ended = true,
            Some(Ok(frame)) => match frame.data_ref() {
                Some(data) if kept.size + data.len() <= kept.limit && !kept.lost => {
                    kept.size += data.len();
                    kept.frames.push(data.clone());
                }
                _ => kept.lost = true,
            },
            Some(Err(_)) => kept.lost = true,
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
            ClientBody::Kept(frames) => {
                Poll::Ready(frames.pop_front().map(|data| Ok(Frame::data(data))))
            }
        };
        if let Poll::Ready(mut frame) = polled {
            this.waiting = None;
            if let Some(Ok(frame)) = &frame
                && let Some(data) = frame.data_ref()
            {
                let len = data.len() as u64;
                if let Some(counted) = &this.counted {
                    counted.fetch_add(len, std::sync::atomic::Ordering::Relaxed);
                }
                for meter in [&this.client_meter, &this.backend_meter]
                    .into_iter()
                    .flatten()
                {
                    meter.increment(len);
                }
            }
            if let (Some((max, read)), Some(Ok(data))) = (&mut this.limit, &frame)
                && let Some(data) = data.data_ref()
            {
                *read += data.len() as u64;
                if *read > *max {
                    frame = Some(Err(RequestBodyError::TooLarge(*max)));
                }
            }
            if let Some(kept) = &this.kept {
                kept.record(&frame);
            }
            return Poll::Ready(frame);
        }
        let timeout = this.timeout;
        let waiting = this
            .waiting
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match waiting.as_mut().poll(cx) {
            Poll::Ready(()) => {
                crate::metrics::timed_out("request-body");
                Poll::Ready(Some(Err(RequestBodyError::Idle(timeout))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            ClientBody::Empty => true,
            ClientBody::Hyper(body) => body.is_end_stream(),
            ClientBody::Stream(body) => body.is_end_stream(),
            ClientBody::Kept(frames) => frames.is_empty(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            ClientBody::Empty => SizeHint::with_exact(0),
            ClientBody::Hyper(body) => body.size_hint(),
            ClientBody::Stream(body) => body.size_hint(),
            ClientBody::Kept(frames) => {
                SizeHint::with_exact(frames.iter().map(|frame| frame.len() as u64).sum())
            }
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
    matches!(body_error(error), Some(RequestBodyError::Idle(_)))
}

/// Whether `error` (from sending a request) was the request body growing
/// past its route's limit, somewhere in its causes.
pub fn is_body_too_large(error: &(dyn std::error::Error + 'static)) -> bool {
    matches!(body_error(error), Some(RequestBodyError::TooLarge(_)))
}

/// The request body error among the causes of `error`.
fn body_error<'e>(error: &'e (dyn std::error::Error + 'static)) -> Option<&'e RequestBodyError> {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(body) = error.downcast_ref::<RequestBodyError>() {
            return Some(body);
        }
        cause = error.source();
    }
    None
}
