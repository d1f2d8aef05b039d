//! Starting a proxy from a config: build the plan, bind the listeners,
//! serve until dropped.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::{Config, ConfigErrors};
use crate::l7::{self, Proxy, UpstreamConnections};
use crate::plan::Plan;
use crate::plugin::{self, PluginRuntime};
use crate::upstream::StatsRegistry;

/// A running proxy. Dropping it stops every listener.
pub struct Server {
    listeners: Vec<BoundListener>,
    admin: Option<BoundListener>,
    _plan: Arc<ArcSwap<Plan>>,
    _plugins: Arc<PluginRuntime>,
}

/// A listener that is accepting connections.
pub struct BoundListener {
    /// Its name.
    pub name: Arc<str>,
    /// The address it actually bound (with the real port when the config
    /// said port 0).
    pub address: SocketAddr,
    task: JoinHandle<()>,
}

/// Why a proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The plugin engine could not be created.
    #[error("cannot start the plugin runtime")]
    Runtime(#[source] plugin::Error),
    /// The config could not be compiled.
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    /// A listener could not bind.
    #[error("listener `{name}` cannot bind {address}")]
    Bind {
        /// The listener.
        name: String,
        /// Its address.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

// === impl Server ===

impl Server {
    /// Compiles `config`, binds every listener and starts serving. Must be
    /// called inside a tokio runtime.
    pub async fn start(config: &Config) -> Result<Server, StartError> {
        let metrics = crate::metrics::install();
        let plugins = Arc::new(PluginRuntime::new().map_err(StartError::Runtime)?);
        let stats = StatsRegistry::default();
        let plan = Plan::build(config, &plugins, &stats, 1)?;
        let plan = Arc::new(ArcSwap::from_pointee(plan));
        let connections = Arc::new(UpstreamConnections::default());
        let mut listeners = Vec::new();
        for listener in plan.load().listeners() {
            let socket = TcpListener::bind(listener.address)
                .await
                .map_err(|source| StartError::Bind {
                    name: listener.name.to_string(),
                    address: listener.address,
                    source,
                })?;
            let address = socket.local_addr().map_err(|source| StartError::Bind {
                name: listener.name.to_string(),
                address: listener.address,
                source,
            })?;
            let proxy = Arc::new(Proxy::new(
                Arc::clone(&listener.name),
                Arc::clone(&plan),
                Arc::clone(&connections),
            ));
            tracing::info!(listener = %listener.name, %address, "listening");
            listeners.push(BoundListener {
                name: Arc::clone(&listener.name),
                address,
                task: tokio::spawn(l7::serve(socket, proxy)),
            });
        }
        let admin = match config.admin {
            Some(admin) => Some(bind_admin(admin.address, metrics).await?),
            None => None,
        };
        Ok(Server {
            listeners,
            admin,
            _plan: plan,
            _plugins: plugins,
        })
    }

    /// The admin listener, when configured.
    pub fn admin(&self) -> Option<&BoundListener> {
        self.admin.as_ref()
    }

    /// The bound listeners, in config order.
    pub fn listeners(&self) -> &[BoundListener] {
        &self.listeners
    }
}

async fn bind_admin(
    address: SocketAddr,
    metrics: Option<PrometheusHandle>,
) -> Result<BoundListener, StartError> {
    let bind_error = |source| StartError::Bind {
        name: "admin".to_owned(),
        address,
        source,
    };
    let socket = TcpListener::bind(address).await.map_err(bind_error)?;
    let address = socket.local_addr().map_err(bind_error)?;
    Ok(BoundListener {
        name: "admin".into(),
        address,
        task: tokio::spawn(crate::admin::serve(socket, metrics)),
    })
}

impl Drop for Server {
    fn drop(&mut self) {
        for listener in self.listeners.iter().chain(&self.admin) {
            listener.task.abort();
        }
    }
}
