//! Reloads when a file the config reads changes on disk: the config
//! itself, a plugin's `.wasm`, a certificate or key (`[reload] watch =
//! true`, or `bascule run --watch`).
//!
//! Directories are watched, not files: editors and deploy tools replace a
//! file by renaming a new one over it, which a watch on the old file
//! would never see. Changes settle for the debounce time before the
//! reload, so a burst of writes is one reload; a file caught half
//! written fails validation and the running config stays, and its last
//! write triggers the reload that succeeds. Every reload goes through the
//! control task like SIGHUP's, and is counted and logged there.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

use super::WeakServerHandle;
use crate::config::Config;

/// Events queued from the watcher's thread; past it they are dropped,
/// which loses nothing: one is enough to reload.
const QUEUE: usize = 64;

/// Why files cannot be watched.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {path} for changes")]
pub struct WatchError {
    path: PathBuf,
    #[source]
    source: notify::Error,
}

/// The watch on a config's files; dropping it stops watching.
pub struct FileWatch {
    task: tokio::task::JoinHandle<()>,
}

/// The files watched and the directories holding them.
struct Watched {
    watcher: notify::RecommendedWatcher,
    /// Files as `(directory, name)`, directories canonical.
    files: BTreeSet<(PathBuf, std::ffi::OsString)>,
    directories: BTreeSet<PathBuf>,
}

// === impl FileWatch ===

impl FileWatch {
    /// Watches the files `config` (read from `path`) reads, and reloads
    /// `server` once changes to them settle for `debounce`.
    pub fn start(
        server: WeakServerHandle,
        path: PathBuf,
        config: &Config,
        debounce: Duration,
    ) -> Result<FileWatch, WatchError> {
        let (events, changes) = mpsc::channel(QUEUE);
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event
                && !matches!(event.kind, notify::EventKind::Access(_))
            {
                let _ = events.try_send(event.paths);
            }
        })
        .map_err(|source| WatchError {
            path: path.clone(),
            source,
        })?;
        let mut watched = Watched {
            watcher,
            files: BTreeSet::new(),
            directories: BTreeSet::new(),
        };
        watched.set(&config.files())?;
        let task = tokio::spawn(watch(server, path, watched, changes, debounce));
        Ok(FileWatch { task })
    }
}

impl Drop for FileWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reloads after each settled change, until the server is gone.
async fn watch(
    server: WeakServerHandle,
    path: PathBuf,
    mut watched: Watched,
    mut changes: mpsc::Receiver<Vec<PathBuf>>,
    debounce: Duration,
) {
    while let Some(paths) = changes.recv().await {
        if !watched.concerns(&paths) {
            continue;
        }
        // Settle: every further event restarts the wait.
        while let Ok(Some(_)) = tokio::time::timeout(debounce, changes.recv()).await {}
        let Some(handle) = server.upgrade() else {
            return;
        };
        tracing::info!(path = %path.display(), "a watched file changed, reloading");
        if handle.reload().await.is_ok() {
            // The new config may name other plugins or certificates.
            match Config::load(&path) {
                Ok(config) => {
                    if let Err(error) = watched.set(&config.files()) {
                        tracing::warn!(error = %crate::error_chain(&error), "watching the new config's files");
                    }
                }
                Err(error) => {
                    tracing::warn!(error = %crate::error_chain(&error), "re-reading the config for its files");
                }
            }
        }
    }
}

// === impl Watched ===

impl Watched {
    /// Watches `files` (and stops watching directories none of them is
    /// in any more).
    fn set(&mut self, files: &[PathBuf]) -> Result<(), WatchError> {
        let mut wanted_files = BTreeSet::new();
        for file in files {
            let Some(name) = file.file_name() else {
                continue;
            };
            let directory = canonical_directory(file);
            wanted_files.insert((directory, name.to_owned()));
        }
        let wanted: BTreeSet<PathBuf> = wanted_files.iter().map(|(dir, _)| dir.clone()).collect();
        for gone in self.directories.difference(&wanted) {
            let _ = self.watcher.unwatch(gone);
        }
        for added in wanted.difference(&self.directories) {
            self.watcher
                .watch(added, RecursiveMode::NonRecursive)
                .map_err(|source| WatchError {
                    path: added.clone(),
                    source,
                })?;
        }
        self.directories = wanted;
        self.files = wanted_files;
        Ok(())
    }

    /// Whether an event on `paths` touches a watched file.
    fn concerns(&self, paths: &[PathBuf]) -> bool {
        paths.iter().any(|path| {
            let (Some(directory), Some(name)) = (path.parent(), path.file_name()) else {
                return false;
            };
            self.files
                .contains(&(canonical_directory_of(directory), name.to_owned()))
        })
    }
}

/// `file`'s directory, canonical when it exists (events name it so).
fn canonical_directory(file: &Path) -> PathBuf {
    let directory = match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    canonical_directory_of(directory)
}

fn canonical_directory_of(directory: &Path) -> PathBuf {
    directory
        .canonicalize()
        .unwrap_or_else(|_| directory.to_owned())
}
