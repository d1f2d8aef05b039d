//! A client's request body on its way to a backend, cut off when the
//! client stops sending it, and kept (up to a bound) when the route may
//! send it again.
//!
//! A body an attempt gave up before its end (an HTTP/2 stream the backend
//! refused) hands what it had not read back to its [`KeptBody`], so that
//! the next attempt sends the kept part, then the rest as it comes.
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
    /// What an earlier attempt read and kept, then the rest it left
    /// unread (which keeps into the same [`KeptBody`]).
    Continued(VecDeque<Bytes>, Box<RequestBody>),
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
pub struct KeptBody(Arc<KeptShared>);

#[derive(Debug)]
struct KeptShared {
    kept: Mutex<Kept>,
    /// Signalled when the body an attempt consumed is dropped.
    released: tokio::sync::Notify,
}

#[derive(Debug)]
struct Kept {
    frames: Vec<Bytes>,
    size: usize,
    limit: usize,
    /// The whole body was read.
    ended: bool,
    /// Something was not kept (past the bound, or trailers).
    lost: bool,
    /// What the last attempt left unread, handed back when it dropped the
    /// body before its end.
    rest: Option<RequestBody>,
}

/// How long a refused attempt's body may take to come back from the
/// HTTP/2 connection that dropped it (a task of hyper's, woken by the
/// same reset that failed the attempt).
const RELEASE_WAIT: Duration = Duration::from_secs(1);

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
        let kept = KeptBody(Arc::new(KeptShared {
            kept: Mutex::new(Kept {
                frames: Vec::new(),
                size: 0,
                limit,
                ended: self.is_end_stream(),
                lost: false,
                rest: None,
            }),
            released: tokio::sync::Notify::new(),
        }));
        self.kept = Some(kept.clone());
        kept
    }
}

// === impl KeptBody ===

impl KeptBody {
    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        // Only byte lists are behind it: consistent whatever panicked.
        self.0.kept.lock().unwrap_or_else(PoisonError::into_inner)
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

    /// The body again once the failed attempt released it: kept whole, or
    /// the kept part followed by what the attempt left unread. `None` when
    /// part of it was not kept, or it did not come back within
    /// [`RELEASE_WAIT`].
    pub async fn replay_released(&self, timeout: Duration) -> Option<RequestBody> {
        let released = async {
            loop {
                if let Some(body) = self.replay(timeout).or_else(|| self.continued(timeout)) {
                    return Some(body);
                }
                if self.lock().lost {
                    return None;
                }
                // `notify_one` keeps a permit: a release between the check
                // above and this wait is not missed.
                self.0.released.notified().await;
            }
        };
        tokio::time::timeout(RELEASE_WAIT, released)
            .await
            .ok()
            .flatten()
    }

    /// The kept part, then the rest an attempt handed back.
    fn continued(&self, timeout: Duration) -> Option<RequestBody> {
        let mut kept = self.lock();
        if kept.lost {
            return None;
        }
        let mut rest = kept.rest.take()?;
        rest.kept = Some(self.clone());
        let frames = kept.frames.iter().cloned().collect();
        Some(RequestBody::new(
            ClientBody::Continued(frames, Box::new(rest)),
            timeout,
        ))
    }

    /// Takes back what a dropped attempt's body left unread; `None` when
    /// it was read to its end (hyper stops at a frame that ends the body,
    /// before the `None` that [`KeptBody::record`] would see).
    fn hand_back(&self, rest: Option<RequestBody>) {
        {
            let mut kept = self.lock();
            match rest {
                _ if kept.lost || kept.ended => {}
                Some(rest) => kept.rest = Some(rest),
                None => kept.ended = true,
            }
        }
        self.0.released.notify_one();
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
            ClientBody::Continued(frames, rest) => match frames.pop_front() {
                Some(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
                None => Pin::new(&mut **rest).poll_frame(cx),
            },
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
            ClientBody::Continued(frames, rest) => frames.is_empty() && rest.is_end_stream(),
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
            ClientBody::Continued(frames, rest) => {
                let before: u64 = frames.iter().map(|frame| frame.len() as u64).sum();
                let rest = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower().saturating_add(before));
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper.saturating_add(before));
                }
                hint
            }
        }
    }
}

impl Drop for RequestBody {
    /// A kept body dropped before its end (its attempt failed) hands the
    /// unread rest back, for the next attempt to continue from.
    fn drop(&mut self) {
        let Some(kept) = self.kept.take() else { return };
        let rest = (!Body::is_end_stream(self)).then(|| RequestBody {
            inner: std::mem::replace(&mut self.inner, ClientBody::Empty),
            timeout: self.timeout,
            waiting: None,
            kept: None,
            limit: self.limit,
            counted: self.counted.take(),
            client_meter: self.client_meter.take(),
            backend_meter: None,
        });
        kept.hand_back(rest);
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
