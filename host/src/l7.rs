//! The HTTP reverse proxy: HTTP/1.1 and HTTP/2 (prior knowledge) from
//! clients, pooled HTTP/1.1 to backends through [`crate::upstream`].
//!
//! [`Proxy`] runs the request path in named steps (route, prepare head,
//! request filters, choose, attempts, response filters; see `proxy.rs`).
//! Header filters are anything implementing [`HeaderFilter`].

mod attempt;
mod authority;
mod filter;
mod framing;
mod headers;
mod local;
mod path;
mod proxy;
mod response;
mod route;
mod target;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use attempt::{Attempt, AttemptCause, FailedAttempt};
pub use authority::{Authority, AuthorityError};
pub use filter::{FilterError, FilterVerdict, HeaderFilter, LocalResponse};
pub use headers::ClientAddress;
pub use local::{next_connection, serve_local};
pub use path::{EncodedSlashes, PathError, PathPolicy};
pub use proxy::Proxy;
pub use response::ProxyBody;
pub use route::{Route, RouteTable};

/// A client that has not finished sending request headers after this long
/// is holding a connection open on purpose (slowloris), not on a slow
/// network; NGINX's `client_header_timeout` is 60 s, HAProxy's
/// `timeout http-request` commonly 10-30 s.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Accepts connections on `listener` and serves them with `proxy` until
/// `stop` fires (or its sender is dropped). Then it stops accepting, asks
/// every open connection to finish its in-flight request and close, and
/// returns once all have. Connection errors are logged, never fatal.
pub async fn serve(listener: Arc<TcpListener>, proxy: Arc<Proxy>, mut stop: watch::Receiver<()>) {
    let builder = Arc::new(client_connection_builder());
    let connections = GracefulShutdown::new();
    while let Some((stream, peer)) = next_connection(&listener, &mut stop).await {
        let _ = stream.set_nodelay(true);
        let proxy = Arc::clone(&proxy);
        let client = Arc::new(ClientAddress::new(peer));
        let service = service_fn(move |request| {
            let proxy = Arc::clone(&proxy);
            let client = Arc::clone(&client);
            async move { Ok::<_, Infallible>(proxy.handle(request, &client).await) }
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(client = %peer, %error, "client connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.shutdown().await;
}

/// HTTP/1.1 and HTTP/2 (prior knowledge) server settings for clients.
fn client_connection_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    builder
}
