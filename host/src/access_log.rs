//! The access log: one line per HTTP request and per TCP connection
//! (`[access-log]`, off by default), as JSON or logfmt, to a file or
//! stdout.
//!
//! The request path never waits on it. A finished request hands its
//! [`Entry`] to a bounded queue and goes on; a thread of the log's own
//! formats and writes the lines, flushing whenever the queue runs dry.
//! When the queue is full (a disk slower than the traffic) the entry is
//! dropped and counted in `bascule_access_log_dropped_total`.
//!
//! Each plan owns its log: a reload opens the file again (so a reload
//! after `logrotate` moved it starts the new file), and the old plan's
//! writer finishes its queue and ends with the last request that used it.

mod entry;
mod format;

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

pub use entry::{Entry, Kind};

use crate::config::{AccessLogConfig, AccessLogFormat};

/// Why the access log cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum AccessLogError {
    /// The file cannot be opened for appending.
    #[error("cannot open the access log {path}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The writer thread cannot start.
    #[error("cannot start the access-log writer")]
    Thread(#[source] std::io::Error),
}

/// Where entries go; cheap to clone (every request of the plan holds one
/// while it runs).
#[derive(Clone)]
pub struct AccessLog {
    queue: SyncSender<Entry>,
    dropped: metrics::Counter,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog").finish_non_exhaustive()
    }
}

// === impl AccessLog ===

impl AccessLog {
    /// Opens the log `config` describes and starts its writer.
    pub fn open(config: &AccessLogConfig) -> Result<AccessLog, AccessLogError> {
        let out: Box<dyn std::io::Write + Send> = match &config.path {
            Some(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| AccessLogError::Open {
                        path: path.clone(),
                        source,
                    })?,
            ),
            None => Box::new(std::io::stdout()),
        };
        let (queue, entries) = std::sync::mpsc::sync_channel(config.buffer);
        let format = config.format;
        std::thread::Builder::new()
            .name("bascule-access-log".to_owned())
            .spawn(move || write_lines(&entries, format, out))
            .map_err(AccessLogError::Thread)?;
        Ok(AccessLog {
            queue,
            dropped: metrics::counter!(crate::metrics::ACCESS_LOG_DROPPED),
        })
    }

    /// Queues `entry`; drops it (counted) when the writer is behind.
    pub fn log(&self, entry: Entry) {
        match self.queue.try_send(entry) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.increment(1);
            }
        }
    }
}

/// The writer thread: lines until every sender is gone, flushed whenever
/// no more are waiting. A failed write is logged (rate-limited by its
/// rarity: a full disk fails each flush) and the lines go on.
fn write_lines(
    entries: &Receiver<Entry>,
    format: AccessLogFormat,
    out: Box<dyn std::io::Write + Send>,
) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    let mut line = String::with_capacity(512);
    let mut last_error = None::<tokio::time::Instant>;
    while let Ok(entry) = entries.recv() {
        let mut next = Some(entry);
        while let Some(entry) = next {
            line.clear();
            format::write(&entry, format, &mut line);
            line.push('\n');
            if let Err(error) = out.write_all(line.as_bytes()) {
                report(&mut last_error, &error);
            }
            next = entries.try_recv().ok();
        }
        if let Err(error) = out.flush() {
            report(&mut last_error, &error);
        }
    }
    let _ = out.flush();
}

/// Logs a write error at most once a minute.
fn report(last: &mut Option<tokio::time::Instant>, error: &std::io::Error) {
    let now = tokio::time::Instant::now();
    if last.is_none_or(|at| now.duration_since(at) >= std::time::Duration::from_secs(60)) {
        *last = Some(now);
        tracing::warn!(%error, "writing the access log failed");
    }
}
