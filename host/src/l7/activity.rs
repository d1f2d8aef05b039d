//! Whether a client connection has a request in flight, and since when it
//! has had none: what the keep-alive idle timeout waits on.
//!
//! A request counts from the moment the service is called until its
//! response body has been sent (or dropped), so a long download is never
//! idle. HTTP/2 streams each count.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::Notify;
use tokio::time::Instant;

/// One connection's requests in flight.
#[derive(Debug)]
pub struct Activity {
    in_flight: AtomicUsize,
    idle_since: Mutex<Instant>,
    changed: Notify,
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
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            changed: Notify::new(),
        })
    }

    /// Counts a request until the returned guard is dropped.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
        InFlight(Arc::clone(self))
    }

    /// Returns once the connection has had no request in flight for
    /// `timeout` without a break.
    pub async fn idle_for(&self, timeout: Duration) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.in_flight.load(Ordering::SeqCst) > 0 {
                changed.await;
                continue;
            }
            let deadline = *self
                .idle_since
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                + timeout;
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    let still_idle = self.in_flight.load(Ordering::SeqCst) == 0;
                    let since = *self.idle_since.lock().unwrap_or_else(PoisonError::into_inner);
                    if still_idle && since + timeout <= Instant::now() {
                        return;
                    }
                }
                _ = changed => {}
            }
        }
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
        *activity
            .idle_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
        activity.in_flight.fetch_sub(1, Ordering::SeqCst);
        activity.changed.notify_waiters();
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
