//! `bascule demo`: three demo backends on loopback and a proxy in front of
//! them, so that Bascule can be tried with no setup at all: an HTTP listener
//! balanced by the round-robin plugin, and a TCP listener (a free port next
//! to it) balanced by least-connections.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{Config, ConfigSource};
use crate::l7::serve_local;
use crate::server::{Server, StartError};

/// How many demo backends to start.
pub const DEMO_BACKENDS: usize = 3;

/// The running demo: backends and proxy. Dropping it stops everything.
pub struct Demo {
    /// The proxy.
    pub server: Server,
    /// The backends' addresses.
    pub backends: Vec<SocketAddr>,
    /// Dropping these stops the backends.
    _stop_backends: Vec<watch::Sender<()>>,
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
        let mut stops = Vec::new();
        for n in 1..=DEMO_BACKENDS {
            let socket = TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(DemoError::Backend)?;
            backends.push(socket.local_addr().map_err(DemoError::Backend)?);
            let (stop, stopped) = watch::channel(());
            let name = format!("demo-backend-{n}");
            tokio::spawn(serve_local(
                std::sync::Arc::new(socket),
                move |request| std::future::ready(answer(&name, &request)),
                stopped,
            ));
            stops.push(stop);
        }
        let config = Config::parse(ConfigSource::new("<demo>", demo_config(listen, &backends)))
            .map_err(DemoError::Config)?;
        let server = Server::start(&config).await?;
        Ok(Demo {
            server,
            backends,
            _stop_backends: stops,
        })
    }
}

/// The demo's config: an HTTP listener with a round-robin pool and the
/// built-in headers filter (it names the client and the filter in response
/// headers), and a TCP listener on a free port with a least-connections
/// pool, over the same backends.
fn demo_config(listen: SocketAddr, backends: &[SocketAddr]) -> String {
    let tcp = SocketAddr::new(listen.ip(), 0);
    let mut text = format!(
        "[[listeners]]\nname = \"demo\"\naddress = \"{listen}\"\n\n  \
         [[listeners.routes]]\n  pool = \"demo\"\n  filters = [\"demo-headers\"]\n\n\
         [[listeners]]\nname = \"demo-tcp\"\naddress = \"{tcp}\"\nmode = \"tcp\"\n\n  \
         [[listeners.routes]]\n  pool = \"demo-tcp\"\n\n\
         [pools.demo]\nbalancer = \"builtin:round-robin\"\n\n\
         [pools.demo-tcp]\nbalancer = \"builtin:least-connections\"\n\n\
         [filters.demo-headers]\nplugin = \"builtin:headers\"\n\
         options.response = {{ set = {{ \"x-bascule-filter\" = \"builtin:headers\", \
         \"x-client\" = \"{{client-ip}}:{{client-port}}\" }} }}\n"
    );
    for pool in ["demo", "demo-tcp"] {
        for (n, address) in backends.iter().enumerate() {
            text.push_str(&format!(
                "\n[[pools.{pool}.backends]]\nname = \"demo-backend-{}\"\naddress = \"{address}\"\n",
                n + 1
            ));
        }
    }
    text
}

/// A demo backend's answer: its own name and what it was asked.
fn answer(name: &str, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let body = format!(
        "hello from {name}: {} {}\n",
        request.method(),
        request.uri()
    );
    Response::builder()
        .header("x-backend", name)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}
