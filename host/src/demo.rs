//! `bascule demo`: three demo backends on loopback and a proxy in front of
//! them with the round-robin plugin, so that Bascule can be tried with no
//! setup at all.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::{Config, ConfigSource};
use crate::server::{Server, StartError};

/// How many demo backends to start.
pub const DEMO_BACKENDS: usize = 3;

/// The running demo: backends and proxy. Dropping it stops everything.
pub struct Demo {
    /// The proxy.
    pub server: Server,
    /// The backends' addresses.
    pub backends: Vec<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A demo backend could not bind a loopback port.
    #[error("cannot start a demo backend")]
    Backend(#[source] std::io::Error),
    /// The generated config was rejected (a bug).
    #[error("the demo config is invalid")]
    Config(#[source] crate::config::ConfigErrors),
    /// The proxy could not start (its port may be taken).
    #[error(transparent)]
    Start(#[from] StartError),
}

// === impl Demo ===

impl Demo {
    /// Starts the backends and a proxy listening on `listen`.
    pub async fn start(listen: SocketAddr) -> Result<Demo, DemoError> {
        let mut backends = Vec::new();
        let mut tasks = Vec::new();
        for n in 1..=DEMO_BACKENDS {
            let socket = TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(DemoError::Backend)?;
            backends.push(socket.local_addr().map_err(DemoError::Backend)?);
            tasks.push(tokio::spawn(serve_backend(
                socket,
                format!("demo-backend-{n}"),
            )));
        }
        let config = Config::parse(ConfigSource::new("<demo>", demo_config(listen, &backends)))
            .map_err(DemoError::Config)?;
        let server = Server::start(&config).await?;
        Ok(Demo {
            server,
            backends,
            tasks,
        })
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The demo's config: one listener, one round-robin pool.
fn demo_config(listen: SocketAddr, backends: &[SocketAddr]) -> String {
    let mut text = format!(
        "[[listeners]]\nname = \"demo\"\naddress = \"{listen}\"\n\n  \
         [[listeners.routes]]\n  pool = \"demo\"\n\n\
         [pools.demo]\nbalancer = \"builtin:round-robin\"\n"
    );
    for (n, address) in backends.iter().enumerate() {
        text.push_str(&format!(
            "\n[[pools.demo.backends]]\nname = \"demo-backend-{}\"\naddress = \"{address}\"\n",
            n + 1
        ));
    }
    text
}

/// A backend that answers every request with its own name.
async fn serve_backend(socket: TcpListener, name: String) {
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let Ok((stream, _)) = socket.accept().await else {
            continue;
        };
        let name = name.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let body = format!(
                    "hello from {name}: {} {}\n",
                    request.method(),
                    request.uri()
                );
                let response = Response::builder()
                    .header("x-backend", name.as_str())
                    .body(Full::new(Bytes::from(body)));
                async move { Ok::<_, Infallible>(response.unwrap_or_default()) }
            });
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
