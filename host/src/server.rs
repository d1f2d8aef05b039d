//! Running a proxy from a config: build the plan, bind the listeners,
//! serve; reload a new config without dropping traffic. Once started, a
//! server is owned by the control task ([`crate::control`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Config, ConfigErrors};
use crate::control::WeakServerHandle;
use crate::l4;
use crate::l7::{self, Proxy};
use crate::plan::{ListenerPlan, Plan};
use crate::plugin::{self, PluginRuntime};
use crate::supervisor::Supervisor;
use crate::upstream::{ConnectionPool, StatsRegistry};

/// A running proxy. Dropping it stops every listener.
pub struct Server {
    plan: Arc<ArcSwap<Plan>>,
    plugins: Arc<PluginRuntime>,
    stats: Arc<StatsRegistry>,
    connections: Arc<ConnectionPool>,
    supervisor: Supervisor,
    generation: u64,
    listeners: Vec<BoundListener>,
    admin: Option<BoundListener>,
    /// How the admin listener reaches the control task (`POST /reload`),
    /// filled in once one owns the server.
    control: Arc<OnceLock<WeakServerHandle>>,
}

/// A listener that is accepting connections. Dropping it stops accepting;
/// its open connections finish their in-flight requests and close.
pub struct BoundListener {
    /// Its name.
    pub name: Arc<str>,
    /// The address it actually bound (with the real port when the config
    /// said port 0).
    pub address: SocketAddr,
    configured: SocketAddr,
    /// What it serves: a change between HTTP and TCP needs a new accept
    /// task, on the same socket.
    kind: ListenerKind,
    /// Whether it terminated TLS when it started, for announcements (the
    /// handshake itself follows each plan).
    tls: bool,
    /// The socket, shared with the accept task so that a reload that
    /// renames the listener or changes its mode takes it over.
    socket: ListenerSocket,
    stop: watch::Sender<()>,
    task: Option<JoinHandle<()>>,
}

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListenerKind {
    Http,
    Tcp,
    Udp,
}

/// A listener's bound socket: TCP (HTTP and TCP listeners) or the UDP
/// sockets of its shards.
#[derive(Clone)]
enum ListenerSocket {
    Stream(Arc<TcpListener>),
    Datagram(l4::udp::UdpSockets),
}

/// Why a proxy could not start or reload.
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
    /// Building the new plan was cut short (its thread panicked or the
    /// runtime is shutting down).
    #[error("building the new config was interrupted")]
    Interrupted,
}

// === impl Server ===

impl Server {
    /// Compiles `config`, binds every listener and starts serving. Must be
    /// called inside a tokio runtime (either flavour).
    pub async fn start(config: &Config) -> Result<Server, StartError> {
        let metrics = crate::metrics::install();
        let plugins = Arc::new(PluginRuntime::new().map_err(StartError::Runtime)?);
        let stats = Arc::new(StatsRegistry::default());
        let plan = Plan::build(config, &plugins, &stats, 1)?;
        plan.resolve_names().await;
        plan.commit(&stats);
        let connections = Arc::new(ConnectionPool::default());
        let mut supervisor = Supervisor::start(Arc::clone(&connections));
        supervisor.watch(&plan);
        let mut server = Server {
            plan: Arc::new(ArcSwap::from_pointee(plan)),
            plugins,
            stats,
            connections,
            supervisor,
            generation: 1,
            listeners: Vec::new(),
            admin: None,
            control: Arc::default(),
        };
        let plan = server.plan.load_full();
        for listener in plan.listeners() {
            let bound = server.bind(listener).await?;
            server.listeners.push(bound);
        }
        if let Some(admin) = &config.admin {
            let plan = Arc::clone(&server.plan);
            let control = Arc::clone(&server.control);
            server.admin = Some(bind_admin(admin.address, plan, metrics, control).await?);
        }
        crate::metrics::config_serving(server.generation);
        Ok(server)
    }

