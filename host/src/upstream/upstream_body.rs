//! A backend's response body on its way to the client.
//!
//! The body holds what the response still holds of the backend: its
//! active-request count (least-connections sees it until the last byte),
//! and its connection: an HTTP/1.1 connection goes back to the idle pool
//! once the body was read to the end, and an HTTP/2 stream gives its slot
//! on the shared connection back. A body dropped half-read takes an
//! HTTP/1.1 connection with it (it cannot be reused safely); hyper resets
//! an HTTP/2 stream instead, and the connection goes on.
//!
//! Two bounds can end a body early: the pool's `drain-timeout` once its
//! backend is leaving, and a deadline the request path set (a route's
//! `timeout`, a gRPC call's `grpc-timeout`), which ends it with the
//! trailers it was given (gRPC) or as a failure.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use super::ActiveRequest;
use super::connection_pool::IdleQueue;
use super::exchange_error::ExchangeError;
use super::http1::ResponseBody;
use super::http2::StreamGuard;

/// A response body streamed from a backend.
pub struct UpstreamBody {
    source: Source,
    release: Option<Release>,
    /// The pool's `drain-timeout`, armed only once the body waits on the
    /// backend: a body read from what already arrived costs nothing.
    drain: Drain,
    /// Where the request path wants the body to end at the latest.
    cutoff: Option<Cutoff>,
    /// Data bytes passed on so far.
    sent: u64,
    /// Told how many bytes went out once the body is done with (read to
    /// its end, cut off, or dropped by a client that left).
    on_end: Option<OnEnd>,
    /// The listener's `sent` bytes, counted once the body is done with.
    /// (The backend's `received` are counted per frame through the
    /// backend's stats the body holds anyway.)
    to_client: Option<metrics::Counter>,
}

/// What runs when a body is done with, given the bytes it passed on.
pub type OnEnd = Box<dyn FnOnce(u64) + Send>;

enum Source {
    Http1(ResponseBody),
    Http2(Incoming),
    /// Cut off: the backend's side was dropped.
    Ended,
}

/// What the body gives back when it ends.
struct Release {
    /// Held until the body ends.
    active: ActiveRequest,
    home: Home,
}

enum Home {
    /// The idle queue an HTTP/1.1 connection returns to.
    Idle(Arc<IdleQueue>),
    /// The HTTP/2 stream's slot on its connection.
    Stream(StreamGuard),
}

/// The bound on a body in progress when its backend leaves.
enum Drain {
    /// Not waited on the backend yet.
    Unarmed(Duration),
    /// Completes when the backend has been leaving for the timeout.
    Armed(Pin<Box<dyn Future<Output = ()> + Send>>),
}

/// An instant past which the body ends: with `trailers` (a gRPC status),
/// or, without, as a failed body the client sees cut short.
struct Cutoff {
    at: Pin<Box<Sleep>>,
    end: CutoffEnd,
}

enum CutoffEnd {
    Trailers(HeaderMap),
    Fail,
    Done,
}

// === impl UpstreamBody ===

impl UpstreamBody {
    /// The body of a response on an HTTP/1.1 connection, which goes back
    /// to `home` once the body was read to the end.
    pub(super) fn http1(
        body: ResponseBody,
        home: Arc<IdleQueue>,
        active: ActiveRequest,
        drain_timeout: Duration,
    ) -> Self {
        UpstreamBody {
            source: Source::Http1(body),
            release: Some(Release {
                active,
                home: Home::Idle(home),
            }),
            drain: Drain::Unarmed(drain_timeout),
            cutoff: None,
            sent: 0,
            on_end: None,
            to_client: None,
        }
    }

    /// The body of a response on an HTTP/2 stream.
    pub(super) fn http2(
        body: Incoming,
        stream: StreamGuard,
        active: ActiveRequest,
        drain_timeout: Duration,
    ) -> Self {
        UpstreamBody {
            source: Source::Http2(body),
            release: Some(Release {
                active,
                home: Home::Stream(stream),
            }),
            drain: Drain::Unarmed(drain_timeout),
            cutoff: None,
            sent: 0,
            on_end: None,
            to_client: None,
        }
    }

    /// A body that has nothing (a `101`, whose connection became a
    /// tunnel).
    pub(super) fn ended() -> Self {
        UpstreamBody {
            source: Source::Ended,
            release: None,
            drain: Drain::Unarmed(Duration::ZERO),
            cutoff: None,
            sent: 0,
            on_end: None,
            to_client: None,
        }
    }

