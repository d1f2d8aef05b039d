//! The HTTP reverse proxy: HTTP/1.1 and HTTP/2 (prior knowledge) from
//! clients, pooled HTTP/1.1 to backends.

mod connections;
mod headers;
mod proxy;
mod response;
mod route;

use std::convert::Infallible;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

pub use connections::UpstreamConnections;
pub use proxy::Proxy;
pub use response::ProxyBody;
pub use route::{Route, RouteTable};

/// Accepts connections on `listener` and serves them with `proxy` until
/// the task is dropped. Connection errors are logged, never fatal.
pub async fn serve(listener: TcpListener, proxy: Arc<Proxy>) {
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        let (stream, client) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let proxy = Arc::clone(&proxy);
        let builder = Arc::clone(&builder);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let proxy = Arc::clone(&proxy);
                async move { Ok::<_, Infallible>(proxy.handle(request, client).await) }
            });
            if let Err(error) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%client, %error, "client connection ended with an error");
            }
        });
    }
}