    /// Replaces the running config with `config`.
    ///
    /// The new plan is built (plugins compiled and configured) and new
    /// listeners are bound before anything changes; on any error the
    /// running config keeps serving untouched. Requests in flight finish on
    /// the plan they started with. Listeners are matched by address: one
    /// whose name and mode are unchanged keeps its socket and accept task;
    /// one renamed or switched between HTTP and TCP keeps its socket under
    /// a new accept task (no "address in use"); removed ones stop
    /// accepting. Backends
    /// that persist keep their live stats. Returns the newly bound
    /// listeners. The admin listener is not rebound.
    pub async fn reload(&mut self, config: &Config) -> Result<Vec<&BoundListener>, StartError> {
        let generation = self.generation.saturating_add(1);
        // Compiling plugins may take a while: off the runtime's threads, so
        // that a single-threaded runtime keeps serving meanwhile.
        let (plugins, stats) = (Arc::clone(&self.plugins), Arc::clone(&self.stats));
        let compile = config.clone();
        let plan = tokio::task::spawn_blocking(move || {
            Plan::build(&compile, &plugins, &stats, generation)
        })
        .await
        .map_err(|_| StartError::Interrupted)??;
        let mut plan = plan;
        plan.adopt_flow_state(&self.plan.load());
        plan.resolve_names().await;
        let mut previous = std::mem::take(&mut self.listeners);
        // (listener, newly started) in the new plan's order; `None` marks a
        // socket to take over once every new bind has succeeded.
        let mut next: Vec<Option<(BoundListener, bool)>> = Vec::new();
        for listener in plan.listeners() {
            let kind = ListenerKind::of(listener);
            let kept = previous.iter().position(|b| {
                b.name == listener.name && b.configured == listener.address && b.kind == kind
            });
            if let Some(index) = kept {
                next.push(Some((previous.swap_remove(index), false)));
                continue;
            }
            let taken_over = listener.address.port() != 0
                && previous
                    .iter()
                    .any(|b| b.configured == listener.address && b.kind.shares_socket_with(kind));
            if taken_over {
                next.push(None);
                continue;
            }
            match self.bind(listener).await {
                Ok(bound) => next.push(Some((bound, true))),
                Err(error) => {
                    // Keep what was running; drop (stop) what was just bound.
                    previous.extend(
                        next.into_iter()
                            .flatten()
                            .filter(|(_, new)| !new)
                            .map(|(b, _)| b),
                    );
                    self.listeners = previous;
                    return Err(error);
                }
            }
        }
        // Renamed or switched mode at the same address: the old accept task
        // stops and a new one serves the same socket; connections arriving
        // meanwhile wait in the backlog.
        let mut listeners = Vec::with_capacity(next.len());
        for (slot, listener) in next.into_iter().zip(plan.listeners()) {
            match slot {
                Some(bound) => listeners.push(bound),
                None => {
                    let kind = ListenerKind::of(listener);
                    let index = previous.iter().position(|b| {
                        b.configured == listener.address && b.kind.shares_socket_with(kind)
                    });
                    let Some(old) = index.map(|i| previous.swap_remove(i)) else {
                        continue;
                    };
                    let socket = old.socket.clone();
                    drop(old);
                    listeners.push((self.serve_on(listener, socket), true));
                }
            }
        }
        let next = listeners;
        plan.commit(&self.stats);
        // Connections to backends the new config dropped start draining.
        self.stats
            .retire_all_but(|pool, backend| plan.has_backend(pool, backend));
        self.supervisor.watch(&plan);
        self.plan.store(Arc::new(plan));
        self.generation = generation;
        crate::metrics::config_serving(generation);
        let added: Vec<bool> = next.iter().map(|(_, new)| *new).collect();
        self.listeners = next.into_iter().map(|(b, _)| b).collect();
        // `previous` now holds only listeners the new config removed.
        drop(previous);
        Ok(self
            .listeners
            .iter()
            .zip(added)
            .filter_map(|(b, new)| new.then_some(b))
            .collect())
    }

    async fn bind(&self, listener: &ListenerPlan) -> Result<BoundListener, StartError> {
        let bind_error = |source| StartError::Bind {
            name: listener.name.to_string(),
            address: listener.address,
            source,
        };
        let socket = if listener.routes.udp().is_some() {
            // One socket per worker thread: each shard's flows stay on it.
            let shards = tokio::runtime::Handle::current().metrics().num_workers();
            ListenerSocket::Datagram(l4::udp::bind(listener.address, shards).map_err(bind_error)?)
        } else {
            let socket = TcpListener::bind(listener.address)
                .await
                .map_err(bind_error)?;
            ListenerSocket::Stream(Arc::new(socket))
        };
        Ok(self.serve_on(listener, socket))
    }

    /// Starts the accept task of `listener` on `socket`.
    fn serve_on(&self, listener: &ListenerPlan, socket: ListenerSocket) -> BoundListener {
        let name = Arc::clone(&listener.name);
        let kind = ListenerKind::of(listener);
        let plan = Arc::clone(&self.plan);
        let stream = match (&socket, kind) {
            (ListenerSocket::Datagram(sockets), _) => {
                let sockets = Arc::clone(sockets);
                return BoundListener::start(
                    name.clone(),
                    listener.address,
                    kind,
                    socket,
                    move |stopped| l4::udp::serve(sockets, name, plan, stopped),
                );
            }
            (ListenerSocket::Stream(stream), ListenerKind::Tcp) => {
                let stream = Arc::clone(stream);
                return BoundListener::start(
                    name.clone(),
                    listener.address,
                    kind,
                    socket,
                    move |stopped| l4::serve(stream, name, plan, stopped),
                );
            }
            (ListenerSocket::Stream(stream), _) => Arc::clone(stream),
        };
        let proxy = Arc::new(Proxy::new(
            Arc::clone(&name),
            Arc::clone(&self.plan),
            Arc::clone(&self.connections),
        ));
        let mut bound =
            BoundListener::start(name, listener.address, kind, socket, move |stopped| {
                l7::serve(stream, proxy, stopped)
            });
        bound.tls = listener.tls.is_some();
        bound
    }

