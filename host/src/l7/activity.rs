//! Whether a client connection has a request in flight, and since when it
//! has had none: what the keep-alive idle timeout waits on.
//!
//! A request counts from the moment the service is called until its
//! response body has been sent (or dropped), so a long download is never
//! idle. HTTP/2 streams each count.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Instant;

/// One connection's requests in flight. Counting costs two atomic
/// operations per request and wakes nothing: the idle timer looks at the
/// count only when it expires.
#[derive(Debug)]
pub struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    /// When the last request ended, in milliseconds since `opened`.
    idle_since_ms: AtomicU64,
}

/// A request in flight; dropping it ends the request.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

/// A response body that keeps its request in flight until it is sent.
#[derive(Debug)]
pub struct InFlightBody<B> {
    inner: B,
    _in_flight: InFlight,
}

// === impl Activity ===

impl Activity {
    /// A connection that has just opened: idle from now.
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
        })
    }

    /// Counts a request until the returned guard is dropped.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }

    /// Returns once the connection has had no request in flight for
    /// `timeout` without a break. Wakes once per `timeout` at most.
    pub async fn idle_for(&self, timeout: Duration) {
        let mut deadline = self.idle_since() + timeout;
        loop {
            tokio::time::sleep_until(deadline).await;
            if self.in_flight.load(Ordering::Acquire) > 0 {
                deadline = Instant::now() + timeout;
                continue;
            }
            let due = self.idle_since() + timeout;
            if due <= Instant::now() {
                return;
            }
            deadline = due;
        }
    }

    fn idle_since(&self) -> Instant {
        self.opened + Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire))
    }
}

// === impl InFlightBody ===

impl<B> InFlightBody<B> {
    /// `inner`, counted by `in_flight` until dropped.
    pub fn new(inner: B, in_flight: InFlight) -> Self {
        InFlightBody {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl<B: Body + Unpin> Body for InFlightBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

// === impl InFlight ===

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        let ms = u64::try_from(activity.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        activity.idle_since_ms.store(ms, Ordering::Release);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_counts_from_the_end_of_the_last_request() {
        let activity = Activity::new();
        let request = activity.start();
        let waited = Instant::now();
        let idle = tokio::spawn({
            let activity = Arc::clone(&activity);
            async move { activity.idle_for(Duration::from_secs(10)).await }
        });
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!idle.is_finished(), "idle while a request was in flight");
        drop(request);
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert!(!idle.is_finished(), "idle before the timeout had passed");
        idle.await.unwrap();
        let elapsed = waited.elapsed();
        assert!(elapsed >= Duration::from_secs(40), "{elapsed:?}");
    }
}
