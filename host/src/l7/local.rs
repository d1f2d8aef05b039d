//! Accepting connections, and serving responses the process writes itself
//! (the admin endpoints, the demo backends) rather than proxies.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// First pause after a failed `accept`; doubled per failure in a row.
const ACCEPT_BACKOFF_FIRST: Duration = Duration::from_millis(5);
/// Longest pause: once file descriptors free up, accepting resumes within
/// this long.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The next accepted connection, or `None` once `stop` fires (or its sender
/// is dropped). Accept errors (EMFILE when out of file descriptors, and
/// friends) back off exponentially instead of spinning, and are logged at
/// the first failure of a run and then at most once a second.
pub async fn next_connection(
    listener: &TcpListener,
    stop: &mut watch::Receiver<()>,
) -> Option<(TcpStream, SocketAddr)> {
    let mut pause = ACCEPT_BACKOFF_FIRST;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return None,
        };
        match accepted {
            Ok(accepted) => return Some(accepted),
            Err(error) => {
                if pause == ACCEPT_BACKOFF_FIRST || pause == ACCEPT_BACKOFF_MAX {
                    tracing::warn!(%error, retry_in = ?pause, "accept failed");
                }
                metrics::counter!(crate::metrics::ACCEPT_FAILURES).increment(1);
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stop.changed() => return None,
                }
                pause = (pause * 2).min(ACCEPT_BACKOFF_MAX);
            }
        }
    }
}

/// Answers every request on `listener` with `respond` until `stop` fires.
pub async fn serve_local<Respond, Answer>(
    listener: Arc<TcpListener>,
    respond: Respond,
    mut stop: watch::Receiver<()>,
) where
    Respond: Fn(Request<Incoming>) -> Answer + Send + Sync + 'static,
    Answer: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let respond = Arc::new(respond);
    let builder = auto::Builder::new(TokioExecutor::new());
    while let Some((stream, _)) = next_connection(&listener, &mut stop).await {
        let respond = Arc::clone(&respond);
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let response = respond(request);
                async move { Ok::<_, Infallible>(response.await) }
            });
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