    /// Ends the body at `at` if it has not ended by then: with
    /// `trailers` (a clean end the client's protocol understands, a gRPC
    /// status), or without them as a failure, so that the client sees the
    /// response cut short rather than complete. The backend's stream or
    /// connection is abandoned.
    pub fn cut_off_at(&mut self, at: Instant, trailers: Option<HeaderMap>) {
        self.cutoff = Some(Cutoff {
            at: Box::pin(tokio::time::sleep_until(at)),
            end: trailers.map_or(CutoffEnd::Fail, CutoffEnd::Trailers),
        });
    }

    /// Counts the bytes passed on into `sent` (the listener's) too.
    pub fn meter_client(&mut self, sent: &metrics::Counter) {
        self.to_client = Some(sent.clone());
    }

    /// Runs `on_end` with the bytes passed on, once the body is done with.
    pub fn on_end(&mut self, on_end: OnEnd) {
        self.on_end = Some(on_end);
    }

    fn release(&mut self) {
        let Some(release) = self.release.take() else {
            return;
        };
        match (release.home, &mut self.source) {
            (Home::Idle(home), Source::Http1(body)) => {
                if let Some(http) = body.take_reusable() {
                    home.push_idle(http);
                }
            }
            // The stream's slot is given back as its guard drops.
            (Home::Stream(stream), _) => drop(stream),
            (Home::Idle(_), _) => {}
        }
    }

    /// Whether the backend has been leaving for the drain timeout; arms
    /// the wait the first time the body waits on the backend.
    fn poll_drained(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Drain::Unarmed(timeout) = self.drain {
            let Some(release) = &self.release else {
                return Poll::Pending;
            };
            let leaving = release.active.stats().leaving();
            self.drain = Drain::Armed(Box::pin(super::drained(leaving, timeout)));
        }
        match &mut self.drain {
            Drain::Armed(drained) => drained.as_mut().poll(cx),
            Drain::Unarmed(_) => Poll::Pending,
        }
    }

    /// The cut-off's last frame once it passed (then the end).
    fn poll_cutoff(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ExchangeError>>> {
        match &mut self.cutoff {
            Some(cutoff) => cutoff.at.as_mut().poll(cx).map(|()| {
                if !matches!(cutoff.end, CutoffEnd::Done) {
                    crate::metrics::timed_out("deadline");
                }
                match std::mem::replace(&mut cutoff.end, CutoffEnd::Done) {
                    CutoffEnd::Trailers(trailers) => Some(Ok(Frame::trailers(trailers))),
                    CutoffEnd::Fail => Some(Err(ExchangeError::Deadline)),
                    CutoffEnd::Done => None,
                }
            }),
            None => Poll::Pending,
        }
    }
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody")
            .field("ended", &self.is_end_stream())
            .finish_non_exhaustive()
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = ExchangeError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ExchangeError>>> {
        let this = &mut *self;
        if this.cutoff.is_some()
            && let Poll::Ready(last) = this.poll_cutoff(cx)
        {
            this.release = None;
            // Drop the backend's side now: its stream is reset, its
            // connection closed.
            this.source = Source::Ended;
            return Poll::Ready(last);
        }
        let polled = match &mut this.source {
            Source::Http1(body) => body
                .poll_frame(cx)
                .map(|frame| frame.map(|frame| frame.map_err(ExchangeError::Http1))),
            Source::Http2(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|frame| frame.map_err(ExchangeError::Http2))),
            Source::Ended => Poll::Ready(None),
        };
        match &polled {
            Poll::Ready(None) => this.release(),
            // A broken body means a broken connection: never reuse it.
            Poll::Ready(Some(Err(_))) => this.release = None,
            Poll::Pending => {
                if this.poll_drained(cx).is_ready() {
                    this.release = None;
                    return Poll::Ready(Some(Err(ExchangeError::Drained)));
                }
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    this.sent += len;
                    if let Some(bytes) = this
                        .release
                        .as_ref()
                        .and_then(|release| release.active.stats().bytes())
                    {
                        bytes.received.increment(len);
                    }
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.source {
            Source::Http1(body) => body.is_end_stream(),
            Source::Http2(body) => body.is_end_stream(),
            Source::Ended => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.source {
            Source::Http1(body) => body.size_hint(),
            Source::Http2(body) => body.size_hint(),
            Source::Ended => SizeHint::with_exact(0),
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // Bodiless responses (HEAD, 204, 304) may never be polled.
        if self.is_end_stream() {
            self.release();
        }
        if let Some(to_client) = &self.to_client {
            to_client.increment(self.sent);
        }
        if let Some(on_end) = self.on_end.take() {
            on_end(self.sent);
        }
    }
}
