//! The control task: the one owner of a running [`Server`], and the
//! [`ServerHandle`] through which everything else asks it to act.
//!
//! SIGHUP, and later the admin API and a config-file watcher, never touch
//! the server themselves: they send a request down one channel and get its
//! result back, so two reloads can never interleave and each caller learns
//! whether its own request took effect. This file does not decide what a
//! reload does; [`Server::reload`] does.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::{Config, LoadError};
use crate::server::{BoundListener, Server, StartError};

/// Requests waiting for the control task; a sender past this waits, which
/// bounds what a flood of signals or admin calls can queue.
const QUEUED_REQUESTS: usize = 16;

/// A cloneable way to reach the control task of a running server.
#[derive(Clone)]
pub struct ServerHandle {
    requests: mpsc::Sender<Request>,
}

/// A [`ServerHandle`] that does not keep the control task alive: what the
/// server's own admin listener holds, so that the server does not keep
/// itself running.
#[derive(Clone)]
pub struct WeakServerHandle {
    requests: mpsc::WeakSender<Request>,
}

/// The control task, returned by [`ServerHandle::spawn`]: awaiting it
/// waits until the server has shut down.
pub struct ControlTask(JoinHandle<()>);

/// A listener as reported to whoever asked for a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerInfo {
    /// Its name.
    pub name: Arc<str>,
    /// The address it bound.
    pub address: SocketAddr,
    /// `http` or `tcp`.
    pub scheme: &'static str,
}

/// What a successful reload changed.
#[derive(Debug)]
pub struct Reloaded {
    /// The config generation now serving (1 is the config started with).
    pub generation: u64,
    /// Listeners this reload bound that were not serving before.
    pub added: Vec<ListenerInfo>,
    /// The new config's `[shutdown] grace`.
    pub shutdown_grace: std::time::Duration,
}

/// Why a reload did not take effect. The running config keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The config file could not be read or is invalid.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The config is valid but could not be applied (a plugin failed to
    /// load, a listener could not bind).
    #[error(transparent)]
    Apply(#[from] StartError),
    /// The server is shutting down or has stopped.
    #[error("the server is not running")]
    Stopped,
}

// === impl ReloadError ===

impl ReloadError {
    /// Every problem on a line of its own (a config's errors each name
    /// file, line and field), with their causes.
    pub fn messages(&self) -> Vec<String> {
        crate::error_chain(self)
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

enum Request {
    Reload(oneshot::Sender<Result<Reloaded, ReloadError>>),
    Shutdown {
        grace: Duration,
        done: oneshot::Sender<bool>,
    },
}

// === impl ServerHandle ===

impl ServerHandle {
    /// Hands `server` to a new control task that reloads from
    /// `config_path` when asked.
    pub fn spawn(server: Server, config_path: PathBuf) -> (ServerHandle, ControlTask) {
        let (requests, received) = mpsc::channel(QUEUED_REQUESTS);
        let handle = ServerHandle { requests };
        server.connect_admin(handle.downgrade());
        let task = tokio::spawn(control(server, config_path, received));
        (handle, ControlTask(task))
    }

    /// A handle that does not keep the server running.
    pub fn downgrade(&self) -> WeakServerHandle {
        WeakServerHandle {
            requests: self.requests.downgrade(),
        }
    }

    /// Re-reads the config file and applies it; returns what changed, or
    /// why nothing did.
    pub async fn reload(&self) -> Result<Reloaded, ReloadError> {
        let (reply, result) = oneshot::channel();
        self.requests
            .send(Request::Reload(reply))
            .await
            .map_err(|_| ReloadError::Stopped)?;
        result.await.unwrap_or(Err(ReloadError::Stopped))
    }

    /// Stops every listener and waits up to `grace` for in-flight requests;
    /// returns whether they all finished. Later requests get
    /// [`ReloadError::Stopped`].
    pub async fn shutdown(&self, grace: Duration) -> bool {
        let (done, finished) = oneshot::channel();
        if self
            .requests
            .send(Request::Shutdown { grace, done })
            .await
            .is_err()
        {
            return true;
        }
        finished.await.unwrap_or(true)
    }
}

// === impl WeakServerHandle ===

impl WeakServerHandle {
    /// The handle, while the server runs.
    pub fn upgrade(&self) -> Option<ServerHandle> {
        self.requests
            .upgrade()
            .map(|requests| ServerHandle { requests })
    }
}

// === impl ControlTask ===

impl ControlTask {
    /// Waits until the control task has ended (after a shutdown, or once
    /// every handle is dropped).
    pub async fn finished(self) {
        let _ = self.0.await;
    }
}

// === impl ListenerInfo ===

impl From<&BoundListener> for ListenerInfo {
    fn from(listener: &BoundListener) -> Self {
        ListenerInfo {
            name: Arc::clone(&listener.name),
            address: listener.address,
            scheme: listener.scheme(),
        }
    }
}

/// Serves requests one at a time until a shutdown, or until every handle
/// is gone (then the server is dropped, which stops its listeners).
async fn control(mut server: Server, config_path: PathBuf, mut requests: mpsc::Receiver<Request>) {
    while let Some(request) = requests.recv().await {
        match request {
            Request::Reload(reply) => {
                let result = reload(&mut server, &config_path).await;
                crate::metrics::reload_finished(match &result {
                    Ok(_) => "ok",
                    Err(ReloadError::Load(_)) => "invalid",
                    Err(_) => "failed",
                });
                match &result {
                    Ok(reloaded) => tracing::info!(
                        generation = reloaded.generation,
                        path = %config_path.display(),
                        "config reloaded"
                    ),
                    // One log line whatever the number of errors.
                    Err(error) => tracing::warn!(
                        path = %config_path.display(),
                        errors = ?error.messages(),
                        "reload rejected, still serving the previous config"
                    ),
                }
                // The asker may have gone (a signal has no one waiting).
                let _ = reply.send(result);
            }
            Request::Shutdown { grace, done } => {
                let finished = server.shutdown(grace).await;
                let _ = done.send(finished);
                return;
            }
        }
    }
}

async fn reload(
    server: &mut Server,
    config_path: &std::path::Path,
) -> Result<Reloaded, ReloadError> {
    // Reading and validating is quick next to building the plan, which
    // `Server::reload` already moves off the runtime's threads.
    let config = Config::load(config_path)?;
    let added = server.reload(&config).await?;
    crate::logging::apply(&config.log);
    let added = added.into_iter().map(ListenerInfo::from).collect();
    Ok(Reloaded {
        generation: server.generation(),
        added,
        shutdown_grace: config.shutdown_grace,
    })
}

mod watch;

pub use watch::{FileWatch, WatchError};

#[cfg(test)]
mod tests;