    /// Lets the admin listener ask `handle`'s control task for reloads.
    pub fn connect_admin(&self, handle: WeakServerHandle) {
        let _ = self.control.set(handle);
    }

    /// The admin listener, when configured.
    pub fn admin(&self) -> Option<&BoundListener> {
        self.admin.as_ref()
    }

    /// The config generation serving now (1 for the config started with).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The bound listeners, in config order.
    pub fn listeners(&self) -> &[BoundListener] {
        &self.listeners
    }

    /// Stops accepting on every listener and waits up to `grace` for
    /// in-flight requests to finish. Returns whether they all did.
    pub async fn shutdown(&mut self, grace: Duration) -> bool {
        let mut tasks = Vec::new();
        for listener in self.listeners.iter_mut().chain(self.admin.iter_mut()) {
            let _ = listener.stop.send(());
            tasks.extend(listener.task.take());
        }
        tokio::time::timeout(grace, async {
            for task in tasks {
                let _ = task.await;
            }
        })
        .await
        .is_ok()
    }
}

async fn bind_admin(
    address: SocketAddr,
    plan: Arc<ArcSwap<Plan>>,
    metrics: Option<PrometheusHandle>,
    control: Arc<OnceLock<WeakServerHandle>>,
) -> Result<BoundListener, StartError> {
    let bind_error = |source| StartError::Bind {
        name: "admin".to_owned(),
        address,
        source,
    };
    let stream = Arc::new(TcpListener::bind(address).await.map_err(bind_error)?);
    let socket = ListenerSocket::Stream(Arc::clone(&stream));
    Ok(BoundListener::start(
        "admin".into(),
        address,
        ListenerKind::Http,
        socket,
        move |stopped| crate::admin::serve(stream, plan, metrics, control, stopped),
    ))
}

// === impl BoundListener ===

impl BoundListener {
    /// Spawns `serve` on a bound `socket`; `serve` must return once its
    /// stop signal fires.
    fn start<Serve, Served>(
        name: Arc<str>,
        configured: SocketAddr,
        kind: ListenerKind,
        socket: ListenerSocket,
        serve: Serve,
    ) -> BoundListener
    where
        Serve: FnOnce(watch::Receiver<()>) -> Served,
        Served: Future<Output = ()> + Send + 'static,
    {
        let address = socket.local_addr().unwrap_or(configured);
        tracing::info!(listener = %name, %address, "listening");
        let (stop, stopped) = watch::channel(());
        BoundListener {
            name,
            address,
            configured,
            kind,
            tls: false,
            task: Some(tokio::spawn(serve(stopped))),
            socket,
            stop,
        }
    }
}

impl BoundListener {
    /// `tcp`, `udp`, `http` or `https`: what the listener serves, for
    /// announcements.
    pub fn scheme(&self) -> &'static str {
        match (self.kind, self.tls) {
            (ListenerKind::Tcp, _) => "tcp",
            (ListenerKind::Udp, _) => "udp",
            (ListenerKind::Http, true) => "https",
            (ListenerKind::Http, false) => "http",
        }
    }
}

// === impl ListenerKind ===

impl ListenerKind {
    fn of(listener: &ListenerPlan) -> ListenerKind {
        if listener.routes.udp().is_some() {
            ListenerKind::Udp
        } else if listener.routes.tcp().is_some() {
            ListenerKind::Tcp
        } else {
            ListenerKind::Http
        }
    }

    /// Whether a listener of this kind can take over the other's socket:
    /// HTTP and TCP share TCP sockets; UDP has its own.
    fn shares_socket_with(self, other: ListenerKind) -> bool {
        (self == ListenerKind::Udp) == (other == ListenerKind::Udp)
    }
}

// === impl ListenerSocket ===

impl ListenerSocket {
    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            ListenerSocket::Stream(socket) => socket.local_addr(),
            ListenerSocket::Datagram(sockets) => sockets.first().map_or_else(
                || Err(std::io::ErrorKind::NotFound.into()),
                |s| s.local_addr(),
            ),
        }
    }
}

impl Drop for BoundListener {
    fn drop(&mut self) {
        // The accept task sees the signal, stops accepting and drains its
        // connections on its own.
        let _ = self.stop.send(());
    }
}
